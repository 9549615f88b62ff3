package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// TestLearnedRouteGivesWay: an object that claims a route the BGP speaker learned (as an
// encapsulated pool claims the routes to the other nodes' blocks) is applied, not refused:
// the route goes through the object's device; when the object lets go of it, the speaker's
// route comes back, without a peer sending anything.
func TestLearnedRouteGivesWay(t *testing.T) {
	l, c := execLab(t, bgpDemoHosts())
	n1, n2 := l.Hosts[0], l.Hosts[1]
	for _, p := range [][2]int{{0, 1}, {1, 0}} {
		self, other := l.Hosts[p[0]], l.Hosts[p[1]]
		applyObj(t, c[self.Name], speakerObj(self, other))
		applyObj(t, c[self.Name], poolObj(self.PodCIDR))
	}
	learned := fmt.Sprintf("%s via %s dev eth0 proto 147", n2.PodCIDR, n2.UnderlayIP.Addr())
	waitFor(t, 15*time.Second, func() string {
		if got := routeLine(t, n1, n2.PodCIDR.String()); got != learned {
			return fmt.Sprintf("n1 has %q, want the learned %q", got, learned)
		}
		return ""
	})
	tunnel := &pb.Object{Id: "vxlan_tunnel/vx-pool", Spec: &pb.Object_VxlanTunnel{VxlanTunnel: &pb.VxlanTunnel{
		Device:    &pb.VxlanDevice{Name: "vx-pool", Vni: 4096, Underlay: "eth0", Address: "10.99.0.1/24"},
		Fdb:       []*pb.FdbEntry{{Mac: "02:00:00:00:00:02", Dst: n2.UnderlayIP.Addr().String()}},
		Neighbors: []*pb.Neighbor{{Ip: "10.99.0.2", Mac: "02:00:00:00:00:02"}},
		Routes:    []*pb.Route{{Dst: n2.PodCIDR.String(), Via: "10.99.0.2"}},
	}}}
	applyObj(t, c[n1.Name], tunnel)
	if got := routeLine(t, n1, n2.PodCIDR.String()); !strings.Contains(got, "via 10.99.0.2 dev vx-pool") {
		t.Fatalf("the object's route should have replaced the learned one: %q", got)
	}
	// The speaker reports the destination as held by the object, and keeps its hands off.
	resp, err := c[n1.Name].Get(t.Context(), &pb.GetRequest{Id: "bgp_speaker/default"})
	if err != nil {
		t.Fatal(err)
	}
	if cs := strings.Join(resp.GetObserved().GetBgpSpeaker().GetConflicts(), "; "); !strings.Contains(cs, "vxlan_tunnel/vx-pool") {
		t.Fatalf("the speaker's conflicts should name the object that holds the route: %q", cs)
	}
	if _, err := c[n1.Name].Delete(t.Context(), &pb.DeleteRequest{Id: "vxlan_tunnel/vx-pool", Owner: "test:bgp"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() string {
		if got := routeLine(t, n1, n2.PodCIDR.String()); got != learned {
			return fmt.Sprintf("after the object let go, n1 has %q, want the learned %q back", got, learned)
		}
		return ""
	})
	if out, err := n1.RunPod("ping", "-c", "2", "-W", "2", n2.PodIP.String()); err != nil {
		t.Fatalf("pod ping after the route came back: %v\n%s", err, out)
	}
}
