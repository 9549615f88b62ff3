package provider

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// tunnelHCL is a nodenet_vxlan_tunnel resource named res with device name and VNI, and the
// members given as `"<key>" = { ... }` lines.
func tunnelHCL(res, name string, vni int, members ...string) string {
	return fmt.Sprintf("resource \"nodenet_vxlan_tunnel\" %q {\n  name = %q\n  vni = %d\n  members = {\n    %s\n  }\n}\n",
		res, name, vni, strings.Join(members, "\n    "))
}

const (
	m1 = `"c1/n1" = { underlay = "eth0", address = "179.17.1.21/24" }`
	m2 = `"c1/n2" = { underlay = "eth0", address = "179.17.1.31/24" }`
	m3 = `"c2/n3" = { underlay = "eth0", address = "179.17.1.16/24" }`
)

// ownerOn reads the owner the agent of h recorded for the object id from its state dir.
func ownerOn(t *testing.T, h *lab.Host, id string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.StateDir, "objects", strings.ReplaceAll(id, "/", "%2F")+".json"))
	if err != nil {
		return ""
	}
	m := regexp.MustCompile(`"owner":\s*"([^"]+)"`).FindSubmatch(b)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// TestAccVxlanTunnel_sameDeviceTwoResources: two tunnels with one device name: they coexist
// on disjoint nodes; the second refused at plan time, naming the first, when it reaches a
// node of the first; destroying the first leaves the second intact.
func TestAccVxlanTunnel_sameDeviceTwoResources(t *testing.T) {
	l := newLab(t, hosts(3))
	n2, n3 := l.Hosts[1], l.Hosts[2]
	a := tunnelHCL("a", "vxlan-test", 7, m1, m2)
	b1 := tunnelHCL("b", "vxlan-test", 8, strings.Replace(m3, "179.17.1.16", "179.18.1.16", 1))
	b2 := tunnelHCL("b", "vxlan-test", 8, strings.Replace(m2, "179.17.1.31", "179.18.1.31", 1), strings.Replace(m3, "179.17.1.16", "179.18.1.16", 1))
	var idA, n3Index string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy:             func(*terraform.State) error { return noVxlan(l) },
		Steps: []resource.TestStep{
			{
				Config: l.ProviderHCL() + a + b1,
				Check: func(s *terraform.State) error {
					idA = s.RootModule().Resources["nodenet_vxlan_tunnel.a"].Primary.ID
					n3Index = s.RootModule().Resources["nodenet_vxlan_tunnel.b"].Primary.Attributes["members.c2/n3.ifindex"]
					if got := ownerOn(t, n2, "vxlan_tunnel/vxlan-test"); got != "nodenet_vxlan_tunnel:"+idA {
						return fmt.Errorf("n2 records owner %q, want tunnel a's nodenet_vxlan_tunnel:%s", got, idA)
					}
					return nil
				},
			},
			{
				// b reaches n2, where a's device is: refused at plan time, naming a's id.
				Config:      l.ProviderHCL() + a + b2,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`Managed by another resource[\s\S]*node\s+c1/n2:\s+object\s+vxlan_tunnel/vxlan-test\s+is\s+managed\s+by\s+nodenet_vxlan_tunnel:[0-9a-f-]{36}[\s\S]*The\s+other\s+resource's\s+id\s+is\s+[0-9a-f-]{36}`),
			},
			{
				// The error named a's id: the one n2 records.
				PreConfig: func() {
					if got := ownerOn(t, n2, "vxlan_tunnel/vxlan-test"); got != "nodenet_vxlan_tunnel:"+idA {
						t.Fatalf("n2 records owner %q after the refused plan, want a's", got)
					}
				},
				// a destroyed: b on n3 stays as it was.
				Config: l.ProviderHCL() + b1,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttrPtr("nodenet_vxlan_tunnel.b", "members.c2/n3.ifindex", &n3Index),
					resource.TestCheckResourceAttr("nodenet_vxlan_tunnel.b", "members.c2/n3.oper_state", "up"),
					func(*terraform.State) error {
						if out := run(t, n3, "ip", "-d", "link", "show", "vxlan-test"); !strings.Contains(out, "vxlan id 8") {
							return fmt.Errorf("b's device on n3 changed: %s", out)
						}
						for _, h := range l.Hosts[:2] {
							if out, err := h.Run("ip", "link", "show", "vxlan-test"); err == nil {
								return fmt.Errorf("a's device is still on %s: %s", h.Name, out)
							}
						}
						return nil
					},
				),
			},
			{
				// With a gone, b may take n2.
				Config: l.ProviderHCL() + b2,
				Check: func(*terraform.State) error {
					_, err := n3.Run("ping", "-c", "1", "-W", "2", "179.18.1.31")
					return err
				},
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
		},
	})
}

// TestAccVxlanTunnel_importTakesOver: importing an overlay that another resource manages
// into a second resource takes it over with an identity of its own (never the first one's):
// the agents record the new owner, the first resource lets go of it at its next refresh
// (nothing of it is destroyed), and the second keeps carrying traffic.
func TestAccVxlanTunnel_importTakesOver(t *testing.T) {
	l := newLab(t, hosts(2))
	n1, n2 := l.Hosts[0], l.Hosts[1]
	req := "terraform {\n  required_providers {\n    nodenet = { source = \"nodenet/nodenet\" }\n  }\n}\n"
	a := req + tunnelHCL("a", "vxlan-test", 7, m1, m2)
	b := tunnelHCL("b", "vxlan-test", 7, m1, m2)
	var idA string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy:             func(*terraform.State) error { return noVxlan(l) },
		Steps: []resource.TestStep{
			{
				Config: l.ProviderHCL() + a,
				Check: func(s *terraform.State) error {
					idA = s.RootModule().Resources["nodenet_vxlan_tunnel.a"].Primary.ID
					return nil
				},
			},
			{
				Config:             l.ProviderHCL() + a + b,
				ResourceName:       "nodenet_vxlan_tunnel.b",
				ImportState:        true,
				ImportStateId:      "vxlan-test",
				ImportStatePersist: true,
				ImportStateCheck: func(s []*terraform.InstanceState) error {
					// (the states given are the whole state's: a's and the imported b's)
					var idB string
					for _, is := range s {
						if is.ID != idA {
							idB = is.ID
						}
					}
					if idB == "" {
						return fmt.Errorf("the import must get an id of its own, not a's %s: %v", idA, s)
					}
					for _, h := range []*lab.Host{n1, n2} {
						if got := ownerOn(t, h, "vxlan_tunnel/vxlan-test"); got != "nodenet_vxlan_tunnel:"+idB {
							return fmt.Errorf("%s records owner %q, want the importing resource's nodenet_vxlan_tunnel:%s", h.Name, got, idB)
						}
					}
					return nil
				},
			},
			{
				// a's refresh finds every node's share managed by b: a leaves the state (with
				// a warning) instead of planning to destroy what b manages now.
				Config: req + l.ProviderHCL() + b,
				Check: func(s *terraform.State) error {
					idB := s.RootModule().Resources["nodenet_vxlan_tunnel.b"].Primary.ID
					for _, h := range []*lab.Host{n1, n2} {
						if got := ownerOn(t, h, "vxlan_tunnel/vxlan-test"); got != "nodenet_vxlan_tunnel:"+idB {
							return fmt.Errorf("%s records owner %q after a's destroy, want b's", h.Name, got)
						}
					}
					_, err := n1.Run("ping", "-c", "1", "-W", "2", "179.17.1.31")
					return err
				},
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
		},
	})
}

// TestAccVxlanTunnel_macChange: changing a member's MAC in the configuration: the kernel
// drops the device's permanent neighbours with the change, the apply sets them again, the
// plan after is empty and pods reach each other.
func TestAccVxlanTunnel_macChange(t *testing.T) {
	l := newLab(t, lab.Multicluster(""))
	config := tunnelConfig(l, 6, "")
	changed := strings.Replace(config, `{ underlay = "eth0", address = "179.17.1.21/24" }`,
		`{ underlay = "eth0", address = "179.17.1.21/24", mac = "02:aa:bb:cc:dd:01" }`, 1)
	if changed == config {
		t.Fatal("could not set node 1's MAC in the configuration")
	}
	n1 := host(t, l, seedNodes[0].node)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{Config: config, Check: func(*terraform.State) error { return pings(l, seedNodes[0].node, seedNodes[2].pod)() }},
			{
				Config: changed,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(tunnel, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(tunnel, "members."+key(0)+".mac", "02:aa:bb:cc:dd:01"),
					resource.TestCheckResourceAttrWith(tunnel, "members."+key(0)+".neighbors", lines(5, "179.17.1.16 lladdr "+pb.DeriveMAC(seedNodes[2].cluster, seedNodes[2].node, "vxlan-test"))),
					resource.TestCheckResourceAttrWith(tunnel, "members."+key(2)+".fdb", lines(5, "02:aa:bb:cc:dd:01 dst 192.168.0.21")),
					func(*terraform.State) error {
						if out := run(t, n1, "ip", "neigh", "show", "dev", "vxlan-test", "nud", "permanent"); strings.Count(out, "PERMANENT") != 5 {
							return fmt.Errorf("node 1 has these permanent neighbours after its MAC change:\n%s", out)
						}
						return pings(l, seedNodes[0].node, seedNodes[2].pod, seedNodes[4].pod, seedNodes[5].overlay)()
					},
				),
			},
		},
	})
}

// TestAccVxlanTunnel_extraAddress: an address added by hand to a member's device shows in
// the plan as a change of that member's address; apply removes it.
func TestAccVxlanTunnel_extraAddress(t *testing.T) {
	l := newLab(t, hosts(2))
	config := l.ProviderHCL() + tunnelHCL("t", "vxlan-test", 7, m1, m2)
	n1 := l.Hosts[0]
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{Config: config},
			{
				PreConfig: func() { run(t, n1, "ip", "addr", "add", "10.77.0.1/24", "dev", "vxlan-test") },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectNonEmptyPlan(),
						expectBefore{"nodenet_vxlan_tunnel.t", []string{"members", "c1/n1", "address"}, "179.17.1.21/24, 10.77.0.1/24"},
						expectMemberChanges{"nodenet_vxlan_tunnel.t", []string{"c1/n1"}},
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(*terraform.State) error {
					if out := run(t, n1, "ip", "-4", "addr", "show", "dev", "vxlan-test"); strings.Count(out, "inet ") != 1 || !strings.Contains(out, "179.17.1.21/24") {
						return fmt.Errorf("addresses after the apply:\n%s", out)
					}
					return nil
				},
			},
		},
	})
}

// TestAccVxlanTunnel_importRefusesAndSurvivesReboot: an overlay built by hand with a flood
// entry cannot be stored as a spec the contract accepts: the import is refused with the
// command that fixes it and adopts nothing anywhere. Without it, the import works, and the
// imported overlay comes back after a reboot without Terraform.
func TestAccVxlanTunnel_importRefusesAndSurvivesReboot(t *testing.T) {
	l := newLab(t, lab.Multicluster(""))
	config := scenario(t, l, "multicluster-vxlan")
	n4, n5 := host(t, l, seedNodes[3].node), host(t, l, seedNodes[4].node)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					for i, n := range seedNodes {
						for _, c := range seedCommands(i) {
							run(t, host(t, l, n.node), c...)
						}
					}
					run(t, n4, "bridge", "fdb", "append", "00:00:00:00:00:00", "dst", "192.168.0.16", "dev", "vxlan-test")
				},
				Config:        config,
				ResourceName:  tunnel,
				ImportState:   true,
				ImportStateId: "vxlan-test",
				ExpectError:   regexp.MustCompile(`cannot\s+adopt\s+device\s+vxlan-test[\s\S]*all-zero\s+\(flood\)\s+FDB\s+entry\s+dst\s+192.168.0.16:\s+remove\s+it\s+with\s+.bridge\s+fdb\s+del\s+00:00:00:00:00:00\s+dst\s+192.168.0.16\s+dev\s+vxlan-test`),
			},
			{
				PreConfig: func() {
					for _, h := range l.Hosts {
						if out := run(t, h, "ip", "-d", "link", "show", "vxlan-test"); strings.Contains(out, "nodenet:") {
							t.Fatalf("the refused import marked %s's device:\n%s", h.Name, out)
						}
						if ents, _ := os.ReadDir(filepath.Join(h.StateDir, "objects")); len(ents) != 0 {
							t.Fatalf("the refused import left records on %s", h.Name)
						}
					}
					run(t, n4, "bridge", "fdb", "del", "00:00:00:00:00:00", "dst", "192.168.0.16", "dev", "vxlan-test")
				},
				Config:             config,
				ResourceName:       tunnel,
				ImportState:        true,
				ImportStateId:      "vxlan-test",
				ImportStatePersist: true,
			},
			{Config: config, PlanOnly: true},
			{
				// Node 5 reboots: its device is gone, and its agent restores it from the
				// imported spec without Terraform.
				PreConfig: func() {
					if err := l.StopAgent(n5); err != nil {
						t.Fatal(err)
					}
					run(t, n5, "ip", "link", "del", "vxlan-test")
					if err := n5.SetBootID(lab.NewBootID()); err != nil {
						t.Fatal(err)
					}
					if err := l.StartAgent(n5); err != nil {
						t.Fatal(err)
					}
					if err := pings(l, seedNodes[0].node, seedNodes[4].pod)(); err != nil {
						t.Fatalf("after the reboot the imported overlay did not come back: %v", err)
					}
				},
				Config:   config,
				PlanOnly: true,
			},
		},
	})
}

// TestAccVxlanTunnel_importFailsPartWay: an import whose adoption fails on one node (its
// answer does not come in time) releases every node it adopted, that one included: no
// ifalias and no record is left anywhere, and the next import works.
func TestAccVxlanTunnel_importFailsPartWay(t *testing.T) {
	l, slow := newSlowLab(t, lab.Multicluster(""))
	config := strings.Replace(scenario(t, l, "multicluster-vxlan"), "provider \"nodenet\" {", "provider \"nodenet\" {\n  timeout = \"2s\"", 1)
	n4 := host(t, l, seedNodes[3].node)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					for i, n := range seedNodes {
						for _, c := range seedCommands(i) {
							run(t, host(t, l, n.node), c...)
						}
					}
					slow.set(n4.Name, 3*time.Second)
				},
				Config:        config,
				ResourceName:  tunnel,
				ImportState:   true,
				ImportStateId: "vxlan-test",
				ExpectError:   regexp.MustCompile(`test-cluster2/multicluster-test-004[\s\S]*did\s+not\s+answer\s+in\s+time[\s\S]*Released\s+the\s+nodes\s+it\s+had\s+adopted`),
			},
			{
				PreConfig: func() {
					slow.set(n4.Name, 0)
					for _, h := range l.Hosts {
						if out := run(t, h, "ip", "-d", "link", "show", "vxlan-test"); strings.Contains(out, "nodenet:") {
							t.Fatalf("the failed import left nodenet's ifalias on %s:\n%s", h.Name, out)
						}
						if ents, _ := os.ReadDir(filepath.Join(h.StateDir, "objects")); len(ents) != 0 {
							t.Fatalf("the failed import left records on %s: %v", h.Name, ents)
						}
					}
				},
				Config:             config,
				ResourceName:       tunnel,
				ImportState:        true,
				ImportStateId:      "vxlan-test",
				ImportStatePersist: true,
			},
			{Config: config, PlanOnly: true},
		},
	})
}

// TestAccVxlanTunnel_planNamesNodeChanges: what `terraform plan` prints: the per-node
// changes on create too, the kernel entries that name the tunnel but that no agent record
// explains (a lost state dir), which the apply then takes over, and a route with nodenet's
// mark that names no object, which the apply removes.
func TestAccVxlanTunnel_planNamesNodeChanges(t *testing.T) {
	l := newLab(t, hosts(2))
	n1 := l.Hosts[0]
	cli := newCLI(t, "terraform {\n  required_providers {\n    nodenet = { source = \"nodenet/nodenet\" }\n  }\n}\n"+
		l.ProviderHCL()+tunnelHCL("t", "vxlan-test", 7, m1, m2))
	out := cli.must("plan", "-no-color", "-input=false")
	for _, want := range []string{"Warning: Changes on the nodes", "c1/n1: +1 link, +1 addr, +1 neigh, +1 fdb", "c1/n2: +1 link, +1 addr, +1 neigh, +1 fdb"} {
		if !strings.Contains(out, want) {
			t.Errorf("the create plan lacks %q:\n%s", want, out)
		}
	}
	// A device of the tunnel, marked as nodenet's, that n1's agent has no record of; and a
	// route with nodenet's protocol that names no object at all.
	run(t, n1, "ip", "link", "add", "vxlan-test", "type", "vxlan", "id", "7", "dstport", "4789", "local", "192.168.0.21", "dev", "eth0", "nolearning")
	run(t, n1, "ip", "link", "set", "vxlan-test", "alias", "nodenet:vxlan_tunnel/vxlan-test")
	run(t, n1, "ip", "route", "add", "10.250.0.0/24", "via", "192.168.0.31", "dev", "eth0", "proto", "147")
	before := run(t, n1, "ip", "-o", "link", "show", "vxlan-test")
	out = cli.must("plan", "-no-color", "-input=false")
	for _, want := range []string{"Warning: Unrecorded kernel entries of vxlan_tunnel/vxlan-test", "c1/n1 holds kernel entries marked as", "link vxlan-test ifalias nodenet:vxlan_tunnel/vxlan-test", "This apply takes them over",
		"Warning: Unexplained kernel entries on c1/n1", "route 10.250.0.0/24 via 192.168.0.31 dev eth0 proto 147", "-1 route"} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Errorf("the plan lacks %q:\n%s", want, out)
		}
	}
	cli.must("apply", "-no-color", "-input=false", "-auto-approve")
	if after := run(t, n1, "ip", "-o", "link", "show", "vxlan-test"); strings.Fields(after)[0] != strings.Fields(before)[0] {
		t.Errorf("the device was recreated, not taken over: %s -> %s", before, after)
	}
	if routes := run(t, n1, "ip", "route"); strings.Contains(routes, "10.250.0.0/24") {
		t.Errorf("the apply left the unexplained route:\n%s", routes)
	}
	if _, err := cli.run("plan", "-no-color", "-input=false", "-detailed-exitcode"); err != nil {
		t.Errorf("plan after the apply is not empty: %v", err)
	}
	cli.must("destroy", "-no-color", "-input=false", "-auto-approve")
	if err := noVxlan(l); err != nil {
		t.Error(err)
	}
}

// TestAccVxlanTunnel_replace: a change that forces a new tunnel (the VNI) is planned and
// applied as a replacement: the new tunnel takes the old one's objects over, with a new id.
func TestAccVxlanTunnel_replace(t *testing.T) {
	l := newLab(t, hosts(2))
	var oldID string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy:             func(*terraform.State) error { return noVxlan(l) },
		Steps: []resource.TestStep{
			{
				Config: l.ProviderHCL() + tunnelHCL("t", "vxlan-test", 7, m1, m2),
				Check: func(s *terraform.State) error {
					oldID = s.RootModule().Resources["nodenet_vxlan_tunnel.t"].Primary.ID
					return nil
				},
			},
			{
				Config: l.ProviderHCL() + tunnelHCL("t", "vxlan-test", 8, m1, m2),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction("nodenet_vxlan_tunnel.t", plancheck.ResourceActionDestroyBeforeCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(s *terraform.State) error {
					if id := s.RootModule().Resources["nodenet_vxlan_tunnel.t"].Primary.ID; id == oldID || id == "" {
						return fmt.Errorf("the replacement kept the id %q", id)
					}
					if out := run(t, l.Hosts[1], "ip", "-d", "link", "show", "vxlan-test"); !strings.Contains(out, "vxlan id 8") {
						return fmt.Errorf("n2: %s", out)
					}
					_, err := l.Hosts[0].Run("ping", "-c", "1", "-W", "2", "179.17.1.31")
					return err
				},
			},
		},
	})
}
