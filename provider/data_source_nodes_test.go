package provider

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
)

// TestAccNodesDataSource: what the agents report of the nodes (kernel features found by
// probing, interfaces, managed objects), the node a tunnel does not reach yet, and a node
// whose agent is down (listed, not failing the read).
func TestAccNodesDataSource(t *testing.T) {
	l := newLab(t, lab.Options{Hosts: []lab.HostSpec{
		{Cluster: "c1", Name: "n1", UnderlayIP: mustPrefix("192.168.0.21/24")},
		{Cluster: "c1", Name: "n2", UnderlayIP: mustPrefix("192.168.0.31/24"), MTU: 9000},
		{Cluster: "c1", Name: "n3", UnderlayIP: mustPrefix("192.168.0.41/24")},
		{Cluster: "c2", Name: "n4", UnderlayIP: mustPrefix("192.168.0.51/24")},
	}})
	config := l.ProviderHCL() + `
resource "nodenet_vxlan_tunnel" "t" {
  name = "vxlan-test"
  vni  = 7
  members = {
    "c1/n1" = { underlay = "eth0", address = "179.17.1.21/24" }
    "c1/n2" = { underlay = "eth0", address = "179.17.1.31/24" }
  }
}
data "nodenet_nodes" "c1" {
  cluster    = "c1"
  depends_on = [nodenet_vxlan_tunnel.t]
}
`
	const ds = "data.nodenet_nodes.c1"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(ds, "nodes.%", "3"),
					resource.TestCheckResourceAttr(ds, "nodes.c1/n1.reachable", "true"),
					resource.TestCheckResourceAttr(ds, "nodes.c1/n1.kernel_features.vxlan", "true"),
					resource.TestCheckResourceAttr(ds, "nodes.c1/n1.kernel_features.veth", "true"),
					resource.TestCheckResourceAttr(ds, "nodes.c1/n2.interfaces.eth0.mtu", "9000"),
					resource.TestCheckResourceAttr(ds, "nodes.c1/n2.interfaces.eth0.addresses.0", "192.168.0.31/24"),
					resource.TestCheckResourceAttr(ds, "nodes.c1/n1.interfaces.vxlan-test.owner", "nodenet:vxlan_tunnel/vxlan-test"),
					resource.TestCheckResourceAttr(ds, "nodes.c1/n1.managed_objects.0", "vxlan_tunnel/vxlan-test"),
					resource.TestCheckResourceAttr(ds, "uncovered.#", "1"),
					resource.TestCheckResourceAttr(ds, "uncovered.0", "c1/n3"),
					resource.TestCheckResourceAttr(ds, "nodes.c1/n1.problems.#", "0"),
					resource.TestCheckResourceAttr(ds, "nodes.c1/n1.unexplained.#", "0"),
				),
			},
			{
				// A route with nodenet's protocol that no object explains (a lost state dir).
				PreConfig: func() {
					run(t, l.Hosts[0], "ip", "route", "add", "10.250.0.0/24", "via", "192.168.0.31", "dev", "eth0", "proto", "147")
				},
				Config: config,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(ds, "nodes.c1/n1.unexplained.#", "1"),
					resource.TestCheckResourceAttr(ds, "nodes.c1/n1.unexplained.0", "route 10.250.0.0/24 via 192.168.0.31 dev eth0 proto 147"),
					resource.TestCheckResourceAttr(ds, "nodes.c1/n2.unexplained.#", "0"),
				),
			},
			{
				PreConfig: func() {
					if err := l.StopAgent(l.Hosts[2]); err != nil {
						t.Fatal(err)
					}
				},
				// n3's agent is down: it is listed as unreachable, the read does not fail.
				Config: config,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(ds, "nodes.c1/n3.reachable", "false"),
					resource.TestMatchResourceAttr(ds, "nodes.c1/n3.error", regexp.MustCompile(`^c1/n3: agent unreachable`)),
					resource.TestCheckResourceAttr(ds, "nodes.c1/n1.reachable", "true"),
					resource.TestCheckResourceAttr(ds, "uncovered.#", "0"),
				),
			},
		},
	})
}
