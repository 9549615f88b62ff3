package link

import (
	"fmt"
	"net/netip"
	"sort"
)

// validate checks the link as a whole: two clusters or more; pod and service CIDRs that do
// not overlap between clusters (traffic to an overlapping CIDR could not be routed to one
// cluster), nor the overlay; blocks inside their cluster's pod CIDR and held by one node each;
// every node with an underlay address.
func validate(in Input, clusters []Cluster) []*Error {
	var errs []*Error
	if len(clusters) < 2 {
		errs = append(errs, errf("clusters", "", "a link joins two clusters or more; got %d", len(clusters)))
	}
	if !in.Overlay.IsValid() || !in.Overlay.Addr().Is4() {
		errs = append(errs, errf("overlay_cidr", "", "an IPv4 CIDR like 179.17.1.0/24 is required"))
	}
	switch in.SNATExemption {
	case ExemptCalico, ExemptNodenet, ExemptNone:
	default:
		errs = append(errs, errf("snat_exemption", "", "%q: allowed are calico, nodenet and none", in.SNATExemption))
	}
	errs = append(errs, overlaps(in, clusters)...)
	return append(errs, nodeErrors(clusters)...)
}

// named is a CIDR and what it is.
type named struct {
	cluster, what string
	p             netip.Prefix
}

func (n named) String() string { return fmt.Sprintf("the %s CIDR %s of %s", n.what, n.p, n.cluster) }

// overlaps refuses CIDRs of two clusters that overlap, naming both, and CIDRs that overlap
// the overlay.
func overlaps(in Input, clusters []Cluster) []*Error {
	var all []named
	for _, c := range clusters {
		if c.PodCIDR.IsValid() {
			all = append(all, named{c.Name, "pod", c.PodCIDR})
		}
		if c.ServiceCIDR.IsValid() {
			all = append(all, named{c.Name, "service", c.ServiceCIDR})
		}
	}
	var errs []*Error
	for i, a := range all {
		if in.Overlay.IsValid() && a.p.Overlaps(in.Overlay) {
			errs = append(errs, errf("overlay_cidr", "", "%s overlaps %s: the overlay needs addresses of its own", in.Overlay, a))
		}
		for _, b := range all[i+1:] {
			if a.cluster != b.cluster && a.p.Overlaps(b.p) {
				errs = append(errs, errf("clusters", b.cluster, "%s overlaps %s: linked clusters need CIDRs of their own (traffic to an address in both could not be routed)", b, a))
			}
		}
	}
	return errs
}

// nodeErrors checks every node: an underlay address, blocks inside the cluster's pod CIDR,
// no block held by two nodes.
func nodeErrors(clusters []Cluster) []*Error {
	var errs []*Error
	holder := map[netip.Prefix]string{}
	for _, c := range clusters {
		for _, n := range c.Nodes {
			if !n.Address.Is4() {
				errs = append(errs, errf("clusters", c.Name, "node %s has no IPv4 underlay address: set it in the provider's clusters (address)", n.Key))
			}
			for _, b := range n.Blocks {
				if c.PodCIDR.IsValid() && !(c.PodCIDR.Contains(b.Addr()) && b.Bits() >= c.PodCIDR.Bits()) {
					errs = append(errs, errf("clusters", c.Name, "node %s holds block %s, which is outside the cluster's pod CIDR %s", n.Key, b, c.PodCIDR))
				}
				if other, dup := holder[b.Masked()]; dup {
					errs = append(errs, errf("clusters", c.Name, "block %s is held by %s and %s; a block is one node's", b, other, n.Key))
				}
				holder[b.Masked()] = n.Key
			}
		}
	}
	return errs
}

// allocate gives every node an overlay address: the one it had while it is still a host
// address of the overlay, else the lowest free one (never the overlay's network or broadcast
// address). A node that joins never moves another.
func allocate(overlay netip.Prefix, clusters []Cluster, prev map[string]netip.Addr) (map[string]netip.Prefix, *Error) {
	overlay = overlay.Masked()
	used := map[netip.Addr]bool{}
	out := map[string]netip.Prefix{}
	var keys []string
	for _, c := range clusters {
		for _, n := range c.Nodes {
			keys = append(keys, n.Key)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if a, ok := prev[k]; ok && hostOf(overlay, a) && !used[a] {
			used[a] = true
			out[k] = netip.PrefixFrom(a, overlay.Bits())
		}
	}
	next := overlay.Addr().Next()
	for _, k := range keys {
		if _, done := out[k]; done {
			continue
		}
		for next.IsValid() && (used[next] || !hostOf(overlay, next)) && overlay.Contains(next) {
			next = next.Next()
		}
		if !next.IsValid() || !hostOf(overlay, next) {
			return nil, errf("overlay_cidr", "", "%s has too few addresses for the link's %d nodes", overlay, len(keys))
		}
		used[next] = true
		out[k] = netip.PrefixFrom(next, overlay.Bits())
	}
	return out, nil
}

// hostOf tells whether a is a host address of p: inside, and not its network or broadcast
// address (for prefixes of /30 and wider).
func hostOf(p netip.Prefix, a netip.Addr) bool {
	if !p.Contains(a) {
		return false
	}
	if p.Bits() >= 31 {
		return true
	}
	return a != p.Addr() && a != lastAddr(p)
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
