package nat

import (
	"fmt"
	"net/netip"

	"go4.org/netipx"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// drift is how the kernel's table (k) differs from the union (u), one line each: "+ x" is
// there and no contribution explains it, "- x" is missing, "~ x: ..." is there but not as
// nodenet makes it. Empty when the table is exactly the union.
func drift(k *content, u union) []string {
	var out []string
	if k.table == nil {
		if !u.empty() {
			out = append(out, "- table "+tableName)
		}
		return out
	}
	if u.empty() {
		out = append(out, "+ table "+tableName)
	}
	for _, f := range k.foreign {
		out = append(out, "+ "+f)
	}
	if u.empty() {
		return out
	}
	if k.dormant {
		out = append(out, "~ table "+tableName+": flags dormant, nothing in it runs")
	}
	switch {
	case k.chain == nil:
		out = append(out, "- chain "+chainName)
	case !k.chainOK:
		out = append(out, fmt.Sprintf("~ chain %s: %s, not type nat hook postrouting priority srcnat", chainName, describeChain(k.chain)))
	}
	for _, r := range k.others {
		out = append(out, fmt.Sprintf("+ rule %s handle %d", chainName, r.Handle))
	}
	if k.rule == nil {
		out = append(out, "- rule "+ruleName)
	}
	for _, r := range roles {
		sc := k.sets[r]
		switch {
		case sc.set == nil:
			out = append(out, "- set "+r.set())
		case !sc.ok:
			out = append(out, fmt.Sprintf("~ set %s: %s, not ipv4_addr with flags interval", r.set(), describeSet(sc.set)))
		}
		out = append(out, elemDrift(r, ranges(sc.elems), u[r])...)
	}
	return out
}

// elemDrift compares a set's ranges element by element, as the repair will change them: a
// range the kernel holds that the union does not is "+", a range of the union that the kernel
// does not hold as one element is "-" (the union of 10.0.0.0/24 and 10.0.1.0/24 held as two
// elements is "- 10.0.0.0/23", "+ 10.0.0.0/24", "+ 10.0.1.0/24").
func elemDrift(r role, have, want []netipx.IPRange) []string {
	held := map[netipx.IPRange]bool{}
	for _, h := range have {
		held[h] = true
	}
	wanted := map[netipx.IPRange]bool{}
	for _, w := range want {
		wanted[w] = true
	}
	var both []netipx.IPRange
	both = append(both, have...)
	both = append(both, want...)
	sortRanges(both)
	var out []string
	for i, x := range both {
		if i > 0 && both[i-1] == x {
			continue
		}
		switch {
		case held[x] && !wanted[x]:
			out = append(out, "+ "+r.name()+" "+rangeString(x))
		case wanted[x] && !held[x]:
			out = append(out, "- "+r.name()+" "+rangeString(x))
		}
	}
	return out
}

// state is what the kernel holds for prefix p, and the drift of the whole table.
func state(k *content, u union, p netip.Prefix) *pb.NatState {
	return &pb.NatState{
		Rule:       k.working(),
		Masquerade: covers(ranges(k.sets[masquerade].elems), p),
		Exempt:     covers(ranges(k.sets[exempt].elems), p),
		Drift:      drift(k, u),
	}
}
