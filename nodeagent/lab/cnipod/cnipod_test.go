package cnipod

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/cnifile"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
	"github.com/nodenet/terraform-provider-nodenet/provider/cniconf"
)

const confFile = "10-nodenet.conflist"

var block = netip.MustParsePrefix("10.244.0.64/26")

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2")
	}
}

// oneHost is a lab of one host without pods or agent.
func oneHost(t *testing.T) (*lab.Lab, *lab.Host) {
	t.Helper()
	prefix := fmt.Sprintf("nnlab%d-%s-", os.Getpid(), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
	l, err := lab.Up(context.Background(), lab.Options{Prefix: prefix, Dir: t.TempDir(), Hosts: []lab.HostSpec{
		{Cluster: "c1", Name: "node-1", UnderlayIP: netip.MustParsePrefix("192.168.0.10/24")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Error(err)
		}
		if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), prefix) {
			t.Errorf("namespaces left after Down:\n%s", out)
		}
	})
	return l, l.Hosts[0]
}

// writeConf puts text into the host's CNI configuration directory as the agent does.
func writeConf(t *testing.T, h *lab.Host, file, text string) {
	t.Helper()
	steps, err := cnifile.Steps(h.CNIConfDir, file, text, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := dataplane.Run("cni configuration", steps, nil); err != nil {
		t.Fatal(err)
	}
}

func add(t *testing.T, l *lab.Lab, h *lab.Host, name string) *Pod {
	t.Helper()
	p, err := Add(context.Background(), l, h, name, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Delete(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return p
}

func run(t *testing.T, what string, f func(...string) (string, error), args ...string) string {
	t.Helper()
	out, err := f(args...)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return out
}

// TestPodsFromRenderedConfig: the configuration cniconf renders for a block, written into
// the host's CNI directory, gives two pods made by ptp and host-local through libcni
// addresses from the block, a default route via the block's gateway and the MTU; each
// reaches the host and the other; CNI DEL releases the address and takes the veth away.
func TestPodsFromRenderedConfig(t *testing.T) {
	needRoot(t)
	Require(t)
	l, h := oneHost(t)
	text, err := cniconf.Render(cniconf.Config{Network: "nodenet", Block: block, MTU: 1450, DataDir: h.CNIDataDir})
	if err != nil {
		t.Fatal(err)
	}
	writeConf(t, h, confFile, text)

	p1 := add(t, l, h, "web-1")
	p2 := add(t, l, h, "web-2")
	gw := cniconf.Gateway(block)
	for i, p := range []*Pod{p1, p2} {
		// host-local hands out the block's addresses in order, skipping the gateway.
		want := netip.PrefixFrom(gw.Next(), block.Bits())
		if i == 1 {
			want = netip.PrefixFrom(gw.Next().Next(), block.Bits())
		}
		if p.Addr != want || p.Gateway != gw || p.Network != "nodenet" || p.ConfFile != filepath.Join(h.CNIConfDir, confFile) {
			t.Errorf("pod %s: address %v gateway %v network %s from %s; want %v via %v", p.Name, p.Addr, p.Gateway, p.Network, p.ConfFile, want, gw)
		}
		if !strings.HasPrefix(p.NS, l.Prefix) {
			t.Errorf("pod namespace %s is not the lab's", p.NS)
		}
		addr := run(t, "pod address", p.Run, "ip", "-4", "-o", "addr", "show", "eth0")
		routes := run(t, "pod routes", p.Run, "ip", "-4", "route")
		link := run(t, "pod link", p.Run, "ip", "-o", "link", "show", "eth0")
		t.Logf("pod %s:\n%s%s", p.Name, addr, routes)
		if !strings.Contains(addr, "inet "+want.String()+" ") || !strings.Contains(link, "mtu 1450 ") {
			t.Errorf("pod %s eth0:\n%s%s", p.Name, addr, link)
		}
		for _, r := range []string{"default via " + gw.String() + " dev eth0", block.String() + " via " + gw.String() + " dev eth0", gw.String() + " dev eth0 scope link"} {
			if !strings.Contains(routes, r) {
				t.Errorf("pod %s lacks route %q:\n%s", p.Name, r, routes)
			}
		}
		if out, err := p.Run("ping", "-c1", "-W2", h.UnderlayIP.Addr().String()); err != nil {
			t.Errorf("pod %s -> host %v: %v\n%s", p.Name, h.UnderlayIP.Addr(), err, out)
		}
	}
	hostAddrs := run(t, "host addresses", h.Run, "ip", "-4", "-o", "addr", "show")
	hostRoutes := run(t, "host routes", h.Run, "ip", "-4", "route")
	t.Logf("host %s:\n%s%s", h.Name, hostAddrs, hostRoutes)
	if n := strings.Count(hostAddrs, "inet "+gw.String()+"/32 "); n != 2 {
		t.Errorf("host: gateway %v/32 on %d veths, want 2:\n%s", gw, n, hostAddrs)
	}
	for _, p := range []*Pod{p1, p2} {
		if !strings.Contains(hostRoutes, p.Addr.Addr().String()+" dev veth") {
			t.Errorf("host has no route to pod %v over its veth:\n%s", p.Addr.Addr(), hostRoutes)
		}
	}
	// Pod to pod on one node: through the host, as every packet of a ptp pod.
	if out, err := p1.Run("ping", "-c1", "-W2", p2.Addr.Addr().String()); err != nil {
		t.Errorf("pod -> pod on the node: %v\n%s", err, out)
	} else if !strings.Contains(out, "ttl=63") {
		t.Errorf("pod -> pod did not cross the host (one hop):\n%s", out)
	}

	// DEL releases the lease and removes the pod's veth and route; the other pod stays.
	lease := filepath.Join(h.CNIDataDir, "nodenet", p1.Addr.Addr().String())
	if b, err := os.ReadFile(lease); err != nil || !strings.Contains(string(b), p1.ContainerID) {
		t.Fatalf("host-local lease %s: %q %v", lease, b, err)
	}
	if err := p1.Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lease); !os.IsNotExist(err) {
		t.Errorf("lease %s after CNI DEL: %v", lease, err)
	}
	if _, err := os.Stat(p1.NSPath); !os.IsNotExist(err) {
		t.Errorf("pod namespace after Delete: %v", err)
	}
	if out := run(t, "host routes", h.Run, "ip", "-4", "route"); strings.Contains(out, p1.Addr.Addr().String()) {
		t.Errorf("host keeps a route to the deleted pod:\n%s", out)
	}
	if out := run(t, "host addresses", h.Run, "ip", "-4", "-o", "addr", "show"); strings.Count(out, "inet "+gw.String()+"/32 ") != 1 {
		t.Errorf("host addresses after one DEL:\n%s", out)
	}
	if out, err := p2.Run("ping", "-c1", "-W2", h.UnderlayIP.Addr().String()); err != nil {
		t.Errorf("the other pod after DEL: %v\n%s", err, out)
	}
	if err := p1.Delete(context.Background()); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

// TestLinkLocalGatewayFails is why cniconf's gateway is in the block: with Calico's
// 169.254.1.1, ptp cannot add the pod's default route. Add undoes the failed ADD: no
// namespace, no lease, no veth on the host.
func TestLinkLocalGatewayFails(t *testing.T) {
	needRoot(t)
	Require(t)
	l, h := oneHost(t)
	text := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"calico-like","plugins":[{"type":"ptp","mtu":1450,"ipMasq":false,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q,"gateway":"169.254.1.1"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}}]}`,
		block, h.CNIDataDir)
	writeConf(t, h, confFile, text)
	_, err := Add(context.Background(), l, h, "web-1", Options{})
	if err == nil || !strings.Contains(err.Error(), "network is unreachable") {
		t.Fatalf("Add with a link-local gateway: %v", err)
	}
	t.Log(err)
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), l.Prefix+"h1-web-1") {
		t.Errorf("the failed pod's namespace stays:\n%s", out)
	}
	leases, _ := filepath.Glob(filepath.Join(h.CNIDataDir, "calico-like", "10.*"))
	if len(leases) != 0 {
		t.Errorf("leases after the failed ADD: %v", leases)
	}
	out := run(t, "host links", h.Run, "ip", "-o", "link", "show", "type", "veth")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) < 2 || !strings.HasPrefix(f[1], "eth0@") {
			t.Errorf("host keeps a veth besides its underlay eth0:\n%s", out)
		}
	}
}

// TestRefusesLeasesOutsideTheLab: host-local's default data dir is the machine's; Add
// refuses before making anything.
func TestRefusesLeasesOutsideTheLab(t *testing.T) {
	needRoot(t)
	l, h := oneHost(t)
	text, err := cniconf.Render(cniconf.Config{Network: "nodenet", Block: block, MTU: 1450})
	if err != nil {
		t.Fatal(err)
	}
	writeConf(t, h, confFile, text)
	if _, err := Add(context.Background(), l, h, "web-1", Options{}); err == nil || !strings.Contains(err.Error(), "outside the lab's directory") {
		t.Fatalf("Add: %v", err)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), l.Prefix+"h1-") {
		t.Errorf("a pod namespace was made:\n%s", out)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := load(dir, ""); err == nil || !strings.Contains(err.Error(), "no CNI configuration list") {
		t.Errorf("empty dir: %v", err)
	}
	for file, name := range map[string]string{"20-b.conflist": "b", "10-a.conflist": "a", "05-x.conf": "x"} {
		text, err := cniconf.Render(cniconf.Config{Network: name, Block: block})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if f, list, err := load(dir, ""); err != nil || list.Name != "a" || filepath.Base(f) != "10-a.conflist" {
		t.Errorf("first: %s %v %v", f, list, err)
	}
	if f, list, err := load(dir, "b"); err != nil || list.Name != "b" || filepath.Base(f) != "20-b.conflist" {
		t.Errorf("by name: %s %v %v", f, list, err)
	}
	if _, _, err := load(dir, "x"); err == nil || !strings.Contains(err.Error(), `named "x"`) {
		t.Errorf(".conf file taken as a list: %v", err)
	}
}

// TestAttach: one plugin's configuration, as a NetworkAttachmentDefinition holds it, added
// as a second interface of an existing namespace and removed again, as Multus does.
func TestAttach(t *testing.T) {
	needRoot(t)
	Require(t)
	l, h := oneHost(t)
	ns, err := l.AddNamespace("pod")
	if err != nil {
		t.Fatal(err)
	}
	nsPath := filepath.Join(lab.NetnsDir, ns)
	config := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"second","type":"ptp","ipam":{"type":"host-local","ranges":[[{"subnet":"10.250.0.0/28"}]],"dataDir":%q}}`, h.CNIDataDir)
	res, detach, err := Attach(context.Background(), h, nsPath, "net1", config)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.250.0.2/28" {
		t.Errorf("result %+v", res)
	}
	if out, err := lab.RunIn(ns, "ping", "-c1", "-W2", h.UnderlayIP.Addr().String()); err == nil {
		t.Errorf("reached the host without a route to it:\n%s", out)
	}
	if out, err := lab.RunIn(ns, "ping", "-c1", "-W2", "10.250.0.1"); err != nil {
		t.Errorf("net1's gateway: %v\n%s", err, out)
	}
	if err := detach(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out, err := lab.RunIn(ns, "ip", "link", "show", "net1"); err == nil {
		t.Errorf("net1 after DEL:\n%s", out)
	}
	if leases, _ := filepath.Glob(filepath.Join(h.CNIDataDir, "second", "10.*")); len(leases) != 0 {
		t.Errorf("leases after DEL: %v", leases)
	}
}
