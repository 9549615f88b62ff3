package provider

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// TestAccNodesFromKubernetes: work01 is typed and also in the API (its typed agent address
// wins), work02 comes only from the API (its agent found at InternalIP:agent_port), ghost is in
// the API with no agent answering. nodenet_nodes shows all three; an attachment's plan checks
// the discovered node too and names the one that does not answer.
func TestAccNodesFromKubernetes(t *testing.T) {
	k := newKubeLab(t, []string{"work01"})
	ctx := context.Background()
	w1, w2 := host(t, k.Lab, "work01"), host(t, k.Lab, "work02")
	w2Host, w2Port, err := net.SplitHostPort(w2.AgentAddr)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []struct{ name, ip, pods string }{
		{"work01", "192.168.100.11", "10.244.1.0/24"},
		{"work02", w2Host, "10.244.2.0/24"}, // the lab's agents listen on loopback
		{"ghost", "127.0.0.99", "10.244.3.0/24"},
	} {
		if err := k.Kube.AddNode(ctx, n.name, n.ip, n.pods, map[string]string{"nodenet.io/test": "yes"}); err != nil {
			t.Fatal(err)
		}
	}
	prov := k.providerHCL([]string{"work01"}, fmt.Sprintf("nodes_from_kubernetes = { agent_port = %s, address_type = \"InternalIP\" }", w2Port))
	nodesCfg := prov + `data "nodenet_nodes" "all" {}` + "\n"
	nadCfg := prov + `
resource "nodenet_network_attachment" "m" {
  cluster   = "cluster1"
  namespace = "default"
  name      = "m"
  macvlan   = { master = "eth1" }
}
`
	node := func(key string) tfjsonpath.Path { return tfjsonpath.New("nodes").AtMapKey("cluster1/" + key) }
	ds := "data.nodenet_nodes.all"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config: nodesCfg,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(ds, node("work01").AtMapKey("source"), knownvalue.StringExact("provider+kubernetes")),
					statecheck.ExpectKnownValue(ds, node("work01").AtMapKey("agent"), knownvalue.StringExact(w1.AgentAddr)),
					statecheck.ExpectKnownValue(ds, node("work01").AtMapKey("reachable"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(ds, node("work02").AtMapKey("source"), knownvalue.StringExact("kubernetes")),
					statecheck.ExpectKnownValue(ds, node("work02").AtMapKey("agent"), knownvalue.StringExact(w2.AgentAddr)),
					statecheck.ExpectKnownValue(ds, node("work02").AtMapKey("reachable"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(ds, node("work02").AtMapKey("pod_cidrs"), knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("10.244.2.0/24")})),
					statecheck.ExpectKnownValue(ds, node("work02").AtMapKey("labels").AtMapKey("nodenet.io/test"), knownvalue.StringExact("yes")),
					statecheck.ExpectKnownValue(ds, node("work02").AtMapKey("interfaces").AtMapKey("eth0").AtMapKey("addresses"),
						knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("192.168.100.12/24")})),
					statecheck.ExpectKnownValue(ds, node("ghost").AtMapKey("source"), knownvalue.StringExact("kubernetes")),
					statecheck.ExpectKnownValue(ds, node("ghost").AtMapKey("reachable"), knownvalue.Bool(false)),
					statecheck.ExpectKnownValue(ds, node("ghost").AtMapKey("agent"), knownvalue.StringExact(net.JoinHostPort("127.0.0.99", w2Port))),
				},
			},
			{
				// The plan checks every node of the cluster, discovered ones too: ghost does not answer.
				Config: nadCfg, PlanOnly: true,
				ExpectError: regexp.MustCompile(`(?s)Nodes did not answer.*cluster1/ghost`),
			},
			{
				// Without ghost: eth1 is missing on the discovered work02.
				PreConfig: func() {
					nodes := k.Kube.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "nodes"})
					if err := nodes.Delete(ctx, "ghost", metav1.DeleteOptions{}); err != nil {
						t.Fatal(err)
					}
				},
				Config: nadCfg, PlanOnly: true,
				ExpectError: wrapped(`master "eth1" does not exist on cluster1/work02; it must exist on every node of cluster cluster1 \(2 nodes\)`),
			},
		},
	})
}
