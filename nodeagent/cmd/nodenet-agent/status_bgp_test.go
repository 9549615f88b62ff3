package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// goldenNow is the reader's clock in the golden texts: 23:40 in UTC+1.
var goldenNow = time.Date(2026, 11, 25, 23, 40, 0, 0, time.FixedZone("CET", 3600))

func at(hms string) int64 {
	t, err := time.ParseInLocation(time.DateTime, "2026-11-25 "+hms, goldenNow.Location())
	if err != nil {
		panic(err)
	}
	return t.Unix()
}

// reflector is a node that reflects for two clients, meshes with nothing, and peers with a
// ToR (up since two days) and an IPv6 router.
var reflector = &pb.BgpSpeaker{Asn: 63400, Address: "172.17.8.101", State: "running", Sessions: []*pb.BgpSession{
	{Peer: "172.17.8.102", Asn: 63400, Type: "mesh", State: "Established", Since: at("23:30:04"), Received: 1, Advertised: 3, Node: "work01"},
	{Peer: "172.17.8.103", Asn: 63400, Type: "rr-client", State: "Idle", Since: at("23:31:27"), Node: "work02"},
	{Peer: "172.17.8.1", Asn: 65001, Type: "explicit", State: "Established", Since: at("23:00:00") - 2*86400, Received: 12, Advertised: 2},
	{Peer: "10.0.0.9", Asn: 63400, Type: "rr", State: "Active", Node: "master02"},
	{Peer: "fd00::1", Asn: 65001, Type: "explicit", State: "Connect", Since: at("22:00:00")},
}, Conflicts: []string{"192.168.1.0/24 via 172.17.8.1: a route with protocol static is there"}}

const reflectorGolden = `nodenet-agent BGP speaker is running.

IPv4 BGP status
+--------------+-------------------+-------+------------+-------------+
| PEER ADDRESS |     PEER TYPE     | STATE |   SINCE    |    INFO     |
+--------------+-------------------+-------+------------+-------------+
| 172.17.8.102 | node-to-node mesh | up    | 23:30:04   | Established |
| 172.17.8.103 | rr client         | start | 23:31:27   | Idle        |
| 172.17.8.1   | explicit          | up    | 2026-11-23 | Established |
| 10.0.0.9     | route reflector   | start |            | Active      |
+--------------+-------------------+-------+------------+-------------+

IPv4 BGP routes
+--------------+----------+-------+----------+------------+
| PEER ADDRESS |   NODE   |  AS   | RECEIVED | ADVERTISED |
+--------------+----------+-------+----------+------------+
| 172.17.8.102 | work01   | 63400 |        1 |          3 |
| 172.17.8.103 | work02   | 63400 |        0 |          0 |
| 172.17.8.1   |          | 65001 |       12 |          2 |
| 10.0.0.9     | master02 | 63400 |        0 |          0 |
+--------------+----------+-------+----------+------------+

IPv6 BGP status
+--------------+-----------+-------+----------+---------+
| PEER ADDRESS | PEER TYPE | STATE |  SINCE   |  INFO   |
+--------------+-----------+-------+----------+---------+
| fd00::1      | explicit  | start | 22:00:00 | Connect |
+--------------+-----------+-------+----------+---------+

IPv6 BGP routes
+--------------+------+-------+----------+------------+
| PEER ADDRESS | NODE |  AS   | RECEIVED | ADVERTISED |
+--------------+------+-------+----------+------------+
| fd00::1      |      | 65001 |        0 |          0 |
+--------------+------+-------+----------+------------+

Learned routes left out of the kernel (a route nodenet does not own is there): 1
  192.168.1.0/24 via 172.17.8.1: a route with protocol static is there
`

// TestRenderBGP: the speaker in calicoctl node status's layout, per family, with the routes
// table below; and the one-liners for a node without a speaker, a stopped speaker and an
// agent without BGP.
func TestRenderBGP(t *testing.T) {
	for _, c := range []struct {
		name string
		in   bgpStatus
		want string
	}{
		{"reflector", bgpStatus{Supported: true, Speaker: reflector}, reflectorGolden},
		{"no peers", bgpStatus{Supported: true, Speaker: &pb.BgpSpeaker{State: "running"}},
			"nodenet-agent BGP speaker is running.\n\nIPv4 BGP status\nNo IPv4 peers found.\n\nIPv6 BGP status\nNo IPv6 peers found.\n"},
		{"not configured", bgpStatus{Supported: true}, "nodenet-agent BGP speaker is not configured on this node.\n"},
		{"stopped", bgpStatus{Supported: true, Speaker: &pb.BgpSpeaker{State: "unavailable: no netns"}},
			"nodenet-agent BGP speaker is not running: unavailable: no netns.\n"},
		{"old agent", bgpStatus{}, "nodenet-agent BGP speaker is not available: this agent has no bgp_speaker kind.\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			renderBGP(&b, c.in, goldenNow)
			if b.String() != c.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), c.want)
			}
		})
	}
}

// TestBGPJSON: the data source's names, the router id defaulted to the node's address, times
// in UTC, and empty lists rather than null for a node without a speaker.
func TestBGPJSON(t *testing.T) {
	var b bytes.Buffer
	info := &pb.NodeInfo{Cluster: "c", Node: "master01"}
	if err := writeStatusJSON(&b, info, bgpStatus{Supported: true, Speaker: reflector}, nil); err != nil {
		t.Fatal(err)
	}
	var got bgpJSON
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	p := got.Peers[0]
	if got.Node != "c/master01" || !got.Configured || got.RouterID != "172.17.8.101" || got.ASN != 63400 || len(got.Peers) != 5 ||
		p != (peerJSON{Address: "172.17.8.102", Type: "mesh", ASN: 63400, State: "Established", Since: "2026-11-25T22:30:04Z", Received: 1, Advertised: 3, Node: "work01"}) {
		t.Errorf("json:\n%s", b.String())
	}
	b.Reset()
	if err := writeStatusJSON(&b, info, bgpStatus{Supported: true}, nil); err != nil {
		t.Fatal(err)
	}
	want := `{"node":"c/master01","configured":false,"state":"","asn":0,"router_id":"","routes_installed":0,"conflicts":[],"peers":[],"tunnels":[]}`
	var compact bytes.Buffer
	if err := json.Compact(&compact, b.Bytes()); err != nil || compact.String() != want {
		t.Errorf("json without a speaker: %s (%v), want %s", compact.String(), err, want)
	}
}

// TestBGPStatusCommand: the built binary's `status`, run from outside the node over mTLS
// with the lab's client certificate, shows the bgp-demo mesh peer as calicoctl would, and
// --json says the same.
func TestBGPStatusCommand(t *testing.T) {
	l, c := execLab(t, bgpDemoHosts())
	n1, n2 := l.Hosts[0], l.Hosts[1]
	for _, p := range [][2]*lab.Host{{n1, n2}, {n2, n1}} {
		applyObj(t, c[p[0].Name], speakerObj(p[0], p[1]))
		applyObj(t, c[p[0].Name], poolObj(p[0].PodCIDR))
	}
	status := func(flags ...string) string {
		args := append([]string{"status", "--addr", n1.AgentAddr, "--ca", l.CAFile, "--cert", l.ClientCertFile, "--key", l.ClientKeyFile,
			"--expect", "nodenet://demo/node1"}, flags...)
		out, err := exec.Command(buildAgent(t), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("status %v: %v\n%s", flags, err, out)
		}
		return string(out)
	}
	peer := regexp.MustCompile(`(?m)^\| 10\.20\.30\.31 +\| node-to-node mesh \| up +\| \d\d:\d\d:\d\d \| Established \|$`)
	routes := regexp.MustCompile(`(?m)^\| 10\.20\.30\.31 +\| node2 \| 64512 \| +1 \| +1 \|$`)
	waitFor(t, 15*time.Second, func() string {
		if out := status(); !peer.MatchString(out) || !routes.MatchString(out) || strings.Contains(out, "IPv6 BGP status\n+") {
			return "status does not show node2 as an up mesh peer with one block each way:\n" + out
		}
		return ""
	})
	t.Logf("nodenet-agent status --bgp:\n%s", status("--bgp"))
	var j bgpJSON
	if err := json.Unmarshal([]byte(status("--json")), &j); err != nil {
		t.Fatal(err)
	}
	if j.Node != "demo/node1" || j.RouterID != "10.20.30.30" || len(j.Peers) != 1 || j.Peers[0].Node != "node2" || j.Peers[0].State != "Established" {
		t.Errorf("status --json: %+v", j)
	}
}

// fakeAgent answers Info, List and Get of the speaker; the rest is not called by status.
type fakeAgent struct {
	pb.NodeAgentClient
	getErr error
}

func (f fakeAgent) Info(context.Context, *pb.InfoRequest, ...grpc.CallOption) (*pb.NodeInfo, error) {
	return &pb.NodeInfo{Cluster: "c", Node: "n", Capabilities: []string{pb.KindBgpSpeaker}}, nil
}

func (f fakeAgent) List(context.Context, *pb.ListRequest, ...grpc.CallOption) (*pb.ListResponse, error) {
	return &pb.ListResponse{}, nil
}

func (f fakeAgent) Get(context.Context, *pb.GetRequest, ...grpc.CallOption) (*pb.GetResponse, error) {
	return nil, f.getErr
}

// TestStatusBGPErrors: a node without a speaker is an answer, not an error; a speaker that
// cannot be read fails status, after the node's summary.
func TestStatusBGPErrors(t *testing.T) {
	var b bytes.Buffer
	if err := printStatus(t.Context(), fakeAgent{getErr: grpcstatus.Error(codes.NotFound, "not managed")}, &b, statusView{}); err != nil ||
		!strings.HasSuffix(b.String(), "\nnodenet-agent BGP speaker is not configured on this node.\n") {
		t.Errorf("no speaker: %v\n%s", err, b.String())
	}
	b.Reset()
	err := printStatus(t.Context(), fakeAgent{getErr: grpcstatus.Error(codes.Internal, "gobgp: boom")}, &b, statusView{})
	if err == nil || !strings.Contains(err.Error(), "Get bgp_speaker/default") || !strings.HasPrefix(b.String(), "node:           c/n\n") {
		t.Errorf("unreadable speaker: %v\n%s", err, b.String())
	}
}
