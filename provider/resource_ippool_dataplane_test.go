package provider

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab/cnipod"
)

// The IP pool in the dataplane (issue 7): NAT, encapsulation and pods made by the reference
// CNI plugins from the configuration the agents write.

// pods makes the CNI pods of a test: a pod per host and network, from the configuration the
// host's agent wrote; Delete removes them all (before a destroy, whose byte-identical checks
// would otherwise see their routes).
type pods struct {
	t   *testing.T
	l   *lab.Lab
	all []*cnipod.Pod
}

func (p *pods) add(h *lab.Host, name, network string) *cnipod.Pod {
	p.t.Helper()
	pod, err := cnipod.Add(context.Background(), p.l, h, name, cnipod.Options{Network: network})
	if err != nil {
		p.t.Fatalf("CNI ADD of pod %s on %s: %v", name, h.Name, err)
	}
	p.all = append(p.all, pod)
	return pod
}

func (p *pods) deleteAll() {
	for _, pod := range p.all {
		if err := pod.Delete(context.Background()); err != nil {
			p.t.Errorf("CNI DEL of pod %s: %v", pod.Name, err)
		}
	}
	p.all = nil
}

func newPods(t *testing.T, l *lab.Lab) *pods {
	cnipod.Require(t)
	p := &pods{t: t, l: l}
	t.Cleanup(p.deleteAll)
	return p
}

// podPing pings addr from the pod.
func cniPing(pod *cnipod.Pod, addr netip.Addr) error {
	var out string
	var err error
	for try := 0; try < 3; try++ {
		if out, err = pod.Run("ping", "-c", "1", "-W", "2", addr.String()); err == nil {
			return nil
		}
	}
	return fmt.Errorf("ping %s from pod %s (%s): %v\n%s", addr, pod.Name, pod.Addr.Addr(), err, out)
}

// udpSource sends a UDP datagram from namespace fromNS to addr, where a listener in
// namespace toNS receives it, and returns the source address the receiver sees.
func udpSource(fromNS, toNS string, addr netip.Addr) (string, error) {
	var conn net.PacketConn
	if err := lab.InNamespace(toNS, func() (err error) {
		conn, err = net.ListenPacket("udp4", ":46999")
		return err
	}); err != nil {
		return "", err
	}
	defer conn.Close()
	var out net.Conn
	if err := lab.InNamespace(fromNS, func() (err error) {
		out, err = net.Dial("udp4", net.JoinHostPort(addr.String(), "46999"))
		return err
	}); err != nil {
		return "", err
	}
	defer out.Close()
	buf := make([]byte, 64)
	for try := 0; try < 3; try++ {
		if _, err := out.Write([]byte("nodenet")); err != nil {
			return "", err
		}
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, from, err := conn.ReadFrom(buf); err == nil {
			return from.(*net.UDPAddr).IP.String(), nil
		}
	}
	return "", fmt.Errorf("no datagram from %s reached %s in %s", fromNS, addr, toNS)
}

// expectSource fails unless a datagram from the pod to addr (received in toNS) arrives
// from want.
func expectSource(pod *cnipod.Pod, toNS string, addr netip.Addr, want string) error {
	got, err := udpSource(pod.NS, toNS, addr)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("a datagram from pod %s (%s) to %s arrived from %s, want %s", pod.Name, pod.Addr.Addr(), addr, got, want)
	}
	return nil
}

// dataplaneSnapshot is what a destroy must leave byte-identical: the nftables ruleset and the
// main routing table.
func dataplaneSnapshot(h *lab.Host) string {
	rules, _ := h.Run("nft", "list", "ruleset")
	routes, _ := h.Run("ip", "route")
	links, _ := h.Run("ip", "-o", "link", "show")
	return "ruleset:\n" + rules + "\nroutes:\n" + routes + "\nlinks:\n" + stripLinkCounters(links)
}

// stripLinkCounters keeps a link list's names and types only (indexes and states of the
// hosts' own links are not what a destroy changes).
func stripLinkCounters(s string) string {
	var names []string
	for _, ln := range strings.Split(strings.TrimSpace(s), "\n") {
		if f := strings.Fields(ln); len(f) > 1 {
			names = append(names, strings.TrimSuffix(f[1], ":"))
		}
	}
	return strings.Join(names, " ")
}

// txPackets is the number of packets the device sent.
func txPackets(h *lab.Host, dev string) int {
	out, err := h.Run("cat", "/sys/class/net/"+dev+"/statistics/tx_packets")
	if err != nil {
		return -1
	}
	n, _ := strconv.Atoi(strings.TrimSpace(out))
	return n
}

// natLab is two nodes of one cluster and an outside host: the lab's router on the underlay
// (192.168.0.1) stands for the internet and, with 10.246.0.5, for another cluster's pod CIDR
// that node n1 routes to it (the disabled pool of that CIDR exempts it from NAT).
func natLab(t *testing.T) *lab.Lab {
	o := hosts(2)
	o.Router = &lab.RouterSpec{Addrs: []netip.Prefix{mustPrefix("192.168.0.1/24"), mustPrefix("198.51.100.1/24")}}
	l := newLab(t, o)
	if _, err := l.Router.Run("ip", "addr", "add", "10.246.0.5/32", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	run(t, l.Hosts[0], "ip", "route", "add", "10.246.0.0/16", "via", "192.168.0.1")
	return l
}

const natPools = `
resource "nodenet_ippool" "pods" {
  cluster       = "c1"
  cidr          = "10.244.0.0/16"
  nat_outgoing  = true
  encapsulation = "vxlan"
  cni           = {}
}

resource "nodenet_ippool" "other" {
  cluster       = "c1"
  cidr          = "10.245.0.0/16"
  encapsulation = "vxlan"
  vxlan_vni     = 4097
  cni           = { network = "other", file = "20-other.conflist" }
}

# Another cluster's pod CIDR: disabled, so no node gets a block of it, and traffic to it is
# never masqueraded (as the multi-cluster write-up's disabled Calico IPPools do).
resource "nodenet_ippool" "remote" {
  cluster  = "c1"
  cidr     = "10.246.0.0/16"
  disabled = true
}
`

// TestAccIPPool_natVxlanAndCNI: pools with nat_outgoing and VXLAN encapsulation on two
// nodes, pods made by the reference ptp and host-local plugins from the configurations the
// agents write. A pod's datagram to an address outside every pool arrives from its node's
// address; to another pool (enabled, or disabled) from the pod's own. The NAT table, the
// pool's VXLAN entries and the CNI file changed by hand each show in the plan and apply
// repairs them; destroy leaves `nft list ruleset` (a foreign table included) and `ip route`
// as they were.
func TestAccIPPool_natVxlanAndCNI(t *testing.T) {
	l := natLab(t)
	n1, n2 := l.Hosts[0], l.Hosts[1]
	ps := newPods(t, l)
	config := l.ProviderHCL() + natPools
	before := map[string]string{}
	var p1, p2, q2 *cnipod.Pod
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy: func(*terraform.State) error {
			for _, h := range l.Hosts {
				if after := dataplaneSnapshot(h); after != before[h.Name] {
					return fmt.Errorf("%s is not as it was before create:\n--- before\n%s\n--- after\n%s", h.Name, before[h.Name], after)
				}
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				PreConfig: func() {
					// Calico's table, which nodenet must never touch.
					run(t, n1, "nft", "add", "table", "ip", "calico")
					run(t, n1, "nft", "add", "chain", "ip", "calico", "nat-postrouting", "{ type nat hook postrouting priority 90; }")
					for _, h := range l.Hosts {
						before[h.Name] = dataplaneSnapshot(h)
					}
				},
				Config: config,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("nodenet_ippool.pods", "nat.n1", "masquerade 10.244.0.0/16 to destinations outside every pool"),
					resource.TestCheckResourceAttr("nodenet_ippool.other", "nat.n1", ""),
					resource.TestCheckResourceAttr("nodenet_ippool.remote", "allocations.%", "0"),
					func(*terraform.State) error {
						p1 = ps.add(n1, "p1", "k8s-pod-network")
						p2 = ps.add(n2, "p2", "k8s-pod-network")
						q2 = ps.add(n2, "q2", "other")
						if !netip.MustParsePrefix("10.244.0.0/16").Contains(p1.Addr.Addr()) || !netip.MustParsePrefix("10.245.0.0/16").Contains(q2.Addr.Addr()) {
							return fmt.Errorf("pods got %s and %s, not addresses of their pools", p1.Addr, q2.Addr)
						}
						if err := cniPing(p1, p2.Addr.Addr()); err != nil {
							return err
						}
						if err := expectSource(p1, l.Router.NS, netip.MustParseAddr("192.168.0.1"), "192.168.0.21"); err != nil {
							return fmt.Errorf("outside every pool: %w", err)
						}
						if err := expectSource(p1, l.Router.NS, netip.MustParseAddr("10.246.0.5"), p1.Addr.Addr().String()); err != nil {
							return fmt.Errorf("to the disabled pool: %w", err)
						}
						if err := expectSource(p1, q2.NS, q2.Addr.Addr(), p1.Addr.Addr().String()); err != nil {
							return fmt.Errorf("to the other pool: %w", err)
						}
						return expectSource(p1, p2.NS, p2.Addr.Addr(), p1.Addr.Addr().String())
					},
				),
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
			{
				// Drift by hand: the masquerade rule and an exemption deleted on n1, an element
				// no pool explains added on n2, an FDB entry of the pool's tunnel and the CNI
				// file changed on n2. Each shows in the plan; apply repairs exactly that.
				PreConfig: func() {
					run(t, n1, "nft", "flush", "chain", "ip", "nodenet", "postrouting")
					run(t, n1, "nft", "delete", "element", "ip", "nodenet", "masq_exempt", "{ 10.245.0.0/16 }")
					run(t, n2, "nft", "add", "element", "ip", "nodenet", "masq_exempt", "{ 10.99.0.0/16 }")
					dev := defaultTunnelDevice(encapVXLAN, netip.MustParsePrefix("10.244.0.0/16")) // the pods pool's
					fdb := strings.Fields(run(t, n2, "bridge", "fdb", "show", "dev", dev))
					run(t, n2, "bridge", "fdb", "del", fdb[0], "dev", dev)
					run(t, n2, "sh", "-c", "echo '{}' > "+n2.CNIConfDir+"/10-nodenet.conflist")
					if err := expectSource(p1, l.Router.NS, netip.MustParseAddr("192.168.0.1"), p1.Addr.Addr().String()); err != nil {
						t.Fatalf("without the rule the pod's traffic should leave unmasqueraded: %v", err)
					}
				},
				Config: config,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("nodenet_ippool.pods", plancheck.ResourceActionUpdate),
						expectBefore{"nodenet_ippool.pods", []string{"nat", "n1"}, "drift: - rule masquerade\ndrift: - exempt 10.245.0.0/16"},
						expectBefore{"nodenet_ippool.pods", []string{"nat", "n2"}, "masquerade 10.244.0.0/16 to destinations outside every pool\ndrift: + exempt 10.99.0.0/16"},
						expectBefore{"nodenet_ippool.pods", []string{"cni_config", "n2"}, "{}\n"},
						expectMapChanges{"nodenet_ippool.pods", "tunnels", []string{"n2"}},
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(*terraform.State) error {
					if err := expectSource(p1, l.Router.NS, netip.MustParseAddr("192.168.0.1"), "192.168.0.21"); err != nil {
						return fmt.Errorf("after the repair: %w", err)
					}
					return cniPing(p1, p2.Addr.Addr())
				},
			},
			{
				// The pods go before the destroy (their routes are the plugins', not nodenet's).
				PreConfig: ps.deleteAll,
				Config:    config,
			},
		},
	})
}

// crossSubnetLab: n1 and n2 in 192.168.1.0/24, n3 in 192.168.2.0/24, the lab's router between.
func crossSubnetLab(t *testing.T) *lab.Lab {
	return newLab(t, lab.Options{
		Hosts: []lab.HostSpec{
			{Cluster: "c1", Name: "n1", UnderlayIP: mustPrefix("192.168.1.11/24")},
			{Cluster: "c1", Name: "n2", UnderlayIP: mustPrefix("192.168.1.12/24")},
			{Cluster: "c1", Name: "n3", UnderlayIP: mustPrefix("192.168.2.13/24")},
		},
		Router: &lab.RouterSpec{Addrs: []netip.Prefix{mustPrefix("192.168.1.1/24"), mustPrefix("192.168.2.1/24")}},
	})
}

// TestAccIPPool_crossSubnet: VXLAN cross_subnet over nodes in two underlay subnets with a
// router between: n1 reaches n2's block directly (its route goes via n2's address, and the
// VXLAN device sends nothing), and n3's through the tunnel (the device's counter grows);
// pods ping both ways.
func TestAccIPPool_crossSubnet(t *testing.T) {
	l := crossSubnetLab(t)
	n1, n2, n3 := l.Hosts[0], l.Hosts[1], l.Hosts[2]
	ps := newPods(t, l)
	config := l.ProviderHCL() + `
resource "nodenet_ippool" "pods" {
  cluster            = "c1"
  cidr               = "10.244.0.0/16"
  encapsulation      = "vxlan"
  encapsulation_mode = "cross_subnet"
  cni                = {}
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: func(s *terraform.State) error {
					a := s.RootModule().Resources["nodenet_ippool.pods"].Primary.Attributes
					dev := a["tunnel_device"]
					b2, b3 := a["allocations.n2"], a["allocations.n3"]
					if got := strings.TrimSpace(run(t, n1, "ip", "route", "show", "exact", b2)); got != b2+" via 192.168.1.12 dev eth0 proto 147" {
						return fmt.Errorf("n1's route to n2's block %s is %q, want a direct one via 192.168.1.12", b2, got)
					}
					if got := strings.TrimSpace(run(t, n1, "ip", "route", "show", "exact", b3)); !strings.Contains(got, "dev "+dev) || !strings.Contains(got, "onlink") {
						return fmt.Errorf("n1's route to n3's block %s is %q, want one through %s", b3, got, dev)
					}
					p1, p2, p3 := ps.add(n1, "p1", ""), ps.add(n2, "p2", ""), ps.add(n3, "p3", "")
					tx := txPackets(n1, dev)
					if err := cniPing(p1, p2.Addr.Addr()); err != nil {
						return err
					}
					if now := txPackets(n1, dev); now != tx {
						return fmt.Errorf("traffic to n2 in n1's subnet went through %s (%d -> %d packets sent)", dev, tx, now)
					}
					if err := cniPing(p1, p3.Addr.Addr()); err != nil {
						return err
					}
					if now := txPackets(n1, dev); now <= tx {
						return fmt.Errorf("traffic to n3 in another subnet did not go through %s (%d -> %d packets sent)", dev, tx, now)
					}
					if err := cniPing(p3, p2.Addr.Addr()); err != nil {
						return err
					}
					ps.deleteAll()
					return nil
				},
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()}},
			},
		},
	})
}

// TestAccIPPool_dataplaneBadInput: what cannot work is refused at plan time, naming the
// attribute (and, for a kernel without ipip, the nodes).
func TestAccIPPool_dataplaneBadInput(t *testing.T) {
	l := newLab(t, hosts(2))
	pool := func(body string) string {
		return l.ProviderHCL() + "resource \"nodenet_ippool\" \"p\" {\n  cluster = \"c1\"\n  cidr = \"10.244.0.0/16\"\n" + body + "}\n"
	}
	cases := []struct{ body, want string }{
		{`encapsulation = "ipip"` + "\n", `encapsulation "ipip" needs the ipip kernel module, which the kernels of\s+c1/n1, c1/n2 lack`},
		{`encapsulation = "vxlan"` + "\n" + `encapsulation_mode = "sometimes"` + "\n", `Attribute encapsulation_mode value must be one of`},
		{`encapsulation = "gre"` + "\n", `Attribute encapsulation value must be one of`},
		{`encapsulation_mode = "cross_subnet"` + "\n", `encapsulation_mode cross_subnet[\s\S]*needs encapsulation vxlan or ipip`},
		{`tunnel_device = "vxlan-x"` + "\n", `tunnel_device names the pool's tunnel device: it needs encapsulation`},
		{`encapsulation = "vxlan"` + "\n" + `vxlan_vni = 0` + "\n", `vxlan_vni`},
		{`cni = { file = "../x.conf" }` + "\n", `Invalid CNI configuration file name`},
		{`cni = { network = "bad name" }` + "\n", `Invalid CNI network name`},
	}
	var steps []resource.TestStep
	for _, c := range cases {
		steps = append(steps, resource.TestStep{Config: pool(c.body), PlanOnly: true, ExpectError: regexp.MustCompile(c.want)})
	}
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: testProviders, Steps: steps})
}

// TestAccIPPool_encapsulationSwitch: a pool routed by BGP (encapsulation none) switched to
// vxlan and back, in place: the pods made before keep reaching each other after each switch;
// with vxlan the other node's block goes through the pool's device (the learned route gave
// way to it), and after switching back the learned route is there again and no device,
// FDB entry or neighbour of the pool is left.
func TestAccIPPool_encapsulationSwitch(t *testing.T) {
	l := newExecLab(t, lab.Options{NoPodRoutes: true, Hosts: []lab.HostSpec{
		{Cluster: "demo", Name: "node1", UnderlayIP: mustPrefix("10.20.30.30/24")},
		{Cluster: "demo", Name: "node2", UnderlayIP: mustPrefix("10.20.30.31/24")},
	}})
	n1, n2 := l.Hosts[0], l.Hosts[1]
	ps := newPods(t, l)
	config := func(encap string) string {
		return l.ProviderHCL() + fmt.Sprintf(`
resource "nodenet_bgp_config" "demo" {
  cluster = "demo"
  asn     = 64512
}

resource "nodenet_ippool" "pods" {
  cluster       = "demo"
  cidr          = "10.244.0.0/16"
  encapsulation = %q
  cni           = {}
  depends_on    = [nodenet_bgp_config.demo]
}
`, encap)
	}
	var p1, p2 *cnipod.Pod
	learned := "10.244.0.64/26 via 10.20.30.31 dev eth0 proto 147"
	routed := func(want func(got string) error) func(*terraform.State) error {
		return func(*terraform.State) error {
			deadline := time.Now().Add(15 * time.Second)
			for {
				got := strings.TrimSpace(run(t, n1, "ip", "route", "show", "exact", "10.244.0.64/26"))
				err := want(got)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					return err
				}
				time.Sleep(100 * time.Millisecond)
			}
			if p1 == nil {
				p1, p2 = ps.add(n1, "p1", ""), ps.add(n2, "p2", "")
			}
			if err := cniPing(p1, p2.Addr.Addr()); err != nil {
				return err
			}
			return cniPing(p2, p1.Addr.Addr())
		}
	}
	viaBGP := routed(func(got string) error {
		if got != learned {
			return fmt.Errorf("node1's route to node2's block is %q, want the learned %q", got, learned)
		}
		for _, h := range l.Hosts {
			if out := run(t, h, "ip", "-o", "link", "show", "type", "vxlan"); strings.TrimSpace(out) != "" {
				return fmt.Errorf("%s keeps a vxlan device: %s", h.Name, out)
			}
		}
		return nil
	})
	viaVxlan := routed(func(got string) error {
		if !strings.Contains(got, "via 10.244.0.64 dev vxlan-") || !strings.Contains(got, "onlink") {
			return fmt.Errorf("node1's route to node2's block is %q, want one through the pool's vxlan device", got)
		}
		return nil
	})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{Config: config("none"), Check: viaBGP},
			{
				Config: config("vxlan"), Check: viaVxlan,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction("nodenet_ippool.pods", plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			{
				Config: config("none"), Check: viaBGP,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction("nodenet_ippool.pods", plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			{
				PreConfig: func() {
					for _, h := range l.Hosts {
						if out := run(t, h, "ip", "neigh", "show", "nud", "permanent"); strings.Contains(out, "10.244.") {
							t.Fatalf("%s keeps the pool's neighbour entries: %s", h.Name, out)
						}
					}
					ps.deleteAll()
				},
				Config: config("none"),
			},
		},
	})
}

// expectMapChanges is a plan check: the resource's map attribute changes exactly at keys.
type expectMapChanges struct {
	address, attr string
	keys          []string
}

func (e expectMapChanges) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	for _, rc := range req.Plan.ResourceChanges {
		if rc.Address != e.address {
			continue
		}
		before, after := nested(rc.Change.Before, e.attr), nested(rc.Change.After, e.attr)
		var changed []string
		for k := range before {
			if fmt.Sprint(before[k]) != fmt.Sprint(after[k]) {
				changed = append(changed, k)
			}
		}
		for k := range after {
			if _, ok := before[k]; !ok {
				changed = append(changed, k)
			}
		}
		slices.Sort(changed)
		if !slices.Equal(changed, e.keys) {
			resp.Error = fmt.Errorf("%s: the plan changes %s at %v, want exactly %v", e.address, e.attr, changed, e.keys)
		}
		return
	}
	resp.Error = fmt.Errorf("%s: not in the plan", e.address)
}
