package bgp

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
)

// TestComparePrefixes: the speaker's order of prefixes (its changes, its record) is
// dataplane.PrefixLess's, which the other kinds use.
func TestComparePrefixes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var ps []netip.Prefix
	for range 300 {
		a := netip.AddrFrom4([4]byte{10, byte(r.IntN(3)), byte(r.IntN(3)), byte(r.IntN(2) * 64)})
		ps = append(ps, netip.PrefixFrom(a, 24+r.IntN(9)).Masked())
	}
	for _, a := range ps {
		for _, b := range ps {
			if got, want := comparePrefixes(a, b) < 0, dataplane.PrefixLess(a.String(), b.String()); got != want {
				t.Fatalf("%s before %s: %v, PrefixLess says %v", a, b, got, want)
			}
		}
	}
}
