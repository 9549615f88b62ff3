package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// meshHealth is a node of test-cluster1 probing three members of a cluster link: one answers
// (one probe of ten lost), one never did, one stopped answering two days ago.
var meshHealth = []tunnelHealth{
	{ID: "vxlan_tunnel/vxlan-test", Device: "vxlan-test", Peers: []*pb.PeerHealth{
		{Ip: "179.17.1.31", Node: "test-cluster2/multicluster-test-004", Reachable: true, RttMs: 0.276, LastOk: at("23:39:59"), Sent: 10, Received: 9},
		{Ip: "179.17.1.41", Node: "test-cluster3/multicluster-test-007", Sent: 10, Error: "no reply to the last 10 probes"},
		{Ip: "179.17.1.51", RttMs: 12.5, LastOk: at("23:00:00") - 2*86400, Sent: 10, Error: "device vxlan-test is down"},
	}},
	{ID: "vxlan_tunnel/vxlan-empty", Device: "vxlan-empty"},
}

const meshHealthGolden = `Overlay health of vxlan_tunnel/vxlan-test (device vxlan-test): 1 of 3 peers reachable
+-------------------------------------+-------------+-----------+---------------+--------------+------------+--------------------------------+
|                NODE                 | OVERLAY IP  | REACHABLE | LAST RTT (MS) |     LOSS     |  LAST OK   |              INFO              |
+-------------------------------------+-------------+-----------+---------------+--------------+------------+--------------------------------+
| test-cluster2/multicluster-test-004 | 179.17.1.31 | yes       |         0.276 | 10% (1/10)   | 23:39:59   |                                |
| test-cluster3/multicluster-test-007 | 179.17.1.41 | no        |               | 100% (10/10) | never      | no reply to the last 10 probes |
|                                     | 179.17.1.51 | no        |        12.500 | 100% (10/10) | 2026-11-23 | device vxlan-test is down      |
+-------------------------------------+-------------+-----------+---------------+--------------+------------+--------------------------------+

Overlay health of vxlan_tunnel/vxlan-empty (device vxlan-empty): 0 of 0 peers reachable
No peers to probe.
`

// TestRenderHealth: one table per tunnel with health checks, in the BGP tables' style: the
// count of reachable peers, then each peer's node, overlay IP, reachability, last RTT, loss
// over the window, last answer and why it is unreachable.
func TestRenderHealth(t *testing.T) {
	var b bytes.Buffer
	renderHealth(&b, meshHealth, goldenNow)
	if b.String() != meshHealthGolden {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), meshHealthGolden)
	}
}

// healthAgent manages a tunnel with health checks and one without; Get answers with the
// observed health and counts the calls.
type healthAgent struct {
	pb.NodeAgentClient
	gets []string
}

func (f *healthAgent) Info(context.Context, *pb.InfoRequest, ...grpc.CallOption) (*pb.NodeInfo, error) {
	return &pb.NodeInfo{Cluster: "test-cluster1", Node: "multicluster-test-001", Capabilities: []string{pb.KindVxlanTunnel}}, nil
}

func tunnelObj(name string, hc bool) *pb.Object {
	return &pb.Object{Id: "vxlan_tunnel/" + name, Owner: "nodenet_vxlan_tunnel:1", Spec: &pb.Object_VxlanTunnel{VxlanTunnel: &pb.VxlanTunnel{
		Device: &pb.VxlanDevice{Name: name, Vni: 10001, Underlay: "eth0", Address: "179.17.1.21/24"}, HealthCheck: hc,
		Neighbors: []*pb.Neighbor{{Ip: "179.17.1.31", Mac: "7a:3a:fe:45:a3:76", Node: "test-cluster2/multicluster-test-004"}},
	}}}
}

func (f *healthAgent) List(context.Context, *pb.ListRequest, ...grpc.CallOption) (*pb.ListResponse, error) {
	return &pb.ListResponse{Objects: []*pb.Object{tunnelObj("vxlan-test", true), tunnelObj("vxlan-plain", false)}}, nil
}

func (f *healthAgent) Get(_ context.Context, req *pb.GetRequest, _ ...grpc.CallOption) (*pb.GetResponse, error) {
	f.gets = append(f.gets, req.GetId())
	o := tunnelObj("vxlan-test", true)
	o.GetVxlanTunnel().Health = meshHealth[0].Peers[:1]
	return &pb.GetResponse{Observed: o}, nil
}

// TestStatusHealth: status reads the health of exactly the tunnels with health checks and
// prints their tables between the node's summary and BGP; --json carries them with the
// contract's names.
func TestStatusHealth(t *testing.T) {
	f := &healthAgent{}
	var b bytes.Buffer
	if err := printStatus(t.Context(), f, &b, statusView{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"  vxlan_tunnel/vxlan-test: vni 10001 underlay eth0 address 179.17.1.21/24, 0 fdb, 1 neighbors, 0 routes, health checks (owner",
		"  vxlan_tunnel/vxlan-plain: vni 10001 underlay eth0 address 179.17.1.21/24, 0 fdb, 1 neighbors, 0 routes (owner",
		"\n\nOverlay health of vxlan_tunnel/vxlan-test (device vxlan-test): 1 of 1 peers reachable\n",
		"| test-cluster2/multicluster-test-004 | 179.17.1.31 | yes       |         0.276 | 10% (1/10) |",
		"+\n\nnodenet-agent BGP speaker is not available",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "vxlan-plain (device") || len(f.gets) != 1 || f.gets[0] != "vxlan_tunnel/vxlan-test" {
		t.Errorf("status should Get only the tunnel with health checks; got %v:\n%s", f.gets, out)
	}

	b.Reset()
	if err := printStatus(t.Context(), &healthAgent{}, &b, statusView{json: true}); err != nil {
		t.Fatal(err)
	}
	var got bgpJSON
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := peerHealthJSON{Node: "test-cluster2/multicluster-test-004", IP: "179.17.1.31", Reachable: true, RTTms: 0.276, Sent: 10, Received: 9,
		LastOK: "2026-11-25T22:39:59Z"}
	if len(got.Tunnels) != 1 || got.Tunnels[0].ID != "vxlan_tunnel/vxlan-test" || got.Tunnels[0].Device != "vxlan-test" ||
		len(got.Tunnels[0].Peers) != 1 || got.Tunnels[0].Peers[0] != want {
		t.Errorf("status --json tunnels: %s", b.String())
	}
}

// TestHealthStatusCommand: two lab nodes of two clusters, each with a vxlan_tunnel with
// health checks applied to its agent (the built binary, in the node's namespace): the built
// binary's `status`, run from outside over mTLS, shows the other node reachable with an
// RTT, and --json says the same; with the other node's device down, status shows it
// unreachable and why.
func TestHealthStatusCommand(t *testing.T) {
	l, c := execLab(t, []lab.HostSpec{
		{Cluster: "c1", Name: "node1", UnderlayIP: netip.MustParsePrefix("10.20.40.30/24")},
		{Cluster: "c2", Name: "node2", UnderlayIP: netip.MustParsePrefix("10.20.40.31/24")},
	})
	n1, n2 := l.Hosts[0], l.Hosts[1]
	overlay := map[string]string{n1.Name: "179.17.9.1", n2.Name: "179.17.9.2"}
	mac := map[string]string{n1.Name: "02:00:00:00:09:01", n2.Name: "02:00:00:00:09:02"}
	for _, p := range [][2]*lab.Host{{n1, n2}, {n2, n1}} {
		self, other := p[0], p[1]
		applyObj(t, c[self.Name], &pb.Object{Id: "vxlan_tunnel/vxhc", Spec: &pb.Object_VxlanTunnel{VxlanTunnel: &pb.VxlanTunnel{
			Device:      &pb.VxlanDevice{Name: "vxhc", Vni: 4242, Underlay: "eth0", Mac: mac[self.Name], Address: overlay[self.Name] + "/24"},
			Fdb:         []*pb.FdbEntry{{Mac: mac[other.Name], Dst: other.UnderlayIP.Addr().String()}},
			Neighbors:   []*pb.Neighbor{{Ip: overlay[other.Name], Mac: mac[other.Name], Node: other.Cluster + "/" + other.Name}},
			HealthCheck: true,
		}}})
	}
	status := func(flags ...string) string {
		args := append([]string{"status", "--addr", n1.AgentAddr, "--ca", l.CAFile, "--cert", l.ClientCertFile, "--key", l.ClientKeyFile,
			"--expect", "nodenet://c1/node1"}, flags...)
		out, err := exec.Command(buildAgent(t), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("status %v: %v\n%s", flags, err, out)
		}
		return string(out)
	}
	up := regexp.MustCompile(`(?m)^Overlay health of vxlan_tunnel/vxhc \(device vxhc\): 1 of 1 peers reachable\n(.*\n){3}\| c2/node2 \| 179\.17\.9\.2 \| yes +\| +\d+\.\d{3} \| +\d+% \(\d+/\d+\) \| \d\d:\d\d:\d\d \| +\|$`)
	waitFor(t, 10*time.Second, func() string {
		if out := status(); !up.MatchString(out) {
			return "status does not show c2/node2 reachable:\n" + out
		}
		return ""
	})
	t.Logf("nodenet-agent status (health part):\n%s", healthPart(status()))
	var j bgpJSON
	if err := json.Unmarshal([]byte(status("--json")), &j); err != nil {
		t.Fatal(err)
	}
	if len(j.Tunnels) != 1 || len(j.Tunnels[0].Peers) != 1 || !j.Tunnels[0].Peers[0].Reachable || j.Tunnels[0].Peers[0].Node != "c2/node2" ||
		j.Tunnels[0].Peers[0].RTTms <= 0 || j.Tunnels[0].Peers[0].LastOK == "" {
		t.Errorf("status --json tunnels: %+v", j.Tunnels)
	}

	if out, err := n2.Run("ip", "link", "set", "vxhc", "down"); err != nil {
		t.Fatalf("ip link set vxhc down on node2: %v\n%s", err, out)
	}
	down := regexp.MustCompile(`(?m)^\| c2/node2 \| 179\.17\.9\.2 \| no +\| .* \| no reply to the last \d+ probes \|$`)
	waitFor(t, 10*time.Second, func() string {
		if out := status(); !down.MatchString(out) || !strings.Contains(out, "0 of 1 peers reachable") {
			return "status does not show c2/node2 unreachable:\n" + out
		}
		return ""
	})
	t.Logf("with node2's device down:\n%s", healthPart(status()))
}

// healthPart is status's output from the health tables to the BGP part.
func healthPart(out string) string {
	i := strings.Index(out, "Overlay health")
	j := strings.Index(out, "nodenet-agent BGP")
	if i < 0 || j < i {
		return out
	}
	return fmt.Sprint(out[i:j])
}
