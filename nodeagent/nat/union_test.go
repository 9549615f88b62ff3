package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/nftables"
	"go4.org/netipx"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
)

// Unit tests of the pure parts: the union, set elements, the plan and the drift lines.

func rangeStrings(rs []netipx.IPRange) []string {
	var out []string
	for _, r := range rs {
		out = append(out, rangeString(r))
	}
	return out
}

func TestUnionLeavesOutNestedPrefixes(t *testing.T) {
	u, err := unionOf(map[string]Contribution{
		"pool-a":   *pool("10.244.0.0/16", true),
		"pool-b":   *pool("10.244.5.0/24", true), // inside pool-a
		"pool-c":   *pool("10.0.0.0/24", true),
		"pool-d":   *pool("10.0.1.0/24", false), // adjacent to pool-c: one /23
		"pool-e":   *pool("10.0.2.0/24", false), // adjacent again: no longer a prefix
		"link-1":   {Exempt: pfx("172.16.0.0/12")},
		"unmasked": {Exempt: pfx("192.168.7.9/24")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rangeStrings(u[masquerade]), []string{"10.0.0.0/24", "10.244.0.0/16"}; !slices.Equal(got, want) {
		t.Errorf("masquerade ranges = %v, want %v", got, want)
	}
	want := []string{"10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24", "10.244.0.0/16", "172.16.0.0/12", "192.168.7.0/24"}
	if got := rangeStrings(u[exempt]); !slices.Equal(got, want) {
		t.Errorf("exempt ranges = %v, want %v", got, want)
	}
	if u.empty() {
		t.Error("union of pools is empty")
	}
	if e, _ := unionOf(map[string]Contribution{"pool": {}}); !e.empty() {
		t.Error("union of a contribution asking nothing is not empty")
	}
}

func TestContributionRefusesIPv6(t *testing.T) {
	if _, err := normalize(&Contribution{Masquerade: pfx("fd00::/64")}); err == nil {
		t.Fatal("an IPv6 prefix was accepted by a table of family ip")
	}
}

func elem(key string, end bool) nftables.SetElement {
	a := netip.MustParseAddr(key).As4()
	return nftables.SetElement{Key: a[:], IntervalEnd: end}
}

func TestDecodeSetElements(t *testing.T) {
	// As nft makes an interval set (a padding end at 0.0.0.0), plus two adjacent ranges added
	// one by hand after the other, one to the end of the address space, in the kernel's
	// (reverse) order.
	elems := []nftables.SetElement{
		elem("255.0.0.0", false),
		elem("10.250.2.0", true),
		elem("10.250.1.0", false),
		elem("10.250.1.0", true),
		elem("10.250.0.0", false),
		elem("10.245.0.0", true),
		elem("10.244.0.0", false),
		elem("0.0.0.0", true),
	}
	got := rangeStrings(ranges(decode(elems)))
	want := []string{"10.244.0.0/16", "10.250.0.0/24", "10.250.1.0/24", "255.0.0.0/8"}
	if !slices.Equal(got, want) {
		t.Fatalf("decoded %v, want %v", got, want)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, s := range []string{"10.244.0.0/16", "10.0.0.0-10.0.2.255", "0.0.0.0/0", "255.255.255.255/32", "192.168.1.7/32"} {
		r, err := netipx.ParseIPRange(s)
		if err != nil {
			p := netip.MustParsePrefix(s)
			r = netipx.RangeOfPrefix(p)
		}
		es := decode(encode(r))
		if len(es) != 1 || es[0].r != r {
			t.Errorf("%s: encoded and decoded as %v", s, es)
		}
	}
}

// holding is the table as nodenet makes it, holding exactly u.
func holding(u union) *content {
	tb := tableSpec()
	k := &content{table: tb, chain: chainSpec(tb), chainOK: true, rule: ruleSpec(tb, nil)}
	for _, r := range roles {
		var raw []nftables.SetElement
		for _, x := range u[r] {
			raw = append(raw, encode(x)...)
		}
		k.sets[r] = setContent{set: setSpec(tb, r, 0), ok: true, elems: decode(raw)}
	}
	return k
}

func opLines(ops []op) []string {
	var out []string
	for _, o := range ops {
		out = append(out, o.change.GetAction().String()+" "+o.change.GetKey())
	}
	return out
}

func pools(n int) map[string]Contribution {
	all := map[string]Contribution{}
	for i := 0; i < n; i++ {
		all[fmt.Sprintf("pool-%d", i)] = *pool(fmt.Sprintf("10.%d.%d.0/24", 100+i/200, i%200), true)
	}
	return all
}

func TestPlanOneMorePoolIsOneElementPerSet(t *testing.T) {
	all := pools(200)
	u, _ := unionOf(all)
	k := holding(u)
	if ops, _ := plan(k, u); len(ops) != 0 {
		t.Fatalf("the table holds the union, yet the plan is %v", opLines(ops))
	}
	// 10.150.0.0/24 touches none of the 200: one element more in each set.
	all["pool-new"] = *pool("10.150.0.0/24", true)
	u2, _ := unionOf(all)
	ops, err := plan(k, u2)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ADD set masquerade 10.150.0.0/24", "ADD set exempt 10.150.0.0/24"}
	if got := opLines(ops); !slices.Equal(got, want) {
		t.Fatalf("plan = %v, want %v", got, want)
	}
	// One removed: its elements leave, nothing else changes.
	delete(all, "pool-new")
	delete(all, "pool-7")
	u3, _ := unionOf(all)
	ops, _ = plan(k, u3)
	want = []string{"DELETE set masquerade 10.100.7.0/24", "DELETE set exempt 10.100.7.0/24"}
	if got := opLines(ops); !slices.Equal(got, want) {
		t.Fatalf("plan = %v, want %v", got, want)
	}
}

func TestPlanPrefixInsideAnotherReplacesIt(t *testing.T) {
	u, _ := unionOf(map[string]Contribution{"pool": *pool("10.244.0.0/16", false), "nat": *pool("192.168.128.0/18", true)})
	k := holding(u)
	// A cluster link's remote CIDR that holds the pool: the pool's element leaves and the
	// wider one arrives, in one transaction (deletions first: the set refuses overlaps).
	u2, _ := unionOf(map[string]Contribution{"pool": *pool("10.244.0.0/16", false), "nat": *pool("192.168.128.0/18", true), "link": {Exempt: pfx("10.0.0.0/8")}})
	ops, _ := plan(k, u2)
	want := []string{"DELETE set exempt 10.244.0.0/16", "ADD set exempt 10.0.0.0/8"}
	if got := opLines(ops); !slices.Equal(got, want) {
		t.Fatalf("plan = %v, want %v", got, want)
	}
}

func TestNoTableWithoutMasquerade(t *testing.T) {
	// Pools without nat_outgoing (and remote CIDRs) alone make no table.
	u, _ := unionOf(map[string]Contribution{"a": *pool("10.244.0.0/16", false), "link": {Exempt: pfx("10.0.0.0/8")}})
	if ops, _ := plan(&content{}, u); len(ops) != 0 {
		t.Fatalf("exempt destinations alone planned %v, want nothing", opLines(ops))
	}
	// The last pool with NAT leaving takes the table with it.
	all := map[string]Contribution{"a": *pool("10.244.0.0/16", false), "b": *pool("10.245.0.0/16", true)}
	had, _ := unionOf(all)
	delete(all, "b")
	u2, _ := unionOf(all)
	if got := opLines(mustPlan(t, holding(had), u2)); !slices.Equal(got, []string{"DELETE table nodenet"}) {
		t.Fatalf("plan = %v, want the table deleted", got)
	}
}

func mustPlan(t *testing.T, k *content, u union) []op {
	t.Helper()
	ops, err := plan(k, u)
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

func TestPlanFromNothingAndBack(t *testing.T) {
	u, _ := unionOf(map[string]Contribution{"a": *pool("10.244.0.0/16", true)})
	ops, err := plan(&content{}, u)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ADD table nodenet", "ADD set masquerade", "ADD set exempt",
		"ADD set masquerade 10.244.0.0/16", "ADD set exempt 10.244.0.0/16", "ADD chain postrouting", "ADD rule masquerade"}
	if got := opLines(ops); !slices.Equal(got, want) {
		t.Fatalf("plan from nothing = %v, want %v", got, want)
	}
	ops, _ = plan(holding(u), union{})
	if got, want := opLines(ops), []string{"DELETE table nodenet"}; !slices.Equal(got, want) {
		t.Fatalf("plan to nothing = %v, want %v", got, want)
	}
	if ops, _ := plan(&content{}, union{}); len(ops) != 0 {
		t.Fatalf("nothing to nothing planned %v", opLines(ops))
	}
}

func TestPlanRefusesATableWithForeignObjects(t *testing.T) {
	u, _ := unionOf(map[string]Contribution{"a": *pool("10.244.0.0/16", true)})
	k := holding(u)
	k.foreign = []string{"chain forward"}
	for _, want := range []union{u, {}} {
		_, err := plan(k, want)
		var conflict *reconcile.ConflictError
		if !errors.As(err, &conflict) {
			t.Fatalf("plan over a foreign chain: %v, want a conflict", err)
		}
		t.Log(err)
	}
}

func TestDriftLines(t *testing.T) {
	all := map[string]Contribution{"a": *pool("10.244.0.0/16", true), "b": *pool("10.250.0.0/24", false)}
	u, _ := unionOf(all)
	k := holding(u)
	if d := drift(k, u); len(d) != 0 {
		t.Fatalf("no drift expected, got %v", d)
	}
	k.rule = nil
	k.others = []*nftables.Rule{{Handle: 9}}
	k.sets[exempt].elems = append(k.sets[exempt].elems, element{r: netipx.RangeOfPrefix(netip.MustParsePrefix("10.99.0.0/16"))})
	k.sets[masquerade].elems = nil
	want := []string{
		"+ rule postrouting handle 9",
		"- rule masquerade",
		"- masquerade 10.244.0.0/16",
		"+ exempt 10.99.0.0/16",
	}
	if got := drift(k, u); !slices.Equal(got, want) {
		t.Fatalf("drift = %q, want %q", got, want)
	}
	if got, want := drift(&content{}, u), []string{"- table nodenet"}; !slices.Equal(got, want) {
		t.Fatalf("drift without a table = %q, want %q", got, want)
	}
	if got, want := drift(holding(u), union{}), []string{"+ table nodenet"}; !slices.Equal(got, want) {
		t.Fatalf("drift of a table no object asks for = %q, want %q", got, want)
	}
}

func TestElementDriftOfASplitRange(t *testing.T) {
	have := []netipx.IPRange{netipx.RangeOfPrefix(netip.MustParsePrefix("10.0.0.0/24")), netipx.RangeOfPrefix(netip.MustParsePrefix("10.0.1.0/24"))}
	want := []netipx.IPRange{netipx.RangeOfPrefix(netip.MustParsePrefix("10.0.0.0/23"))}
	got := elemDrift(exempt, have, want)
	if w := []string{"- exempt 10.0.0.0/23", "+ exempt 10.0.0.0/24", "+ exempt 10.0.1.0/24"}; !slices.Equal(got, w) {
		t.Fatalf("drift = %q, want %q", got, w)
	}
}

func pfxRange(s string) netipx.IPRange { return netipx.RangeOfPrefix(netip.MustParsePrefix(s)) }
