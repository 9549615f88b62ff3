package provider

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
)

// bgpDemoLab is the seed's bgp-demo: two nodes on one segment, each with a pod in the block
// the pool plans for it (lowest free blocks, in node name order), no static pod routes.
func bgpDemoLab(t *testing.T) *lab.Lab {
	return newExecLab(t, lab.Options{NoPodRoutes: true, Hosts: []lab.HostSpec{
		{Cluster: "demo", Name: "node1", UnderlayIP: mustPrefix("10.20.30.30/24"), PodCIDR: mustPrefix("10.244.0.0/26")},
		{Cluster: "demo", Name: "node2", UnderlayIP: mustPrefix("10.20.30.31/24"), PodCIDR: mustPrefix("10.244.0.64/26")},
	}})
}

// bgpDemoHCL is the bgp-demo scenario.
func bgpDemoHCL(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../examples/scenarios/bgp-demo/main.tf")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitRoute waits until h's kernel has the route line want for dst.
func waitRoute(h *lab.Host, dst, want string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := h.Run("ip", "route", "show", "exact", dst)
		if err == nil && strings.TrimSpace(out) == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: route to %s is %q, want %q", h.Name, dst, strings.TrimSpace(out), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAccBGPDemo: terraform apply of a mesh and a pool on two nodes: each node's block has
// a blackhole, each learns the other's block via its address, the pods ping; a blackhole
// deleted by hand, a learned route deleted by hand and the speaker's AS changed out of band
// each show in the plan and apply repairs them; import of the pool; destroy leaves the
// nodes clean.
func TestAccBGPDemo(t *testing.T) {
	l := bgpDemoLab(t)
	n1, n2 := host(t, l, "node1"), host(t, l, "node2")
	config := scenario(t, l, "bgp-demo")
	routesAndPing := func(*terraform.State) error {
		for _, p := range [][2]*lab.Host{{n1, n2}, {n2, n1}} {
			self, other := p[0], p[1]
			if err := waitRoute(self, other.PodCIDR.String(), fmt.Sprintf("%s via %s dev eth0 proto 147", other.PodCIDR, other.UnderlayIP.Addr())); err != nil {
				return err
			}
			if err := waitRoute(self, self.PodCIDR.String(), "blackhole "+self.PodCIDR.String()+" proto 147"); err != nil {
				return err
			}
		}
		if out, err := n1.RunPod("ping", "-c", "2", "-W", "2", n2.PodIP.String()); err != nil {
			return fmt.Errorf("pod ping node1 -> node2: %v\n%s", err, out)
		}
		return nil
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr("nodenet_ippool.pods", "allocations.node1", "10.244.0.0/26"),
					resource.TestCheckResourceAttr("nodenet_ippool.pods", "allocations.node2", "10.244.0.64/26"),
					resource.TestCheckResourceAttr("nodenet_bgp_config.demo", "speakers.node1.router_id", "10.20.30.30"),
					routesAndPing,
				),
			},
			{Config: config, PlanOnly: true},
			{
				// Drift: node1's blackhole deleted by hand.
				PreConfig:          func() { run(t, n1, "ip", "route", "del", "blackhole", "10.244.0.0/26") },
				Config:             config,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{Config: config, Check: routesAndPing},
			{
				// Drift: a learned route deleted by hand.
				PreConfig:          func() { run(t, n1, "ip", "route", "del", n2.PodCIDR.String()) },
				Config:             config,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{Config: config, Check: routesAndPing},
			{
				// Drift: the speaker's AS changed out of band (through its GoBGP API socket).
				PreConfig: func() {
					if err := setASNByHand(n2, 64999); err != nil {
						t.Fatal(err)
					}
				},
				Config:             config,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{Config: config, Check: routesAndPing},
			{
				// A new AS restarts the speakers (sessions come back).
				Config: strings.Replace(config, "asn     = 64512", "asn     = 64513", 1),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("nodenet_bgp_config.demo", plancheck.ResourceActionUpdate),
				}},
				Check: resource.TestCheckResourceAttr("nodenet_bgp_config.demo", "speakers.node2.state", "running"),
			},
			{Config: config, Check: routesAndPing},
			{
				// A router id given restarts that node's speaker with it.
				Config: strings.Replace(config, "asn     = 64512", "asn     = 64512\n  router_ids = { node1 = \"1.1.1.1\" }", 1),
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr("nodenet_bgp_config.demo", "speakers.node1.router_id", "1.1.1.1"),
					routesAndPing,
				),
			},
			{
				// node2 leaves the pool: its block (blackhole and announcement) goes, node1
				// keeps its own; back in the pool, node2 takes the lowest free block again.
				Config: strings.Replace(config, "block_size = 26", "block_size = 26\n  nodes      = [\"node1\"]", 1),
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr("nodenet_ippool.pods", "allocations.%", "1"),
					resource.TestCheckResourceAttr("nodenet_ippool.pods", "allocations.node1", "10.244.0.0/26"),
					func(*terraform.State) error {
						if err := waitRoute(n1, n2.PodCIDR.String(), ""); err != nil {
							return fmt.Errorf("node1 keeps the route to node2's former block: %w", err)
						}
						return waitRoute(n2, n2.PodCIDR.String(), "")
					},
				),
			},
			{Config: config, Check: routesAndPing},
			{ResourceName: "nodenet_ippool.pods", ImportState: true, ImportStateId: "demo/10.244.0.0/16", ImportStateVerify: true,
				ImportStateVerifyIgnore: []string{"timeouts"}},
		},
		CheckDestroy: func(*terraform.State) error {
			for _, h := range []*lab.Host{n1, n2} {
				out := run(t, h, "ip", "route")
				if strings.Contains(out, "proto 147") {
					return fmt.Errorf("%s still has nodenet routes:\n%s", h.Name, out)
				}
			}
			return nil
		},
	})
}

// TestAccTwoClustersModule applies the two-clusters-bgp scenario with the real terraform CLI
// (init installs the module, as in a user's pipeline): one module for two clusters' BGP
// set-ups, east with the mesh and west with a reflector. Pods ping within each cluster,
// west's workers have one session each, the second plan is empty and destroy leaves no
// nodenet route.
func TestAccTwoClustersModule(t *testing.T) {
	l := newExecLab(t, lab.Options{NoPodRoutes: true, Hosts: []lab.HostSpec{
		{Cluster: "east", Name: "east-1", UnderlayIP: mustPrefix("10.30.0.11/24"), PodCIDR: mustPrefix("10.244.0.0/26")},
		{Cluster: "east", Name: "east-2", UnderlayIP: mustPrefix("10.30.0.12/24"), PodCIDR: mustPrefix("10.244.0.64/26")},
		{Cluster: "west", Name: "west-1", UnderlayIP: mustPrefix("10.30.0.21/24"), PodCIDR: mustPrefix("10.245.0.0/24")},
		{Cluster: "west", Name: "west-2", UnderlayIP: mustPrefix("10.30.0.22/24"), PodCIDR: mustPrefix("10.245.1.0/24")},
		{Cluster: "west", Name: "west-3", UnderlayIP: mustPrefix("10.30.0.23/24"), PodCIDR: mustPrefix("10.245.2.0/24")},
	}})
	modules, err := filepath.Abs("../examples/modules")
	if err != nil {
		t.Fatal(err)
	}
	// terraform runs in a directory of the test's own: the module by its absolute path.
	hcl := strings.ReplaceAll(scenario(t, l, "two-clusters-bgp"), `"../../modules`, `"`+modules)
	cli := newCLI(t, hcl)
	cli.must("apply", "-no-color", "-input=false", "-auto-approve")
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			_, _ = cli.run("destroy", "-no-color", "-input=false", "-auto-approve")
		}
	})
	e1, e2 := host(t, l, "east-1"), host(t, l, "east-2")
	w1, w2, w3 := host(t, l, "west-1"), host(t, l, "west-2"), host(t, l, "west-3")
	if out := cli.must("output", "-no-color", "-json", "east_blocks"); !strings.Contains(out, `"east-2":"10.244.0.64/26"`) {
		t.Fatalf("east_blocks: %s", out)
	}
	if err := waitSessions(map[*lab.Host]int{e1: 1, e2: 1, w1: 2, w2: 1, w3: 1}); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]*lab.Host{{e1, e2}, {w2, w3}, {w3, w1}} {
		if err := waitRoute(p[0], p[1].PodCIDR.String(), fmt.Sprintf("%s via %s dev eth0 proto 147", p[1].PodCIDR, p[1].UnderlayIP.Addr())); err != nil {
			t.Fatal(err)
		}
		if err := podPing(p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	if out := run(t, e1, "ip", "route"); strings.Contains(out, "10.245.") {
		t.Fatalf("the clusters are apart, but east-1 has west's routes:\n%s", out)
	}
	if out, err := cli.run("plan", "-no-color", "-input=false", "-detailed-exitcode"); err != nil {
		t.Fatalf("the second plan is not empty: %v\n%s", err, out)
	}
	cli.must("destroy", "-no-color", "-input=false", "-auto-approve")
	destroyed = true
	for _, h := range l.Hosts {
		if out := run(t, h, "ip", "route"); strings.Contains(out, "proto 147") {
			t.Fatalf("%s keeps nodenet routes after destroy:\n%s", h.Name, out)
		}
	}
}

// TestAccIPPoolImportHandMade: the seed's blackholes, made by hand (as Calico's BIRD made
// them: proto bird), are adopted by an import of the pool: the allocations are the seed's
// blocks, the plan against the configuration is empty, and the blackholes carry nodenet's
// route protocol after apply.
func TestAccIPPoolImportHandMade(t *testing.T) {
	l := newLab(t, lab.Options{Hosts: []lab.HostSpec{
		{Cluster: "demo", Name: "node1", UnderlayIP: mustPrefix("10.20.30.30/24")},
		{Cluster: "demo", Name: "node2", UnderlayIP: mustPrefix("10.20.30.31/24")},
	}})
	n1, n2 := host(t, l, "node1"), host(t, l, "node2")
	// An import as the first step needs the provider's source spelled out.
	hcl := "terraform {\n  required_providers {\n    nodenet = { source = \"nodenet/nodenet\" }\n  }\n}\n" + l.ProviderHCL() + `
resource "nodenet_ippool" "pods" {
  cluster = "demo"
  cidr    = "10.244.0.0/16"
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					run(t, n1, "ip", "route", "add", "blackhole", "10.244.166.128/26", "proto", "bird")
					run(t, n2, "ip", "route", "add", "blackhole", "10.244.104.0/26", "proto", "bird")
				},
				Config: hcl, ResourceName: "nodenet_ippool.pods", ImportState: true, ImportStateId: "demo/10.244.0.0/16", ImportStatePersist: true,
				ImportStateCheck: func(s []*terraform.InstanceState) error {
					a := s[0].Attributes
					if a["allocations.node1"] != "10.244.166.128/26" || a["allocations.node2"] != "10.244.104.0/26" || a["block_size"] != "26" {
						return fmt.Errorf("imported %v", a)
					}
					return nil
				},
			},
			{Config: hcl, PlanOnly: true},
			{
				Config: hcl,
				Check: func(*terraform.State) error {
					return waitRoute(n1, "10.244.166.128/26", "blackhole 10.244.166.128/26 proto 147")
				},
			},
		},
		CheckDestroy: func(*terraform.State) error {
			if out := run(t, n2, "ip", "route"); strings.Contains(out, "10.244.104.0/26") {
				return fmt.Errorf("node2 keeps the adopted blackhole after destroy:\n%s", out)
			}
			return nil
		},
	})
}
