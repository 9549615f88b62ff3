package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
)

// lingerTime bounds how long routes learned from a neighbour removed on purpose stay in the
// kernel without a replacement path.
const lingerTime = 30 * time.Second

// kernelRIB programs the speaker's best paths into the kernel's main table with nodenet's
// route protocol, and remembers which routes it put there (in memory, and in a file so that
// a restarted agent knows them as its own and sweeps those no peer announces again).
type kernelRIB struct {
	dp   *dataplane.Dataplane
	log  *slog.Logger
	file string

	mu        sync.Mutex
	installed map[netip.Prefix]kroute
	// stale are routes of the previous run (or of the speaker before a restart) not yet
	// learned again; swept after every peer's End-of-RIB or the restart time.
	stale map[netip.Prefix]bool
	// lingerPeers are neighbours removed on purpose, until when their routes are kept;
	// lingering are such routes whose paths are gone, until when they stay.
	lingerPeers map[string]time.Time
	lingering   map[netip.Prefix]time.Time
	conflicts   map[netip.Prefix]string
	heldBy      func(key string) string
	// batcher programs the routes of a watch event in one netlink write (opened on first use).
	batcher *dataplane.RouteBatcher
	// flushDue is set while a write of the record is scheduled; flushMu orders the writes.
	flushDue atomic.Bool
	flushMu  sync.Mutex
}

type kroute struct {
	gw   netip.Addr
	peer string
}

func newKernelRIB(dp *dataplane.Dataplane, log *slog.Logger, file string) *kernelRIB {
	r := &kernelRIB{
		dp: dp, log: log, file: file,
		installed:   map[netip.Prefix]kroute{},
		stale:       map[netip.Prefix]bool{},
		lingerPeers: map[string]time.Time{},
		lingering:   map[netip.Prefix]time.Time{},
		conflicts:   map[netip.Prefix]string{},
		heldBy:      func(string) string { return "" },
	}
	return r
}

func (r *kernelRIB) setHeldBy(f func(string) string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.heldBy = f
}

// holds reports whether key names a route the speaker programmed.
func (r *kernelRIB) holds(key string) bool {
	entry, rest := dataplane.SplitKey(key)
	if entry != "route" {
		return false
	}
	p, err := netip.ParsePrefix(rest)
	if err != nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.installed[p]
	return ok
}

// watch follows srv's best paths (the watch is registered before any neighbour is added,
// with the current table first) until ctx ends. What is installed now becomes stale: it is
// swept when allEOR says every neighbour sent its End-of-RIB, or after bound.
//
// GoBGP delivers one event per best path (its server handles a received UPDATE path by
// path), so the watch's callback only queues the paths, and a programmer goroutine takes
// whatever has piled up and programs it in one batch: 10,000 routes a peer sends at once go
// into the kernel in a few dozen netlink writes instead of 10,000, while GoBGP converts the
// next paths.
func (r *kernelRIB) watch(ctx context.Context, srv *server.BgpServer, bound time.Duration, allEOR func() bool) error {
	r.mu.Lock()
	for p := range r.installed {
		r.stale[p] = true
	}
	r.mu.Unlock()
	q := &pathQueue{ready: make(chan struct{}, 1)}
	err := srv.WatchEvent(ctx, &api.WatchEventRequest{Table: &api.WatchEventRequest_Table{Filters: []*api.WatchEventRequest_Table_Filter{
		{Type: api.WatchEventRequest_Table_Filter_BEST, Init: true},
		{Type: api.WatchEventRequest_Table_Filter_EOR},
	}}}, func(ev *api.WatchEventResponse) {
		q.push(ev.GetTable().GetPaths())
	})
	if err != nil {
		return fmt.Errorf("watch best paths: %w", err)
	}
	go r.program(ctx, srv, q, allEOR)
	go r.timers(ctx, bound)
	return nil
}

// pathQueue hands the watch's best paths, in order, to the programmer.
type pathQueue struct {
	mu    sync.Mutex
	paths []*api.Path
	ready chan struct{} // signalled after a push
}

func (q *pathQueue) push(paths []*api.Path) {
	if len(paths) == 0 {
		return
	}
	q.mu.Lock()
	q.paths = append(q.paths, paths...)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take returns every queued path and empties the queue.
func (q *pathQueue) take() []*api.Path {
	q.mu.Lock()
	defer q.mu.Unlock()
	paths := q.paths
	q.paths = nil
	return paths
}

// program programs the queued paths until ctx ends.
func (r *kernelRIB) program(ctx context.Context, srv *server.BgpServer, q *pathQueue, allEOR func() bool) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.ready:
		}
		paths := q.take()
		r.lingerEnded(ctx, srv, paths)
		eor := false
		for _, p := range paths {
			eor = eor || p.GetNlri() == nil // an End-of-RIB marker
		}
		r.onPaths(ctx, paths)
		if eor && allEOR() {
			r.sweepStale("every neighbour sent End-of-RIB")
		}
	}
}

// timers sweeps the stale routes after bound and expires lingering routes.
func (r *kernelRIB) timers(ctx context.Context, bound time.Duration) {
	staleAt := time.NewTimer(bound)
	defer staleAt.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-staleAt.C:
			r.sweepStale("the restart time passed")
		case now := <-tick.C:
			r.expireLingering(now)
		}
	}
}

// errForeign is a route in the way that nodenet does not own.
var errForeign = errors.New("a route nodenet does not own is there")

// programOne adds the route, or replaces it when the speaker already owns it. A route of
// another protocol to the same destination is left alone.
func (r *kernelRIB) programOne(prefix netip.Prefix, gw netip.Addr, owned bool) error {
	h, err := r.dp.Handle()
	if err != nil {
		return err
	}
	defer h.Release()
	rt := kernelRoute(prefix, gw)
	if owned {
		return h.RouteReplace(rt)
	}
	err = h.RouteAdd(rt)
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	existing, lerr := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN, Dst: rt.Dst}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
	if lerr != nil {
		return lerr
	}
	for _, e := range existing {
		if e.Protocol != dataplane.RouteProtocol {
			return fmt.Errorf("%w: %s", errForeign, strings.TrimPrefix(h.DescribeRoute(e), "route "))
		}
	}
	return h.RouteReplace(rt) // nodenet's and no object's: the speaker's own, from before
}

func kernelRoute(prefix netip.Prefix, gw netip.Addr) *netlink.Route {
	return &netlink.Route{
		Dst:      &net.IPNet{IP: prefix.Addr().AsSlice(), Mask: net.CIDRMask(prefix.Bits(), 32)},
		Gw:       gw.AsSlice(),
		Protocol: dataplane.RouteProtocol,
		Table:    unix.RT_TABLE_MAIN,
	}
}

func (r *kernelRIB) removeLocked(prefix netip.Prefix) {
	cur, ok := r.installed[prefix]
	if !ok {
		return
	}
	delete(r.stale, prefix)
	delete(r.lingering, prefix)
	h, err := r.dp.Handle()
	if err == nil {
		err = h.RouteDel(kernelRoute(prefix, cur.gw))
		h.Release()
	}
	if err != nil && !errors.Is(err, unix.ESRCH) {
		r.log.Warn("removing a withdrawn route", "prefix", prefix, "err", err)
		return
	}
	delete(r.installed, prefix)
	r.markDirty()
}

// lingerEnded makes the routes of peers whose session just ended linger, before their
// withdrawals are processed: a session ends on purpose when either side removes the
// peering (the other side applying first, in a switch from the mesh to reflectors, sends a
// Cease), and the replacement path comes moments later. A withdrawal in an UPDATE of a live
// session is a real one and is not held.
func (r *kernelRIB) lingerEnded(ctx context.Context, srv *server.BgpServer, paths []*api.Path) {
	peers := map[string]bool{}
	for _, p := range paths {
		if p.GetIsWithdraw() && p.GetNlri() != nil {
			peers[p.GetNeighborIp()] = true
		}
	}
	for addr := range peers {
		if _, err := netip.ParseAddr(addr); err != nil {
			continue
		}
		established := false
		_ = srv.ListPeer(ctx, &api.ListPeerRequest{Address: addr}, func(p *api.Peer) {
			established = p.GetState().GetSessionState() == api.PeerState_ESTABLISHED
		})
		if !established {
			r.linger(addr)
		}
	}
}

// linger keeps the routes learned from addr, a neighbour about to be removed on purpose,
// until another path replaces them or lingerTime passes.
func (r *kernelRIB) linger(addr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lingerPeers[addr] = time.Now().Add(lingerTime)
}

func (r *kernelRIB) expireLingering(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, until := range r.lingering {
		if now.After(until) {
			r.removeLocked(p)
		}
	}
	for a, until := range r.lingerPeers {
		if now.After(until) {
			delete(r.lingerPeers, a)
		}
	}
}

func (r *kernelRIB) sweepStale(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.stale) == 0 {
		return
	}
	n := len(r.stale)
	for p := range r.stale {
		r.removeLocked(p)
	}
	r.stale = map[netip.Prefix]bool{}
	r.log.Info("swept stale routes", "routes", n, "why", why)
}

// removeAll removes every route the speaker programmed: the speaker was deleted.
func (r *kernelRIB) removeAll() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p := range r.installed {
		r.removeLocked(p)
	}
	if len(r.installed) > 0 {
		return fmt.Errorf("%d learned routes could not be removed from the kernel", len(r.installed))
	}
	r.conflicts = map[netip.Prefix]string{}
	return nil
}

// missing are the installed routes the kernel no longer has (deleted by hand).
func (r *kernelRIB) missing() ([]netip.Prefix, error) {
	h, err := r.dp.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Release()
	routes, err := h.MainRoutes()
	if err != nil {
		return nil, err
	}
	have := map[netip.Prefix]netip.Addr{}
	for _, rt := range routes {
		if rt.Protocol != dataplane.RouteProtocol || rt.Dst == nil || rt.Gw == nil {
			continue
		}
		if p, ok := prefixOf(rt); ok {
			have[p], _ = netip.AddrFromSlice(rt.Gw.To4())
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []netip.Prefix
	for p, k := range r.installed {
		if gw, ok := have[p]; !ok || gw != k.gw {
			out = append(out, p)
		}
	}
	return out, nil
}

// repair programs the missing routes again.
func (r *kernelRIB) repair(prefixes []netip.Prefix) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, err := r.dp.Handle()
	if err != nil {
		return err
	}
	defer h.Release()
	for _, p := range prefixes {
		if k, ok := r.installed[p]; ok {
			if err := h.RouteReplace(kernelRoute(p, k.gw)); err != nil {
				return fmt.Errorf("route %s via %s: %w", p, k.gw, err)
			}
		}
	}
	return nil
}

// Counts for status.
func (r *kernelRIB) counts() (installed int, conflicts []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, why := range r.conflicts {
		conflicts = append(conflicts, p.String()+": "+why)
	}
	sort.Strings(conflicts)
	return len(r.installed), conflicts
}

// decodePath returns a path's IPv4 prefix and next hop.
func decodePath(p *api.Path) (netip.Prefix, netip.Addr, bool) {
	var nlri api.IPAddressPrefix
	if p.GetNlri() == nil || p.GetNlri().UnmarshalTo(&nlri) != nil {
		return netip.Prefix{}, netip.Addr{}, false
	}
	a, err := netip.ParseAddr(nlri.GetPrefix())
	if err != nil || !a.Is4() {
		return netip.Prefix{}, netip.Addr{}, false
	}
	prefix := netip.PrefixFrom(a, int(nlri.GetPrefixLen())).Masked()
	for _, attr := range p.GetPattrs() {
		var nh api.NextHopAttribute
		if attr.MessageIs(&nh) && attr.UnmarshalTo(&nh) == nil {
			gw, err := netip.ParseAddr(nh.GetNextHop())
			return prefix, gw, err == nil
		}
	}
	return prefix, netip.Addr{}, p.GetIsWithdraw()
}
