package main

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"
)

// number matches the cells the table right-aligns.
var number = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// writeTable draws a table the way calicoctl's (olekukonko/tablewriter's defaults) does:
// each column as wide as its widest cell, one space of padding, upper-case centred headers,
// cells left-aligned and numbers right-aligned. Scripts written against calicoctl's output
// then read ours.
func writeTable(w io.Writer, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for _, r := range append([][]string{header}, rows...) {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	rule := "+"
	for _, n := range widths {
		rule += strings.Repeat("-", n+2) + "+"
	}
	fmt.Fprintln(w, rule)
	writeRow(w, widths, header, centre, strings.ToUpper)
	fmt.Fprintln(w, rule)
	for _, r := range rows {
		writeRow(w, widths, r, alignCell, nil)
	}
	fmt.Fprintln(w, rule)
}

func writeRow(w io.Writer, widths []int, cells []string, align func(string, int) string, conv func(string) string) {
	var b strings.Builder
	b.WriteString("|")
	for i, c := range cells {
		if conv != nil {
			c = conv(c)
		}
		b.WriteString(" " + align(c, widths[i]) + " |")
	}
	fmt.Fprintln(w, b.String())
}

// centre puts the odd space of padding on the right, as tablewriter does.
func centre(s string, width int) string {
	gap := width - utf8.RuneCountInString(s)
	return strings.Repeat(" ", gap/2) + s + strings.Repeat(" ", gap-gap/2)
}

func alignCell(s string, width int) string {
	gap := width - utf8.RuneCountInString(s)
	if number.MatchString(s) {
		return strings.Repeat(" ", gap) + s
	}
	return s + strings.Repeat(" ", gap)
}
