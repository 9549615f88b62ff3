package ipip

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

const testPool = "ip_pool/10.244.0.0/16"

// spec is node 192.168.1.11's share of an IPIP pool, block 10.244.0.0/26: two other nodes
// reached through the tunnel (given out of order).
func spec() *pb.IpipTunnel {
	return &pb.IpipTunnel{
		Name: "tunl-pool0", LocalIp: "192.168.1.11", Address: "10.244.0.0/32", Mtu: 1480,
		Routes: []*pb.Route{
			{Dst: "10.244.0.128/26", Via: "192.168.2.13"},
			{Dst: "10.244.0.64/26", Via: "192.168.1.12"},
		},
	}
}

func cidr(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// TestDesired: exactly what the node would get, without a kernel: the ipip link (local = the
// node's underlay address, no remote, path MTU discovery, TTL inherited, IPIP protocol, the
// owner's ifalias, the MTU), the /32 tunnel address, and the routes onlink via the other
// nodes' underlay addresses with nodenet's protocol, sorted by destination.
func TestDesired(t *testing.T) {
	if err := pb.ValidatePoolEncapsulation("ip_pool.encapsulation.", &pb.PoolEncapsulation{Ipip: spec()}); err != nil {
		t.Fatalf("the spec is refused by the contract: %v", err)
	}
	got := Desired(testPool, spec(), netip.MustParseAddr("192.168.1.11"))

	la := netlink.NewLinkAttrs()
	la.Name, la.MTU, la.Alias = "tunl-pool0", 1480, "nodenet:ip_pool/10.244.0.0/16"
	route := func(dst, via string) *netlink.Route {
		return &netlink.Route{
			Dst: cidr(dst), Gw: net.ParseIP(via).To4(), Flags: int(netlink.FLAG_ONLINK),
			Protocol: 147, Scope: netlink.SCOPE_UNIVERSE, Table: unix.RT_TABLE_MAIN,
		}
	}
	want := &Want{
		Link: &netlink.Iptun{LinkAttrs: la, Local: net.IP{192, 168, 1, 11}, PMtuDisc: 1, Proto: unix.IPPROTO_IPIP},
		Addr: &netlink.Addr{IPNet: &net.IPNet{IP: net.IP{10, 244, 0, 0}, Mask: net.CIDRMask(32, 32)}},
		Routes: []*netlink.Route{
			route("10.244.0.64/26", "192.168.1.12"),
			route("10.244.0.128/26", "192.168.2.13"),
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Desired:\n got link %+v addr %v routes %v\nwant link %+v addr %v routes %v", got.Link, got.Addr, got.Routes, want.Link, want.Addr, want.Routes)
	}
	for i, r := range got.Routes {
		if r.LinkIndex != 0 || r.Type != 0 {
			t.Errorf("route %d: %+v: the device's index is the step's to fill", i, r)
		}
	}
	if got := describe(got.Link); got != "ipip remote any local 192.168.1.11 mtu 1480" {
		t.Errorf("describe: %q", got)
	}

	// MTU 0 leaves it to the kernel; no local address is tunl0's style.
	s := spec()
	s.Mtu = 0
	bare := Desired(testPool, s, netip.Addr{})
	if bare.Link.MTU != 0 || bare.Link.Local != nil || describe(bare.Link) != "ipip remote any local any" {
		t.Errorf("no MTU, no local: %+v, %q", bare.Link, describe(bare.Link))
	}

	if got, want := TunnelClaims(spec()), []string{"link tunl-pool0", "route 10.244.0.128/26", "route 10.244.0.64/26"}; !reflect.DeepEqual(got, want) {
		t.Errorf("claims %q, want %q", got, want)
	}
}

// kernelRead is the device as the kernel reports it back after LinkAdd of want: every
// address attribute set (0.0.0.0 for none).
func kernelRead(want *netlink.Iptun) *netlink.Iptun {
	got := *want
	got.Remote = net.IPv4zero.To4()
	if got.Local == nil {
		got.Local = net.IPv4zero.To4()
	}
	return &got
}

// TestReplaceDiff: a device as the kernel reports the wanted one needs no replacement; one
// with another local address, a remote or path MTU discovery off does, and the change says
// what differs.
func TestReplaceDiff(t *testing.T) {
	want := Desired(testPool, spec(), netip.MustParseAddr("192.168.1.11")).Link
	if d := replaceDiff(kernelRead(want), want); d != "" {
		t.Errorf("the kernel's read-back of the wanted device differs: %s", d)
	}
	bare := Desired(testPool, spec(), netip.Addr{}).Link
	if d := replaceDiff(kernelRead(bare), bare); d != "" {
		t.Errorf("no local: %s", d)
	}
	other := kernelRead(want)
	other.Local = net.IP{192, 168, 1, 99}
	other.Remote = net.IP{192, 168, 1, 12}
	other.PMtuDisc = 0
	if d, w := replaceDiff(other, want), "local 192.168.1.99 -> 192.168.1.11, remote 192.168.1.12 -> any, pmtudisc 0 -> 1"; d != w {
		t.Errorf("diff %q, want %q", d, w)
	}
}

// TestSameTunnel: the IPIP devices the kernel would take for the wanted one (and refuse it):
// tunl0 for a device without a local address, another device with the same local address
// and no remote; not one with a remote, another local or an underlay device.
func TestSameTunnel(t *testing.T) {
	iptun := func(name, local, remote string, link uint32) *netlink.Iptun {
		l := &netlink.Iptun{LinkAttrs: netlink.LinkAttrs{Name: name}, Local: net.ParseIP(local).To4(), Remote: net.ParseIP(remote).To4(), Link: link}
		return l
	}
	tunl0 := iptun("tunl0", "0.0.0.0", "0.0.0.0", 0)
	mine := iptun("tunl-pool0", "192.168.1.11", "0.0.0.0", 0) // the device itself, being replaced
	p2p := iptun("p2p", "192.168.1.11", "192.168.1.12", 0)
	bound := iptun("bound", "192.168.1.11", "0.0.0.0", 2)
	other := iptun("tunl-other", "192.168.1.11", "0.0.0.0", 0)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}}

	withLocal := Desired(testPool, spec(), netip.MustParseAddr("192.168.1.11")).Link
	noLocal := Desired(testPool, spec(), netip.Addr{}).Link
	if got := sameTunnel(withLocal, []netlink.Link{veth, tunl0, mine, p2p, bound}); got != nil {
		t.Errorf("with a local address: %s taken for the same tunnel", got.Name)
	}
	if got := sameTunnel(withLocal, []netlink.Link{tunl0, other}); got != other {
		t.Errorf("same local address: got %v", got)
	}
	if got := sameTunnel(noLocal, []netlink.Link{veth, mine, tunl0}); got != tunl0 {
		t.Errorf("no local address: got %v, want tunl0", got)
	}
	err := collision(noLocal, tunl0)
	if err == nil || !strings.Contains(err.Error(), "tunl0 already is the node's catch-all IPIP tunnel") {
		t.Errorf("collision message: %v", err)
	}
	other.Alias = "nodenet:ip_pool/10.99.0.0/16"
	if err := collision(withLocal, other); err == nil || !strings.Contains(err.Error(), "tunl-other (owned by nodenet object ip_pool/10.99.0.0/16) already is the IPIP tunnel of local address 192.168.1.11") {
		t.Errorf("collision message: %v", err)
	}
}
