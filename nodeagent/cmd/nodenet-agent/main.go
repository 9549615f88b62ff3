// Command nodenet-agent runs on every node and applies nodenet's node networking through
// netlink on behalf of the Terraform provider (gRPC with mutual TLS).
//
//	nodenet-agent serve   run the agent
//	nodenet-agent certs   make a CA and server/client certificates
//	nodenet-agent status  show what an agent reports
//	nodenet-agent lab     run a lab of network namespaces with agents (up|down|status|stop|start)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// version is set with -ldflags "-X main.version=..."; else the module version is used.
var version = ""

func agentVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

type command struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the agent (gRPC with mTLS)", runServe},
		{"certs", "write a CA, server certificates per node and a client certificate", runCerts},
		{"status", "print what an agent reports, and its BGP status as calicoctl node status does", runStatus},
		{"lab", "network-namespace lab with agents: lab up | down | status | stop | start", runLab},
		{"version", "print the agent version", func([]string, io.Writer, io.Writer) error {
			fmt.Println(agentVersion())
			return nil
		}},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: nodenet-agent <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-8s %s\n", "help", "show this help")
	fmt.Fprintf(w, "\nRun 'nodenet-agent <command> -h' for the flags of a command.\n")
}

// errUsage marks an error already reported with usage; main exits 2 without repeating it.
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return errUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "nodenet-agent: unknown command %q\n\n", args[0])
	usage(stderr)
	return errUsage
}

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "nodenet-agent: %v\n", err)
		os.Exit(1)
	}
}

// newFlagSet returns a FlagSet that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("nodenet-agent "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses args and refuses positional leftovers.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected arguments: %s\n", fs.Name(), strings.Join(fs.Args(), " "))
		return errUsage
	}
	return nil
}

// listFlag is a repeatable flag; values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
