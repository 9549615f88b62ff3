package bgp

import (
	"context"
	"errors"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"golang.org/x/sys/unix"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
)

// pending is one kernel change a batch of best paths asks for.
type pending struct {
	op   dataplane.RouteOp
	peer string
}

// onPaths programs a batch of best paths (what piled up in the watch's queue: thousands when
// a peer sends its table) with one netlink write for all of them: a route per best path, the
// route of a withdrawn one removed. A batch may hold several paths of one prefix; the last
// one is its best path now. Paths this node originates are not programmed: its blackhole
// routes are the pool's. Nothing is done once ctx has ended (the speaker stopped).
func (r *kernelRIB) onPaths(ctx context.Context, paths []*api.Path) {
	type decoded struct {
		path   *api.Path
		prefix netip.Prefix
		gw     netip.Addr
	}
	ds := make([]decoded, 0, len(paths))
	last := make(map[netip.Prefix]int, len(paths))
	for _, p := range paths {
		prefix, gw, ok := decodePath(p)
		if !ok {
			continue
		}
		last[prefix] = len(ds)
		ds = append(ds, decoded{path: p, prefix: prefix, gw: gw})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	var todo []pending
	for i, d := range ds {
		if last[d.prefix] != i {
			continue
		}
		if c, ok := r.decideLocked(d.path, d.prefix, d.gw); ok {
			todo = append(todo, c)
		}
	}
	if len(todo) == 0 {
		return
	}
	errs := r.applyLocked(todo)
	for i, c := range todo {
		r.settleLocked(c, errs[i])
	}
	r.markDirty()
}

// decideLocked is the kernel change one path (to prefix via gw) asks for, if any.
func (r *kernelRIB) decideLocked(p *api.Path, prefix netip.Prefix, gw netip.Addr) (pending, bool) {
	peer := p.GetNeighborIp()
	if _, err := netip.ParseAddr(peer); err != nil {
		return pending{}, false // a local path
	}
	cur, installed := r.installed[prefix]
	if p.GetIsWithdraw() {
		if !installed {
			delete(r.conflicts, prefix)
			return pending{}, false
		}
		if until, ok := r.lingerPeers[cur.peer]; ok && time.Now().Before(until) {
			r.log.Debug("withdrawn route lingers", "prefix", prefix, "peer", cur.peer, "until", until)
			r.lingering[prefix] = until
			return pending{}, false
		}
		delete(r.stale, prefix)
		delete(r.lingering, prefix)
		return pending{op: dataplane.RouteOp{Dst: prefix, Gw: cur.gw, Del: true}, peer: peer}, true
	}
	delete(r.stale, prefix)
	delete(r.lingering, prefix)
	if installed && cur.gw == gw {
		r.installed[prefix] = kroute{gw: gw, peer: peer}
		return pending{}, false
	}
	if holder := r.heldBy(dataplane.RouteKey(prefix.String(), 0)); holder != "" {
		r.conflicts[prefix] = "held by " + holder
		return pending{}, false
	}
	return pending{op: dataplane.RouteOp{Dst: prefix, Gw: gw, Excl: !installed}, peer: peer}, true
}

// applyLocked makes the changes in one batch; without a batcher, one at a time.
func (r *kernelRIB) applyLocked(todo []pending) []error {
	ops := make([]dataplane.RouteOp, len(todo))
	for i, c := range todo {
		ops[i] = c.op
	}
	if r.batcher == nil {
		b, err := r.dp.RouteBatcher()
		if err != nil {
			errs := make([]error, len(ops))
			for i := range errs {
				errs[i] = err
			}
			return errs
		}
		r.batcher = b
	}
	return r.batcher.Apply(ops)
}

// settleLocked records what one change did. An add refused because a route is there is
// looked at: nodenet's and no object's (the speaker's own from before) is replaced; another
// protocol's is left alone and reported.
func (r *kernelRIB) settleLocked(c pending, err error) {
	prefix := c.op.Dst
	switch {
	case c.op.Del && (err == nil || errors.Is(err, unix.ESRCH)):
		delete(r.installed, prefix)
		return
	case c.op.Excl && errors.Is(err, unix.EEXIST):
		err = r.programOne(prefix, c.op.Gw, false)
	}
	if err != nil {
		r.conflicts[prefix] = err.Error()
		r.log.Warn("learned route left out of the kernel", "prefix", prefix, "via", c.op.Gw, "peer", c.peer, "reason", err)
		return
	}
	if !c.op.Del {
		delete(r.conflicts, prefix)
		r.installed[prefix] = kroute{gw: c.op.Gw, peer: c.peer}
	}
}
