package provider

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/nodenet/terraform-provider-nodenet/provider/kube/kubetest"
)

const (
	macvlanNAD = "nodenet_network_attachment.macvlan"
	ovnNAD     = "nodenet_network_attachment.ovn"
	// The seeds' configurations (003: macvlan with whereabouts; 000: the OVN second network).
	seedMacvlan = `{"cniVersion":"0.3.1","name":"macvlan-conf-1","type":"macvlan","master":"eth1","mode":"bridge",
		"ipam":{"type":"whereabouts","range":"192.168.60.0/24","range_start":"192.168.60.20","range_end":"192.168.60.50","gateway":"192.168.60.1"}}`
	seedOVN = `{"cniVersion":"0.4.0","name":"ovn-kubernetes","type":"ovn-k8s-cni-overlay","ipam":{},"dns":{},
		"logFile":"/var/log/ovn-kubernetes/ovn-k8s-cni-overlay.log","logLevel":"5","logfile-maxsize":100,"logfile-maxbackups":5,"logfile-maxage":5}`
)

func kubeScenario(t *testing.T, k *kubeLab, example string) string {
	t.Helper()
	b, err := os.ReadFile("../examples/scenarios/" + example + "/main.tf")
	if err != nil {
		t.Fatal(err)
	}
	return k.providerHCL(nil, "") + "\n" + string(b)
}

// TestAccNetworkAttachment_multusMacvlan applies the multus-macvlan set-up to a real API
// server, then: the seeds' JSON is what the API holds, an edit and a delete made by hand show
// in the plan and are repaired, a reformatted raw config plans nothing, import round-trips.
func TestAccNetworkAttachment_multusMacvlan(t *testing.T) {
	kubetest.Require(t, "kubectl") // the drift is made with kubectl edit and kubectl delete
	k := newKubeLab(t, nil)
	config := kubeScenario(t, k, "multus-macvlan")
	reformatted := regexp.MustCompile(`(?s)config = jsonencode\(\{.*?\}\)`).ReplaceAllString(config,
		"config = <<-JSON\n  {\"type\": \"ovn-k8s-cni-overlay\", \"name\": \"ovn-kubernetes\", \"cniVersion\": \"0.4.0\",\n   \"dns\": {}, \"ipam\": {}, \"logLevel\": \"5\", \"logFile\": \"/var/log/ovn-kubernetes/ovn-k8s-cni-overlay.log\",\n   \"logfile-maxage\": 5, \"logfile-maxbackups\": 5, \"logfile-maxsize\": 100}\n  JSON")
	// Import runs in a fresh working directory with only the imported resource: outputs that
	// name the other one would be null there, which the test framework cannot read.
	importConfig := regexp.MustCompile(`(?s)output "[a-z_]+" \{.*?\n\}\n`).ReplaceAllString(config, "")
	if reformatted == config || importConfig == config {
		t.Fatal("the scenario's OVN config was not found to reformat")
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy: func(s *terraform.State) error {
			if err := k.nadGone("default", "macvlan-conf-1")(s); err != nil {
				return err
			}
			return k.nadGone("default", "yusur-ovn")(s)
		},
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: resource.ComposeAggregateTestCheckFunc(
					k.nadConfigIs("default", "macvlan-conf-1", seedMacvlan),
					k.nadConfigIs("default", "yusur-ovn", seedOVN),
				),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(macvlanNAD, tfjsonpath.New("pod_annotation"),
						knownvalue.StringExact(`[{"name":"macvlan-conf-1","namespace":"default","interface":"eth1"}]`)),
					statecheck.ExpectKnownValue(ovnNAD, tfjsonpath.New("pod_annotation"),
						knownvalue.StringExact(`[{"name":"yusur-ovn","namespace":"default","interface":"eth1","default-route":["10.144.0.1"]}]`)),
					statecheck.ExpectKnownValue(macvlanNAD, tfjsonpath.New("cni_version"), knownvalue.StringExact("0.3.1")),
					statecheck.ExpectKnownValue(ovnNAD, tfjsonpath.New("cni_version"), knownvalue.StringExact("0.4.0")),
					statecheck.ExpectKnownValue(macvlanNAD, tfjsonpath.New("id"), knownvalue.StringExact("default/macvlan-conf-1")),
				},
			},
			{
				// The same JSON written differently: nothing to do.
				Config:           reformatted,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
			{
				// kubectl edit (the real one): mode bridge -> private. The plan shows it on macvlan.mode.
				PreConfig: func() { k.editNAD(t, "default", "macvlan-conf-1", `"mode":"bridge"`, `"mode":"private"`) },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(macvlanNAD, plancheck.ResourceActionUpdate),
					expectBefore{macvlanNAD, []string{"macvlan", "mode"}, "private"},
					plancheck.ExpectResourceAction(ovnNAD, plancheck.ResourceActionNoop),
				}},
				Check: k.nadConfigIs("default", "macvlan-conf-1", seedMacvlan),
			},
			{
				// kubectl edit of a value the configuration leaves to its default (cni_version).
				PreConfig: func() { k.editNAD(t, "default", "macvlan-conf-1", `"cniVersion":"0.3.1"`, `"cniVersion":"0.4.0"`) },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(macvlanNAD, plancheck.ResourceActionUpdate),
					expectBefore{macvlanNAD, []string{"cni_version"}, "0.4.0"},
				}},
				Check: k.nadConfigIs("default", "macvlan-conf-1", seedMacvlan),
			},
			{
				// kubectl edit of the raw config: a value changed.
				PreConfig: func() { k.editNAD(t, "default", "yusur-ovn", `"logLevel":"5"`, `"logLevel":"2"`) },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(ovnNAD, plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction(macvlanNAD, plancheck.ResourceActionNoop),
				}},
				Check: k.nadConfigIs("default", "yusur-ovn", seedOVN),
			},
			{
				// kubectl delete: removed from state, created again.
				PreConfig: func() { k.deleteNAD(t, "default", "macvlan-conf-1") },
				Config:    config,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(macvlanNAD, plancheck.ResourceActionCreate),
				}},
				Check: k.nadConfigIs("default", "macvlan-conf-1", seedMacvlan),
			},
			{
				Config: importConfig, ResourceName: macvlanNAD, ImportState: true, ImportStateVerify: true,
				ImportStateId: "default/macvlan-conf-1", ImportStateVerifyIgnore: []string{"pod_interface", "pod_annotation"},
			},
			{
				Config: importConfig, ResourceName: ovnNAD, ImportState: true, ImportStateVerify: true,
				ImportStateId: "cluster1/default/yusur-ovn", ImportStateVerifyIgnore: []string{"pod_interface", "pod_default_route", "pod_annotation"},
			},
		},
	})
}

// TestAccNetworkAttachment_badInput: each mistake is refused at plan time, naming the
// attribute (and the nodes) and what is allowed; nothing is written.
func TestAccNetworkAttachment_badInput(t *testing.T) {
	k := newKubeLab(t, []string{"work01"}) // eth1 on work01 only
	k.byToken = true                       // and no kubeconfig: host, token, CA certificate
	nad := func(body string) string {
		return k.providerHCL(nil, "") + fmt.Sprintf(`
resource "nodenet_network_attachment" "bad" {
  cluster   = "cluster1"
  namespace = "default"
  name      = "bad"
%s
}
`, body)
	}
	whereabouts := func() string {
		return `  macvlan = { master = "eth0" }
  ipam = { whereabouts = { range = "192.168.60.0/24", range_start = "192.168.60.20" %s } }
`
	}
	steps := []struct{ body, want string }{
		{`  macvlan = { master = "eth1" }`, `master "eth1" does not exist on cluster1/work02; it must exist on every node of cluster cluster1`},
		{`  config = "{\"type\": \"macvlan\", "`, `(?s)Invalid JSON String Value`},
		{`  config = "[1, 2]"`, `not a JSON object`},
		{`  config = "{\"cniVersion\": \"0.3.9\", \"type\": \"macvlan\"}"`, `cniVersion "0.3.9" is not a CNI specification version: one of 0.1.0`},
		{`  macvlan = { master = "eth0", mode = "l3" }`, `(?s)macvlan.mode.*value must be one of.*bridge.*private.*vepa.*passthru.*source`},
		{`  config = "{\"type\": \"ipvlan\", \"master\": \"eth0\", \"mode\": \"bridge\"}"`, `mode "bridge" is not valid for ipvlan: one of l2, l3, l3s`},
		{fmt.Sprintf(whereabouts(), `, range_end = "192.168.61.5"`), `range_end 192.168.61.5 is outside range 192.168.60.0/24: it must be an address from 192.168.60.0 to 192.168.60.255`},
		{`  macvlan = { master = "eth0" }
  ipam = { whereabouts = { range = "192.168.60.0/24", exclude = ["192.168.0.0/16"] } }`, `exclude 192.168.0.0/16 is not inside range 192.168.60.0/24`},
		{`  ipvlan = { master = "eth0" }`, `(?s)Kernel lacks ipvlan.*the kernel of cluster1/work01, cluster1/work02 has no ipvlan support`},
		{`  macvlan = { master = "eth0" }
  config = "{\"type\": \"macvlan\"}"`, `set exactly one of macvlan, ipvlan, bridge, host_device or config; this attachment sets config and macvlan`},
	}
	var ts []resource.TestStep
	for _, s := range steps {
		ts = append(ts, resource.TestStep{Config: nad(s.body), PlanOnly: true, ExpectError: wrapped(s.want)})
	}
	// A namespace that does not exist: refused by the plan (not by a failed apply).
	ts = append(ts, resource.TestStep{
		Config:   regexp.MustCompile(`namespace = "default"`).ReplaceAllString(nad(`  macvlan = { master = "eth0" }`), `namespace = "nope"`),
		PlanOnly: true, ExpectError: wrapped(`namespace "nope" does not exist in cluster cluster1`),
	})
	// Moving an existing attachment to a namespace that does not exist: refused too, though its
	// configuration does not change.
	good := nad(`  macvlan = { master = "eth0" }`)
	ts = append(ts, resource.TestStep{Config: good, Check: k.nadConfigIs("default", "bad",
		`{"cniVersion":"0.3.1","name":"bad","type":"macvlan","master":"eth0","mode":"bridge"}`)},
		resource.TestStep{
			Config:   regexp.MustCompile(`namespace = "default"`).ReplaceAllString(good, `namespace = "nope"`),
			PlanOnly: true, ExpectError: wrapped(`namespace "nope" does not exist in cluster cluster1`),
		})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps:                    ts,
		CheckDestroy:             k.nadGone("default", "bad"),
	})
}

// wrapped matches a pattern in Terraform's output, where long messages are wrapped: every
// space of the pattern also matches a line break.
func wrapped(pattern string) *regexp.Regexp {
	return regexp.MustCompile(strings.ReplaceAll(pattern, " ", `\s+`))
}
