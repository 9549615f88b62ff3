package nat

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Integration tests: the real kernel, each in a network namespace of its own.

// calicoTable is what Calico's Felix (nftables mode) has on a node, in short: a table of its
// own with a NAT chain at the same hook, which nodenet must never touch.
const calicoTable = `table ip calico {
	set nat-pools {
		type ipv4_addr
		flags interval
		elements = { 10.244.0.0/16 }
	}

	chain nat-postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr @nat-pools ip daddr != @nat-pools masquerade
	}
}
`

// observe is Observe that fails the test on an error.
func observe(t *testing.T, tb *Table, p string) *pb.NatState {
	t.Helper()
	st, err := tb.Observe(pfx(p)[0])
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func wantDrift(t *testing.T, tb *Table, want ...string) {
	t.Helper()
	if got := observe(t, tb, "10.244.0.0/16").GetDrift(); !slices.Equal(got, want) {
		t.Fatalf("drift = %q, want %q", got, want)
	}
}

func wantChanges(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("changes = %q, want %q", got, want)
	}
}

func TestPoolsMakeTheTableAndLeaveOtherTablesAlone(t *testing.T) {
	ns := newNS(t)
	nftFile(t, ns, calicoTable)
	before := ruleset(t, ns)
	calico := nft(t, ns, "list", "table", "ip", "calico")
	tb := openTable(t, ns)

	changes := apply(t, tb, "ip_pool/10.244.0.0/16", pool("10.244.0.0/16", true))
	wantChanges(t, changes, "ADD table nodenet", "ADD set masquerade", "ADD set exempt",
		"ADD set masquerade 10.244.0.0/16", "ADD set exempt 10.244.0.0/16", "ADD chain postrouting", "ADD rule masquerade")
	// A disabled pool: exempt as a destination, never masqueraded.
	changes = apply(t, tb, "ip_pool/10.250.0.0/24", pool("10.250.0.0/24", false))
	wantChanges(t, changes, "ADD set exempt 10.250.0.0/24")

	// What an operator sees on the node.
	want := `table ip nodenet {
	set masq_sources {
		type ipv4_addr
		flags interval
		elements = { 10.244.0.0/16 }
	}

	set masq_exempt {
		type ipv4_addr
		flags interval
		elements = { 10.244.0.0/16, 10.250.0.0/24 }
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr @masq_sources ip daddr != @masq_exempt masquerade
	}
}
`
	if got := nft(t, ns, "list", "table", "ip", "nodenet"); got != want {
		t.Fatalf("nft list table ip nodenet:\n%s\nwant:\n%s", got, want)
	}
	if st := observe(t, tb, "10.244.0.0/16"); !st.Rule || !st.Masquerade || !st.Exempt || len(st.Drift) != 0 {
		t.Fatalf("NAT pool observed as %v", st)
	}
	if st := observe(t, tb, "10.250.0.0/24"); !st.Rule || st.Masquerade || !st.Exempt {
		t.Fatalf("disabled pool observed as %v", st)
	}
	if got := nft(t, ns, "list", "table", "ip", "calico"); got != calico {
		t.Fatalf("Calico's table changed:\n%s\nwas:\n%s", got, calico)
	}

	// A pool's contribution replaced, then both removed: the table goes, all of it.
	wantChanges(t, apply(t, tb, "ip_pool/10.250.0.0/24", pool("10.250.0.0/24", true)), "ADD set masquerade 10.250.0.0/24")
	wantChanges(t, apply(t, tb, "ip_pool/10.244.0.0/16", nil), "DELETE set masquerade 10.244.0.0/16", "DELETE set exempt 10.244.0.0/16")
	if got := nft(t, ns, "list", "table", "ip", "calico"); got != calico {
		t.Fatalf("Calico's table changed:\n%s\nwas:\n%s", got, calico)
	}
	wantChanges(t, apply(t, tb, "ip_pool/10.250.0.0/24", nil), "DELETE table nodenet")
	if got := ruleset(t, ns); got != before {
		t.Fatalf("nft list ruleset after removing every contribution:\n%s\nbefore:\n%s", got, before)
	}
	wantDrift(t, tb)
}

func TestOnePoolMoreAmong200ChangesOneElementPerSet(t *testing.T) {
	ns := newNS(t)
	tb := openTable(t, ns)
	for i := 0; i < 200; i++ {
		apply(t, tb, fmt.Sprintf("pool-%d", i), pool(fmt.Sprintf("10.%d.%d.0/24", 100+i/200, i%200), i%2 == 0))
	}
	// Next to pool-199 (10.100.199.0/24): adjacent, still an element of its own.
	wantChanges(t, apply(t, tb, "pool-new", pool("10.100.200.0/24", true)),
		"ADD set masquerade 10.100.200.0/24", "ADD set exempt 10.100.200.0/24")
	wantChanges(t, apply(t, tb, "pool-3", nil), "DELETE set exempt 10.100.3.0/24")
	if got := strings.Count(nft(t, ns, "list", "set", "ip", "nodenet", "masq_exempt"), "/24"); got != 200 {
		t.Fatalf("masq_exempt holds %d /24 elements, want 200", got)
	}
	wantDrift(t, tb)
}

// ruleHandle is the handle of nodenet's rule, as an operator finds it with nft -a.
func ruleHandle(t *testing.T, ns string) string {
	t.Helper()
	out := nft(t, ns, "-a", "list", "chain", "ip", "nodenet", "postrouting")
	m := regexp.MustCompile(`masquerade # handle (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no rule in:\n%s", out)
	}
	return m[1]
}

// repair runs a sync (an object's contribution applied again, unchanged) and checks that it
// changes exactly what the drift said and leaves no drift.
func repair(t *testing.T, tb *Table, want ...string) {
	t.Helper()
	wantChanges(t, apply(t, tb, "ip_pool/10.244.0.0/16", pool("10.244.0.0/16", true)), want...)
	wantDrift(t, tb)
}

func TestDriftMadeByHandIsObservedAndRepaired(t *testing.T) {
	ns := newNS(t)
	tb := openTable(t, ns)
	apply(t, tb, "ip_pool/10.244.0.0/16", pool("10.244.0.0/16", true))
	apply(t, tb, "ip_pool/10.250.0.0/24", pool("10.250.0.0/24", false))

	t.Run("rule deleted", func(t *testing.T) {
		nft(t, ns, "delete", "rule", "ip", "nodenet", "postrouting", "handle", ruleHandle(t, ns))
		if st := observe(t, tb, "10.244.0.0/16"); st.Rule || !st.Masquerade {
			t.Fatalf("observed %v, want no rule and the pool still among the sources", st)
		}
		wantDrift(t, tb, "- rule masquerade")
		repair(t, tb, "ADD rule masquerade")
	})
	t.Run("element added", func(t *testing.T) {
		nft(t, ns, "add", "element", "ip", "nodenet", "masq_exempt", "{ 10.99.0.0/16 }")
		if st := observe(t, tb, "10.99.0.0/16"); !st.Exempt {
			t.Fatalf("observed %v, want 10.99.0.0/16 exempt", st)
		}
		wantDrift(t, tb, "+ exempt 10.99.0.0/16")
		repair(t, tb, "DELETE set exempt 10.99.0.0/16")
	})
	t.Run("element deleted", func(t *testing.T) {
		nft(t, ns, "delete", "element", "ip", "nodenet", "masq_sources", "{ 10.244.0.0/16 }")
		if st := observe(t, tb, "10.244.0.0/16"); st.Masquerade || !st.Rule {
			t.Fatalf("observed %v, want the pool no longer among the sources", st)
		}
		wantDrift(t, tb, "- masquerade 10.244.0.0/16")
		repair(t, tb, "ADD set masquerade 10.244.0.0/16")
	})
	t.Run("rule added to the chain", func(t *testing.T) {
		nft(t, ns, "add", "rule", "ip", "nodenet", "postrouting", "ip saddr { 192.0.2.1, 192.0.2.2 } accept")
		handle := regexp.MustCompile(`accept # handle (\d+)`).FindStringSubmatch(nft(t, ns, "-a", "list", "chain", "ip", "nodenet", "postrouting"))[1]
		wantDrift(t, tb, "+ rule postrouting handle "+handle)
		repair(t, tb, "DELETE rule postrouting handle "+handle)
	})
	t.Run("chain deleted", func(t *testing.T) {
		nft(t, ns, "delete", "chain", "ip", "nodenet", "postrouting")
		if st := observe(t, tb, "10.244.0.0/16"); st.Rule {
			t.Fatalf("observed %v, want no rule", st)
		}
		wantDrift(t, tb, "- chain postrouting", "- rule masquerade")
		repair(t, tb, "ADD chain postrouting", "ADD rule masquerade")
	})
	t.Run("chain made again as a filter chain", func(t *testing.T) {
		nft(t, ns, "delete", "chain", "ip", "nodenet", "postrouting")
		nft(t, ns, "add", "chain", "ip", "nodenet", "postrouting", "{ type filter hook postrouting priority 0; }")
		wantDrift(t, tb, "~ chain postrouting: type filter hook postrouting priority 0, not type nat hook postrouting priority srcnat", "- rule masquerade")
		repair(t, tb, "DELETE chain postrouting", "ADD chain postrouting", "ADD rule masquerade")
	})
	t.Run("table made dormant", func(t *testing.T) {
		nft(t, ns, "add", "table", "ip", "nodenet", "{ flags dormant; }")
		if st := observe(t, tb, "10.244.0.0/16"); st.Rule {
			t.Fatalf("observed %v, want no working rule", st)
		}
		wantDrift(t, tb, "~ table nodenet: flags dormant, nothing in it runs")
		repair(t, tb, "UPDATE table nodenet")
	})
	t.Run("table deleted", func(t *testing.T) {
		nft(t, ns, "delete", "table", "ip", "nodenet")
		if st := observe(t, tb, "10.244.0.0/16"); st.Rule || st.Masquerade || st.Exempt {
			t.Fatalf("observed %v, want nothing", st)
		}
		wantDrift(t, tb, "- table nodenet")
		repair(t, tb, "ADD table nodenet", "ADD set masquerade", "ADD set exempt",
			"ADD set masquerade 10.244.0.0/16", "ADD set exempt 10.244.0.0/16", "ADD set exempt 10.250.0.0/24",
			"ADD chain postrouting", "ADD rule masquerade")
	})
}

func TestDryRunChangesNothing(t *testing.T) {
	ns := newNS(t)
	tb := openTable(t, ns)
	apply(t, tb, "ip_pool/10.244.0.0/16", pool("10.244.0.0/16", true))
	before := ruleset(t, ns)

	steps, err := tb.Steps("ip_pool/10.250.0.0/24", pool("10.250.0.0/24", true))
	if err != nil {
		t.Fatal(err)
	}
	wantChanges(t, changeLines(steps), "ADD set masquerade 10.250.0.0/24", "ADD set exempt 10.250.0.0/24")
	steps, err = tb.Steps("ip_pool/10.244.0.0/16", nil)
	if err != nil {
		t.Fatal(err)
	}
	wantChanges(t, changeLines(steps), "DELETE table nodenet")

	if got := ruleset(t, ns); got != before {
		t.Fatalf("a dry run changed the ruleset:\n%s\nbefore:\n%s", got, before)
	}
	// Nor the record: the table is still exactly what the objects ask.
	wantDrift(t, tb)
	if st := observe(t, tb, "10.250.0.0/24"); st.Masquerade || st.Exempt {
		t.Fatalf("planned pool observed as %v", st)
	}
}

func failAt(key string) func(*pb.Change) error {
	return func(c *pb.Change) error {
		if c.GetKey() == key {
			return errors.New("injected failure")
		}
		return nil
	}
}

func TestFailedStepsRollBack(t *testing.T) {
	ns := newNS(t)
	tb := openTable(t, ns)

	t.Run("a step fails before the transaction", func(t *testing.T) {
		before := ruleset(t, ns)
		steps, err := tb.Steps("ip_pool/10.244.0.0/16", pool("10.244.0.0/16", true))
		if err != nil {
			t.Fatal(err)
		}
		if err := dataplane.Run("nat", steps, failAt("rule masquerade")); err == nil {
			t.Fatal("run succeeded despite the failure")
		}
		if got := ruleset(t, ns); got != before {
			t.Fatalf("ruleset after the failure:\n%s\nbefore:\n%s", got, before)
		}
		wantDrift(t, tb) // the contribution was not recorded: no table is expected
	})

	apply(t, tb, "ip_pool/10.244.0.0/16", pool("10.244.0.0/16", true))
	later := dataplane.Step{Desc: "a later step of the caller", Do: func() error { return errors.New("injected failure") }}

	t.Run("a later step fails after the transaction", func(t *testing.T) {
		before := ruleset(t, ns)
		// A pool nested in the one applied, and one more: the undo must give back the
		// elements as they were.
		steps, err := tb.Steps("link/remote", &Contribution{Exempt: pfx("10.0.0.0/8", "172.16.0.0/12")})
		if err != nil {
			t.Fatal(err)
		}
		if err := dataplane.Run("nat", append(steps, later), nil); err == nil {
			t.Fatal("run succeeded despite the failure")
		}
		if got := ruleset(t, ns); got != before {
			t.Fatalf("ruleset after the rollback:\n%s\nbefore:\n%s", got, before)
		}
		wantDrift(t, tb)
		if st := observe(t, tb, "172.16.0.0/12"); st.Exempt {
			t.Fatalf("rolled back contribution observed as %v", st)
		}
	})

	t.Run("a later step fails after the table was deleted", func(t *testing.T) {
		before := ruleset(t, ns)
		steps, err := tb.Steps("ip_pool/10.244.0.0/16", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := dataplane.Run("nat", append(steps, later), nil); err == nil {
			t.Fatal("run succeeded despite the failure")
		}
		if got := ruleset(t, ns); got != before {
			t.Fatalf("ruleset after the rollback:\n%s\nbefore:\n%s", got, before)
		}
		wantDrift(t, tb)
	})

	t.Run("the kernel refuses the transaction", func(t *testing.T) {
		before := ruleset(t, ns)
		// The pool's elements and, in the same transaction, an element deleted that the set
		// does not hold: the kernel refuses all of it.
		tb.testQueue = func(c *nftables.Conn) {
			s := &nftables.Set{Table: tableSpec(), Name: exemptSet, KeyType: nftables.TypeIPAddr, KeyByteOrder: binaryutil.BigEndian, Interval: true}
			_ = c.SetDeleteElements(s, encode(pfxRange("192.0.2.0/24")))
		}
		defer func() { tb.testQueue = nil }()
		steps, err := tb.Steps("ip_pool/10.250.0.0/24", pool("10.250.0.0/24", true))
		if err != nil {
			t.Fatal(err)
		}
		err = dataplane.Run("nat", steps, nil)
		if err == nil {
			t.Fatal("the kernel took a transaction that deletes a missing element")
		}
		t.Log(err)
		if got := ruleset(t, ns); got != before {
			t.Fatalf("ruleset after the refused transaction:\n%s\nbefore:\n%s", got, before)
		}
		wantDrift(t, tb)
	})
}

func TestRefusesATableHoldingWhatNodenetDoesNotMake(t *testing.T) {
	ns := newNS(t)
	tb := openTable(t, ns)
	apply(t, tb, "ip_pool/10.244.0.0/16", pool("10.244.0.0/16", true))
	nft(t, ns, "add", "chain", "ip", "nodenet", "forward", "{ type filter hook forward priority 0; }")
	nft(t, ns, "add", "counter", "ip", "nodenet", "seen")
	before := ruleset(t, ns)

	wantDrift(t, tb, "+ chain forward", "+ counter seen")
	for _, c := range []*Contribution{pool("10.250.0.0/24", true), nil} {
		_, err := tb.Steps("ip_pool/10.250.0.0/24", c)
		var conflict *reconcile.ConflictError
		if !errors.As(err, &conflict) {
			t.Fatalf("steps over a foreign chain: %v, want a conflict", err)
		}
		if !strings.Contains(err.Error(), "nft delete chain ip nodenet forward") {
			t.Fatalf("the refusal does not say what to do: %v", err)
		}
	}
	if _, err := tb.Steps("ip_pool/10.244.0.0/16", nil); err == nil {
		t.Fatal("removing the last contribution would delete a foreign chain")
	}
	if got := ruleset(t, ns); got != before {
		t.Fatalf("ruleset changed:\n%s\nbefore:\n%s", got, before)
	}

	nft(t, ns, "delete", "chain", "ip", "nodenet", "forward")
	nft(t, ns, "delete", "counter", "ip", "nodenet", "seen")
	wantChanges(t, apply(t, tb, "ip_pool/10.244.0.0/16", nil), "DELETE table nodenet")
}

func TestConcurrentContributions(t *testing.T) {
	ns := newNS(t)
	tb := openTable(t, ns)
	// Pools, some nested in others, and remote CIDRs holding some: each object plans and
	// runs at once with the others, between its Steps and its Run too.
	contribs := map[string]*Contribution{}
	for i := 0; i < 16; i++ {
		contribs[fmt.Sprintf("ip_pool/%d", i)] = pool(fmt.Sprintf("10.%d.0.0/16", 100+i), i%3 != 0)
		contribs[fmt.Sprintf("ip_pool/%d-inner", i)] = pool(fmt.Sprintf("10.%d.%d.0/24", 100+i, i), true)
	}
	contribs["link/a"] = &Contribution{Exempt: pfx("10.96.0.0/11")} // 10.96.0.0 - 10.127.255.255
	contribs["link/b"] = &Contribution{Exempt: pfx("10.112.0.0/12")}

	var wg sync.WaitGroup
	set := func(id string, c *Contribution) {
		defer wg.Done()
		steps, err := tb.Steps(id, c)
		if err == nil {
			err = dataplane.Run("nat "+id, steps, nil)
		}
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	for id, c := range contribs {
		wg.Add(1)
		go set(id, c)
	}
	wg.Wait()
	wantDrift(t, tb)
	got := nft(t, ns, "list", "set", "ip", "nodenet", "masq_exempt")
	if !strings.Contains(got, "elements = { 10.96.0.0/11 }") {
		t.Fatalf("exempt set is not the one range holding every pool:\n%s", got)
	}
	for id := range contribs {
		wg.Add(1)
		go set(id, nil)
	}
	wg.Wait()
	if got := ruleset(t, ns); got != "" {
		t.Fatalf("ruleset after every contribution was removed:\n%s", got)
	}
}

func TestStepsRunAfterTheTableChangedPlanAgain(t *testing.T) {
	ns := newNS(t)
	tb := openTable(t, ns)
	apply(t, tb, "ip_pool/10.244.0.0/16", pool("10.244.0.0/16", true))

	t.Run("another object ran its steps in between", func(t *testing.T) {
		// Planned first: 10.0.0.0/8 added. Run last, after 10.5.0.0/16 went in, which the
		// /8 holds: the plan of the /8 alone would overlap it.
		link, err := tb.Steps("link/a", &Contribution{Exempt: pfx("10.0.0.0/8")})
		if err != nil {
			t.Fatal(err)
		}
		inner, err := tb.Steps("ip_pool/10.5.0.0/16", pool("10.5.0.0/16", false))
		if err != nil {
			t.Fatal(err)
		}
		if err := dataplane.Run("inner", inner, nil); err != nil {
			t.Fatal(err)
		}
		if err := dataplane.Run("link", link, nil); err != nil {
			t.Fatal(err)
		}
		wantDrift(t, tb)
		if got := nft(t, ns, "list", "set", "ip", "nodenet", "masq_exempt"); !strings.Contains(got, "elements = { 10.0.0.0/8 }") {
			t.Fatalf("exempt set:\n%s", got)
		}
		apply(t, tb, "link/a", nil)
		apply(t, tb, "ip_pool/10.5.0.0/16", nil)
	})

	t.Run("an edit by hand in between", func(t *testing.T) {
		steps, err := tb.Steps("ip_pool/10.250.0.0/24", pool("10.250.0.0/24", false))
		if err != nil {
			t.Fatal(err)
		}
		// Overlaps the element the steps add: the kernel refuses the plan as it was made.
		nft(t, ns, "add", "element", "ip", "nodenet", "masq_exempt", "{ 10.250.0.0/16 }")
		if err := dataplane.Run("pool", steps, nil); err != nil {
			t.Fatal(err)
		}
		wantDrift(t, tb)
		if st := observe(t, tb, "10.250.0.0/16"); st.Exempt {
			t.Fatalf("the element added by hand is still there: %v", st)
		}
	})
}
