package server

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// claimIndex keeps the kernel entries every object owns or may hold exclusive: a route to one
// destination is one object's, whether it came from a VXLAN tunnel, a pool's blackhole or BGP.
type claimIndex struct {
	mu     sync.Mutex
	holder map[string]string   // entry key -> object id
	byID   map[string][]string // object id -> entry keys
}

func newClaimIndex() *claimIndex {
	return &claimIndex{holder: map[string]string{}, byID: map[string][]string{}}
}

// heldBy is the object holding key, "" when none does.
func (c *claimIndex) heldBy(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.holder[key]
}

// conflict returns the first of keys that another object than id holds.
func (c *claimIndex) conflict(id string, keys []string) (key, holder string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conflictLocked(id, keys)
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if k, h := c.conflictLocked(id, keys); h != "" {
		return k, h
	}
	c.setLocked(id, union(c.byID[id], keys))
	return "", ""
}

// set makes keys exactly what id holds (none: id holds nothing).
func (c *claimIndex) set(id string, keys []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(id, keys)
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
