package server

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// claimIndex keeps the kernel entries every object owns or may hold exclusive: a route to one
// destination is one object's, whether it came from a VXLAN tunnel, a pool's blackhole or BGP.
type claimIndex struct {
	mu     sync.Mutex
	holder map[string]string   // entry key -> object id
	byID   map[string][]string // object id -> entry keys
	// held are the entries runtimes hold (routes the BGP speaker learned), asked without
	// mu held: a runtime asks heldByObjects while it holds its own lock.
	held []func(key string) string
	// yielders are the runtimes whose entries give way to an object's claim (called
	// without mu held, for the same reason).
	yielders []reconcile.EntryYielder
}

func newClaimIndex() *claimIndex {
	return &claimIndex{holder: map[string]string{}, byID: map[string][]string{}}
}

// heldBy is the object holding key, "" when none does: an object's claim or an entry a
// runtime holds.
func (c *claimIndex) heldBy(key string) string {
	if h := c.heldByObjects(key); h != "" {
		return h
	}
	return c.heldByRuntime(key)
}

// heldByObjects is the object whose claims or owned entries hold key.
func (c *claimIndex) heldByObjects(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.holder[key]
}

func (c *claimIndex) heldByRuntime(key string) string {
	for _, f := range c.held {
		if h := f(key); h != "" {
			return h
		}
	}
	return ""
}

// conflict returns the first of keys that another object than id holds.
func (c *claimIndex) conflict(id string, keys []string) (key, holder string) {
	c.mu.Lock()
	k, h := c.conflictLocked(id, keys)
	c.mu.Unlock()
	if h != "" {
		return k, h
	}
	return c.runtimeConflict(id, keys)
}

// runtimeConflict is the first of keys that a runtime holds and does not give way on.
func (c *claimIndex) runtimeConflict(id string, keys []string) (string, string) {
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	for _, k := range sorted {
		if h := c.heldByRuntime(k); h != "" && h != id && !c.yieldable(k) {
			return k, h
		}
	}
	return "", ""
}

// yieldable tells whether a runtime that gives way holds key.
func (c *claimIndex) yieldable(key string) bool {
	for _, y := range c.yielders {
		if y.HeldBy(key) != "" {
			return true
		}
	}
	return false
}

// yield has the runtimes that give way let go of the keys object id claims now.
func (c *claimIndex) yield(id string, keys []string) {
	for _, y := range c.yielders {
		for _, k := range keys {
			if y.HeldBy(k) != "" {
				y.Yield(k, id)
			}
		}
	}
}

// reclaim hands the runtimes that give way the keys that id held and no object holds now.
func (c *claimIndex) reclaim(id string, before []string) {
	if len(c.yielders) == 0 || len(before) == 0 {
		return
	}
	var free []string
	c.mu.Lock()
	for _, k := range before {
		if c.holder[k] == "" {
			free = append(free, k)
		}
	}
	c.mu.Unlock()
	if len(free) == 0 {
		return
	}
	for _, y := range c.yielders {
		y.Reclaim(free)
	}
}

func (c *claimIndex) conflictLocked(id string, keys []string) (string, string) {
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	for _, k := range sorted {
		if h := c.holder[k]; h != "" && h != id {
			return k, h
		}
	}
	return "", ""
}

// add gives id the keys besides those it holds, unless another object holds one of them.
func (c *claimIndex) add(id string, keys []string) (key, holder string) {
	if k, h := c.runtimeConflict(id, keys); h != "" {
		return k, h
	}
	c.mu.Lock()
	if k, h := c.conflictLocked(id, keys); h != "" {
		c.mu.Unlock()
		return k, h
	}
	c.setLocked(id, union(c.byID[id], keys))
	c.mu.Unlock()
	c.yield(id, keys)
	return "", ""
}

// set makes keys exactly what id holds (none: id holds nothing). Keys id let go of that no
// other object holds go back to the runtimes that gave way on them.
func (c *claimIndex) set(id string, keys []string) {
	c.mu.Lock()
	before := append([]string(nil), c.byID[id]...)
	c.setLocked(id, keys)
	c.mu.Unlock()
	c.reclaim(id, before)
}

func (c *claimIndex) setLocked(id string, keys []string) {
	for _, k := range c.byID[id] {
		if c.holder[k] == id {
			delete(c.holder, k)
		}
	}
	delete(c.byID, id)
	if len(keys) == 0 {
		return
	}
	c.byID[id] = append([]string(nil), keys...)
	for _, k := range keys {
		c.holder[k] = id
	}
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range append(append([]string(nil), a...), b...) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// claimErr is the refusal of an object that wants an entry another object holds.
func (s *Server) claimErr(id, key, holder string) error {
	owner, managedBy := "", ""
	if rec, err := s.record(holder); err == nil && rec != nil && rec.Object.GetOwner() != "" {
		owner = rec.Object.GetOwner()
		managedBy = fmt.Sprintf(" (managed by %s)", owner)
	}
	entry, rest := dataplane.SplitKey(key)
	msg := fmt.Sprintf("%s: %s %s is held by nodenet object %s%s; two objects cannot own one kernel entry: change one of them",
		s.where(id), entry, strings.TrimSpace(rest), holder, managedBy)
	return pb.StatusWithReason(codes.FailedPrecondition, msg, pb.ReasonEntryHeld, map[string]string{"entry": key, "holder": holder, "owner": owner})
}
