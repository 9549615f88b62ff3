package provider

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
	"github.com/nodenet/terraform-provider-nodenet/provider/kube"
	"github.com/nodenet/terraform-provider-nodenet/provider/kube/kubetest"
)

// linkLab is the multicluster-vxlan set-up with real API servers: three clusters of two
// nodes (and a seventh lab host, test-cluster2's multicluster-test-007, that joins later),
// each cluster with its pod CIDR as its Calico IPPool, its service CIDR on its API server, and
// a Node object per node with the node's block as spec.podCIDR.
type linkLab struct {
	*lab.Lab
	kube   map[string]*kubetest.Cluster
	client map[string]*kube.Client
}

var linkClusters = []struct{ name, pods, services string }{
	{"test-cluster1", "10.234.64.0/18", "10.234.0.0/18"},
	{"test-cluster2", "10.235.64.0/18", "10.235.0.0/18"},
	{"test-cluster3", "10.236.64.0/18", "10.236.0.0/18"},
}

func newLinkLab(t *testing.T) *linkLab {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1 (needs root and terraform)")
	}
	kubetest.Require(t, "etcd", "kube-apiserver")
	o := lab.Multicluster("")
	o.Hosts = append(o.Hosts, lab.HostSpec{Cluster: "test-cluster2", Name: "multicluster-test-007",
		UnderlayIP: mustPrefix("192.168.0.47/24"), PodCIDR: mustPrefix("10.235.120.0/24")})
	l := &linkLab{Lab: newLab(t, o), kube: map[string]*kubetest.Cluster{}, client: map[string]*kube.Client{}}
	var specs []kubetest.Spec
	for _, c := range linkClusters {
		specs = append(specs, kubetest.Spec{Name: c.name, ServiceCIDR: c.services})
	}
	ctx := context.Background()
	for i, kc := range kubetest.StartSpecs(t, specs...) {
		c := linkClusters[i]
		l.kube[c.name] = kc
		cl, err := kube.New(kc.Config)
		if err != nil {
			t.Fatal(err)
		}
		l.client[c.name] = cl
		if err := kc.AddCalicoPool(ctx, "default-ipv4-ippool", c.pods, true); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range l.Hosts {
		if h.Name != "multicluster-test-007" {
			l.addNode(t, h)
		}
		if h.Cluster == "test-cluster3" {
			// Cluster 3's blocks come from Calico's IPAM (blocks_from = "calico").
			if err := l.kube[h.Cluster].AddBlockAffinity(ctx, h.Name+"-a", h.Name, h.PodCIDR.String()); err != nil {
				t.Fatal(err)
			}
		}
	}
	return l
}

// addNode registers the lab host as a Node of its cluster, with its block as spec.podCIDR.
func (l *linkLab) addNode(t *testing.T, h *lab.Host) {
	t.Helper()
	if err := l.kube[h.Cluster].AddNode(context.Background(), h.Name, h.UnderlayIP.Addr().String(), h.PodCIDR.String(), nil); err != nil {
		t.Fatal(err)
	}
}

// providerHCL is the provider block: every cluster's API, and the nodes (all but skip).
func (l *linkLab) providerHCL(skip ...string) string {
	var b strings.Builder
	b.WriteString("terraform {\n  required_providers {\n    nodenet = { source = \"nodenet/nodenet\" }\n  }\n}\n")
	fmt.Fprintf(&b, "provider \"nodenet\" {\n  tls = {\n    ca_cert = file(%q)\n    client_cert = file(%q)\n    client_key = file(%q)\n  }\n  clusters = {\n",
		l.CAFile, l.ClientCertFile, l.ClientKeyFile)
	for _, c := range linkClusters {
		fmt.Fprintf(&b, "    %q = {\n      kubernetes = { config_path = %q }\n      nodes = {\n", c.name, l.kube[c.name].Kubeconfig)
		for _, h := range l.Hosts {
			if h.Cluster == c.name && !contains(skip, h.Name) {
				fmt.Fprintf(&b, "        %q = { agent = %q, address = %q }\n", h.Name, h.AgentAddr, h.UnderlayIP.Addr())
			}
		}
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  }\n}\n")
	return b.String()
}

func linkHCL(res, exemption string) string {
	return fmt.Sprintf(`
resource "nodenet_cluster_link" %q {
  name           = "multicluster"
  clusters       = { "test-cluster1" = {}, "test-cluster2" = {}, "test-cluster3" = { blocks_from = "calico" } }
  device         = "vxlan-test"
  vni            = 10001
  port           = 4899
  overlay_cidr   = "179.17.1.0/24"
  snat_exemption = %q
}
`, res, exemption)
}

// natPool masquerades cluster 1's pods (what makes the SNAT exemption matter).
const natPool = `
resource "nodenet_ippool" "c1" {
  cluster      = "test-cluster1"
  cidr         = "10.234.64.0/18"
  block_size   = 24
  nat_outgoing = true
}
`

// linkPods checks that the pod behind 001 reaches the pods of clusters 2 and 3, and that the
// far pods see its address as the source (want: "" the pod's own, else the address expected).
func (l *linkLab) linkPods(t *testing.T, want string, others ...string) func(*terraform.State) error {
	return func(*terraform.State) error {
		from := host(t, l.Lab, "multicluster-test-001")
		for _, o := range append([]string{"multicluster-test-003", "multicluster-test-005"}, others...) {
			to := host(t, l.Lab, o)
			if err := ping(from, to.PodIP.String()); err != nil {
				return fmt.Errorf("pod 001 -> pod %s (%s): %w", o, to.PodIP, err)
			}
			src, err := sourceSeenBy(from, to)
			if err != nil {
				return err
			}
			exp := want
			if exp == "" {
				exp = from.PodIP.String()
			}
			if src != exp {
				return fmt.Errorf("the pod behind %s sees the datagram from %s, want %s", o, src, exp)
			}
		}
		return nil
	}
}

// calicoPools lists the link's Calico IPPools in every cluster ("<cluster> <name> <cidr>").
func (l *linkLab) calicoPools(t *testing.T) []string {
	var out []string
	for _, c := range linkClusters {
		pools, err := l.client[c.name].CalicoPools(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pools {
			if p.Link != "" {
				out = append(out, fmt.Sprintf("%s %s %s disabled=%t nat=%t", c.name, p.Name, p.CIDR, p.Disabled, p.NATOutgoing))
			}
		}
	}
	return out
}

// TestAccClusterLink_multicluster: the write-up's three clusters joined through their APIs:
// blocks from the Nodes, CIDRs from the Calico IPPools and ServiceCIDRs; pods reach across
// with their own source address under each SNAT exemption (Calico's pools made in every
// cluster; nodenet's NAT table, where "none" masquerades); a node that joins cluster 2 is
// planned on every other node, then reached; a node that leaves is removed everywhere; a route
// deleted by hand is planned and repaired; import by name; destroy leaves nothing.
func TestAccClusterLink_multicluster(t *testing.T) {
	l := newLinkLab(t)
	n1, n4, n7 := host(t, l.Lab, "multicluster-test-001"), host(t, l.Lab, "multicluster-test-004"), host(t, l.Lab, "multicluster-test-007")
	without7 := l.providerHCL("multicluster-test-007")
	all := l.providerHCL()
	const addr = "nodenet_cluster_link.link"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy: func(*terraform.State) error {
			for _, h := range l.Hosts {
				if out, _ := h.Run("ip", "-o", "link", "show", "type", "vxlan"); strings.TrimSpace(out) != "" {
					return fmt.Errorf("%s keeps a vxlan device: %s", h.Name, out)
				}
				if out, _ := h.Run("ip", "route", "show", "proto", "147"); strings.TrimSpace(out) != "" {
					return fmt.Errorf("%s keeps nodenet routes: %s", h.Name, out)
				}
			}
			if left := l.calicoPools(t); len(left) > 0 {
				return fmt.Errorf("Calico IPPools left: %v", left)
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				Config: without7 + linkHCL("link", "calico"),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(addr, "members.%", "6"),
					resource.TestCheckResourceAttr(addr, "clusters.test-cluster2.pod_cidr", "10.235.64.0/18"),
					resource.TestCheckResourceAttr(addr, "clusters.test-cluster2.service_cidr", "10.235.0.0/18"),
					resource.TestCheckResourceAttr(addr, "clusters.test-cluster2.blocks_from", "kubernetes"),
					resource.TestCheckResourceAttr(addr, "clusters.test-cluster3.blocks_from", "calico"),
					resource.TestCheckResourceAttr(addr, "blocks.test-cluster3/multicluster-test-005", "10.236.115.0/24"),
					resource.TestCheckResourceAttr(addr, "members.test-cluster1/multicluster-test-001.routes",
						"10.235.88.0/24 via 179.17.1.3\n10.235.113.0/24 via 179.17.1.4\n10.236.106.0/24 via 179.17.1.6\n10.236.115.0/24 via 179.17.1.5"),
					resource.TestCheckResourceAttr(addr, "calico_ippools.test-cluster1",
						"multicluster-pod-test-cluster2 10.235.64.0/18\nmulticluster-pod-test-cluster3 10.236.64.0/18\nmulticluster-svc-test-cluster2 10.235.0.0/18\nmulticluster-svc-test-cluster3 10.236.0.0/18"),
					func(*terraform.State) error {
						if got := l.calicoPools(t); len(got) != 12 || !strings.Contains(strings.Join(got, "\n"), "test-cluster3 multicluster-pod-test-cluster1 10.234.64.0/18 disabled=true nat=false") {
							return fmt.Errorf("the clusters' link pools: %v", got)
						}
						return nil
					},
					l.linkPods(t, ""),
				),
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
			{
				// The agents' health checks, per pair of clusters: every path up.
				PreConfig: func() { time.Sleep(4 * time.Second) },
				Config: without7 + linkHCL("link", "calico") + `
data "nodenet_cluster_link_status" "s" {
  name       = "multicluster"
  depends_on = [nodenet_cluster_link.link]
}
`,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("data.nodenet_cluster_link_status.s", "pairs.%", "6"),
					resource.TestCheckResourceAttr("data.nodenet_cluster_link_status.s", "pairs.test-cluster1->test-cluster2.reachable", "true"),
					resource.TestCheckResourceAttr("data.nodenet_cluster_link_status.s", "pairs.test-cluster1->test-cluster2.paths", "4"),
					resource.TestCheckResourceAttr("data.nodenet_cluster_link_status.s", "pairs.test-cluster3->test-cluster1.paths_up", "4"),
					resource.TestCheckResourceAttr("data.nodenet_cluster_link_status.s", "peers.#", "30"),
				),
			},
			{
				// nodenet's NAT for cluster 1's pods, no exemption: traffic to the other
				// clusters leaves with the node's address on the way out, its overlay address
				// (and the link's Calico pools go).
				Config: without7 + linkHCL("link", "none") + natPool,
				Check: resource.ComposeAggregateTestCheckFunc(
					l.linkPods(t, "179.17.1.1"),
					func(*terraform.State) error {
						if got := l.calicoPools(t); len(got) != 0 {
							return fmt.Errorf("pools left after switching to none: %v", got)
						}
						return nil
					},
				),
			},
			{
				// The agents' exemption: the pods' own addresses again.
				Config: without7 + linkHCL("link", "nodenet") + natPool,
				Check:  l.linkPods(t, ""),
			},
			{
				// 007 joins cluster 2: every other node gets its entries.
				PreConfig: func() { l.addNode(t, n7) },
				Config:    all + linkHCL("link", "nodenet") + natPool,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					expectMemberChanges{addr, []string{
						"test-cluster1/multicluster-test-001", "test-cluster1/multicluster-test-002", "test-cluster2/multicluster-test-003",
						"test-cluster2/multicluster-test-004", "test-cluster2/multicluster-test-007", "test-cluster3/multicluster-test-005", "test-cluster3/multicluster-test-006"}},
				}},
				Check: l.linkPods(t, "", "multicluster-test-007"),
			},
			{
				// 004 leaves its cluster (its Node is deleted; the provider still lists the
				// machine): its device goes, and every other node's entries for it.
				PreConfig: func() {
					if err := l.kube["test-cluster2"].DeleteNode(context.Background(), n4.Name); err != nil {
						t.Fatal(err)
					}
				},
				Config: all + linkHCL("link", "nodenet") + natPool,
				Check: func(*terraform.State) error {
					if out, err := n4.Run("ip", "link", "show", "vxlan-test"); err == nil {
						return fmt.Errorf("004 keeps the device: %s", out)
					}
					if out := run(t, n1, "ip", "route"); strings.Contains(out, "10.235.113.0/24") {
						return fmt.Errorf("001 keeps the route to 004's block:\n%s", out)
					}
					if out := run(t, n1, "bridge", "fdb", "show", "dev", "vxlan-test"); strings.Contains(out, "192.168.0.44") {
						return fmt.Errorf("001 keeps 004's FDB entry:\n%s", out)
					}
					return l.linkPods(t, "", "multicluster-test-007")(nil)
				},
			},
			{
				// Calico moves 005's block: found at the next plan, on every node that routes
				// to it (the other clusters'), and nowhere else.
				PreConfig: func() {
					k := l.kube["test-cluster3"]
					if err := k.DeleteBlockAffinity(context.Background(), "multicluster-test-005-a"); err != nil {
						t.Fatal(err)
					}
					if err := k.AddBlockAffinity(context.Background(), "multicluster-test-005-b", "multicluster-test-005", "10.236.116.0/24"); err != nil {
						t.Fatal(err)
					}
				},
				Config: all + linkHCL("link", "nodenet") + natPool,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					expectMemberChanges{addr, []string{"test-cluster1/multicluster-test-001", "test-cluster1/multicluster-test-002",
						"test-cluster2/multicluster-test-003", "test-cluster2/multicluster-test-007"}},
				}},
				Check: func(*terraform.State) error {
					routes := run(t, n1, "ip", "route")
					if !strings.Contains(routes, "10.236.116.0/24 via 179.17.1.5") || strings.Contains(routes, "10.236.115.0/24") {
						return fmt.Errorf("001's routes after the block moved:\n%s", routes)
					}
					return nil
				},
			},
			{
				// ... and back.
				PreConfig: func() {
					k := l.kube["test-cluster3"]
					if err := k.DeleteBlockAffinity(context.Background(), "multicluster-test-005-b"); err != nil {
						t.Fatal(err)
					}
					if err := k.AddBlockAffinity(context.Background(), "multicluster-test-005-a", "multicluster-test-005", "10.236.115.0/24"); err != nil {
						t.Fatal(err)
					}
				},
				Config: all + linkHCL("link", "nodenet") + natPool,
				Check:  l.linkPods(t, ""),
			},
			{
				// A route deleted by hand on 001: planned on exactly 001, and repaired.
				PreConfig: func() { run(t, n1, "ip", "route", "del", "10.236.115.0/24") },
				Config:    all + linkHCL("link", "nodenet") + natPool,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{expectMemberChanges{addr, []string{"test-cluster1/multicluster-test-001"}}},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: l.linkPods(t, ""),
			},
			{
				// Import by name into another address: it takes the link over.
				Config:             all + linkHCL("link", "nodenet") + linkHCL("imported", "nodenet") + natPool,
				ResourceName:       "nodenet_cluster_link.imported",
				ImportState:        true,
				ImportStateId:      "multicluster",
				ImportStatePersist: true,
				ImportStateCheck: func(s []*terraform.InstanceState) error {
					for _, is := range s {
						if is.Attributes["name"] == "multicluster" && is.Attributes["members.%"] == "6" && is.Attributes["snat_exemption"] == "nodenet" &&
							is.Attributes["overlay_cidr"] == "179.17.1.0/24" && is.Attributes["vni"] == "10001" {
							return nil
						}
					}
					return fmt.Errorf("no imported link with the link's settings: %v", s)
				},
			},
			{
				Config:           all + linkHCL("imported", "nodenet") + natPool,
				Check:            l.linkPods(t, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
		},
	})
}

// TestAccClusterLink_badInput: what cannot be linked is refused at plan time, naming it.
func TestAccClusterLink_badInput(t *testing.T) {
	l := newLab(t, lab.Multicluster(""))
	link := func(clusters string) string {
		return l.ProviderHCL() + fmt.Sprintf(`
resource "nodenet_cluster_link" "l" {
  name         = "l"
  clusters     = { %s }
  vni          = 10001
  overlay_cidr = "179.17.1.0/24"
}
`, clusters)
	}
	c := func(name, pods string) string {
		return fmt.Sprintf(`"%s" = { pod_cidr = %q, service_cidr = "%s" }`, name, pods, strings.Replace(pods, ".64.0/18", ".0.0/18", 1))
	}
	tunnel := `
resource "nodenet_vxlan_tunnel" "t" {
  name    = "vxlan-link"
  vni     = 7
  members = { "test-cluster1/multicluster-test-001" = { underlay = "eth0", address = "10.9.9.1/24" } }
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{Config: link(c("test-cluster1", "10.234.64.0/18") + ", " + c("test-cluster2", "10.234.96.0/19")), PlanOnly: true,
				ExpectError: wsRegexp(`the pod CIDR 10.234.96.0/19 of test-cluster2 overlaps the pod CIDR 10.234.64.0/18 of test-cluster1`)},
			{Config: link(c("test-cluster1", "10.234.64.0/18")), PlanOnly: true, ExpectError: wsRegexp(`at least 2 elements|two clusters or more`)},
			{Config: link(c("test-cluster1", "10.234.64.0/18") + ", " + c("nowhere", "10.235.64.0/18")), PlanOnly: true,
				ExpectError: wsRegexp(`"nowhere" is not a cluster of the provider's configuration`)},
			{Config: link(c("test-cluster1", "10.234.64.0/18") + `, "test-cluster2" = {}`), PlanOnly: true,
				ExpectError: wsRegexp(`cluster test-cluster2 has no kubernetes attribute[\s\S]*give pod_cidr`)},
			{Config: link(`"test-cluster1" = { pod_cidr = "10.234.64.0/18", blocks = { "multicluster-test-001" = ["10.99.0.0/24"] } }, ` + c("test-cluster2", "10.235.64.0/18")),
				PlanOnly: true, ExpectError: wsRegexp(`node test-cluster1/multicluster-test-001 holds block 10.99.0.0/24, which is outside[\s\S]*pod CIDR 10.234.64.0/18`)},
			{Config: l.ProviderHCL() + tunnel},
			{Config: tunnel + link(c("test-cluster1", "10.234.64.0/18")+", "+c("test-cluster2", "10.235.64.0/18")), PlanOnly: true,
				ExpectError: wsRegexp(`Managed by another resource[\s\S]*vxlan_tunnel/vxlan-link[\s\S]*nodenet_vxlan_tunnel:`)},
		},
	})
}

// wsRegexp compiles a pattern in which every space matches any white space (Terraform wraps
// long messages).
func wsRegexp(pattern string) *regexp.Regexp {
	return regexp.MustCompile(strings.ReplaceAll(pattern, " ", `\s+`))
}

// TestAccClusterLink_blocksFromPools: without Kubernetes access, a cluster's blocks can be
// its nodenet pool's allocations (as the agents hold them) or given: the other cluster's
// node routes to each.
func TestAccClusterLink_blocksFromPools(t *testing.T) {
	l := newLab(t, hosts(3))
	n3 := l.Hosts[2]
	config := l.ProviderHCL() + `
resource "nodenet_ippool" "c1" {
  cluster = "c1"
  cidr    = "10.250.0.0/16"
}

resource "nodenet_cluster_link" "l" {
  name = "l"
  clusters = {
    c1 = { pod_cidr = "10.250.0.0/16", service_cidr = "10.252.0.0/16", blocks_from = "nodenet" }
    c2 = { pod_cidr = "10.251.0.0/16", blocks = { n3 = ["10.251.0.0/24"] } }
  }
  vni          = 10001
  overlay_cidr = "179.19.0.0/24"
  depends_on   = [nodenet_ippool.c1]
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy:             func(*terraform.State) error { return noVxlan(l) },
		Steps: []resource.TestStep{
			{
				// The pool is planned in the same run: the link plans with its allocations.
				Config: config,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("nodenet_cluster_link.l", "blocks.c1/n1", "10.250.0.0/26"),
					resource.TestCheckResourceAttr("nodenet_cluster_link.l", "blocks.c1/n2", "10.250.0.64/26"),
					resource.TestCheckResourceAttr("nodenet_cluster_link.l", "clusters.c2.blocks_from", "static"),
					func(*terraform.State) error {
						routes := run(t, n3, "ip", "route")
						for _, want := range []string{"10.250.0.0/26 via 179.19.0.1 dev vxlan-link", "10.250.0.64/26 via 179.19.0.2 dev vxlan-link"} {
							if !strings.Contains(routes, want) {
								return fmt.Errorf("n3 lacks %q:\n%s", want, routes)
							}
						}
						if out := run(t, l.Hosts[0], "ip", "route"); !strings.Contains(out, "10.251.0.0/24 via 179.19.0.3 dev vxlan-link") {
							return fmt.Errorf("n1 lacks the route to n3's given block:\n%s", out)
						}
						return nil
					},
				),
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
		},
	})
}
