package bgp

import (
	"context"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
)

// Learned routes give way to objects: a pool with encapsulation routes other nodes' blocks
// through its tunnel, and those are the blocks the speaker learns. The object's claim wins;
// the speaker forgets the route as its own (the object replaces it in the kernel) and
// programs nothing to that destination while an object holds it (decideLocked asks heldBy).
// When no object claims it any more, the speaker programs its best path again.

// Yield gives up the learned route that key names to the object by. It reports whether the
// speaker held it.
func (s *Speaker) Yield(key, by string) bool { return s.rib.yield(key, by) }

func (r *kernelRIB) yield(key, by string) bool {
	entry, rest := dataplane.SplitKey(key)
	p, err := netip.ParsePrefix(rest)
	if entry != "route" || err != nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.installed[p]; !ok {
		return false
	}
	delete(r.installed, p)
	delete(r.stale, p)
	delete(r.lingering, p)
	r.conflicts[p] = "held by " + by
	r.markDirty()
	r.log.Info("learned route given way to an object's", "prefix", p, "object", by)
	return true
}

// Reclaim programs the speaker's best paths to the routes keys name, which no object claims
// any more. Keys that are not routes, or to which the speaker has no path, are ignored.
func (s *Speaker) Reclaim(keys []string) {
	var prefixes []*api.TableLookupPrefix
	for _, k := range keys {
		if entry, rest := dataplane.SplitKey(k); entry == "route" {
			if p, err := netip.ParsePrefix(rest); err == nil {
				prefixes = append(prefixes, &api.TableLookupPrefix{Prefix: p.String()})
			}
		}
	}
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil || len(prefixes) == 0 {
		return
	}
	s.rib.forget(prefixes)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var best []*api.Path
	err := srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: ipv4Unicast, Prefixes: prefixes},
		func(d *api.Destination) {
			for _, p := range d.GetPaths() {
				if p.GetBest() {
					best = append(best, p)
				}
			}
		})
	if err != nil {
		s.log.Warn("reclaiming routes objects gave up", "err", err)
		return
	}
	s.rib.onPaths(ctx, best)
}

// forget drops what is recorded of prefixes that objects held.
func (r *kernelRIB) forget(prefixes []*api.TableLookupPrefix) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, lp := range prefixes {
		if p, err := netip.ParsePrefix(lp.GetPrefix()); err == nil {
			delete(r.conflicts, p)
		}
	}
}
