package bgp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nodenet/terraform-provider-nodenet/internal/atomicfile"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
)

// persistEvery is how long after a change the record of learned routes is rewritten: the
// changes of that time are written once.
const persistEvery = time.Second

// learnedFile is the record of the routes the speaker programmed.
type learnedFile struct {
	Format int      `json:"format"`
	Routes []string `json:"routes"`
}

// markDirty has the record rewritten persistEvery from now, unless that is already due.
// The write comes after a burst of changes, not at its start: written at the first change,
// it ran while the routes of an UPDATE were being programmed, on every node at once.
func (r *kernelRIB) markDirty() {
	if r.file == "" || !r.flushDue.CompareAndSwap(false, true) {
		return
	}
	time.AfterFunc(persistEvery, func() {
		r.flushDue.Store(false)
		if err := r.flush(); err != nil {
			r.log.Warn("recording the learned routes", "err", err)
		}
	})
}

// flush writes the record now. The record only has to outlive the agent's process: the
// routes it names do not outlive the machine, so it is not fsynced.
func (r *kernelRIB) flush() error {
	if r.file == "" {
		return nil
	}
	// One write at a time, each of what is installed when it starts: the last write (the
	// one at shutdown) has the last word.
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	prefixes := make([]netip.Prefix, 0, len(r.installed))
	for p := range r.installed {
		prefixes = append(prefixes, p)
	}
	r.mu.Unlock()
	// Sorted outside the lock that route installs wait for, and as addresses, not strings.
	slices.SortFunc(prefixes, comparePrefixes)
	f := learnedFile{Format: 1, Routes: make([]string, 0, len(prefixes))}
	for _, p := range prefixes {
		f.Routes = append(f.Routes, p.String())
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return atomicfile.WriteVolatile(r.file, b, 0o600)
}

// loadStale takes the routes the last run recorded that the kernel still has (nodenet's
// protocol, main table) as the speaker's own, stale until peers announce them again.
func (r *kernelRIB) loadStale() error {
	b, err := os.ReadFile(r.file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var f learnedFile
	if err := json.Unmarshal(b, &f); err != nil || f.Format != 1 {
		return fmt.Errorf("%s: not a record this agent reads (format %d, %v)", r.file, f.Format, err)
	}
	want := map[netip.Prefix]bool{}
	for _, s := range f.Routes {
		if p, err := netip.ParsePrefix(s); err == nil {
			want[p] = true
		}
	}
	h, err := r.dp.Handle()
	if err != nil {
		return err
	}
	defer h.Release()
	routes, err := h.MainRoutes()
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rt := range routes {
		if rt.Protocol != dataplane.RouteProtocol || rt.Dst == nil || rt.Gw == nil {
			continue
		}
		p, ok := prefixOf(rt)
		gw, gok := netip.AddrFromSlice(rt.Gw.To4())
		if ok && gok && want[p] {
			r.installed[p] = kroute{gw: gw}
			r.stale[p] = true
		}
	}
	return nil
}

func prefixOf(rt netlink.Route) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(rt.Dst.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := rt.Dst.Mask.Size()
	return netip.PrefixFrom(a, bits), true
}
