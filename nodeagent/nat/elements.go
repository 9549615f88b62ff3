package nat

import (
	"bytes"
	"net/netip"
	"sort"

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
	var es []nftables.SetElement
	for _, e := range elems {
		if len(e.Key) == 4 {
			es = append(es, e)
		}
	}
	sort.SliceStable(es, func(i, j int) bool {
		if c := bytes.Compare(es[i].Key, es[j].Key); c != 0 {
			return c < 0
		}
		return es[i].IntervalEnd && !es[j].IntervalEnd
	})
	var out []element
	var open *nftables.SetElement
	for i := range es {
		e := es[i]
		switch {
		case !e.IntervalEnd && open != nil:
			// A start while one is open: the open range ends just before this one.
			from := netip.AddrFrom4([4]byte(open.Key))
			to := netip.AddrFrom4([4]byte(e.Key)).Prev()
			out = append(out, element{r: netipx.IPRangeFrom(from, to), raw: []nftables.SetElement{*open}})
			open = &es[i]
		case !e.IntervalEnd:
			open = &es[i]
		case open != nil:
			from := netip.AddrFrom4([4]byte(open.Key))
			to := netip.AddrFrom4([4]byte(e.Key)).Prev()
			out = append(out, element{r: netipx.IPRangeFrom(from, to), raw: []nftables.SetElement{*open, e}})
			open = nil
		}
	}
	if open != nil {
		out = append(out, element{r: netipx.IPRangeFrom(netip.AddrFrom4([4]byte(open.Key)), lastAddr), raw: []nftables.SetElement{*open}})
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
