package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func needBird(t *testing.T) {
	t.Helper()
	for _, b := range []string{"bird", "birdc"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("needs BIRD 2 (%s not found; hack/deps.sh installs bird2)", b)
		}
	}
}

var (
	torIP   = netip.MustParseAddr("10.20.30.1")
	node1IP = netip.MustParseAddr("10.20.30.30") // the seed's node1
	node2IP = netip.MustParseAddr("10.20.30.31") // the seed's node2
	office  = netip.MustParsePrefix("192.168.1.0/24")
	dropNet = netip.MustParsePrefix("198.51.100.0/24")
	pool    = netip.MustParsePrefix("10.244.0.0/16")
	block1  = netip.MustParsePrefix("10.244.166.128/26")
	block2  = netip.MustParsePrefix("10.244.104.0/26")
)

const torASN, calicoASN = 64513, 64512

func torConfig(t *testing.T, password string, nodes ...netip.Addr) string {
	t.Helper()
	c := TorConfig{RouterID: torIP, ASN: torASN, Statics: []BirdStatic{{Prefix: office, Via: "office0"}, {Prefix: dropNet}}}
	for _, ip := range nodes {
		c.Neighbors = append(c.Neighbors, BirdNeighbor{Name: torPeer(ip), IP: ip, ASN: calicoASN, Password: password})
	}
	cfg, err := c.Render()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func torPeer(ip netip.Addr) string { return "node_" + strings.ReplaceAll(ip.String(), ".", "_") }

func seedConfig(t *testing.T, node netip.Addr, block netip.Prefix, torPassword string, mesh ...netip.Addr) string {
	t.Helper()
	c := CalicoSeedConfig{NodeIP: node, ASN: calicoASN, Block: block, Pool: pool,
		Neighbors: []BirdNeighbor{{IP: torIP, ASN: torASN, Password: torPassword}}}
	for _, ip := range mesh {
		c.Neighbors = append(c.Neighbors, BirdNeighbor{IP: ip})
	}
	cfg, err := c.Render()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestBirdConfigParse renders both configs and has BIRD parse them (`bird -p`, no root).
func TestBirdConfigParse(t *testing.T) {
	needBird(t)
	for name, cfg := range map[string]string{
		"tor":  torConfig(t, "s3cret", node1IP, node2IP),
		"seed": seedConfig(t, node1IP, block1, "s3cret", node2IP),
	} {
		f := filepath.Join(t.TempDir(), name+".conf")
		if err := os.WriteFile(f, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("bird", "-p", "-c", f).CombinedOutput(); err != nil {
			t.Errorf("%s config does not parse: %v\n%s\n%s", name, err, out, numbered(cfg))
		}
	}
	seed := seedConfig(t, node1IP, block1, "", node2IP)
	for _, want := range []string{"filter calico_export_to_bgp_peers", "filter calico_kernel_programming", "function calico_aggr ()",
		"template bgp bgp_template", "route 10.244.166.128/26 blackhole;", "persist;", "protocol bgp Mesh_10_20_30_31 from bgp_template",
		"protocol bgp Global_10_20_30_1 from bgp_template", "neighbor 10.20.30.1 as 64513;", "if ( net ~ 10.244.0.0/16 ) then"} {
		if !strings.Contains(seed, want) {
			t.Errorf("seed config lacks %q", want)
		}
	}
	if _, err := (TorConfig{RouterID: torIP, ASN: 1, Neighbors: []BirdNeighbor{{Name: "x", IP: node1IP, ASN: 2, Password: `a"b`}}}).Render(); err == nil {
		t.Error("password with a quote rendered")
	}
}

func TestBirdParsers(t *testing.T) {
	ps := parseProtocols(`Name       Proto      Table      State  Since         Info
device1    Device     ---        up     07:01:02.123  
Global_10_20_30_1 BGP        ---        up     2026-11-25 07:01:03  Established   
node_x     BGP        ---        start  07:01:02.123  Active        Socket: Connection refused
`)
	if p := ps["Global_10_20_30_1"]; p.Proto != "BGP" || p.State != "up" || p.Since != "2026-11-25 07:01:03" || p.Info != "Established" {
		t.Errorf("%+v", p)
	}
	if p := ps["node_x"]; p.Info != "Active Socket: Connection refused" || p.Since != "07:01:02.123" {
		t.Errorf("%+v", p)
	}
	rs := parseRoutes(`Table master4:
192.168.1.0/24       unicast [node_1 07:01:03.000] * (100) [AS64513i]
	via 10.20.30.1 on eth0
                     unicast [node_2 07:01:04.000] (100) [AS64513i]
	via 10.20.30.1 on eth0
10.244.166.128/26    blackhole [static1 07:01:02.123] * (200)
`)
	if !slices.Equal(rs, []string{"192.168.1.0/24", "10.244.166.128/26"}) {
		t.Errorf("routes %v", rs)
	}
}

// birdLab is a lab of a ToR and Calico-style nodes on 10.20.30.0/24, without agents.
// The ToR has an "office" network on dummy office0 (192.168.1.1/24).
func birdLab(t *testing.T, nodes ...netip.Addr) (*Lab, *Host, []*Host) {
	t.Helper()
	needRoot(t)
	needBird(t)
	before := rootRoutes(t)
	hosts := []HostSpec{{Cluster: "bird", Name: "tor", UnderlayIP: netip.PrefixFrom(torIP, 24)}}
	for i, ip := range nodes {
		hosts = append(hosts, HostSpec{Cluster: "bird", Name: "node" + string(rune('1'+i)), UnderlayIP: netip.PrefixFrom(ip, 24)})
	}
	l, err := Up(context.Background(), Options{Prefix: testPrefix(t), Hosts: hosts, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Error(err)
		}
		if after := rootRoutes(t); after != before {
			t.Errorf("root routes changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
	tor := l.Hosts[0]
	addIface(t, tor, "office0", "192.168.1.1/24")
	return l, tor, l.Hosts[1:]
}

// addIface adds an up interface with addresses to h: a veth whose peer (<name>p) stays
// in h too, because the test kernels may lack the dummy link type.
func addIface(t *testing.T, h *Host, name string, addrs ...string) {
	t.Helper()
	run(t, h, "ip", "link", "add", name, "type", "veth", "peer", "name", name+"p")
	for _, a := range addrs {
		run(t, h, "ip", "addr", "add", a, "dev", name)
	}
	run(t, h, "ip", "link", "set", name+"p", "up")
	run(t, h, "ip", "link", "set", name, "up")
}

func run(t *testing.T, h *Host, args ...string) string {
	t.Helper()
	out, err := h.Run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startBird starts BIRD in h and stops it in t.Cleanup (before the lab goes down).
func startBird(t *testing.T, h *Host, cfg string) *Bird {
	t.Helper()
	b, err := StartBird(h.NS, filepath.Join(h.Dir, "bird"), cfg)
	if err != nil {
		t.Fatalf("%s: %v\n%s", h.Name, err, numbered(cfg))
	}
	t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			data, _ := os.ReadFile(b.LogFile)
			t.Logf("%s bird log:\n%s", h.Name, data)
		}
	})
	return b
}

func waitEstablished(t *testing.T, b *Bird, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.WaitEstablished(ctx, names...); err != nil {
		t.Fatal(err)
	}
}

// waitRoute polls `ip route show <prefix>` in h until it contains every want string.
func waitRoute(t *testing.T, h *Host, prefix netip.Prefix, want ...string) {
	t.Helper()
	var out string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out = run(t, h, "ip", "route", "show", "exact", prefix.String())
		if containsAll(out, want...) {
			return
		}
	}
	all, _ := h.Run("ip", "route")
	t.Errorf("%s: route %v = %q, want %q; all routes:\n%s", h.Name, prefix, out, want, all)
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}

func routes(t *testing.T, b *Bird) []string {
	t.Helper()
	rs, err := b.Routes("master4")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestBirdTorAndCalicoSeed runs the seed's two Calico nodes (node-to-node mesh) and a ToR
// peering with both, and checks sessions, BIRD tables, kernels and the data path.
func TestBirdTorAndCalicoSeed(t *testing.T) {
	_, torH, nodes := birdLab(t, node1IP, node2IP)
	n1, n2 := nodes[0], nodes[1]
	// On node1: a workload address in its block (cali*, which protocol direct skips) and
	// a network outside the pool plus a subnet of the block on ext0: the export filter
	// must keep both from the peers (calico_export_to_bgp_peers / calico_aggr).
	addIface(t, n1, "cali1", "10.244.166.130/32")
	addIface(t, n1, "ext0", "172.31.0.1/24", "10.244.166.161/27")

	tor := startBird(t, torH, torConfig(t, "", node1IP, node2IP))
	b1 := startBird(t, n1, seedConfig(t, node1IP, block1, "", node2IP))
	b2 := startBird(t, n2, seedConfig(t, node2IP, block2, "", node1IP))
	waitEstablished(t, tor, torPeer(node1IP), torPeer(node2IP))
	waitEstablished(t, b1, "Global_10_20_30_1", "Mesh_10_20_30_31")
	waitEstablished(t, b2, "Global_10_20_30_1", "Mesh_10_20_30_30")

	// Kernels: what the seed's `ip r` shows, plus the ToR's side.
	waitRoute(t, n1, block1, "blackhole", "proto bird")
	waitRoute(t, n1, block2, "via 10.20.30.31 dev eth0", "proto bird")
	waitRoute(t, n2, block1, "via 10.20.30.30 dev eth0", "proto bird")
	waitRoute(t, n1, office, "via 10.20.30.1 dev eth0", "proto bird")
	waitRoute(t, n2, dropNet, "via 10.20.30.1 dev eth0", "proto bird")
	waitRoute(t, torH, block1, "via 10.20.30.30 dev eth0", "proto bird")
	// node1 also re-advertises node2's block to the ToR (calico_export_to_bgp_peers
	// passes every pool route; next hop self on eBGP multihop), and that path wins on
	// router id, so only the protocol is certain here.
	waitRoute(t, torH, block2, "via 10.20.30.3", "proto bird")
	// The ToR's kernel protocol exports BGP routes only: its office route stays the
	// kernel's own.
	if out := run(t, torH, "ip", "route", "show", "exact", office.String()); strings.Contains(out, "bird") || !strings.Contains(out, "proto kernel") {
		t.Errorf("tor: office route %q", out)
	}

	// BIRD tables: the ToR has both blocks and nothing else from the nodes.
	trs := routes(t, tor)
	for _, want := range []string{block1.String(), block2.String(), office.String(), dropNet.String()} {
		if !slices.Contains(trs, want) {
			t.Errorf("tor master4 lacks %s: %v", want, trs)
		}
	}
	for _, bad := range []string{"172.31.0.0/24", "10.244.166.160/27", "10.244.166.130/32"} {
		if slices.Contains(trs, bad) {
			t.Errorf("tor master4 has %s (node1 must not export it): %v", bad, trs)
		}
	}
	if rs := routes(t, b2); !slices.Contains(rs, block1.String()) || !slices.Contains(rs, office.String()) || slices.Contains(rs, "172.31.0.0/24") {
		t.Errorf("node2 master4: %v", rs)
	}

	// Data path: office -> node1's workload address through the ToR, and node2 -> office.
	if out, err := torH.Run("ping", "-c1", "-W2", "-I", "192.168.1.1", "10.244.166.130"); err != nil {
		t.Errorf("tor (office) -> node1 workload: %v\n%s", err, out)
	}
	if out, err := n2.Run("ping", "-c1", "-W2", "192.168.1.1"); err != nil {
		t.Errorf("node2 -> office: %v\n%s", err, out)
	}
	ps, err := tor.Protocols()
	if err != nil {
		t.Fatal(err)
	}
	if p := ps[torPeer(node1IP)]; p.Proto != "BGP" || p.State != "up" || p.Info != "Established" {
		t.Errorf("tor protocol %+v", p)
	}
}

// TestBirdMD5 peers the ToR and a seed node with a TCP MD5 password: right passwords
// establish, a wrong one on one side (via Configure) does not, fixing it recovers.
func TestBirdMD5(t *testing.T) {
	_, torH, nodes := birdLab(t, node1IP)
	n1 := nodes[0]
	const peer = "Global_10_20_30_1"
	tor := startBird(t, torH, torConfig(t, "tor-secret", node1IP))
	b1 := startBird(t, n1, seedConfig(t, node1IP, block1, "tor-secret"))
	waitEstablished(t, tor, torPeer(node1IP))
	waitEstablished(t, b1, peer)
	waitRoute(t, n1, office, "via 10.20.30.1 dev eth0", "proto bird")
	waitRoute(t, torH, block1, "via 10.20.30.30 dev eth0", "proto bird")

	if err := b1.Configure(seedConfig(t, node1IP, block1, "wrong-secret")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	err := tor.WaitEstablished(ctx, torPeer(node1IP))
	if err == nil {
		err = b1.WaitEstablished(ctx, peer)
	}
	if err == nil {
		t.Fatal("session established with mismatched MD5 passwords")
	}
	if !strings.Contains(err.Error(), "BGP state:") {
		t.Errorf("WaitEstablished error lacks `show protocols all`: %v", err)
	}
	t.Logf("as expected: %v", err)
	// And the kernel says why: segments with a bad MD5 signature were dropped.
	if n := tcpExt(t, torH, "TCPMD5Failure") + tcpExt(t, n1, "TCPMD5Failure"); n == 0 {
		t.Error("no TCPMD5Failure counted in either namespace")
	}

	if err := b1.Configure(seedConfig(t, node1IP, block1, "tor-secret")); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, tor, torPeer(node1IP))
	waitEstablished(t, b1, peer)
	if err := b1.Configure("protocol bogus {"); err == nil {
		t.Error("Configure accepted a broken config")
	}
	if cfg, _ := os.ReadFile(b1.ConfigFile); !strings.Contains(string(cfg), "tor-secret") {
		t.Error("Configure did not put the old config file back after a failure")
	}
}

// tcpExt returns a TcpExt counter of h's namespace (/proc/net is per network namespace).
func tcpExt(t *testing.T, h *Host, name string) int {
	t.Helper()
	var keys []string
	for _, line := range strings.Split(run(t, h, "cat", "/proc/net/netstat"), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "TcpExt:" {
			continue
		}
		if keys == nil {
			keys = f
			continue
		}
		if i := slices.Index(keys, name); i > 0 && i < len(f) {
			n, _ := strconv.Atoi(f[i])
			return n
		}
	}
	t.Fatalf("%s: no TcpExt %s", h.Name, name)
	return 0
}

func numbered(s string) string {
	var b strings.Builder
	for i, l := range strings.Split(s, "\n") {
		fmt.Fprintf(&b, "%4d  %s\n", i+1, l)
	}
	return b.String()
}
