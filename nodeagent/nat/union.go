package nat

import (
	"fmt"
	"net/netip"
	"sort"

	"go4.org/netipx"
)

// role is one of the two sets: what a prefix is to the rule.
type role int

const (
	masquerade role = iota // sources masqueraded
	exempt                 // destinations never masqueraded
)

var roles = []role{masquerade, exempt}

// name is how drift lines and changes call the role ("- masquerade 10.244.0.0/16").
func (r role) name() string {
	if r == masquerade {
		return "masquerade"
	}
	return "exempt"
}

// set is the name of the role's set in the kernel.
func (r role) set() string {
	if r == masquerade {
		return masqSet
	}
	return exemptSet
}

func (c Contribution) prefixes(r role) []netip.Prefix {
	if r == masquerade {
		return c.Masquerade
	}
	return c.Exempt
}

// check refuses what the table cannot hold: IPv4 only for now (family ip), valid prefixes.
func (c Contribution) check() error {
	for _, r := range roles {
		for _, p := range c.prefixes(r) {
			if !p.IsValid() || !p.Addr().Is4() {
				return fmt.Errorf("nat %s %v: only IPv4 prefixes are supported", r.name(), p)
			}
		}
	}
	return nil
}

// union is what all contributions ask together: per role, the maximal prefixes among all of
// theirs, in ascending order. An interval set refuses overlapping elements, and two prefixes
// either nest or do not overlap at all, so a prefix inside another one is left out (a pool's
// CIDR inside a cluster link's remote CIDR, the same pool twice). Adjacent prefixes stay
// separate elements: the kernel takes ranges that touch, and so one pool is one element, and
// adding or removing a pool next to others changes that one element alone.
type union [2][]netipx.IPRange

func unionOf(all map[string]Contribution) (union, error) {
	var u union
	for _, r := range roles {
		var ps []netip.Prefix
		for _, c := range all {
			for _, p := range c.prefixes(r) {
				if !p.IsValid() || !p.Addr().Is4() {
					return u, fmt.Errorf("nat %s %v: only IPv4 prefixes are supported", r.name(), p)
				}
				ps = append(ps, p.Masked())
			}
		}
		sort.Slice(ps, func(i, j int) bool {
			if c := ps[i].Addr().Compare(ps[j].Addr()); c != 0 {
				return c < 0
			}
			return ps[i].Bits() < ps[j].Bits()
		})
		// Sorted so, a prefix comes after any prefix holding it, and the kept ones are
		// disjoint: only the last kept can hold the next.
		var kept []netip.Prefix
		for _, p := range ps {
			if n := len(kept); n > 0 && kept[n-1].Contains(p.Addr()) {
				continue
			}
			kept = append(kept, p)
		}
		for _, p := range kept {
			u[r] = append(u[r], netipx.RangeOfPrefix(p))
		}
	}
	return u, nil
}

// empty: no contribution asks to masquerade anything, so the table must not exist. Exempt
// destinations only matter to a masquerade rule: a node none of whose pools has NAT has no
// table (an imported pool, or pools without nat_outgoing, change nothing in nftables).
func (u union) empty() bool { return len(u[masquerade]) == 0 }

// with is the contributions with id's set to c (nil: id's removed), the others' untouched.
func with(all map[string]Contribution, id string, c *Contribution) map[string]Contribution {
	out := make(map[string]Contribution, len(all)+1)
	for k, v := range all {
		out[k] = v
	}
	if c == nil {
		delete(out, id)
	} else {
		out[id] = *c
	}
	return out
}

// rangeString is a range as an operator writes it: a CIDR when it is one, "a-b" otherwise
// (two adjacent pools merged, say 10.0.0.0/24 and 10.0.1.0/24 and 10.0.2.0/24).
func rangeString(r netipx.IPRange) string {
	if p, ok := r.Prefix(); ok {
		return p.String()
	}
	return r.String()
}

// covers tells whether ranges hold every address of p.
func covers(ranges []netipx.IPRange, p netip.Prefix) bool {
	var b netipx.IPSetBuilder
	for _, r := range ranges {
		b.AddRange(r)
	}
	s, err := b.IPSet()
	return err == nil && s.ContainsPrefix(p.Masked())
}

func sortRanges(rs []netipx.IPRange) {
	sort.Slice(rs, func(i, j int) bool {
		if c := rs[i].From().Compare(rs[j].From()); c != 0 {
			return c < 0
		}
		return rs[j].To().Less(rs[i].To()) // a range before the ones it holds
	})
}
