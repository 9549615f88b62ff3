package mesh

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// The seed's six nodes: cluster/node, underlay IP, overlay IP, MAC, pod block.
var seed = []struct{ key, ip, overlay, mac, pods string }{
	{"test-cluster1/multicluster-test-001", "192.168.0.21", "179.17.1.21", "c2:6a:9b:e5:39:8d", "10.234.111.0/24"},
	{"test-cluster1/multicluster-test-002", "192.168.0.31", "179.17.1.31", "7a:3a:fe:45:a3:76", "10.234.118.0/24"},
	{"test-cluster2/multicluster-test-003", "192.168.0.16", "179.17.1.16", "36:f9:67:c0:70:1c", "10.235.88.0/24"},
	{"test-cluster2/multicluster-test-004", "192.168.0.44", "179.17.1.44", "12:d1:df:44:3d:aa", "10.235.113.0/24"},
	{"test-cluster3/multicluster-test-005", "192.168.0.15", "179.17.1.15", "ba:a7:54:aa:bc:ce", "10.236.115.0/24"},
	{"test-cluster3/multicluster-test-006", "192.168.0.13", "179.17.1.13", "4e:ac:f5:6f:4e:76", "10.236.106.0/24"},
}

func seedInput() (Input, map[string]*pb.NodeInfo) {
	in := Input{Name: "vxlan-test", VNI: 10001, Port: 4899}
	info := map[string]*pb.NodeInfo{}
	for _, s := range seed {
		in.Members = append(in.Members, Member{Key: s.key, Underlay: "eth0", Address: s.overlay + "/24", MAC: s.mac})
		in.Routes = append(in.Routes, Route{Dst: s.pods, Via: s.key})
		info[s.key] = &pb.NodeInfo{
			KernelFeatures: map[string]bool{"vxlan": true},
			Interfaces: []*pb.Interface{
				{Name: "lo", Mtu: 65536, Addresses: []string{"127.0.0.1/8"}},
				{Name: "eth0", Mtu: 1500, Addresses: []string{s.ip + "/24"}},
			},
		}
	}
	return in, info
}

// TestBuildReproducesTheSeed checks that every node gets exactly the entries the seed's
// operator typed by hand: five arp -s, five bridge fdb append and four route add per node.
func TestBuildReproducesTheSeed(t *testing.T) {
	in, info := seedInput()
	p, errs := Build(in, info)
	if len(errs) > 0 {
		t.Fatalf("Build: %v", errs)
	}
	if p.MTU != 1450 {
		t.Errorf("default MTU = %d, want 1500-50", p.MTU)
	}
	for _, s := range seed {
		mp := p.Members[s.key]
		d := mp.Spec.GetDevice()
		if d.GetMac() != s.mac || d.GetLocalIp() != s.ip || d.GetUnderlay() != "eth0" || d.GetVni() != 10001 || d.GetPort() != 4899 || d.GetLearning() {
			t.Errorf("%s device = %v", s.key, d)
		}
		var wantFDB, wantNeigh, wantRoutes []string
		cluster := strings.Split(s.key, "/")[0]
		for _, o := range seed {
			if o.key == s.key {
				continue
			}
			wantFDB = append(wantFDB, o.mac+" dst "+o.ip)
			wantNeigh = append(wantNeigh, o.overlay+" lladdr "+o.mac)
			if strings.Split(o.key, "/")[0] != cluster {
				wantRoutes = append(wantRoutes, o.pods+" via "+o.overlay)
			}
		}
		if got := FDBStrings(mp.Spec); !sameSet(got, wantFDB) {
			t.Errorf("%s fdb = %v, want %v", s.key, got, wantFDB)
		}
		if got := NeighborStrings(mp.Spec); !sameSet(got, wantNeigh) {
			t.Errorf("%s neighbours = %v, want %v", s.key, got, wantNeigh)
		}
		if got := RouteStrings(mp.Spec); !sameSet(got, wantRoutes) || len(got) != 4 {
			t.Errorf("%s routes = %v, want %v", s.key, got, wantRoutes)
		}
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}

func TestDerivedMACAndOneClusterRoutes(t *testing.T) {
	in := Input{Name: "vx0", VNI: 7, Port: 4789, Members: []Member{
		{Key: "c/a", Underlay: "10.0.0.1", Address: "172.16.0.1/24"},
		{Key: "c/b", Underlay: "eth0", Address: "172.16.0.2/24"},
		{Key: "c/c", Underlay: "eth0", Address: "172.16.0.3/24"},
	}, Routes: []Route{{Dst: "10.1.0.0/24", Via: "c/a"}, {Dst: "10.2.0.0/24", Via: "c/b", On: []string{"c/c"}}}}
	info := map[string]*pb.NodeInfo{}
	for i, k := range []string{"c/a", "c/b", "c/c"} {
		info[k] = &pb.NodeInfo{Interfaces: []*pb.Interface{{Name: "eth0", Mtu: uint32(9000 - i*100), Addresses: []string{fmt.Sprintf("10.0.0.%d/24", i+1)}}}}
	}
	p, errs := Build(in, info)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if p.MTU != 8800-50 {
		t.Errorf("MTU = %d, want the smallest underlay (8800) - 50", p.MTU)
	}
	if got := p.Members["c/a"].MAC; got != pb.DeriveMAC("c", "a", "vx0") {
		t.Errorf("MAC of c/a = %s, want the derived one", got)
	}
	if got := p.Members["c/a"].UnderlayDev; got != "eth0" {
		t.Errorf("underlay given as IP resolves to %q, want eth0", got)
	}
	// One cluster: the route via c/a goes to every other member; `on` restricts the other.
	if got := RouteStrings(p.Members["c/b"].Spec); !reflect.DeepEqual(got, []string{"10.1.0.0/24 via 172.16.0.1"}) {
		t.Errorf("c/b routes = %v", got)
	}
	if got := RouteStrings(p.Members["c/c"].Spec); !reflect.DeepEqual(got, []string{"10.1.0.0/24 via 172.16.0.1", "10.2.0.0/24 via 172.16.0.2"}) {
		t.Errorf("c/c routes = %v", got)
	}
	if got := RouteStrings(p.Members["c/a"].Spec); len(got) != 0 {
		t.Errorf("c/a routes = %v, want none", got)
	}
}

func TestPlanTimeErrors(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(in *Input)
		attr    string
		key     string
		sub     string
		message string
	}{
		{"vni 0", func(in *Input) { in.VNI = 0 }, "vni", "", "", "allowed 1 to 16777215"},
		{"vni too big", func(in *Input) { in.VNI = 16777216 }, "vni", "", "", "allowed 1 to 16777215"},
		{"port 0", func(in *Input) { in.Port = 0 }, "port", "", "", "allowed 1 to 65535"},
		{"port 65536", func(in *Input) { in.Port = 65536 }, "port", "", "", "allowed 1 to 65535"},
		{"long name", func(in *Input) { in.Name = "vxlan-test-longer" }, "name", "", "", "at most 15"},
		{"slash in name", func(in *Input) { in.Name = "vxlan/test" }, "name", "", "", "'/'"},
		{"multicast MAC", func(in *Input) { in.Members[0].MAC = "01:00:5e:00:00:01" }, "members", seed[0].key, "mac", "multicast"},
		{"malformed MAC", func(in *Input) { in.Members[0].MAC = "c2:6a:9b" }, "members", seed[0].key, "mac", "not a MAC"},
		{"duplicate overlay", func(in *Input) { in.Members[1].Address = "179.17.1.21/24" }, "members", seed[1].key, "address", "also member"},
		{"two subnets", func(in *Input) { in.Members[1].Address = "179.17.2.31/24" }, "members", seed[1].key, "address", "one subnet"},
		{"bad member key", func(in *Input) { in.Members[0].Key = "multicluster-test-001" }, "members", "multicluster-test-001", "", "<cluster>/<node>"},
		{"via non-member", func(in *Input) { in.Routes[0].Via = "test-cluster9/x" }, "routes", "10.234.111.0/24", "via", "not a member"},
		{"malformed route", func(in *Input) { in.Routes[0].Dst = "10.234.111.1/24" }, "routes", "10.234.111.1/24", "", "host bits"},
	}
	for _, c := range cases {
		in, _ := seedInput()
		c.mutate(&in)
		errs := Validate(in)
		found := false
		for _, e := range errs {
			if e.Attr == c.attr && e.Key == c.key && e.Sub == c.sub && strings.Contains(e.Msg, c.message) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: want an error on %s[%s].%s containing %q, got %v", c.name, c.attr, c.key, c.sub, c.message, errs)
		}
	}
	// MTU above what the underlay allows names the member with the smallest underlay.
	in, info := seedInput()
	in.MTU = 1451
	info[seed[3].key].Interfaces[1].Mtu = 1400
	_, errs := Build(in, info)
	if len(errs) != 1 || errs[0].Attr != "mtu" || !strings.Contains(errs[0].Msg, seed[3].key) || !strings.Contains(errs[0].Msg, "at most 1350") {
		t.Errorf("mtu above underlay: %v", errs)
	}
	// A missing underlay interface, a kernel without vxlan and an agent too old name the member.
	in, info = seedInput()
	in.Members[2].Underlay = "eth9"
	info[seed[4].key].KernelFeatures["vxlan"] = false
	info[seed[5].key].AgentVersion = "v0.0.1"
	info[seed[5].key].Capabilities = []string{"adopt"}
	_, errs = Build(in, info)
	if len(errs) != 3 || !strings.Contains(errs[0].Error(), "no interface eth9") || !strings.Contains(errs[1].Error(), "no vxlan support") ||
		!strings.Contains(errs[2].Error(), "its agent (version v0.0.1) lacks vxlan_tunnel, dry_run; upgrade nodenet-agent") {
		t.Errorf("node errors: %v", errs)
	}
}

// TestReconstructRoundTrip: what import rebuilds from the observed specs plans the same specs.
func TestReconstructRoundTrip(t *testing.T) {
	in, info := seedInput()
	p, errs := Build(in, info)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	observed := map[string]*pb.VxlanTunnel{}
	for k, mp := range p.Members {
		observed[k] = mp.Spec
	}
	back, notes, err := Reconstruct(observed)
	if err != nil || len(notes) > 0 {
		t.Fatalf("Reconstruct: %v %v", err, notes)
	}
	for _, r := range back.Routes {
		if r.On != nil {
			t.Errorf("route %s: on = %v, want nil (the default members)", r.Dst, r.On)
		}
	}
	p2, errs := Build(back, info)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for k := range p.Members {
		if !reflect.DeepEqual(FDBStrings(p.Members[k].Spec), FDBStrings(p2.Members[k].Spec)) ||
			!reflect.DeepEqual(RouteStrings(p.Members[k].Spec), RouteStrings(p2.Members[k].Spec)) ||
			p.Members[k].Spec.GetDevice().GetMac() != p2.Members[k].Spec.GetDevice().GetMac() {
			t.Errorf("%s differs after the round trip", k)
		}
	}
}
