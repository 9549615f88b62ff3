package encap

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Four nodes of cluster c1 in two underlay subnets: n1 and n2 in 192.168.1.0/24, n3 and n4
// in 192.168.2.0/24 (n3 with jumbo frames); n4 has no block of the pool.
var (
	n1 = Node{Key: "c1/n1", Underlay: ip("192.168.1.11"), Subnet: pfx("192.168.1.11/24"), Interface: "eth0", MTU: 1500, Block: pfx("10.244.0.0/26")}
	n2 = Node{Key: "c1/n2", Underlay: ip("192.168.1.12"), Subnet: pfx("192.168.1.12/24"), Interface: "eth0", MTU: 1500, Block: pfx("10.244.0.64/26")}
	n3 = Node{Key: "c1/n3", Underlay: ip("192.168.2.13"), Subnet: pfx("192.168.2.13/24"), Interface: "ens3", MTU: 9000, Block: pfx("10.244.0.128/26")}
	n4 = Node{Key: "c1/n4", Underlay: ip("192.168.2.14"), Subnet: pfx("192.168.2.14/24"), Interface: "ens3", MTU: 9000}
)

func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }
func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// macs are the derived tunnel MACs of the nodes for the device vxlan-pool0.
var (
	mac1 = pb.DeriveMAC("c1", "n1", "vxlan-pool0")
	mac2 = pb.DeriveMAC("c1", "n2", "vxlan-pool0")
	mac3 = pb.DeriveMAC("c1", "n3", "vxlan-pool0")
)

func vxlanInput(mode string) Input {
	return Input{Pool: pfx("10.244.0.0/16"), Type: TypeVxlan, Mode: mode, Device: "vxlan-pool0", VNI: 4096,
		Nodes: []Node{n3, n1, n4, n2}}
}

func plan(t *testing.T, in Input) map[string]*pb.PoolEncapsulation {
	t.Helper()
	out, errs := Plan(in)
	if len(errs) > 0 {
		t.Fatalf("Plan: %v", errs)
	}
	for k, e := range out {
		if err := pb.ValidatePoolEncapsulation("ip_pool.encapsulation.", e); err != nil {
			t.Errorf("%s: the contract refuses the planned share: %v\n%v", k, err, e)
		}
	}
	return out
}

func vxDevice(n Node, mac string, mtu uint32) *pb.VxlanDevice {
	return &pb.VxlanDevice{Name: "vxlan-pool0", Vni: 4096, Port: 4789, Underlay: n.Interface, LocalIp: n.Underlay.String(),
		Mtu: mtu, Mac: mac, Address: TunnelAddress(n.Block).String()}
}

// sortedFdb and friends build the expected entries in the order agents report them.
func fdb(pairs ...string) []*pb.FdbEntry {
	var out []*pb.FdbEntry
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, &pb.FdbEntry{Mac: pairs[i], Dst: pairs[i+1]})
	}
	e := &pb.PoolEncapsulation{Vxlan: &pb.VxlanTunnel{Fdb: out}}
	Sort(e)
	return e.Vxlan.Fdb
}

func routes(pairs ...string) []*pb.Route {
	var out []*pb.Route
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, &pb.Route{Dst: pairs[i], Via: pairs[i+1]})
	}
	return out
}

func equal(t *testing.T, what string, got, want *pb.PoolEncapsulation) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, strings.Join(Lines(got), "\n     "), strings.Join(Lines(want), "\n     "))
	}
}

// TestCrossSubnet: three nodes with blocks in two subnets, VXLAN cross-subnet. n1 and n2 reach
// each other directly (each is in the other's subnet) and n3 through the tunnel; n3 reaches
// both through its tunnel, with its own (jumbo) MTU; n4 has no block: it gets nothing and
// nobody routes to it, though it is in n3's subnet.
func TestCrossSubnet(t *testing.T) {
	out := plan(t, vxlanInput(ModeCrossSubnet))
	if len(out) != 4 {
		t.Fatalf("shares for %d nodes, want 4: %v", len(out), out)
	}
	equal(t, "n1", out["c1/n1"], &pb.PoolEncapsulation{
		Vxlan: &pb.VxlanTunnel{
			Device:    vxDevice(n1, mac1, 1450),
			Fdb:       fdb(mac3, "192.168.2.13"),
			Neighbors: []*pb.Neighbor{{Ip: "10.244.0.128", Mac: mac3}},
			Routes:    routes("10.244.0.128/26", "10.244.0.128"),
		},
		Direct: routes("10.244.0.64/26", "192.168.1.12"),
	})
	equal(t, "n2", out["c1/n2"], &pb.PoolEncapsulation{
		Vxlan: &pb.VxlanTunnel{
			Device:    vxDevice(n2, mac2, 1450),
			Fdb:       fdb(mac3, "192.168.2.13"),
			Neighbors: []*pb.Neighbor{{Ip: "10.244.0.128", Mac: mac3}},
			Routes:    routes("10.244.0.128/26", "10.244.0.128"),
		},
		Direct: routes("10.244.0.0/26", "192.168.1.11"),
	})
	equal(t, "n3", out["c1/n3"], &pb.PoolEncapsulation{
		Vxlan: &pb.VxlanTunnel{
			Device:    vxDevice(n3, mac3, 8950),
			Fdb:       fdb(mac1, "192.168.1.11", mac2, "192.168.1.12"),
			Neighbors: []*pb.Neighbor{{Ip: "10.244.0.0", Mac: mac1}, {Ip: "10.244.0.64", Mac: mac2}},
			Routes:    routes("10.244.0.0/26", "10.244.0.0", "10.244.0.64/26", "10.244.0.64"),
		},
	})
	if e, ok := out["c1/n4"]; !ok || e != nil {
		t.Errorf("n4 (no block): %v, want nil", e)
	}
	for k, e := range out {
		if text := strings.Join(Lines(e), "\n"); strings.Contains(text, "192.168.2.14") {
			t.Errorf("%s routes to the block-less n4:\n%s", k, text)
		}
	}
}

// TestAlways: every other node with a block is reached through the tunnel; no direct routes.
func TestAlways(t *testing.T) {
	for _, mode := range []string{ModeAlways, ""} {
		out := plan(t, vxlanInput(mode))
		equal(t, "n1 "+mode, out["c1/n1"], &pb.PoolEncapsulation{Vxlan: &pb.VxlanTunnel{
			Device:    vxDevice(n1, mac1, 1450),
			Fdb:       fdb(mac2, "192.168.1.12", mac3, "192.168.2.13"),
			Neighbors: []*pb.Neighbor{{Ip: "10.244.0.64", Mac: mac2}, {Ip: "10.244.0.128", Mac: mac3}},
			Routes:    routes("10.244.0.64/26", "10.244.0.64", "10.244.0.128/26", "10.244.0.128"),
		}})
		for k, e := range out {
			if len(e.GetDirect()) != 0 {
				t.Errorf("%s %s: direct routes %v", mode, k, e.GetDirect())
			}
		}
		if out["c1/n4"] != nil || len(out["c1/n2"].GetVxlan().GetFdb()) != 2 || len(out["c1/n3"].GetVxlan().GetRoutes()) != 2 {
			t.Errorf("%s: %v", mode, out)
		}
	}
}

// TestIpip: the IPIP variant, cross-subnet: the tunnel's routes go via the other nodes'
// underlay addresses (onlink through the device), the MTU is the underlay's less 20, and
// nodes in one subnet route directly.
func TestIpip(t *testing.T) {
	in := vxlanInput(ModeCrossSubnet)
	in.Type, in.Device, in.VNI = TypeIpip, "tunl-pool0", 0
	out := plan(t, in)
	equal(t, "n1", out["c1/n1"], &pb.PoolEncapsulation{
		Ipip:   &pb.IpipTunnel{Name: "tunl-pool0", LocalIp: "192.168.1.11", Address: "10.244.0.0/32", Mtu: 1480, Routes: routes("10.244.0.128/26", "192.168.2.13")},
		Direct: routes("10.244.0.64/26", "192.168.1.12"),
	})
	equal(t, "n3", out["c1/n3"], &pb.PoolEncapsulation{
		Ipip: &pb.IpipTunnel{Name: "tunl-pool0", LocalIp: "192.168.2.13", Address: "10.244.0.128/32", Mtu: 8980, Routes: routes("10.244.0.0/26", "192.168.1.11", "10.244.0.64/26", "192.168.1.12")},
	})
	if out["c1/n4"] != nil {
		t.Errorf("n4: %v", out["c1/n4"])
	}
	in.Mode, in.MTU = ModeAlways, 1400
	out = plan(t, in)
	equal(t, "n2 always", out["c1/n2"], &pb.PoolEncapsulation{
		Ipip: &pb.IpipTunnel{Name: "tunl-pool0", LocalIp: "192.168.1.12", Address: "10.244.0.64/32", Mtu: 1400, Routes: routes("10.244.0.0/26", "192.168.1.11", "10.244.0.128/26", "192.168.2.13")},
	})
}

// TestSubnetsBothWays: a node whose wide subnet holds another's address, but not the other
// way round, is reached through the tunnel in both directions (direct routing needs each in
// the other's subnet, or the answers would take another path than the questions).
func TestSubnetsBothWays(t *testing.T) {
	wide := n1
	wide.Subnet = pfx("192.168.1.11/16")
	in := vxlanInput(ModeCrossSubnet)
	in.Nodes = []Node{wide, n2, n3}
	out := plan(t, in)
	if d := out["c1/n1"].GetDirect(); !reflect.DeepEqual(Lines(&pb.PoolEncapsulation{Direct: d}), []string{"route 10.244.0.64/26 via 192.168.1.12"}) {
		t.Errorf("n1 direct: %v", d)
	}
	if len(out["c1/n3"].GetDirect()) != 0 || len(out["c1/n1"].GetVxlan().GetRoutes()) != 1 {
		t.Errorf("n1 <-> n3 not through the tunnel:\nn1 %v\nn3 %v", out["c1/n1"], out["c1/n3"])
	}
}

// TestStable: the MACs are derived from the node and the device, the same in every plan;
// input order, and a node joining, do not change the others' MACs or the order of entries.
func TestStable(t *testing.T) {
	a := plan(t, vxlanInput(ModeAlways))
	in := vxlanInput(ModeAlways)
	in.Nodes = []Node{n2, n4, n1, n3}
	b := plan(t, in)
	for k := range a {
		if !proto.Equal(a[k], b[k]) {
			t.Errorf("%s differs with the input in another order:\n%v\n%v", k, a[k], b[k])
		}
	}
	if got := a["c1/n1"].GetVxlan().GetDevice().GetMac(); got != mac1 || got != pb.DeriveMAC("c1", "n1", "vxlan-pool0") {
		t.Errorf("n1 MAC %s, want %s", got, mac1)
	}
	if mac1 == mac2 || mac1 == pb.DeriveMAC("c1", "n1", "vxlan-other") || mac1 == pb.DeriveMAC("c2", "n1", "vxlan-pool0") {
		t.Errorf("MACs collide: %s %s", mac1, mac2)
	}
	n5 := Node{Key: "c1/n5", Underlay: ip("192.168.1.15"), Subnet: pfx("192.168.1.15/24"), Interface: "eth0", MTU: 1500, Block: pfx("10.244.0.192/26")}
	in.Nodes = append(in.Nodes, n5)
	c := plan(t, in)
	if c["c1/n1"].GetVxlan().GetDevice().GetMac() != mac1 || len(c["c1/n1"].GetVxlan().GetFdb()) != 3 {
		t.Errorf("after n5 joined: %v", c["c1/n1"])
	}
}

// TestNone: no encapsulation: every node's share is nil, whatever else is set.
func TestNone(t *testing.T) {
	for _, typ := range []string{TypeNone, ""} {
		in := vxlanInput(ModeCrossSubnet)
		in.Type, in.VNI, in.Device = typ, 0, ""
		out := plan(t, in)
		if len(out) != 4 {
			t.Errorf("%q: %v", typ, out)
		}
		for k, e := range out {
			if e != nil {
				t.Errorf("%q: %s has %v", typ, k, e)
			}
		}
	}
}

// TestErrors: every rule broken names its field and node.
func TestErrors(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Input)
		want []string
	}{
		{"type", func(in *Input) { in.Type = "gre" }, []string{`type: "gre" is not an encapsulation; one of none, vxlan, ipip`}},
		{"mode", func(in *Input) { in.Mode = "never" }, []string{`mode: "never" is not an encapsulation mode; one of always, cross_subnet`}},
		{"vni", func(in *Input) { in.VNI = 0 }, []string{"vni: "}},
		{"device", func(in *Input) { in.Device = "a/b" }, []string{"device: "}},
		{"mtu above a node's underlay", func(in *Input) { in.MTU = 1460 }, []string{
			`mtu["c1/n1"]: 1460 is more than node c1/n1's underlay allows: eth0 has MTU 1500, so at most 1450 (vxlan adds 50 bytes)`,
			`mtu["c1/n2"]: 1460 is more than node c1/n2's underlay allows`}},
		{"block outside the pool", func(in *Input) { in.Nodes[0].Block = pfx("10.245.0.0/26") }, []string{`nodes["c1/n3"]: block 10.245.0.0/26 is not inside the pool 10.244.0.0/16`}},
		{"blocks overlap", func(in *Input) { in.Nodes[0].Block = pfx("10.244.0.0/25") }, []string{
			`nodes["c1/n3"]: block 10.244.0.0/25 overlaps node c1/n1's block 10.244.0.0/26`,
			`nodes["c1/n3"]: block 10.244.0.0/25 overlaps node c1/n2's block 10.244.0.64/26`}},
		{"same underlay", func(in *Input) {
			in.Nodes[0].Underlay = ip("192.168.1.11")
			in.Nodes[0].Subnet = pfx("192.168.1.11/24")
		}, []string{
			`nodes["c1/n3"]: underlay address 192.168.1.11 is also node c1/n1's; every node needs its own`}},
		{"no underlay", func(in *Input) { in.Nodes[0].Underlay = netip.Addr{} }, []string{`nodes["c1/n3"]: no IPv4 underlay address`}},
		{"underlay outside its subnet", func(in *Input) { in.Nodes[0].Subnet = pfx("192.168.9.1/24") }, []string{
			`nodes["c1/n3"]: underlay address 192.168.2.13 is not in its subnet 192.168.9.1/24`}},
		{"cross_subnet without a subnet", func(in *Input) { in.Nodes[0].Subnet = netip.Prefix{} }, []string{
			`nodes["c1/n3"]: the subnet of its underlay interface is unknown; cross_subnet needs it`}},
		{"no underlay interface", func(in *Input) { in.Nodes[0].Interface = "" }, []string{`nodes["c1/n3"]: underlay interface: an interface name is required`}},
		{"underlay MTU unknown", func(in *Input) { in.Nodes[0].MTU = 0 }, []string{`nodes["c1/n3"]: the MTU of its underlay interface is unknown; give the tunnel's MTU`}},
		{"bad key", func(in *Input) { in.Nodes[0].Key = "n3" }, []string{`nodes["n3"]: node keys are "<cluster>/<node>", got "n3"`}},
		{"twice", func(in *Input) { in.Nodes[0].Key = "c1/n1" }, []string{`nodes["c1/n1"]: appears twice`}},
	}
	for _, c := range cases {
		in := vxlanInput(ModeCrossSubnet)
		in.Nodes = []Node{n3, n1, n4, n2} // n3 first: the cases edit it
		c.edit(&in)
		out, errs := Plan(in)
		if out != nil {
			t.Errorf("%s: a plan despite errors", c.name)
		}
		var got []string
		for _, e := range errs {
			got = append(got, e.Error())
		}
		text := strings.Join(got, "\n")
		if len(got) != len(c.want) {
			t.Errorf("%s: %d errors, want %d:\n%s", c.name, len(got), len(c.want), text)
		}
		for _, w := range c.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: missing %q in:\n%s", c.name, w, text)
			}
		}
	}
	// A node without a block is not checked beyond its key: nothing is planned from it.
	in := vxlanInput(ModeCrossSubnet)
	in.Nodes[2].Underlay, in.Nodes[2].Subnet, in.Nodes[2].MTU, in.Nodes[2].Interface = netip.Addr{}, netip.Prefix{}, 0, ""
	plan(t, in)
}

// TestLines: the plan text of a node's share; the observation of a node in sync (the agent
// adds ifindex, oper state, owner and the list of addresses, and reports the real port)
// renders the same; drift renders differently.
func TestLines(t *testing.T) {
	planned := plan(t, vxlanInput(ModeCrossSubnet))["c1/n1"]
	want := []string{
		"vxlan vxlan-pool0 vni 4096 port 4789 local 192.168.1.11 dev eth0 mac " + mac1 + " address 10.244.0.0/32 mtu 1450",
		"fdb " + mac3 + " dst 192.168.2.13",
		"neigh 10.244.0.128 lladdr " + mac3,
		"route 10.244.0.128/26 via 10.244.0.128 dev vxlan-pool0 onlink",
		"route 10.244.0.64/26 via 192.168.1.12",
	}
	if got := Lines(planned); !reflect.DeepEqual(got, want) {
		t.Errorf("Lines:\n got %q\nwant %q", got, want)
	}

	observed := proto.Clone(planned).(*pb.PoolEncapsulation)
	d := observed.Vxlan.Device
	d.Ifindex, d.OperState, d.Owner, d.Addresses = 7, "up", "nodenet:ip_pool/10.244.0.0/16", []string{d.Address}
	if got := Lines(observed); !reflect.DeepEqual(got, want) {
		t.Errorf("in sync, observed:\n got %q\nwant %q", got, want)
	}
	// Given out of order (as another reader might), the same text.
	observed.Vxlan.Fdb = append(observed.Vxlan.Fdb, &pb.FdbEntry{Mac: mac2, Dst: "192.168.1.12"})
	observed.Vxlan.Fdb[0], observed.Vxlan.Fdb[1] = observed.Vxlan.Fdb[1], observed.Vxlan.Fdb[0]
	drift := Lines(observed)
	if !contains(drift, "fdb "+mac2+" dst 192.168.1.12") || len(drift) != len(want)+1 {
		t.Errorf("an FDB entry added by hand: %q", drift)
	}
	observed.Vxlan.Fdb = planned.Vxlan.Fdb
	d.Addresses = append(d.Addresses, "10.9.9.9/24")
	observed.Direct = nil
	drift = Lines(observed)
	if !strings.Contains(drift[0], "address 10.244.0.0/32,10.9.9.9/24 ") || contains(drift, "route 10.244.0.64/26 via 192.168.1.12") {
		t.Errorf("a second address and a direct route gone: %q", drift)
	}
	// An observed tunnel without its device: no device line, nothing else it had.
	if got := Lines(&pb.PoolEncapsulation{Vxlan: &pb.VxlanTunnel{}}); len(got) != 0 {
		t.Errorf("absent device: %q", got)
	}

	in := vxlanInput(ModeCrossSubnet)
	in.Type, in.Device = TypeIpip, "tunl-pool0"
	ipip := plan(t, in)["c1/n3"]
	wantIpip := []string{
		"ipip tunl-pool0 local 192.168.2.13 address 10.244.0.128/32 mtu 8980",
		"route 10.244.0.0/26 via 192.168.1.11 dev tunl-pool0 onlink",
		"route 10.244.0.64/26 via 192.168.1.12 dev tunl-pool0 onlink",
	}
	if got := Lines(ipip); !reflect.DeepEqual(got, wantIpip) {
		t.Errorf("ipip:\n got %q\nwant %q", got, wantIpip)
	}
	obsIpip := proto.Clone(ipip).(*pb.PoolEncapsulation)
	obsIpip.Ipip.Ifindex, obsIpip.Ipip.OperState = 9, "up"
	if got := Lines(obsIpip); !reflect.DeepEqual(got, wantIpip) {
		t.Errorf("ipip in sync, observed: %q", got)
	}
	if got := Lines(&pb.PoolEncapsulation{}); len(got) != 0 {
		t.Errorf("gone: %q", got)
	}
	if got := Lines(nil); got == nil || len(got) != 0 {
		t.Errorf("nil: %#v, want empty", got)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
