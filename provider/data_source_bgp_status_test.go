package provider

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
)

// TestBgpStatusKeys: which nodes the data source asks, and the attribute blamed for a typo.
func TestBgpStatusKeys(t *testing.T) {
	f, err := fleet.New(fleet.Config{Nodes: []fleet.Node{
		{Cluster: "demo", Name: "node1"}, {Cluster: "demo", Name: "node2"}, {Cluster: "other", Name: "node1"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cluster string
		names   []string
		want    string
	}{
		{"", nil, "demo/node1 demo/node2 other/node1"},
		{"demo", nil, "demo/node1 demo/node2"},
		{"", []string{"node1"}, "demo/node1 other/node1"},
		{"demo", []string{"node2", "node1"}, "demo/node1 demo/node2"},
		{"nope", nil, `error at cluster: "nope" is not configured (clusters: demo, other)`},
		{"other", []string{"node2"}, `error at nodes: no node "node2" in cluster other`},
		{"", []string{"node9"}, `error at nodes: no node "node9" in any cluster`},
	} {
		keys, p, err := statusKeys(f, c.cluster, c.names)
		got := strings.Join(keys, " ")
		if err != nil {
			got = "error at " + p.String() + ": " + err.Error()
		}
		if got != c.want {
			t.Errorf("cluster %q nodes %v: %s, want %s", c.cluster, c.names, got, c.want)
		}
	}
}

// TestBgpStatusValue: a speaker's entry (the default router id filled in, times in UTC) and
// the entry of a node whose agent did not answer.
func TestBgpStatusValue(t *testing.T) {
	n := fleet.Node{Cluster: "demo", Name: "node1"}
	v := speakerStatusValue(n, &pb.BgpSpeaker{Asn: 64512, Address: "10.20.30.30", State: "running", Sessions: []*pb.BgpSession{
		{Peer: "10.20.30.31", Asn: 64512, Type: "mesh", State: "Established", Since: 1795000000, Received: 1, Advertised: 1, Node: "node2"},
	}}, "").(types.Object).Attributes()
	peer := v["peers"].(types.List).Elements()[0].(types.Object).Attributes()
	for k, want := range map[string]string{
		"router_id": `"10.20.30.30"`, "configured": "true", "asn": "64512", "error": `""`,
		"peer address": `"10.20.30.31"`, "peer since": `"2026-11-18T11:06:40Z"`, "peer type": `"mesh"`, "peer node": `"node2"`,
	} {
		attrs, name := v, k
		if rest, ok := strings.CutPrefix(k, "peer "); ok {
			attrs, name = peer, rest
		}
		if got := attrs[name].String(); got != want {
			t.Errorf("%s = %s, want %s", k, got, want)
		}
	}
	down := speakerStatusValue(n, nil, "demo/node1: agent unreachable").(types.Object).Attributes()
	if down["configured"].String() != "false" || down["error"].String() != `"demo/node1: agent unreachable"` || len(down["peers"].(types.List).Elements()) != 0 {
		t.Errorf("unanswered node: %v", down)
	}
}

// TestAccBgpStatusDataSource: bgp-demo applied, the data source shows node1's mesh session
// with node2 (Established, one block each way, once the routes are in the kernels), a
// filter by node, and a node of another cluster whose agent is down listed with the reason.
func TestAccBgpStatusDataSource(t *testing.T) {
	l := newExecLab(t, lab.Options{NoPodRoutes: true, Hosts: []lab.HostSpec{
		{Cluster: "demo", Name: "node1", UnderlayIP: mustPrefix("10.20.30.30/24"), PodCIDR: mustPrefix("10.244.0.0/26")},
		{Cluster: "demo", Name: "node2", UnderlayIP: mustPrefix("10.20.30.31/24"), PodCIDR: mustPrefix("10.244.0.64/26")},
		{Cluster: "other", Name: "node3", UnderlayIP: mustPrefix("10.20.30.32/24")},
	}})
	if err := l.StopAgent(host(t, l, "node3")); err != nil {
		t.Fatal(err)
	}
	config := l.ProviderHCL() + bgpDemoHCL(t) + `
data "nodenet_bgp_status" "all" {
  depends_on = [nodenet_bgp_config.demo, nodenet_ippool.pods]
}

data "nodenet_bgp_status" "node2" {
  cluster    = "demo"
  nodes      = ["node2"]
  depends_on = [nodenet_bgp_config.demo]
}
`
	const all, n1 = "data.nodenet_bgp_status.all", "speakers.demo/node1."
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				// Read right after the apply: the session is configured, maybe not up yet.
				Config: config,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(all, "speakers.%", "3"),
					resource.TestCheckResourceAttr(all, n1+"configured", "true"),
					resource.TestCheckResourceAttr(all, n1+"state", "running"),
					resource.TestCheckResourceAttr(all, n1+"asn", "64512"),
					resource.TestCheckResourceAttr(all, n1+"router_id", "10.20.30.30"),
					resource.TestCheckResourceAttr(all, n1+"error", ""),
					resource.TestCheckResourceAttr(all, n1+"peers.#", "1"),
					resource.TestCheckResourceAttr(all, n1+"peers.0.address", "10.20.30.31"),
					resource.TestCheckResourceAttr(all, n1+"peers.0.type", "mesh"),
					resource.TestCheckResourceAttr(all, n1+"peers.0.node", "node2"),
					resource.TestCheckResourceAttr(all, "speakers.other/node3.configured", "false"),
					resource.TestMatchResourceAttr(all, "speakers.other/node3.error", regexp.MustCompile(`^other/node3: agent unreachable`)),
					resource.TestCheckResourceAttr("data.nodenet_bgp_status.node2", "speakers.%", "1"),
					resource.TestCheckResourceAttr("data.nodenet_bgp_status.node2", "speakers.demo/node2.peers.0.address", "10.20.30.30"),
				),
			},
			{
				// Once each node's kernel has the other's block, the session is Established
				// and one block went each way: the refresh of this step reads that.
				PreConfig: func() {
					for _, p := range [][2]string{{"node1", "node2"}, {"node2", "node1"}} {
						self, other := host(t, l, p[0]), host(t, l, p[1])
						want := fmt.Sprintf("%s via %s dev eth0 proto 147", other.PodCIDR, other.UnderlayIP.Addr())
						if err := waitRoute(self, other.PodCIDR.String(), want); err != nil {
							t.Fatal(err)
						}
					}
				},
				Config: config,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(all, n1+"peers.0.state", "Established"),
					resource.TestMatchResourceAttr(all, n1+"peers.0.since", regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)),
					resource.TestCheckResourceAttr(all, n1+"peers.0.received", "1"),
					resource.TestCheckResourceAttr(all, n1+"peers.0.advertised", "1"),
					resource.TestCheckResourceAttr(all, n1+"routes_installed", "1"),
					resource.TestCheckResourceAttr(all, n1+"conflicts.#", "0"),
				),
			},
		},
	})
}
