// Package health measures whether the members of a VXLAN overlay reach each other, the way
// Submariner's health checker does: the agent sends an ICMP echo request to every member's
// overlay IP through the tunnel's device, once a second, and the member's kernel answers it
// with no agent's help. A reply means the whole path works (this node's device, FDB and
// neighbour entry, the underlay, the member's device and its entries back); a loss says
// nothing about which part failed.
//
// One Prober serves a node's network namespace: one goroutine and one ICMP socket for every
// target of every object, whatever their number. The socket is opened in the namespace when
// the first target is set and closed when the last goes. It is an unprivileged ICMP datagram
// socket when net.ipv4.ping_group_range admits the agent's group (the kernel then picks the
// echo identifier and hands the socket only its own replies), else a raw ICMP socket, which
// needs CAP_NET_RAW and sees every echo reply of the namespace (the prober keeps those with
// its identifier and token). Each request leaves by the target's device (IP_PKTINFO with
// the device's index), so it crosses the tunnel even when no route to the overlay IP exists
// (a socket bound to a device treats a destination without a route as on-link) or when
// another route to it would take it elsewhere.
package health

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/vishvananda/netns"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

const (
	// DefaultInterval is how often every target is probed.
	DefaultInterval = time.Second
	// Window is how many recent probes PeerHealth's sent and received cover.
	Window = 10
	// ReachableWithin: a target is reachable when one of its last ReachableWithin probes was
	// answered.
	ReachableWithin = 3
)

// Target is one address to probe for an object.
type Target struct {
	// IP is the member's overlay IP.
	IP netip.Addr
	// Node is the member's "<cluster>/<node>", reported as is ("" when unknown).
	Node string
	// Device is the interface the probe leaves by: the tunnel's device.
	Device string
}

// transport sends echo requests and receives their replies. The loop is its only user.
type transport interface {
	// ifindex resolves a device name in the prober's namespace.
	ifindex(dev string) (int, error)
	// send writes an echo request with seq to ip, out of the interface ifindex.
	send(ifindex int, ip netip.Addr, seq uint16) error
	// recv returns the next echo reply to this transport's requests, waiting until deadline
	// at most; os.ErrDeadlineExceeded then.
	recv(deadline time.Time) (src netip.Addr, seq uint16, err error)
	// kind names the socket for the log ("datagram" or "raw").
	kind() string
	// close is safe to call more than once and from another goroutine than recv's.
	close()
}

// Prober probes the targets of every object of one network namespace.
type Prober struct {
	interval, timeout time.Duration
	log               *slog.Logger
	open              func() (transport, error)
	now               func() time.Time

	mu     sync.Mutex
	book   *book
	tr     transport // the open socket, for Close to interrupt a recv
	closed bool

	wake   chan struct{} // a Set happened (buffered: one pending wake is enough)
	done   chan struct{} // closed by Close
	exited chan struct{} // closed when the loop returns
	once   sync.Once
}

// New returns a prober for the network namespace at nsPath (e.g. /run/netns/foo), or the
// current one when nsPath is "", probing every interval (DefaultInterval when 0). It checks
// that the namespace is there; the socket is opened when the first target is set, so an
// agent whose objects ask for no health checks needs nothing more than before.
func New(nsPath string, interval time.Duration, log *slog.Logger) (*Prober, error) {
	if nsPath != "" {
		ns, err := netns.GetFromPath(nsPath)
		if err != nil {
			return nil, fmt.Errorf("health: open network namespace %s: %w", nsPath, err)
		}
		ns.Close()
	}
	return start(func() (transport, error) { return openICMP(nsPath) }, interval, log), nil
}

func start(open func() (transport, error), interval time.Duration, log *slog.Logger) *Prober {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if log == nil {
		log = slog.Default()
	}
	p := &Prober{
		// A reply later than the next probe counts as a loss: over an overlay a round trip
		// of a second is a failure, and it keeps at most one probe per target in flight.
		interval: interval, timeout: interval,
		log: log.With("component", "health"), open: open, now: time.Now,
		book: newBook(), wake: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{}),
	}
	go p.run()
	return p
}

// Set replaces the targets of object id; none stops probing for it and forgets its results.
// A target named again (same device and IP) keeps its results.
func (p *Prober) Set(id string, targets []Target) {
	p.mu.Lock()
	p.book.set(id, targets)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Results are the object's targets with the outcome of their recent probes, by IP; nil when
// the object has none.
func (p *Prober) Results(id string) []*pb.PeerHealth {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.book.results(id)
}

// Close stops probing and closes the socket. It returns once the prober's goroutine has.
func (p *Prober) Close() {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		tr := p.tr
		p.mu.Unlock()
		close(p.done)
		if tr != nil {
			tr.close() // interrupts a recv
		}
	})
	<-p.exited
}

// run is the prober's one goroutine: every interval a round sends one probe to every
// target; in between it reads replies and times probes out.
func (p *Prober) run() {
	defer close(p.exited)
	var tr transport
	defer func() {
		if tr != nil {
			tr.close()
		}
	}()
	var next time.Time // when the next round is due
	for {
		p.mu.Lock()
		idle := p.book.empty()
		p.mu.Unlock()
		if idle {
			// No targets: no socket, no wake-ups.
			tr = p.setTransport(tr, nil)
			select {
			case <-p.done:
				return
			case <-p.wake:
			}
			next = time.Time{}
			continue
		}
		if now := p.now(); !now.Before(next) {
			var openErr error
			if tr == nil {
				var closed bool
				if tr, closed, openErr = p.openTransport(); closed {
					return
				}
			}
			p.round(tr, openErr, now)
			next = now.Add(p.interval)
		}
		if tr == nil {
			// The socket could not be opened: the round recorded why; try again at the next.
			select {
			case <-p.done:
				return
			case <-time.After(next.Sub(p.now())):
			}
			continue
		}
		p.mu.Lock()
		deadline := next
		if e := p.book.nextExpiry(p.timeout); !e.IsZero() && e.Before(deadline) {
			deadline = e
		}
		p.mu.Unlock()
		src, seq, err := tr.recv(deadline)
		now := p.now()
		p.mu.Lock()
		if err == nil {
			p.book.reply(src, seq, now)
		}
		p.book.expire(now, p.timeout)
		changes := p.book.takeChanges()
		p.mu.Unlock()
		p.logChanges(changes)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			select {
			case <-p.done:
				return
			default:
			}
			p.log.Warn("reading ICMP replies failed; the socket is opened again at the next round", "err", err)
			tr = p.setTransport(tr, nil)
		}
	}
}

// openTransport opens the socket; when it cannot, the error says why (the round records it
// for every target). closed is true when the prober was closed meanwhile.
func (p *Prober) openTransport() (tr transport, closed bool, err error) {
	if tr, err = p.open(); err != nil {
		return nil, false, err
	}
	p.mu.Lock()
	closed = p.closed
	if !closed {
		p.tr = tr
	}
	p.mu.Unlock()
	if closed {
		tr.close()
		return nil, true, nil
	}
	p.log.Info("ICMP socket open", "socket", tr.kind())
	return tr, false, nil
}

// setTransport closes old and records next as the open socket.
func (p *Prober) setTransport(old, next transport) transport {
	if old != nil {
		old.close()
		p.log.Info("ICMP socket closed", "socket", old.kind())
	}
	p.mu.Lock()
	p.tr = next
	p.mu.Unlock()
	return next
}

// round sends one probe to every target. A probe that cannot be sent (the target's device
// is gone or down; tr is nil because the socket could not be opened, for openErr) is lost
// at once, with the reason.
func (p *Prober) round(tr transport, openErr error, now time.Time) {
	p.mu.Lock()
	p.book.expire(now, p.timeout)
	out := p.book.plan(now)
	p.mu.Unlock()
	type dev struct {
		index int
		err   error
	}
	devs := map[string]dev{}
	failed := map[uint16]error{}
	for _, o := range out {
		if tr == nil {
			failed[o.seq] = fmt.Errorf("open ICMP socket: %w", openErr)
			continue
		}
		d, ok := devs[o.t.Device]
		if !ok {
			d.index, d.err = tr.ifindex(o.t.Device)
			devs[o.t.Device] = d
		}
		if d.err != nil {
			failed[o.seq] = d.err
			continue
		}
		if err := tr.send(d.index, o.t.IP, o.seq); err != nil {
			failed[o.seq] = fmt.Errorf("send through %s: %w", o.t.Device, err)
		}
	}
	p.mu.Lock()
	for seq, err := range failed {
		p.book.failed(seq, err)
	}
	changes := p.book.takeChanges()
	p.mu.Unlock()
	p.logChanges(changes)
}

func (p *Prober) logChanges(cs []change) {
	for _, c := range cs {
		if c.up {
			p.log.Info("peer reachable over the overlay", "object", c.id, "peer", c.t.IP, "node", c.t.Node, "device", c.t.Device)
		} else {
			p.log.Warn("peer unreachable over the overlay", "object", c.id, "peer", c.t.IP, "node", c.t.Node, "device", c.t.Device, "reason", c.err)
		}
	}
}
