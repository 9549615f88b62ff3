package provider

import (
	"net/netip"
	"sync"
)

// poolClaims remembers, within one run of the provider, the pools planned per cluster, so
// that two new pools that overlap are refused at plan time even before a node has either.
type poolClaims struct {
	mu sync.Mutex
	m  map[string][]netip.Prefix
}

func newPoolClaims() *poolClaims { return &poolClaims{m: map[string][]netip.Prefix{}} }

// claim records pool for cluster and returns an overlapping pool planned before ("" when
// none; the same pool planned again is not an overlap).
func (c *poolClaims) claim(cluster string, pool netip.Prefix) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.m[cluster] {
		if p != pool && p.Overlaps(pool) {
			return p.String()
		}
	}
	for _, p := range c.m[cluster] {
		if p == pool {
			return ""
		}
	}
	c.m[cluster] = append(c.m[cluster], pool)
	return ""
}
