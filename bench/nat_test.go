package bench

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/nat"
)

// natPools is how many IP pools one run has; NODENET_NAT_BENCH_POOLS overrides.
const natPools = 200

// natReps is how many times the update (one pool added, then removed) is measured each way;
// the figures are medians.
const natReps = 21

// natPool is pool i: a /24 of 10.0.0.0/8, next to pool i+1 (pools carved one after the other
// from a range, as operators do); every fourth is disabled or has no nat_outgoing, so it is
// exempt only.
func natPool(i int) (netip.Prefix, bool) {
	return netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)), i%4 != 3
}

func natContribution(i int) *nat.Contribution {
	p, masq := natPool(i)
	c := &nat.Contribution{Exempt: []netip.Prefix{p}}
	if masq {
		c.Masquerade = []netip.Prefix{p}
	}
	return c
}

// natRuleset is the same table as an operator's script writes it for nft -f: declared, deleted
// and made again in one transaction, which is how a script brings a table to a state whether
// it exists or not (the pools of ids).
func natRuleset(ids []int) string {
	var masq, exempt []string
	for _, i := range ids {
		p, m := natPool(i)
		exempt = append(exempt, p.String())
		if m {
			masq = append(masq, p.String())
		}
	}
	elems := func(ps []string) string {
		if len(ps) == 0 {
			return ""
		}
		return "elements = { " + strings.Join(ps, ", ") + " }"
	}
	return fmt.Sprintf(`table ip nodenet
delete table ip nodenet
table ip nodenet {
	set masq_sources {
		type ipv4_addr
		flags interval
		%s
	}
	set masq_exempt {
		type ipv4_addr
		flags interval
		%s
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr @masq_sources ip daddr != @masq_exempt masquerade
	}
}
`, elems(masq), elems(exempt))
}

var natNS atomic.Int64

// natNamespace makes a throwaway network namespace, deleted when the benchmark ends.
func natNamespace(b *testing.B) string {
	b.Helper()
	name := fmt.Sprintf("nntnat%d-b%d", os.Getpid(), natNS.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		b.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	b.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	return name
}

func nftIn(b *testing.B, ns string, args ...string) string {
	b.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput()
	if err != nil {
		b.Fatalf("nft %s in %s: %v: %s", strings.Join(args, " "), ns, err, out)
	}
	return string(out)
}

// nftLoad times one `nft -f file` in ns, the process included: what a script pays.
func nftLoad(b *testing.B, ns, file, text string) time.Duration {
	b.Helper()
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	nftIn(b, ns, "-f", file)
	return time.Since(start)
}

// natSet times Steps and Run of one contribution.
func natSet(b *testing.B, t *nat.Table, id string, c *nat.Contribution) time.Duration {
	b.Helper()
	start := time.Now()
	steps, err := t.Steps(id, c)
	if err == nil {
		err = dataplane.Run("nat "+id, steps, nil)
	}
	if err != nil {
		b.Fatalf("nat %s: %v", id, err)
	}
	return time.Since(start)
}

// sameTable fails unless both namespaces hold the same table nodenet as nft lists it: the
// same elements in both sets, the same rule.
func sameTable(b *testing.B, what, nsA, nsB string) {
	b.Helper()
	a := nftIn(b, nsA, "list", "table", "ip", "nodenet")
	c := nftIn(b, nsB, "list", "table", "ip", "nodenet")
	if a != c {
		b.Fatalf("%s: the table differs between the ways:\n%s\nnft -f:\n%s", what, a, c)
	}
}

func msec(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkNAT compares nodenet's NAT table (nodeagent/nat, netlink) with `nft -f` of the
// same ruleset, in throwaway namespaces: (1) N pools from empty, the Table one object at a
// time (as N ip_pool applies), the Table with the union at once (as a restore after reboot)
// and one nft -f; (2) the update: one pool added to N, then removed, the Table (Steps and
// Run: one transaction of one element per set) against nft -f of the whole table again. It
// checks that both ways hold the same table after each; it asserts no timing. One iteration
// whatever b.N says; run with -benchtime 1x (make bench).
func BenchmarkNAT(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: the tables are made in throwaway network namespaces")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		b.Skip("nft is not on PATH (make deps installs nftables)")
	}
	n := envInt(b, "NODENET_NAT_BENCH_POOLS", natPools, 1, 50000)
	file := filepath.Join(b.TempDir(), "nodenet.nft")
	ids := make([]int, n)
	for i := range ids {
		ids[i] = i
	}

	// (1a) The Table, one object at a time.
	nsOne := natNamespace(b)
	tOne, err := nat.Open("/run/netns/" + nsOne)
	if err != nil {
		b.Fatal(err)
	}
	defer tOne.Close()
	var oneByOne time.Duration
	for i := 0; i < n; i++ {
		oneByOne += natSet(b, tOne, fmt.Sprintf("ip_pool/%d", i), natContribution(i))
	}

	// (1b) The Table, the union at once: the store's contributions loaded, the last object's
	// sync makes the whole table in one transaction.
	nsAll := natNamespace(b)
	tAll, err := nat.Open("/run/netns/" + nsAll)
	if err != nil {
		b.Fatal(err)
	}
	defer tAll.Close()
	stored := map[string]nat.Contribution{}
	for i := 0; i < n-1; i++ {
		stored[fmt.Sprintf("ip_pool/%d", i)] = *natContribution(i)
	}
	tAll.Load(stored)
	atOnce := natSet(b, tAll, fmt.Sprintf("ip_pool/%d", n-1), natContribution(n-1))

	// (1c) nft -f.
	nsNft := natNamespace(b)
	nftEmpty := nftLoad(b, nsNft, file, natRuleset(ids))
	sameTable(b, "from empty, one at a time", nsOne, nsNft)
	sameTable(b, "from empty, at once", nsAll, nsNft)

	// (2) One pool more, then one fewer, natReps times each way.
	extra := n // pool n: next to the last one
	var tAdd, tDel, nAdd, nDel []time.Duration
	withExtra := append(slices.Clone(ids), extra)
	for r := 0; r < natReps; r++ {
		tAdd = append(tAdd, natSet(b, tOne, "ip_pool/extra", natContribution(extra)))
		nAdd = append(nAdd, nftLoad(b, nsNft, file, natRuleset(withExtra)))
		if r == 0 {
			sameTable(b, "one pool added", nsOne, nsNft)
		}
		tDel = append(tDel, natSet(b, tOne, "ip_pool/extra", nil))
		nDel = append(nDel, nftLoad(b, nsNft, file, natRuleset(ids)))
		if r == 0 {
			sameTable(b, "one pool removed", nsOne, nsNft)
		}
	}
	// A pool in the middle removed and added back: still one element per set.
	mid := n / 2
	steps, err := tOne.Steps(fmt.Sprintf("ip_pool/%d", mid), nil)
	if err != nil {
		b.Fatal(err)
	}
	midChanges := len(dataplane.Changes(steps))

	masqN := 0
	for i := 0; i < n; i++ {
		if _, m := natPool(i); m {
			masqN++
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "nftables NAT table: %d IP pools (%d with nat_outgoing, %d exempt only), table ip nodenet with two interval sets and one rule\n", n, masqN, n-masqN)
	fmt.Fprintf(&sb, "  from empty:\n")
	fmt.Fprintf(&sb, "    (a) nat.Table, one object at a time (%d transactions)   %9.2f ms\n", n, msec(oneByOne))
	fmt.Fprintf(&sb, "    (b) nat.Table, the union at once (one transaction)     %9.2f ms\n", msec(atOnce))
	fmt.Fprintf(&sb, "    (c) nft -f of the ruleset (one process)                %9.2f ms\n", msec(nftEmpty))
	fmt.Fprintf(&sb, "  one pool added to %d / removed again (median of %d each):\n", n, natReps)
	fmt.Fprintf(&sb, "    (d) nat.Table: Steps + Run (one element per set)       %9.2f ms / %.2f ms\n", msec(median(tAdd)), msec(median(tDel)))
	fmt.Fprintf(&sb, "    (e) nft -f of the whole table, deleted and made again  %9.2f ms / %.2f ms\n", msec(median(nAdd)), msec(median(nDel)))
	fmt.Fprintf(&sb, "  ratios: from empty (c)/(b) = %.2fx, (c)/(a) = %.2fx   update (e)/(d) = %.1fx added, %.1fx removed\n",
		nftEmpty.Seconds()/atOnce.Seconds(), nftEmpty.Seconds()/oneByOne.Seconds(),
		median(nAdd).Seconds()/median(tAdd).Seconds(), median(nDel).Seconds()/median(tDel).Seconds())
	fmt.Fprintf(&sb, "  changes of the update: %d (a pool in the middle removed); both ways hold the same table after each step (nft list table)\n", midChanges)
	report(b, sb.String())
	b.ReportMetric(msec(atOnce), "ms-table-at-once")
	b.ReportMetric(msec(nftEmpty), "ms-nft-f")
	b.ReportMetric(msec(median(tAdd)), "ms-table-add1")
	b.ReportMetric(msec(median(nAdd)), "ms-nft-f-add1")
	b.ReportMetric(median(nAdd).Seconds()/median(tAdd).Seconds(), "x-update")
}
