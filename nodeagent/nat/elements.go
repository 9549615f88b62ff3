package nat

import (
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"go4.org/netipx"
)

// element is one range of an interval set as the kernel holds it: a start element and, unless
// the range runs to 255.255.255.255, an end element (flag interval end) one past its last
// address. raw is what deleting it must name.
type element struct {
	r   netipx.IPRange
	raw []nftables.SetElement
}

var lastAddr = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// encode is the kernel elements of range r.
func encode(r netipx.IPRange) []nftables.SetElement {
	from := r.From().As4()
	out := []nftables.SetElement{{Key: from[:]}}
	if r.To() != lastAddr {
		end := r.To().Next().As4()
		out = append(out, nftables.SetElement{Key: end[:], IntervalEnd: true})
	}
	return out
}

// decode pairs the elements of an interval set into ranges. The kernel lists them in no
// useful order; sorted by address, a start opens a range and the next end closes it, an end
// sorting before a start at the same address (adjacent ranges added one by one, as by hand).
// An end with nothing open is padding, which nft adds at 0.0.0.0, and no range. Keys that are
// not IPv4 addresses are left out (the set's type is checked elsewhere).
func decode(elems []nftables.SetElement) []element {
	// Sorted through small keys: the library's elements are large structs to move around.
	type key struct {
		addr netip.Addr
		end  bool
		i    int
	}
	keys := make([]key, 0, len(elems))
	for i, e := range elems {
		if len(e.Key) == 4 {
			keys = append(keys, key{netip.AddrFrom4([4]byte(e.Key)), e.IntervalEnd, i})
		}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := a.addr.Compare(b.addr); c != 0 {
			return c
		}
		if a.end == b.end {
			return 0
		}
		if a.end {
			return -1
		}
		return 1
	})
	var out []element
	open := -1 // index in keys of the start of the range open
	for i, k := range keys {
		switch {
		case !k.end && open >= 0:
			// A start while one is open: the open range ends just before this one.
			o := keys[open]
			out = append(out, element{r: netipx.IPRangeFrom(o.addr, k.addr.Prev()), raw: []nftables.SetElement{elems[o.i]}})
			open = i
		case !k.end:
			open = i
		case open >= 0:
			o := keys[open]
			out = append(out, element{r: netipx.IPRangeFrom(o.addr, k.addr.Prev()), raw: []nftables.SetElement{elems[o.i], elems[k.i]}})
			open = -1
		}
	}
	if open >= 0 {
		o := keys[open]
		out = append(out, element{r: netipx.IPRangeFrom(o.addr, lastAddr), raw: []nftables.SetElement{elems[o.i]}})
	}
	return out
}

// ranges are the elements' ranges.
func ranges(es []element) []netipx.IPRange {
	out := make([]netipx.IPRange, len(es))
	for i, e := range es {
		out[i] = e.r
	}
	return out
}
