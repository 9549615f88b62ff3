package provider

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
)

// withTimeout sets the provider's per-call timeout in a configuration.
func withTimeout(config, timeout string) string {
	return strings.Replace(config, "provider \"nodenet\" {", "provider \"nodenet\" {\n  timeout = \""+timeout+"\"", 1)
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not after %s", what, d)
		}
	}
}

// TestAccVxlanTunnel_createRollsBack: a create that runs out of time before any apply
// changes nothing; a hand-made device of the name fails the plan with the import command; a
// create that fails part-way through the applies rolls back every node that may have applied
// it, one whose answer came after the deadline included; one whose rollback cannot reach a
// node keeps the resource in state, tainted, and the next apply replaces it there.
func TestAccVxlanTunnel_createRollsBack(t *testing.T) {
	l, slow := newSlowLab(t, hosts(3))
	config := withTimeout(l.ProviderHCL()+tunnelHCL("t", "vxlan-test", 7, m1, m2, m3), "2s")
	n2, n3 := l.Hosts[1], l.Hosts[2]
	noDevices := func() {
		t.Helper()
		if err := noVxlan(l); err != nil {
			t.Fatal(err)
		}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy:             func(*terraform.State) error { return noVxlan(l) },
		Steps: []resource.TestStep{
			{
				Config:      strings.Replace(config, "vni = 7", "vni = 7\n  timeouts {\n    create = \"1ns\"\n  }", 1),
				ExpectError: regexp.MustCompile(`Time limit reached[\s\S]*timeouts block`),
			},
			{
				PreConfig: func() {
					noDevices()
					run(t, n3, "ip", "link", "add", "vxlan-test", "type", "vxlan", "id", "9", "dstport", "4789", "dev", "eth0")
				},
				Config:      config,
				ExpectError: regexp.MustCompile(`node\s+c2/n3:\s+object\s+vxlan_tunnel/vxlan-test:\s+device\s+vxlan-test\s+already\s+exists\s+and\s+is\s+not\s+managed\s+by\s+nodenet[\s\S]*terraform\s+import`),
			},
			{
				// n2 answers only after the deadline: n1 and n3 applied, n2 applies late; all
				// three are rolled back (n2's rollback waits for its late apply).
				PreConfig: func() {
					run(t, n3, "ip", "link", "del", "vxlan-test")
					noDevices()
					slow.set(n2.Name, 3*time.Second)
				},
				Config:      config,
				ExpectError: regexp.MustCompile(`failed\s+on\s+1\s+of\s+3\s+nodes:\s+c1/n2:\s+agent\s+did\s+not\s+answer\s+in\s+time[\s\S]*Rolled\s+back\s+the\s+nodes\s+that\s+had\s+applied\s+it\s+\(or\s+may\s+have\):\s+c1/n1,\s+c1/n2,\s+c2/n3\.`),
			},
			{
				// n2 is stuck longer than the rollback may wait: the resource stays, tainted.
				PreConfig: func() {
					noDevices()
					slow.set(n2.Name, 7*time.Second)
				},
				Config:      config,
				ExpectError: regexp.MustCompile(`These\s+nodes\s+may\s+hold\s+part\s+of\s+it[\s\S]*c1/n2:\s+agent\s+did\s+not\s+answer\s+in\s+time[\s\S]*kept\s+in\s+state\s+as\s+tainted`),
			},
			{
				// n2's late apply went through; the next apply replaces the tainted tunnel,
				// reaching n2 too.
				PreConfig: func() {
					waitFor(t, "n2's late apply", 15*time.Second, func() bool {
						_, err := n2.Run("ip", "link", "show", "vxlan-test")
						return err == nil
					})
					slow.set(n2.Name, 0)
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction("nodenet_vxlan_tunnel.t", plancheck.ResourceActionDestroyBeforeCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(*terraform.State) error {
					_, err := l.Hosts[0].Run("ping", "-c", "1", "-W", "2", "179.17.1.31")
					return err
				},
			},
		},
	})
}

// TestAccVxlanTunnel_failedUpdateKeepsLastState: an update that fails on a node whose answer
// does not come (nor its state, read back after) records that member's last observed state,
// marked unreachable, not the planned (or unknown) values; the next apply finishes it.
func TestAccVxlanTunnel_failedUpdateKeepsLastState(t *testing.T) {
	l, slow := newSlowLab(t, hosts(3))
	config := func(mtu int) string {
		return withTimeout(l.ProviderHCL()+strings.Replace(tunnelHCL("t", "vxlan-test", 7, m1, m2, m3), "vni = 7", fmt.Sprintf("vni = 7\n  mtu = %d", mtu), 1), "2s")
	}
	n3 := l.Hosts[2]
	const res = "nodenet_vxlan_tunnel.t"
	var n3Index string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config: config(1450),
				Check: func(s *terraform.State) error {
					n3Index = s.RootModule().Resources[res].Primary.Attributes["members.c2/n3.ifindex"]
					return nil
				},
			},
			{
				PreConfig:   func() { slow.set(n3.Name, 5*time.Second) },
				Config:      config(1400),
				ExpectError: regexp.MustCompile(`VXLAN\s+tunnel\s+not\s+fully\s+updated[\s\S]*c2/n3:\s+agent\s+did\s+not\s+answer\s+in\s+time`),
			},
			{
				// The state as the failed update wrote it (the first plan does not refresh);
				// n3 is kept down so the refresh keeps it too.
				PreConfig: func() {
					waitFor(t, "n3's late apply", 15*time.Second, func() bool {
						out, _ := n3.Run("ip", "link", "show", "vxlan-test")
						return strings.Contains(out, "mtu 1400")
					})
					slow.set(n3.Name, 0)
					if err := l.StopAgent(n3); err != nil {
						t.Fatal(err)
					}
				},
				Config:             config(1400),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
					expectBefore{res, []string{"members", "c2/n3", "mtu"}, 1450},
					expectBefore{res, []string{"members", "c2/n3", "oper_state"}, "unreachable"},
					expectBefore{res, []string{"members", "c2/n3", "ifindex"}, func() any { return n3Index }},
					expectBefore{res, []string{"members", "c1/n1", "mtu"}, 1400},
				}},
			},
			{
				PreConfig: func() {
					if err := l.StartAgent(n3); err != nil {
						t.Fatal(err)
					}
				},
				Config: config(1400),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(res, "members.c2/n3.mtu", "1400"),
					resource.TestCheckResourceAttr(res, "members.c2/n3.oper_state", "up"),
				),
			},
		},
	})
}
