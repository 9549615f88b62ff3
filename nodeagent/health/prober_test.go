package health

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// fakeNet is the network a fake transport probes: the addresses that answer, the devices
// that are up, and what the prober did with its sockets.
type fakeNet struct {
	mu      sync.Mutex
	answer  map[netip.Addr]bool
	down    map[string]bool
	openErr error
	opens   int
	open    int // sockets open now
	sent    int
}

func (n *fakeNet) set(f func(n *fakeNet)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f(n)
}

func (n *fakeNet) dial() (transport, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.openErr != nil {
		return nil, n.openErr
	}
	n.opens++
	n.open++
	return &fakeTransport{n: n, replies: make(chan reply, 64), closed: make(chan struct{})}, nil
}

type reply struct {
	src netip.Addr
	seq uint16
}

type fakeTransport struct {
	n       *fakeNet
	replies chan reply
	closed  chan struct{}
	once    sync.Once
}

func (f *fakeTransport) kind() string { return "fake" }

func (f *fakeTransport) ifindex(dev string) (int, error) {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if f.n.down[dev] {
		return 0, fmt.Errorf("device %s is down", dev)
	}
	return 7, nil
}

func (f *fakeTransport) send(_ int, ip netip.Addr, seq uint16) error {
	select {
	case <-f.closed:
		return net.ErrClosed
	default:
	}
	f.n.mu.Lock()
	f.n.sent++
	ok := f.n.answer[ip]
	f.n.mu.Unlock()
	if ok {
		f.replies <- reply{ip, seq}
	}
	return nil
}

func (f *fakeTransport) recv(deadline time.Time) (netip.Addr, uint16, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case r := <-f.replies:
		return r.src, r.seq, nil
	case <-f.closed:
		return netip.Addr{}, 0, net.ErrClosed
	case <-t.C:
		return netip.Addr{}, 0, os.ErrDeadlineExceeded
	}
}

func (f *fakeTransport) close() {
	f.once.Do(func() {
		close(f.closed)
		f.n.mu.Lock()
		f.n.open--
		f.n.mu.Unlock()
	})
}

// eventually polls cond until it returns "" or the time is up.
func eventually(t *testing.T, within time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func byIP(hs []*pb.PeerHealth) map[string]*pb.PeerHealth {
	m := map[string]*pb.PeerHealth{}
	for _, h := range hs {
		m[h.GetIp()] = h
	}
	return m
}

// TestProberLoop: the one goroutine probes every target each interval over one socket, opened
// with the first target and closed with the last; an answering target is reachable, a silent
// one and one whose device is down are not, each saying why; Close ends the goroutine.
func TestProberLoop(t *testing.T) {
	n := &fakeNet{answer: map[netip.Addr]bool{netip.MustParseAddr("179.17.1.31"): true}, down: map[string]bool{}}
	p := start(n.dial, 10*time.Millisecond, slog.New(slog.DiscardHandler))
	defer p.Close()
	time.Sleep(30 * time.Millisecond)
	n.set(func(n *fakeNet) {
		if n.opens != 0 || n.sent != 0 {
			t.Errorf("without targets: %d sockets opened, %d probes sent", n.opens, n.sent)
		}
	})
	p.Set(obj, []Target{target("179.17.1.31", "c2/n1"), target("179.17.1.41", "c3/n1")})
	eventually(t, 2*time.Second, func() string {
		m := byIP(p.Results(obj))
		if a, b := m["179.17.1.31"], m["179.17.1.41"]; !a.GetReachable() || a.GetRttMs() < 0 || a.GetLastOk() == 0 ||
			b.GetReachable() || b.GetError() != "no reply to the last 3 probes" {
			return fmt.Sprintf("want .31 reachable and .41 not: %v", p.Results(obj))
		}
		return ""
	})
	n.set(func(n *fakeNet) { n.down["vx"] = true })
	eventually(t, 2*time.Second, func() string {
		if a := byIP(p.Results(obj))["179.17.1.31"]; a.GetReachable() || a.GetError() != "device vx is down" {
			return fmt.Sprintf("want .31 unreachable with its device down: %v", a)
		}
		return ""
	})
	n.set(func(n *fakeNet) { n.down["vx"] = false })
	eventually(t, 2*time.Second, func() string {
		if a := byIP(p.Results(obj))["179.17.1.31"]; !a.GetReachable() {
			return fmt.Sprintf("want .31 reachable again: %v", a)
		}
		return ""
	})
	p.Set(obj, nil)
	eventually(t, 2*time.Second, func() string {
		var msg string
		n.set(func(n *fakeNet) {
			if n.open != 0 {
				msg = "the socket is still open without targets"
			}
		})
		return msg
	})
	if hs := p.Results(obj); hs != nil {
		t.Errorf("results of a forgotten object: %v", hs)
	}
	var sent int
	n.set(func(n *fakeNet) { sent = n.sent })
	time.Sleep(50 * time.Millisecond)
	n.set(func(n *fakeNet) {
		if n.sent != sent || n.opens != 1 {
			t.Errorf("without targets: %d more probes, %d sockets opened in all", n.sent-sent, n.opens)
		}
	})
	p.Set(obj, []Target{target("179.17.1.31", "c2/n1")})
	eventually(t, 2*time.Second, func() string {
		if !byIP(p.Results(obj))["179.17.1.31"].GetReachable() {
			return "not reachable after the targets came back"
		}
		return ""
	})
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(time.Second):
		t.Fatal("Close did not return")
	}
	select {
	case <-p.exited:
	default:
		t.Error("Close returned before the goroutine")
	}
	n.set(func(n *fakeNet) {
		if n.open != 0 {
			t.Errorf("%d sockets open after Close", n.open)
		}
	})
}

// TestProberSocketRefused: when the socket cannot be opened, every target is unreachable
// with the reason, and the prober tries again each round.
func TestProberSocketRefused(t *testing.T) {
	n := &fakeNet{answer: map[netip.Addr]bool{netip.MustParseAddr("179.17.1.31"): true}, down: map[string]bool{},
		openErr: errors.New("no raw ICMP socket (operation not permitted: the agent needs CAP_NET_RAW)")}
	p := start(n.dial, 10*time.Millisecond, slog.New(slog.DiscardHandler))
	defer p.Close()
	p.Set(obj, []Target{target("179.17.1.31", "")})
	eventually(t, 2*time.Second, func() string {
		h := byIP(p.Results(obj))["179.17.1.31"]
		if h.GetReachable() || h.GetError() != "open ICMP socket: no raw ICMP socket (operation not permitted: the agent needs CAP_NET_RAW)" {
			return fmt.Sprintf("want the socket's error: %v", h)
		}
		return ""
	})
	n.set(func(n *fakeNet) { n.openErr = nil })
	eventually(t, 2*time.Second, func() string {
		if h := byIP(p.Results(obj))["179.17.1.31"]; !h.GetReachable() {
			return fmt.Sprintf("want reachable once the socket opens: %v", h)
		}
		return ""
	})
}
