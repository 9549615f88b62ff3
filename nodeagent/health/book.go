package health

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// The book is the prober's bookkeeping: the targets of every object, the probes in flight
// and the outcome of each target's recent probes. It does no I/O and reads no clock: the
// loop passes the time in, so the rules below are tested with times of the test's choosing.
// The Prober's mutex guards it.

// peer is one target's state. It is kept across a Set that names the same target again
// (same device and IP), so a re-apply does not forget the window.
type peer struct {
	t Target
	// window holds the outcomes of the last Window decided probes, oldest first.
	window []bool
	// misses counts the probes lost since the last answered one.
	misses int
	rtt    time.Duration
	lastOK time.Time
	// sendErr is why the last lost probe could not be sent; "" when it was sent and timed out.
	sendErr string
	// logged is the last reachability the log told: 0 none yet, 1 reachable, -1 not.
	logged int8
}

type peerKey struct {
	dev string
	ip  netip.Addr
}

func (p *peer) key() peerKey { return peerKey{p.t.Device, p.t.IP} }

// probe is one echo request in flight.
type probe struct {
	id   string
	p    *peer
	sent time.Time
}

// outgoing is one echo request a round sends.
type outgoing struct {
	seq uint16
	t   Target
}

// change is a target whose reachability changed, for the log.
type change struct {
	id  string
	t   Target
	up  bool
	err string
}

type book struct {
	objs   map[string][]*peer // by object id, sorted by IP
	flight map[uint16]*probe  // by echo sequence number
	seq    uint16
	// changes collects reachability changes until the loop takes them.
	changes []change
}

func newBook() *book {
	return &book{objs: map[string][]*peer{}, flight: map[uint16]*probe{}}
}

func (b *book) empty() bool { return len(b.objs) == 0 }

// set replaces the targets of object id; none forgets the object. Targets named again keep
// their state; probes in flight to targets no longer named are forgotten.
func (b *book) set(id string, targets []Target) {
	old := map[peerKey]*peer{}
	for _, p := range b.objs[id] {
		old[p.key()] = p
	}
	var peers []*peer
	seen := map[peerKey]bool{}
	for _, t := range targets {
		k := peerKey{t.Device, t.IP}
		if seen[k] {
			continue
		}
		seen[k] = true
		p := old[k]
		if p == nil {
			p = &peer{}
		}
		p.t = t
		peers = append(peers, p)
	}
	sort.Slice(peers, func(i, j int) bool {
		if peers[i].t.IP != peers[j].t.IP {
			return peers[i].t.IP.Less(peers[j].t.IP)
		}
		return peers[i].t.Device < peers[j].t.Device
	})
	if len(peers) == 0 {
		delete(b.objs, id)
	} else {
		b.objs[id] = peers
	}
	for seq, pr := range b.flight {
		if pr.id == id && !seen[pr.p.key()] {
			delete(b.flight, seq)
		}
	}
}

// plan starts a round: one probe to every target, each with a sequence number no probe in
// flight has.
func (b *book) plan(now time.Time) []outgoing {
	var out []outgoing
	for id, peers := range b.objs {
		for _, p := range peers {
			if len(b.flight) >= 1<<16 {
				return out // cannot happen with the expiry of each round; never loop forever
			}
			for {
				b.seq++
				if b.flight[b.seq] == nil {
					break
				}
			}
			b.flight[b.seq] = &probe{id: id, p: p, sent: now}
			out = append(out, outgoing{seq: b.seq, t: p.t})
		}
	}
	return out
}

// failed records that the probe seq could not be sent: lost at once, with the reason.
func (b *book) failed(seq uint16, err error) {
	pr := b.flight[seq]
	if pr == nil {
		return
	}
	delete(b.flight, seq)
	b.record(pr, false, 0, time.Time{}, err.Error())
}

// reply records an echo reply from src to the probe seq. A reply from another address than
// the probe's target, or to no probe in flight (late, or to a target since removed), counts
// for nothing.
func (b *book) reply(src netip.Addr, seq uint16, now time.Time) {
	pr := b.flight[seq]
	if pr == nil || pr.p.t.IP != src.Unmap() {
		return
	}
	delete(b.flight, seq)
	b.record(pr, true, now.Sub(pr.sent), now, "")
}

// expire counts the probes sent timeout ago or earlier as lost.
func (b *book) expire(now time.Time, timeout time.Duration) {
	for seq, pr := range b.flight {
		if now.Sub(pr.sent) >= timeout {
			delete(b.flight, seq)
			b.record(pr, false, 0, time.Time{}, "")
		}
	}
}

// nextExpiry is when the oldest probe in flight times out; zero when none is in flight.
func (b *book) nextExpiry(timeout time.Duration) time.Time {
	var t time.Time
	for _, pr := range b.flight {
		if e := pr.sent.Add(timeout); t.IsZero() || e.Before(t) {
			t = e
		}
	}
	return t
}

func (b *book) record(pr *probe, ok bool, rtt time.Duration, at time.Time, sendErr string) {
	p := pr.p
	p.window = append(p.window, ok)
	if len(p.window) > Window {
		p.window = p.window[len(p.window)-Window:]
	}
	if ok {
		p.misses, p.sendErr, p.rtt, p.lastOK = 0, "", rtt, at
	} else {
		p.misses++
		p.sendErr = sendErr
	}
	// A member is first said unreachable once ReachableWithin probes are decided, so that a
	// start does not log a loss that the next probe would take back.
	state := int8(-1)
	if reachable(p) {
		state = 1
	}
	if state != p.logged && (state == 1 || p.logged != 0 || len(p.window) >= ReachableWithin) {
		p.logged = state
		b.changes = append(b.changes, change{id: pr.id, t: p.t, up: state == 1, err: reason(p)})
	}
}

// takeChanges returns the reachability changes since the last call.
func (b *book) takeChanges() []change {
	c := b.changes
	b.changes = nil
	return c
}

// reachable: one of the last ReachableWithin decided probes was answered. A single lost
// probe does not make a member unreachable; ReachableWithin lost in a row do.
func reachable(p *peer) bool {
	n := len(p.window)
	for i := n - 1; i >= 0 && i >= n-ReachableWithin; i-- {
		if p.window[i] {
			return true
		}
	}
	return false
}

// reason says why a member is unreachable; "" when it is reachable.
func reason(p *peer) string {
	switch {
	case reachable(p):
		return ""
	case len(p.window) == 0:
		return "not probed yet"
	case p.sendErr != "":
		return p.sendErr
	}
	return fmt.Sprintf("no reply to the last %d probes", min(p.misses, Window))
}

// results are the object's targets as the contract reports them, by IP.
func (b *book) results(id string) []*pb.PeerHealth {
	var out []*pb.PeerHealth
	for _, p := range b.objs[id] {
		h := &pb.PeerHealth{
			Ip:        p.t.IP.String(),
			Node:      p.t.Node,
			Reachable: reachable(p),
			RttMs:     float64(p.rtt.Microseconds()) / 1000,
			Sent:      uint32(len(p.window)),
			Error:     reason(p),
		}
		for _, ok := range p.window {
			if ok {
				h.Received++
			}
		}
		if !p.lastOK.IsZero() {
			h.LastOk = p.lastOK.Unix()
		}
		out = append(out, h)
	}
	return out
}
