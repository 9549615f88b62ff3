package link

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/nodenet/terraform-provider-nodenet/provider/mesh"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// seed is the write-up's three clusters of two nodes, pod and service CIDRs and blocks.
func seed() Input {
	c := func(name, pods, svc string, nodes ...Node) Cluster {
		return Cluster{Name: name, PodCIDR: pfx(pods), ServiceCIDR: pfx(svc), Nodes: nodes}
	}
	n := func(key, addr, block string) Node {
		return Node{Key: key, Address: netip.MustParseAddr(addr), Blocks: []netip.Prefix{pfx(block)}}
	}
	return Input{
		Name: "multicluster", Device: "vxlan-test", VNI: 10001, Port: 4899, Overlay: pfx("179.17.1.0/24"), SNATExemption: ExemptNodenet,
		Clusters: []Cluster{
			c("test-cluster2", "10.235.64.0/18", "10.235.0.0/18",
				n("test-cluster2/multicluster-test-003", "192.168.0.16", "10.235.88.0/24"),
				n("test-cluster2/multicluster-test-004", "192.168.0.44", "10.235.113.0/24")),
			c("test-cluster1", "10.234.64.0/18", "10.234.0.0/18",
				n("test-cluster1/multicluster-test-001", "192.168.0.21", "10.234.111.0/24"),
				n("test-cluster1/multicluster-test-002", "192.168.0.31", "10.234.118.0/24")),
			c("test-cluster3", "10.236.64.0/18", "10.236.0.0/18",
				n("test-cluster3/multicluster-test-005", "192.168.0.15", "10.236.115.0/24"),
				n("test-cluster3/multicluster-test-006", "192.168.0.13", "10.236.106.0/24")),
		},
	}
}

// TestSeed: the write-up's routes per node (every remote node's block via its overlay
// address, nothing to the own cluster's), stable overlay addresses, the NAT exemption of
// the other clusters' CIDRs.
func TestSeed(t *testing.T) {
	p, errs := Build(seed())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if got := p.Overlay["test-cluster1/multicluster-test-001"].String(); got != "179.17.1.1/24" {
		t.Errorf("first node's overlay address %s, want 179.17.1.1/24", got)
	}
	var on001 []string
	for _, r := range p.Mesh.Routes {
		for _, k := range mesh.Targets(r, p.Mesh.Members) {
			if k == "test-cluster1/multicluster-test-001" {
				on001 = append(on001, r.Dst+" via "+r.Via)
			}
		}
	}
	want := []string{
		"10.235.88.0/24 via test-cluster2/multicluster-test-003", "10.235.113.0/24 via test-cluster2/multicluster-test-004",
		"10.236.106.0/24 via test-cluster3/multicluster-test-006", "10.236.115.0/24 via test-cluster3/multicluster-test-005",
	}
	slices.Sort(on001)
	slices.Sort(want)
	if !slices.Equal(on001, want) {
		t.Errorf("routes on 001:\n got %v\nwant %v", on001, want)
	}
	ex := p.Exempt["test-cluster1/multicluster-test-002"]
	if got := strings.Join(prefixStrings(ex), " "); got != "10.235.0.0/18 10.235.64.0/18 10.236.0.0/18 10.236.64.0/18" {
		t.Errorf("exemptions of 002: %s", got)
	}
	// A node joining cluster 2 takes the lowest free address and moves nobody.
	in := seed()
	prev := map[string]netip.Addr{}
	for k, a := range p.Overlay {
		prev[k] = a.Addr()
	}
	in.Prev = prev
	in.Clusters[0].Nodes = append([]Node{{Key: "test-cluster2/multicluster-test-000", Address: netip.MustParseAddr("192.168.0.50"), Blocks: []netip.Prefix{pfx("10.235.120.0/24")}}}, in.Clusters[0].Nodes...)
	p2, errs := Build(in)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for k, a := range p.Overlay {
		if p2.Overlay[k] != a {
			t.Errorf("%s moved from %s to %s when a node joined", k, a, p2.Overlay[k])
		}
	}
	if got := p2.Overlay["test-cluster2/multicluster-test-000"].String(); got != "179.17.1.7/24" {
		t.Errorf("the new node got %s, want the lowest free 179.17.1.7/24", got)
	}
}

func prefixStrings(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func TestCalicoPools(t *testing.T) {
	in := seed()
	in.SNATExemption = ExemptCalico
	p, errs := Build(in)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var got []string
	for _, cp := range p.CalicoPools["test-cluster1"] {
		got = append(got, cp.Name+" "+cp.CIDR.String())
	}
	want := []string{
		"multicluster-pod-test-cluster2 10.235.64.0/18", "multicluster-pod-test-cluster3 10.236.64.0/18",
		"multicluster-svc-test-cluster2 10.235.0.0/18", "multicluster-svc-test-cluster3 10.236.0.0/18",
	}
	if !slices.Equal(got, want) {
		t.Errorf("cluster 1's pools:\n got %v\nwant %v", got, want)
	}
	if len(p.Exempt) != 0 {
		t.Errorf("calico mode exempts in the agents too: %v", p.Exempt)
	}
}

func TestErrors(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Input)
		want string
	}{
		{"one cluster", func(in *Input) { in.Clusters = in.Clusters[:1] }, "a link joins two clusters or more"},
		{"pod CIDRs overlap", func(in *Input) { in.Clusters[1].PodCIDR = pfx("10.235.0.0/16") },
			`the pod CIDR 10.235.64.0/18 of test-cluster2 overlaps the pod CIDR 10.235.0.0/16 of test-cluster1`},
		{"service overlaps pod", func(in *Input) { in.Clusters[2].ServiceCIDR = pfx("10.234.64.0/20") },
			`the service CIDR 10.234.64.0/20 of test-cluster3 overlaps the pod CIDR 10.234.64.0/18 of test-cluster1`},
		{"overlay overlaps", func(in *Input) { in.Overlay = pfx("10.236.0.0/24") }, "overlay_cidr: 10.236.0.0/24 overlaps the service CIDR 10.236.0.0/18 of test-cluster3"},
		{"block outside", func(in *Input) { in.Clusters[0].Nodes[0].Blocks = []netip.Prefix{pfx("10.99.0.0/24")} }, "outside the cluster's pod CIDR"},
		{"too small overlay", func(in *Input) { in.Overlay = pfx("179.17.1.0/30") }, "too few addresses for the link's 6 nodes"},
		{"mode", func(in *Input) { in.SNATExemption = "iptables" }, `"iptables": allowed are calico, nodenet and none`},
	}
	for _, c := range cases {
		in := seed()
		c.edit(&in)
		_, errs := Build(in)
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		if !strings.Contains(strings.Join(msgs, "\n"), c.want) {
			t.Errorf("%s: errors %q, want one with %q", c.name, msgs, c.want)
		}
	}
}
