package provider

import (
	"net/netip"
	"sync"
)

// poolClaims remembers, within one run of the provider, the pools planned per cluster, so
// that two new pools that overlap are refused at plan time even before a node has either, and
// their planned allocations, which a cluster link that takes its blocks from the pools plans
// with (the nodes have them only once the pools are applied).
type poolClaims struct {
	mu    sync.Mutex
	m     map[string][]netip.Prefix
	alloc map[string]map[netip.Prefix]map[string]string // cluster -> pool -> node -> block
}

func newPoolClaims() *poolClaims {
	return &poolClaims{m: map[string][]netip.Prefix{}, alloc: map[string]map[netip.Prefix]map[string]string{}}
}

// planned records a pool's planned allocations (node name -> block).
func (c *poolClaims) planned(cluster string, pool netip.Prefix, alloc map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.alloc[cluster] == nil {
		c.alloc[cluster] = map[netip.Prefix]map[string]string{}
	}
	c.alloc[cluster][pool] = alloc
}

// allocations are the allocations planned in this run for the cluster's pools, by pool.
func (c *poolClaims) allocations(cluster string) map[netip.Prefix]map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[netip.Prefix]map[string]string{}
	for p, a := range c.alloc[cluster] {
		out[p] = a
	}
	return out
}

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
