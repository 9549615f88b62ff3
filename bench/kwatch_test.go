package bench

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// routeEvent is the first RTM_NEWROUTE a namespace's kernel reported for a prefix: when it
// arrived here, and what the route was.
type routeEvent struct {
	at    time.Time
	typ   int // unix.RTN_UNICAST, unix.RTN_BLACKHOLE, ...
	gw    netip.Addr
	proto netlink.RouteProtocol
}

// routeWatch follows the IPv4 route notifications of one network namespace through a
// netlink subscription opened inside it, and records, for every prefix within its range,
// the first route added (in the main table) and the time it was read. Reading
// notifications instead of polling `ip route` gives the time a route appeared to well
// under a millisecond (the subscription's goroutine is the only delay).
type routeWatch struct {
	name    string
	within  netip.Prefix
	changed chan<- struct{} // shared by the watches of a run; signalled after each record

	mu    sync.Mutex
	first map[netip.Prefix]routeEvent
	last  time.Time // when the latest new prefix arrived
	err   error     // why the subscription ended before close

	stop   chan struct{}
	ended  chan struct{}
	closed bool
}

// watchRoutes subscribes to the route notifications of the namespace at nsPath.
func watchRoutes(name, nsPath string, within netip.Prefix, changed chan<- struct{}) (*routeWatch, error) {
	h, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", nsPath, err)
	}
	defer h.Close() // the subscription's socket lives in the namespace without the handle
	w := &routeWatch{name: name, within: within, changed: changed, first: map[netip.Prefix]routeEvent{},
		stop: make(chan struct{}), ended: make(chan struct{})}
	ch := make(chan netlink.RouteUpdate, 16384)
	err = netlink.RouteSubscribeWithOptions(ch, w.stop, netlink.RouteSubscribeOptions{
		Namespace: &h,
		// 10,000 routes in a burst must not overflow the socket (ENOBUFS ends the subscription).
		ReceiveBufferSize:      64 << 20,
		ReceiveBufferForceSize: true,
		ErrorCallback: func(err error) {
			w.mu.Lock()
			if w.err == nil && !w.closed {
				w.err = err
			}
			w.mu.Unlock()
		},
	})
	if err != nil {
		close(w.stop)
		return nil, fmt.Errorf("subscribe to routes in %s: %w", nsPath, err)
	}
	go w.loop(ch)
	return w, nil
}

func (w *routeWatch) loop(ch <-chan netlink.RouteUpdate) {
	defer close(w.ended)
	for u := range ch {
		at := time.Now()
		if u.Type != unix.RTM_NEWROUTE || u.Dst == nil || (u.Table != unix.RT_TABLE_MAIN && u.Table != 0) {
			continue
		}
		p, ok := ipNetPrefix(u.Dst)
		if !ok || p.Bits() < w.within.Bits() || !w.within.Contains(p.Addr()) {
			continue
		}
		gw, _ := netip.AddrFromSlice(u.Gw.To4())
		w.mu.Lock()
		if _, seen := w.first[p]; !seen {
			w.first[p] = routeEvent{at: at, typ: u.Route.Type, gw: gw, proto: u.Protocol}
			w.last = at
		}
		w.mu.Unlock()
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
	w.mu.Lock()
	if w.err == nil && !w.closed {
		w.err = errors.New("the route subscription ended")
	}
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// close ends the subscription; safe to call twice.
func (w *routeWatch) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	// The socket closes when stop does; the loop ends once the subscription's reader sees
	// it. Do not wait forever on a reader blocked in recv.
	select {
	case <-w.ended:
	case <-time.After(2 * time.Second):
	}
}

// seen returns the first event of p.
func (w *routeWatch) seen(p netip.Prefix) (routeEvent, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ev, ok := w.first[p]
	return ev, ok
}

// count is how many prefixes have been seen, with the first and latest arrival.
func (w *routeWatch) count() (n int, first, last time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range w.first {
		if first.IsZero() || ev.at.Before(first) {
			first = ev.at
		}
	}
	return len(w.first), first, w.last
}

// untilShare is the time from the first arrival to the one that makes up share (0 to 1) of
// the prefixes seen (nearest rank).
func (w *routeWatch) untilShare(share float64) time.Duration {
	w.mu.Lock()
	at := make([]time.Time, 0, len(w.first))
	for _, ev := range w.first {
		at = append(at, ev.at)
	}
	w.mu.Unlock()
	if len(at) == 0 {
		return 0
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	k := max(int(math.Ceil(share*float64(len(at)))), 1)
	return at[k-1].Sub(at[0])
}

// size is how many prefixes have been seen.
func (w *routeWatch) size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.first)
}

func (w *routeWatch) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return fmt.Errorf("%s: %w", w.name, w.err)
	}
	return nil
}

// waitFor returns once done() holds, or false after timeout or when a watch failed.
func waitFor(changed <-chan struct{}, timeout time.Duration, watches []*routeWatch, done func() bool) (bool, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if done() {
			return true, nil
		}
		for _, w := range watches {
			if err := w.failed(); err != nil {
				return false, err
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			return done(), nil
		}
	}
}

func ipNetPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	bits, size := n.Mask.Size()
	if size != 32 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, bits), true
}

// kernelRoutes lists the main table's IPv4 routes within a range in the namespace at nsPath:
// what is really in the kernel, read after a way has run.
func kernelRoutes(nsPath string, within netip.Prefix) (map[netip.Prefix]netlink.Route, error) {
	h, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, err
	}
	defer nh.Close()
	if err := nh.SetSocketReceiveBufferSize(64<<20, true); err != nil {
		return nil, err
	}
	routes, err := nh.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, err
	}
	out := map[netip.Prefix]netlink.Route{}
	for _, rt := range routes {
		if rt.Dst == nil {
			continue
		}
		p, ok := ipNetPrefix(rt.Dst)
		if ok && p.Bits() >= within.Bits() && within.Contains(p.Addr()) {
			out[p] = rt
		}
	}
	return out, nil
}

func routeGw(rt netlink.Route) netip.Addr {
	a, _ := netip.AddrFromSlice(rt.Gw.To4())
	return a
}
