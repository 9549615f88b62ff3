package health

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

const obj = "vxlan_tunnel/vx"

var t0 = time.Unix(1_800_000_000, 0)

func target(ip, node string) Target {
	return Target{IP: netip.MustParseAddr(ip), Node: node, Device: "vx"}
}

// rounds drives the book as the loop does, one probe per target per second: answer says
// which targets reply (after 2 ms), the rest time out at the next round.
type rounds struct {
	b   *book
	now time.Time
}

func (r *rounds) round(answer func(ip netip.Addr) bool) {
	r.b.expire(r.now, time.Second)
	for _, o := range r.b.plan(r.now) {
		if answer(o.t.IP) {
			r.b.reply(o.t.IP, o.seq, r.now.Add(2*time.Millisecond))
		}
	}
	r.now = r.now.Add(time.Second)
	r.b.expire(r.now, time.Second)
}

func all(netip.Addr) bool  { return true }
func none(netip.Addr) bool { return false }

func only(t *testing.T, hs []*pb.PeerHealth) *pb.PeerHealth {
	t.Helper()
	if len(hs) != 1 {
		t.Fatalf("want one result, got %v", hs)
	}
	return hs[0]
}

// TestWindowAndReachable: sent and received cover the last Window decided probes; a target
// stays reachable through ReachableWithin-1 losses in a row and is unreachable after
// ReachableWithin, saying why; the RTT and last OK are the last answered probe's.
func TestWindowAndReachable(t *testing.T) {
	r := &rounds{b: newBook(), now: t0}
	r.b.set(obj, []Target{target("179.17.1.31", "c2/n1")})
	h := only(t, r.b.results(obj))
	if h.Reachable || h.Sent != 0 || h.LastOk != 0 || h.Error != "not probed yet" || h.Node != "c2/n1" || h.Ip != "179.17.1.31" {
		t.Errorf("before any probe: %v", h)
	}
	r.round(all)
	h = only(t, r.b.results(obj))
	if !h.Reachable || h.Sent != 1 || h.Received != 1 || h.RttMs != 2 || h.LastOk != t0.Unix() || h.Error != "" {
		t.Errorf("after one answered probe: %v", h)
	}
	for i := 1; i < ReachableWithin; i++ {
		r.round(none)
	}
	h = only(t, r.b.results(obj))
	if !h.Reachable || h.Sent != ReachableWithin || h.Received != 1 || h.LastOk != t0.Unix() {
		t.Errorf("%d losses after an answer should leave it reachable: %v", ReachableWithin-1, h)
	}
	r.round(none)
	h = only(t, r.b.results(obj))
	if h.Reachable || h.Error != "no reply to the last 3 probes" || h.RttMs != 2 || h.LastOk != t0.Unix() {
		t.Errorf("%d losses in a row should make it unreachable: %v", ReachableWithin, h)
	}
	for i := 0; i < 2*Window; i++ {
		r.round(none)
	}
	if h = only(t, r.b.results(obj)); h.Sent != Window || h.Received != 0 || h.Error != "no reply to the last 10 probes" {
		t.Errorf("the window is the last %d probes: %v", Window, h)
	}
	for i := 0; i < 4; i++ {
		r.round(all)
	}
	if h = only(t, r.b.results(obj)); !h.Reachable || h.Sent != Window || h.Received != 4 || h.LastOk != r.now.Add(-time.Second).Unix() {
		t.Errorf("4 answers in a window of %d: %v", Window, h)
	}
	// A probe that cannot be sent is lost at once, and its error is the reason.
	for i := 0; i < ReachableWithin; i++ {
		for _, o := range r.b.plan(r.now) {
			r.b.failed(o.seq, errors.New("device vx is down"))
		}
		r.now = r.now.Add(time.Second)
	}
	if h = only(t, r.b.results(obj)); h.Reachable || h.Error != "device vx is down" || h.Sent != Window || h.Received != 4 {
		t.Errorf("after send failures: %v", h)
	}
}

// TestSetKeepsAndForgets: a re-Set keeps the window of targets named again (a re-apply
// forgets nothing) and takes their new node; results are kept only for current targets;
// an empty Set forgets the object, and a reply to a probe sent to a removed target counts
// for nothing.
func TestSetKeepsAndForgets(t *testing.T) {
	r := &rounds{b: newBook(), now: t0}
	a, b := target("179.17.1.31", "c2/n1"), target("179.17.1.41", "c3/n1")
	r.b.set(obj, []Target{b, a, a})
	r.round(all)
	r.round(all)
	hs := r.b.results(obj)
	if len(hs) != 2 || hs[0].Ip != "179.17.1.31" || hs[1].Ip != "179.17.1.41" || hs[0].Sent != 2 {
		t.Fatalf("two targets, by IP, duplicate dropped: %v", hs)
	}
	a.Node = "c2/n1-renamed"
	r.b.set(obj, []Target{a})
	h := only(t, r.b.results(obj))
	if h.Sent != 2 || h.Received != 2 || h.Node != "c2/n1-renamed" {
		t.Errorf("a target named again keeps its window and takes its new node: %v", h)
	}
	// A probe in flight to a target that is removed: its reply is ignored.
	out := r.b.plan(r.now)
	r.b.set(obj, []Target{b})
	for _, o := range out {
		r.b.reply(o.t.IP, o.seq, r.now)
	}
	if h := only(t, r.b.results(obj)); h.Ip != "179.17.1.41" || h.Sent != 0 {
		t.Errorf("a target named anew starts afresh: %v", h)
	}
	if len(r.b.flight) != 0 {
		t.Errorf("probes in flight to removed targets are kept: %v", r.b.flight)
	}
	// The same IP on another device is another target.
	other := a
	other.Device = "vx2"
	r.b.set("vxlan_tunnel/vx2", []Target{other})
	r.b.set(obj, nil)
	if hs := r.b.results(obj); hs != nil || r.b.empty() {
		t.Errorf("after an empty Set: %v, empty %v", hs, r.b.empty())
	}
	r.b.set("vxlan_tunnel/vx2", nil)
	if !r.b.empty() {
		t.Errorf("no targets left, but the book is not empty: %v", r.b.objs)
	}
}

// TestReplyMatching: only a reply from the probed address to a probe in flight counts; a
// reply after the probe timed out is a loss, not an answer.
func TestReplyMatching(t *testing.T) {
	b := newBook()
	b.set(obj, []Target{target("179.17.1.31", "")})
	out := b.plan(t0)
	b.reply(netip.MustParseAddr("179.17.1.99"), out[0].seq, t0.Add(time.Millisecond))
	b.reply(netip.MustParseAddr("179.17.1.31"), out[0].seq+1, t0.Add(time.Millisecond))
	if h := only(t, b.results(obj)); h.Sent != 0 {
		t.Errorf("a reply from another address or to another probe counted: %v", h)
	}
	if e := b.nextExpiry(time.Second); !e.Equal(t0.Add(time.Second)) {
		t.Errorf("next expiry %v, want %v", e, t0.Add(time.Second))
	}
	b.expire(t0.Add(time.Second), time.Second)
	b.reply(netip.MustParseAddr("179.17.1.31"), out[0].seq, t0.Add(1100*time.Millisecond))
	if h := only(t, b.results(obj)); h.Sent != 1 || h.Received != 0 || h.LastOk != 0 {
		t.Errorf("a late reply counted: %v", h)
	}
	if !b.nextExpiry(time.Second).IsZero() {
		t.Errorf("nothing in flight, but an expiry")
	}
}

// TestChangesForTheLog: the first answer says reachable; losses say unreachable only once
// ReachableWithin probes are decided, so a start does not log a loss the next probe takes
// back; each change is said once.
func TestChangesForTheLog(t *testing.T) {
	r := &rounds{b: newBook(), now: t0}
	r.b.set(obj, []Target{target("179.17.1.31", "")})
	r.round(none)
	r.round(none)
	if c := r.b.takeChanges(); len(c) != 0 {
		t.Errorf("changes before %d probes: %v", ReachableWithin, c)
	}
	r.round(none)
	if c := r.b.takeChanges(); len(c) != 1 || c[0].up || c[0].err != "no reply to the last 3 probes" {
		t.Errorf("after %d losses: %v", ReachableWithin, c)
	}
	r.round(none)
	r.round(all)
	r.round(all)
	if c := r.b.takeChanges(); len(c) != 1 || !c[0].up {
		t.Errorf("after answers: %v", c)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
