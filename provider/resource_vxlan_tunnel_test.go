package provider

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

const tunnel = "nodenet_vxlan_tunnel.multicluster"

// The seed's nodes (../shared/seeds/002): overlay address, MAC and pod block of each.
var seedNodes = []struct{ cluster, node, underlay, overlay, mac, pods, pod string }{
	{"test-cluster1", "multicluster-test-001", "192.168.0.21", "179.17.1.21", "c2:6a:9b:e5:39:8d", "10.234.111.0/24", "10.234.111.2"},
	{"test-cluster1", "multicluster-test-002", "192.168.0.31", "179.17.1.31", "7a:3a:fe:45:a3:76", "10.234.118.0/24", "10.234.118.2"},
	{"test-cluster2", "multicluster-test-003", "192.168.0.16", "179.17.1.16", "36:f9:67:c0:70:1c", "10.235.88.0/24", "10.235.88.2"},
	{"test-cluster2", "multicluster-test-004", "192.168.0.44", "179.17.1.44", "12:d1:df:44:3d:aa", "10.235.113.0/24", "10.235.113.2"},
	{"test-cluster3", "multicluster-test-005", "192.168.0.15", "179.17.1.15", "ba:a7:54:aa:bc:ce", "10.236.115.0/24", "10.236.115.2"},
	{"test-cluster3", "multicluster-test-006", "192.168.0.13", "179.17.1.13", "4e:ac:f5:6f:4e:76", "10.236.106.0/24", "10.236.106.2"},
}

func key(i int) string { return seedNodes[i].cluster + "/" + seedNodes[i].node }

// overlayPings: the pod behind node 1 reaches every other node's overlay address and the
// pods behind nodes 3 and 5 (other clusters).
func overlayPings(l *lab.Lab) resource.TestCheckFunc {
	ips := []string{}
	for _, n := range seedNodes[1:] {
		ips = append(ips, n.overlay)
	}
	ips = append(ips, seedNodes[2].pod, seedNodes[4].pod)
	check := pings(l, seedNodes[0].node, ips...)
	return func(*terraform.State) error { return check() }
}

// TestAccVxlanTunnel_multicluster reproduces the multicluster-vxlan set-up, then drift
// made by hand, and a destroy that leaves foreign objects untouched.
func TestAccVxlanTunnel_multicluster(t *testing.T) {
	l := newLab(t, lab.Multicluster(""))
	config := scenario(t, l, "multicluster-vxlan")
	n1, n2, n4, n6 := host(t, l, seedNodes[0].node), host(t, l, seedNodes[1].node), host(t, l, seedNodes[3].node), host(t, l, seedNodes[5].node)
	before := map[string]string{}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy: func(*terraform.State) error {
			for _, h := range l.Hosts {
				after, err := snapshot(h)
				if err != nil {
					return err
				}
				if after != before[h.Name] {
					return fmt.Errorf("%s is not as it was before create:\n--- before\n%s\n--- after\n%s", h.Name, before[h.Name], after)
				}
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					// Foreign objects nodenet must never touch: a device, an FDB entry, a route.
					run(t, n1, "ip", "link", "add", "vxlan-foreign", "type", "vxlan", "id", "999", "dstport", "4789", "local", "192.168.0.21", "dev", "eth0", "nolearning")
					run(t, n1, "ip", "link", "set", "vxlan-foreign", "up")
					run(t, n1, "bridge", "fdb", "append", "00:00:00:00:00:00", "dst", "192.168.0.31", "dev", "vxlan-foreign")
					run(t, n1, "ip", "route", "add", "10.250.0.0/24", "via", "192.168.0.31", "dev", "eth0")
					for _, h := range l.Hosts {
						s, err := snapshot(h)
						if err != nil {
							t.Fatal(err)
						}
						before[h.Name] = s
					}
				},
				Config: config,
				Check: resource.ComposeAggregateTestCheckFunc(
					overlayPings(l),
					resource.TestCheckResourceAttr(tunnel, "mtu", "1450"),
					resource.TestCheckResourceAttr(tunnel, "members."+key(0)+".mac", seedNodes[0].mac),
					resource.TestCheckResourceAttr(tunnel, "members."+key(0)+".oper_state", "up"),
					resource.TestCheckResourceAttrWith(tunnel, "members."+key(0)+".fdb", lines(5, seedNodes[2].mac+" dst 192.168.0.16")),
					resource.TestCheckResourceAttrWith(tunnel, "members."+key(0)+".neighbors", lines(5, "179.17.1.16 lladdr "+seedNodes[2].mac)),
					resource.TestCheckResourceAttrWith(tunnel, "members."+key(0)+".routes", lines(4, "10.235.88.0/24 via 179.17.1.16")),
					func(*terraform.State) error {
						// Pod to pod across clusters without SNAT: the pod behind node 3 sees
						// the address of the pod behind node 1.
						src, err := sourceSeenBy(n1, host(t, l, seedNodes[2].node))
						if err != nil {
							return err
						}
						if src != seedNodes[0].pod {
							return fmt.Errorf("the pod behind node 3 sees source %s, want the pod behind node 1 (%s): traffic was NATed", src, seedNodes[0].pod)
						}
						return nil
					},
					func(*terraform.State) error {
						// What `ip` shows is what the operator typed by hand in the seed.
						link := run(t, n1, "ip", "-d", "link", "show", "vxlan-test")
						for _, want := range []string{"vxlan id 10001", "local 192.168.0.21", "dev eth0", "dstport 4899", "nolearning", "mtu 1450", "link/ether c2:6a:9b:e5:39:8d", "alias nodenet:vxlan_tunnel/vxlan-test"} {
							if !strings.Contains(link, want) {
								return fmt.Errorf("ip -d link show vxlan-test on %s lacks %q:\n%s", n1.Name, want, link)
							}
						}
						if fdb := run(t, n1, "bridge", "fdb", "show", "dev", "vxlan-test"); !strings.Contains(fdb, "36:f9:67:c0:70:1c dst 192.168.0.16") {
							return fmt.Errorf("bridge fdb on %s:\n%s", n1.Name, fdb)
						}
						if rt := run(t, n1, "ip", "route", "show", "10.235.88.0/24"); !strings.Contains(rt, "via 179.17.1.16 dev vxlan-test proto 147 onlink") {
							return fmt.Errorf("ip route on %s: %q", n1.Name, rt)
						}
						return nil
					},
				),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			{
				// Drift by hand: an FDB entry deleted on node 2, the MAC changed on node 4,
				// the device deleted on node 6. The plan changes exactly those members.
				PreConfig: func() {
					run(t, n2, "bridge", "fdb", "del", seedNodes[2].mac, "dev", "vxlan-test")
					run(t, n4, "ip", "link", "set", "dev", "vxlan-test", "address", "02:00:00:00:00:44")
					run(t, n6, "ip", "link", "del", "vxlan-test")
					if err := ping(n1, seedNodes[5].pod); err == nil {
						t.Fatalf("the pod behind node 6 still answers with its vxlan device deleted")
					}
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectNonEmptyPlan(),
						plancheck.ExpectResourceAction(tunnel, plancheck.ResourceActionUpdate),
						expectMemberChanges{tunnel, []string{key(1), key(3), key(5)}},
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					overlayPings(l),
					func(*terraform.State) error { return pings(l, seedNodes[0].node, seedNodes[5].pod, seedNodes[3].pod)() },
					resource.TestCheckResourceAttr(tunnel, "members."+key(3)+".mac", seedNodes[3].mac),
				),
			},
		},
	})
}

// seedCommands are the seed's hand-made commands for node i: device, address, MAC, up,
// arp -s and bridge fdb append for every other node, route add for other clusters' blocks.
func seedCommands(i int) [][]string {
	n := seedNodes[i]
	cmds := [][]string{
		{"ip", "link", "add", "vxlan-test", "type", "vxlan", "id", "10001", "dstport", "4899", "local", n.underlay, "dev", "eth0", "nolearning"},
		{"ip", "addr", "add", n.overlay + "/24", "dev", "vxlan-test"},
		{"ip", "link", "set", "dev", "vxlan-test", "address", n.mac},
		{"ip", "link", "set", "vxlan-test", "up"},
	}
	for j, o := range seedNodes {
		if j != i {
			cmds = append(cmds, []string{"arp", "-s", o.overlay, o.mac})
		}
	}
	for j, o := range seedNodes {
		if j != i {
			cmds = append(cmds, []string{"bridge", "fdb", "append", o.mac, "dst", o.underlay, "dev", "vxlan-test"})
		}
	}
	for _, o := range seedNodes {
		if o.cluster != n.cluster {
			cmds = append(cmds, []string{"route", "add", "-net", o.pods, "gw", o.overlay, "dev", "vxlan-test"})
		}
	}
	return cmds
}

// TestAccVxlanTunnel_coldImport builds the overlay by hand with the seed's own commands,
// imports it, and the configuration with the seed's MACs then plans nothing.
func TestAccVxlanTunnel_coldImport(t *testing.T) {
	l := newLab(t, lab.Multicluster(""))
	config := scenario(t, l, "multicluster-vxlan")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					for i, n := range seedNodes {
						h := host(t, l, n.node)
						for _, c := range seedCommands(i) {
							run(t, h, c...)
						}
					}
					if err := pings(l, seedNodes[0].node, seedNodes[2].pod, seedNodes[4].pod)(); err != nil {
						t.Fatalf("the hand-made overlay does not carry traffic: %v", err)
					}
				},
				// One cluster's share alone: adopts the two nodes of test-cluster2 (the full
				// import below takes them over). Without the scenario's output about node 1.
				Config:        tunnelConfig(l, 6, ""),
				ResourceName:  tunnel,
				ImportState:   true,
				ImportStateId: "test-cluster2/vxlan-test",
				ImportStateCheck: func(s []*terraform.InstanceState) error {
					if len(s) != 1 || s[0].Attributes["members.%"] != "2" {
						return fmt.Errorf("import of one cluster: want its 2 members, got %v", s)
					}
					return nil
				},
			},
			{
				Config:             config,
				ResourceName:       tunnel,
				ImportState:        true,
				ImportStateId:      "vxlan-test",
				ImportStatePersist: true,
				ImportStateCheck: func(s []*terraform.InstanceState) error {
					if len(s) != 1 {
						return fmt.Errorf("want one imported instance, got %d", len(s))
					}
					a := s[0].Attributes
					want := map[string]string{
						"name": "vxlan-test", "vni": "10001", "port": "4899", "mtu": "1450", "learning": "false",
						"members.%": "6", "routes.%": "6",
						"members." + key(3) + ".mac":      seedNodes[3].mac,
						"members." + key(3) + ".address":  "179.17.1.44/24",
						"members." + key(3) + ".underlay": "eth0",
						"routes.10.235.88.0/24.via":       key(2),
						"routes.10.236.106.0/24.via":      key(5),
					}
					for k, v := range want {
						if a[k] != v {
							return fmt.Errorf("imported %s = %q, want %q", k, a[k], v)
						}
					}
					if err := lines(5, seedNodes[0].mac+" dst 192.168.0.21")(a["members."+key(3)+".fdb"]); err != nil {
						return fmt.Errorf("imported fdb of %s: %w", key(3), err)
					}
					if err := lines(4, "10.234.111.0/24 via 179.17.1.21")(a["members."+key(3)+".routes"]); err != nil {
						return fmt.Errorf("imported routes of %s: %w", key(3), err)
					}
					if _, ok := a["routes.10.235.88.0/24.on.#"]; ok && a["routes.10.235.88.0/24.on.#"] != "0" {
						return fmt.Errorf("the seed's routes stand on the default members, so on should be unset; got %s", a["routes.10.235.88.0/24.on.#"])
					}
					return nil
				},
			},
			{
				Config:   config,
				PlanOnly: true, // fails on any planned change
			},
			{
				Config: config,
				Check: resource.ComposeAggregateTestCheckFunc(
					overlayPings(l),
					func(*terraform.State) error {
						// The seed's own route (proto boot) counts as present: not doubled.
						h := host(t, l, seedNodes[0].node)
						if out := run(t, h, "ip", "route", "show", "10.235.88.0/24"); strings.Count(out, "\n") != 1 {
							return fmt.Errorf("route 10.235.88.0/24 on %s: %q", h.Name, out)
						}
						if out := run(t, h, "ip", "link", "show", "vxlan-test"); !strings.Contains(out, "alias nodenet:vxlan_tunnel/vxlan-test") {
							return fmt.Errorf("import did not mark the device as adopted: %s", out)
						}
						return nil
					},
				),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
		},
	})
}

// fiveThenSix is the scenario without node 6 (mtu default), then with node 6 and mtu 1400.
func tunnelConfig(l *lab.Lab, members int, mtu string) string {
	var b strings.Builder
	b.WriteString(l.ProviderHCL())
	b.WriteString("terraform {\n  required_providers {\n    nodenet = { source = \"nodenet/nodenet\" }\n  }\n}\n")
	b.WriteString("resource \"nodenet_vxlan_tunnel\" \"multicluster\" {\n  name = \"vxlan-test\"\n  vni = 10001\n  port = 4899\n")
	if mtu != "" {
		fmt.Fprintf(&b, "  mtu = %s\n", mtu)
	}
	b.WriteString("  members = {\n")
	for _, n := range seedNodes[:members] {
		fmt.Fprintf(&b, "    %q = { underlay = \"eth0\", address = \"%s/24\" }\n", n.cluster+"/"+n.node, n.overlay)
	}
	b.WriteString("  }\n  routes = {\n")
	for _, n := range seedNodes[:members] {
		fmt.Fprintf(&b, "    %q = { via = %q }\n", n.pods, n.cluster+"/"+n.node)
	}
	b.WriteString("  }\n}\n")
	return b.String()
}

// TestAccVxlanTunnel_updateInPlace adds a member and lowers the MTU: the devices of the
// untouched members are not recreated (same ifindex), and the new member's traffic flows.
func TestAccVxlanTunnel_updateInPlace(t *testing.T) {
	l := newLab(t, lab.Multicluster(""))
	ifindex := map[string]string{}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config: tunnelConfig(l, 5, ""),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(tunnel, "mtu", "1450"),
					func(s *terraform.State) error {
						a := s.RootModule().Resources[tunnel].Primary.Attributes
						for i := range seedNodes[:5] {
							ifindex[key(i)] = a["members."+key(i)+".ifindex"]
							if ifindex[key(i)] == "" || ifindex[key(i)] == "0" {
								return fmt.Errorf("%s has no ifindex", key(i))
							}
						}
						return pings(l, seedNodes[0].node, seedNodes[2].pod, seedNodes[4].pod)()
					},
				),
			},
			{
				Config: tunnelConfig(l, 6, "1400"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(tunnel, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(tunnel, "mtu", "1400"),
					func(s *terraform.State) error {
						a := s.RootModule().Resources[tunnel].Primary.Attributes
						for i := range seedNodes[:5] {
							if got := a["members."+key(i)+".ifindex"]; got != ifindex[key(i)] {
								return fmt.Errorf("%s: ifindex %s -> %s: its device was recreated", key(i), ifindex[key(i)], got)
							}
						}
						for _, h := range l.Hosts {
							if out := run(t, h, "ip", "link", "show", "vxlan-test"); !strings.Contains(out, "mtu 1400") {
								return fmt.Errorf("%s: %s", h.Name, out)
							}
						}
						return pings(l, seedNodes[0].node, seedNodes[5].pod, seedNodes[5].overlay)()
					},
				),
			},
			{
				// Node 1's underlay moves to a second address: only its device is recreated
				// (new local IP); the others update their FDB entry for it in place.
				PreConfig: func() {
					run(t, host(t, l, seedNodes[0].node), "ip", "addr", "add", "192.168.0.121/24", "dev", "eth0")
				},
				Config: strings.Replace(tunnelConfig(l, 6, "1400"),
					`"test-cluster1/multicluster-test-001" = { underlay = "eth0"`,
					`"test-cluster1/multicluster-test-001" = { underlay = "192.168.0.121"`, 1),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(tunnel, plancheck.ResourceActionUpdate),
						plancheck.ExpectUnknownValue(tunnel, tfjsonpath.New("members").AtMapKey(key(0)).AtMapKey("ifindex")),
						plancheck.ExpectKnownValue(tunnel, tfjsonpath.New("members").AtMapKey(key(1)).AtMapKey("ifindex"), knownvalue.NotNull()),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(tunnel, "members."+key(0)+".local_ip", "192.168.0.121"),
					resource.TestCheckResourceAttrWith(tunnel, "members."+key(2)+".fdb", lines(5, pb.DeriveMAC(seedNodes[0].cluster, seedNodes[0].node, "vxlan-test")+" dst 192.168.0.121")),
					func(s *terraform.State) error {
						a := s.RootModule().Resources[tunnel].Primary.Attributes
						if a["members."+key(0)+".ifindex"] == ifindex[key(0)] {
							return fmt.Errorf("%s kept ifindex %s: its device should have been recreated", key(0), ifindex[key(0)])
						}
						for i := 1; i < 5; i++ {
							if got := a["members."+key(i)+".ifindex"]; got != ifindex[key(i)] {
								return fmt.Errorf("%s: ifindex %s -> %s: only node 1's device should be recreated", key(i), ifindex[key(i)], got)
							}
						}
						return pings(l, seedNodes[0].node, seedNodes[2].pod, seedNodes[4].pod)()
					},
				),
			},
		},
	})
}

// TestAccVxlanTunnel_badInput: every bad value fails the plan with an error that names the
// attribute and what is allowed, before anything is applied.
func TestAccVxlanTunnel_badInput(t *testing.T) {
	l := newLab(t, lab.Options{Hosts: []lab.HostSpec{
		{Cluster: "c1", Name: "n1", UnderlayIP: mustPrefix("192.168.0.21/24")},
		{Cluster: "c2", Name: "n2", UnderlayIP: mustPrefix("192.168.0.31/24"), MTU: 1400},
	}})
	cfg := func(top, m1, m2, routes string) string {
		if m1 == "" {
			m1 = `underlay = "eth0", address = "179.17.1.21/24"`
		}
		if m2 == "" {
			m2 = `underlay = "eth0", address = "179.17.1.31/24"`
		}
		if top == "" {
			top = `name = "vxlan-test"
  vni = 10001`
		}
		return l.ProviderHCL() + fmt.Sprintf(`
resource "nodenet_vxlan_tunnel" "bad" {
  %s
  members = {
    "c1/n1" = { %s }
    "c2/n2" = { %s }
  }
  routes = { %s }
}
`, top, m1, m2, routes)
	}
	cases := []struct{ name, config, err string }{
		{"vni 0", cfg(`name = "vx"
  vni = 0`, "", "", ""), `Invalid VNI[\s\S]*VNI 0 is out of range; allowed 1 to 16777215`},
		{"vni 16777216", cfg(`name = "vx"
  vni = 16777216`, "", "", ""), `allowed 1 to 16777215`},
		{"port 0", cfg(`name = "vx"
  vni = 1
 port = 0`, "", "", ""), `Invalid port[\s\S]*port 0 is out of range; allowed 1 to 65535`},
		{"port 65536", cfg(`name = "vx"
  vni = 1
 port = 65536`, "", "", ""), `allowed 1 to 65535`},
		{"name too long", cfg(`name = "vxlan-test-longer"
  vni = 1`, "", "", ""), `Invalid interface name[\s\S]*"vxlan-test-longer" is 17 bytes; an interface name has at most 15`},
		{"name with slash", cfg(`name = "vx/lan"
  vni = 1`, "", "", ""), `may not contain '/'`},
		{"multicast MAC", cfg("", `underlay = "eth0", address = "179.17.1.21/24", mac = "01:00:5e:00:00:01"`, "", ""), `Invalid MAC address[\s\S]*"01:00:5e:00:00:01" is a multicast MAC`},
		{"malformed MAC", cfg("", `underlay = "eth0", address = "179.17.1.21/24", mac = "c2:6a:9b"`, "", ""), `is not a MAC address`},
		{"duplicate overlay", cfg("", "", `underlay = "eth0", address = "179.17.1.21/24"`, ""), `overlay address 179.17.1.21 is also member c1/n1's`},
		{"two subnets", cfg("", "", `underlay = "eth0", address = "179.17.2.31/24"`, ""), `must be in one subnet`},
		{"route via non-member", cfg("", "", "", `"10.1.0.0/24" = { via = "c3/n9" }`), `"c3/n9" is not a member of this tunnel`},
		{"malformed route", cfg("", "", "", `"10.1.0.1/24" = { via = "c1/n1" }`), `has host bits set; did you mean 10.1.0.0/24`},
		{"mtu above underlay", cfg(`name = "vx"
  vni = 1
 mtu = 1500`, "", "", ""), `1500 is more than the underlay allows: member c2/n2's underlay has MTU 1400, so at most 1350`},
		{"unknown underlay", cfg("", `underlay = "eth7", address = "179.17.1.21/24"`, "", ""), `node c1/n1: no interface eth7`},
		{"upper-case MAC", cfg("", `underlay = "eth0", address = "179.17.1.21/24", mac = "C2:6A:9B:E5:39:8D"`, "", ""), `Invalid MAC address[\s\S]*write "C2:6A:9B:E5:39:8D" as "c2:6a:9b:e5:39:8d"`},
		{"underlay with space", cfg("", `underlay = "eth 0", address = "179.17.1.21/24"`, "", ""), `Invalid underlay[\s\S]*give an interface name (like eth0) or an IPv4 address of the node`},
		{"member key without cluster", strings.Replace(cfg("", "", "", ""), `"c1/n1" = {`, `"n1" = {`, 1), `Invalid node key[\s\S]*member keys are "<cluster>/<node>", got "n1"`},
		{"route key not a CIDR", cfg("", "", "", `"10.1.0.0" = { via = "c1/n1" }`), `Invalid CIDR[\s\S]*"10.1.0.0" is not an IPv4 CIDR`},
	}
	var steps []resource.TestStep
	for _, c := range cases {
		// Parts joined by [\s\S]* may be far apart (summary, then detail); Terraform wraps
		// long messages, so any run of spaces may be a line break.
		var parts []string
		for _, p := range strings.Split(c.err, `[\s\S]*`) {
			parts = append(parts, strings.ReplaceAll(regexp.QuoteMeta(p), " ", `\s+`))
		}
		re := strings.Join(parts, `[\s\S]*`)
		steps = append(steps, resource.TestStep{Config: c.config, PlanOnly: true, ExpectError: regexp.MustCompile(re)})
	}
	// Members that name what the provider does not configure.
	unknownCluster := strings.Replace(cfg("", "", "", ""), `"c2/n2"`, `"c9/n2"`, 1)
	unknownNode := strings.Replace(cfg("", "", "", ""), `"c2/n2"`, `"c2/n7"`, 1)
	steps = append(steps,
		resource.TestStep{Config: unknownCluster, PlanOnly: true, ExpectError: regexp.MustCompile(`names cluster "c9", which the provider does not\s+configure`)},
		resource.TestStep{Config: unknownNode, PlanOnly: true, ExpectError: regexp.MustCompile(`"c2/n7" names no configured node`)},
	)
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: testProviders, Steps: steps})
	for _, h := range l.Hosts {
		if out := run(t, h, "ip", "link", "show", "type", "vxlan"); strings.TrimSpace(out) != "" {
			t.Errorf("%s: a refused plan left a device: %s", h.Name, out)
		}
	}
}

// TestAccProvider_agentIdentity: the provider refuses an agent whose certificate names
// another node (here: the address of n1 configured for n2).
func TestAccProvider_agentIdentity(t *testing.T) {
	l := newLab(t, lab.Options{Hosts: []lab.HostSpec{
		{Cluster: "c1", Name: "n1", UnderlayIP: mustPrefix("192.168.0.21/24")},
		{Cluster: "c1", Name: "n2", UnderlayIP: mustPrefix("192.168.0.31/24")},
	}})
	hcl := l.ProviderHCL()
	hcl = strings.Replace(hcl, `"n2" = { agent = "`+l.Hosts[1].AgentAddr+`"`, `"n2" = { agent = "`+l.Hosts[0].AgentAddr+`"`, 1)
	if !strings.Contains(hcl, `"n2" = { agent = "`+l.Hosts[0].AgentAddr) {
		t.Fatalf("could not swap the agent address in:\n%s", hcl)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{{
			Config: hcl + `
resource "nodenet_vxlan_tunnel" "t" {
  name = "vxlan-test"
  vni  = 7
  members = {
    "c1/n1" = { underlay = "eth0", address = "179.17.1.21/24" }
    "c1/n2" = { underlay = "eth0", address = "179.17.1.31/24" }
  }
}`,
			PlanOnly:    true,
			ExpectError: regexp.MustCompile(`Node agent failed authentication[\s\S]*presented\s+identity\s+nodenet://c1/n1,\s+expected\s+nodenet://c1/n2`),
		}},
	})
}

// TestAccVxlanTunnel_agentDownAndReboot: a node whose agent is down keeps its last known
// state (plan warns, apply fails naming it); a plain agent restart repairs nothing (hand
// edits stay visible), a reboot (new boot id) gets the overlay back without Terraform.
func TestAccVxlanTunnel_agentDownAndReboot(t *testing.T) {
	l := newLab(t, lab.Multicluster(""))
	config := tunnelConfig(l, 6, "")
	n3 := host(t, l, seedNodes[2].node)
	restart := func(reboot bool) {
		if err := l.StopAgent(n3); err != nil {
			t.Fatal(err)
		}
		run(t, n3, "ip", "link", "del", "vxlan-test")
		if reboot {
			if err := n3.SetBootID(lab.NewBootID()); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.StartAgent(n3); err != nil {
			t.Fatal(err)
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{Config: config, Check: func(*terraform.State) error { return pings(l, seedNodes[0].node, seedNodes[2].pod)() }},
			{
				PreConfig: func() {
					if err := l.StopAgent(n3); err != nil {
						t.Fatal(err)
					}
				},
				Config:             config,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true, // its oper_state reads "unreachable"
			},
			{
				Config:      config,
				ExpectError: regexp.MustCompile(`test-cluster2/multicluster-test-003[\s\S]*agent unreachable`),
			},
			{
				// A plain restart repairs nothing: the deleted device shows in the plan.
				PreConfig: func() {
					if err := l.StartAgent(n3); err != nil {
						t.Fatal(err)
					}
					if err := l.StopAgent(n3); err != nil {
						t.Fatal(err)
					}
					restart(false)
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{expectMemberChanges{"nodenet_vxlan_tunnel.multicluster", []string{key(2)}}},
				},
				Check: func(*terraform.State) error { return pings(l, seedNodes[0].node, seedNodes[2].pod)() },
			},
			{
				// A reboot (new boot id) replays the stored state: nothing to plan.
				PreConfig: func() {
					restart(true)
					if err := pings(l, seedNodes[0].node, seedNodes[2].pod)(); err != nil {
						t.Fatalf("after the reboot the agent did not restore the overlay: %v", err)
					}
				},
				Config:   config,
				PlanOnly: true,
			},
		},
	})
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// lines checks an entries attribute: n lines, one of them want.
func lines(n int, want string) func(string) error {
	return func(v string) error {
		got := strings.Split(strings.TrimSuffix(v, "\n"), "\n")
		if v == "" {
			got = nil
		}
		if len(got) != n {
			return fmt.Errorf("%d entries, want %d:\n%s", len(got), n, v)
		}
		for _, l := range got {
			if l == want {
				return nil
			}
		}
		return fmt.Errorf("no entry %q in:\n%s", want, v)
	}
}

// TestAccProvider_tlsFromEnvironment: without a tls block the provider takes the CA and
// client certificate from NODENET_* (as paths or PEM); without either it says what is missing.
func TestAccProvider_tlsFromEnvironment(t *testing.T) {
	l := newLab(t, lab.Options{Hosts: []lab.HostSpec{{Cluster: "c1", Name: "n1", UnderlayIP: mustPrefix("192.168.0.21/24")}}})
	cfg := fmt.Sprintf(`
provider "nodenet" {
  clusters = { c1 = { nodes = { n1 = { agent = %q } } } }
}
resource "nodenet_vxlan_tunnel" "t" {
  name    = "vxlan-test"
  vni     = 7
  members = { "c1/n1" = { underlay = "eth0", address = "179.17.1.21/24" } }
}
`, l.Hosts[0].AgentAddr)
	key, err := os.ReadFile(l.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					for _, k := range []string{"NODENET_CA_CERT", "NODENET_CLIENT_CERT", "NODENET_CLIENT_KEY"} {
						os.Unsetenv(k)
					}
				},
				Config:      cfg,
				PlanOnly:    true,
				ExpectError: regexp.MustCompile(`tls.ca_cert\s+is\s+required[\s\S]*NODENET_CA_CERT`),
			},
			{
				PreConfig: func() {
					t.Setenv("NODENET_CA_CERT", l.CAFile)             // a path
					t.Setenv("NODENET_CLIENT_CERT", l.ClientCertFile) // a path
					t.Setenv("NODENET_CLIENT_KEY", string(key))       // PEM content
				},
				Config: cfg,
				Check:  resource.TestCheckResourceAttr("nodenet_vxlan_tunnel.t", "members.c1/n1.oper_state", "up"),
			},
		},
	})
}
