package vxlan

import (
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/health"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// healthInterval is the probe interval of these tests: the rules (reachable while one of
// the last 3 probes is answered) are the agent's, only faster.
const healthInterval = 100 * time.Millisecond

func newProber(t *testing.T, ns string) *health.Prober {
	t.Helper()
	hp, err := health.New("/run/netns/"+ns, healthInterval, slog.New(slog.NewTextHandler(os.Stderr, nil)).With("netns", ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hp.Close) // before the namespaces go: cleanups run last registered first
	return hp
}

// withHealth is spec asking for health checks, its neighbour named by node.
func withHealth(spec *pb.VxlanTunnel, node string) *pb.VxlanTunnel {
	spec.HealthCheck = true
	spec.Neighbors[0].Node = node
	return spec
}

// peerHealth waits until r's observation of the object reports its one peer as want says;
// it returns that report.
func peerHealth(t *testing.T, r *Reconciler, spec *pb.VxlanTunnel, what string, want func(h *pb.PeerHealth) bool) *pb.PeerHealth {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		obs, err := observeVx(r, spec)
		if err != nil {
			t.Fatal(err)
		}
		hs := obs.GetHealth()
		if len(hs) == 1 && want(hs[0]) {
			return hs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: health is %v", what, hs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func reachable(h *pb.PeerHealth) bool {
	return h.GetReachable() && h.GetRttMs() > 0 && h.GetLastOk() > 0
}

// TestHealthChecks: two namespaces, a vxlan_tunnel with health_check applied through the
// reconciler on each side. Each side reports the other reachable with an RTT within
// seconds; the remote FDB entry deleted by hand, then the remote device set down, make the
// peer unreachable on both sides, each saying why; the apply that repairs them makes it
// reachable again. Objects without health_check observe with no health entries; a delete
// stops the probes; Load, at an agent start, probes the stored objects with no apply.
func TestHealthChecks(t *testing.T) {
	p := newPair(t, "hc")
	hpA, hpB := newProber(t, p.a), newProber(t, p.b)
	rA, rB := New(p.dpA, hpA), New(p.dpB, hpB)
	sA, sB := withHealth(specA(), "c2/node-b"), withHealth(specB(), "c1/node-a")

	// Without health_check: no health entries, and nothing probed.
	obs, _ := apply(t, rA, specA())
	if obs.GetHealth() != nil || hpA.Results(testID) != nil {
		t.Fatalf("a tunnel without health_check reports health: %v", obs.GetHealth())
	}

	obs, _ = apply(t, rA, sA)
	if hs := obs.GetHealth(); len(hs) != 1 || hs[0].GetIp() != ovB || hs[0].GetNode() != "c2/node-b" {
		t.Errorf("the apply's observation should list the peer to probe: %v", hs)
	}
	apply(t, rB, sB)
	start := time.Now()
	hA := peerHealth(t, rA, sA, "a sees b", reachable)
	hB := peerHealth(t, rB, sB, "b sees a", reachable)
	t.Logf("reachable after %v: a->b %v; b->a %v", time.Since(start).Round(time.Millisecond), hA, hB)
	if hA.GetIp() != ovB || hA.GetNode() != "c2/node-b" || hB.GetIp() != ovA || hB.GetNode() != "c1/node-a" || hA.GetError() != "" {
		t.Errorf("peers: a->b %v, b->a %v", hA, hB)
	}

	// b's FDB entry for a, deleted by hand: a's probes reach b, b's replies cannot go back;
	// b's own probes cannot leave.
	sh(t, "bridge", "-n", p.b, "fdb", "del", macA, "dev", testDev, "dst", ulA)
	lost := func(h *pb.PeerHealth) bool {
		return !h.GetReachable() && h.GetError() == fmt.Sprintf("no reply to the last %d probes", health.ReachableWithin)
	}
	hA = peerHealth(t, rA, sA, "a sees b without b's FDB entry", lost)
	peerHealth(t, rB, sB, "b sees a without its FDB entry", lost)
	if hA.GetSent() == 0 || hA.GetReceived() >= hA.GetSent() {
		t.Errorf("loss should show in the window: %v", hA)
	}
	apply(t, rB, sB) // puts the entry back, as terraform apply would
	peerHealth(t, rA, sA, "a sees b once b's FDB entry is back", reachable)
	peerHealth(t, rB, sB, "b sees a once its FDB entry is back", reachable)

	// b's device down: b's probes cannot be sent, a's get no answer.
	sh(t, "ip", "-n", p.b, "link", "set", testDev, "down")
	peerHealth(t, rA, sA, "a sees b with b's device down", lost)
	peerHealth(t, rB, sB, "b sees a with its device down", func(h *pb.PeerHealth) bool {
		return !h.GetReachable() && h.GetError() == "device "+testDev+" is down"
	})
	// Up again, b's device has lost its permanent neighbour and routes (the kernel drops them
	// with the link): still unreachable, as the plan would show, until an apply repairs it.
	sh(t, "ip", "-n", p.b, "link", "set", testDev, "up")
	time.Sleep(2 * health.ReachableWithin * healthInterval)
	if h := peerHealth(t, rA, sA, "a sees b", func(*pb.PeerHealth) bool { return true }); h.GetReachable() {
		t.Errorf("b has no neighbour entry for a, yet a sees b reachable: %v", h)
	}
	apply(t, rB, sB)
	peerHealth(t, rA, sA, "a sees b after the repair", reachable)
	peerHealth(t, rB, sB, "b sees a after the repair", reachable)

	// An agent start: a fresh prober and reconciler, the stored object loaded, no apply.
	hpA2 := newProber(t, p.a)
	rA2 := New(p.dpA, hpA2)
	rA2.Load([]*pb.Object{object(testID, sA)})
	peerHealth(t, rA2, sA, "a sees b after Load", reachable)
	hpA2.Close()

	// health_check off again: no entries, no probes; a delete stops them too.
	if obs, _ = apply(t, rA, specA()); obs.GetHealth() != nil || hpA.Results(testID) != nil {
		t.Errorf("health_check off: observed %v, prober %v", obs.GetHealth(), hpA.Results(testID))
	}
	if _, err := deleteVx(rB, false); err != nil {
		t.Fatal(err)
	}
	if hs := hpB.Results(testID); hs != nil {
		t.Errorf("deleted, still probed: %v", hs)
	}
}
