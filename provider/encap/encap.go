// Package encap plans an IP pool's encapsulation across its nodes, as Calico does with an
// IPPool's vxlanMode/ipipMode: from the pool's encapsulation settings and every node's
// underlay and block, it derives each node's share (the contract's PoolEncapsulation): a
// tunnel device with the node's tunnel address, the entries that reach the other nodes'
// blocks through it, and, cross-subnet, plain routes to the blocks of nodes in the node's own
// underlay subnet. It is pure (no Terraform types, no I/O): the resource, its plan and the
// tests use the same code.
package encap

import (
	"fmt"
	"net/netip"
	"sort"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/mesh"
)

// Encapsulation types and modes.
const (
	TypeNone  = "none"
	TypeVxlan = "vxlan"
	TypeIpip  = "ipip"

	// ModeAlways encapsulates to every other node.
	ModeAlways = "always"
	// ModeCrossSubnet encapsulates only to nodes in another underlay subnet; a node in the
	// same subnet is reached by a plain route via its underlay address.
	ModeCrossSubnet = "cross_subnet"

	// IpipOverhead is the outer IPv4 header IPIP adds (VXLAN: pb.VxlanOverhead).
	IpipOverhead = 20
)

// Node is one node of the pool as its agent reports it.
type Node struct {
	// Key is "<cluster>/<node>".
	Key string
	// Underlay is the node's underlay IPv4 address: VXLAN's local IP, the other nodes' FDB
	// destination and gateway of IPIP and direct routes.
	Underlay netip.Addr
	// Subnet is the prefix the underlay interface has the address with, like 192.168.1.11/24.
	Subnet netip.Prefix
	// Interface is the underlay interface's name, MTU its MTU.
	Interface string
	MTU       int
	// Block is the node's block of the pool; not valid when the node has none.
	Block netip.Prefix
}

// Input is a pool's encapsulation and its nodes.
type Input struct {
	Pool netip.Prefix
	// Type is TypeVxlan, TypeIpip or TypeNone ("" is none).
	Type string
	// Mode is ModeAlways or ModeCrossSubnet ("" is always).
	Mode string
	// Device is the tunnel device's name on every node.
	Device string
	// VNI and Port are VXLAN's (Port 0: 4789).
	VNI  uint32
	Port uint32
	// MTU of the tunnel device; 0: each node's underlay MTU less the encapsulation's overhead.
	MTU   int
	Nodes []Node
}

// Error is a rule broken by the input: Field is the Input field ("type", "mode", "device",
// "vni", "port", "mtu", "pool", "nodes"), Node the node's key when it is about one node.
type Error struct {
	Field, Node, Msg string
}

func (e *Error) Error() string {
	if e.Node != "" {
		return fmt.Sprintf("%s[%q]: %s", e.Field, e.Node, e.Msg)
	}
	return e.Field + ": " + e.Msg
}

func errf(field, node, format string, args ...any) *Error {
	return &Error{Field: field, Node: node, Msg: fmt.Sprintf(format, args...)}
}

// fieldMsg keeps only the message of a contract FieldError (the path is ours).
func fieldMsg(err error) string {
	if fe, ok := pb.AsFieldError(err); ok {
		return fe.Msg
	}
	return err.Error()
}

// TunnelAddress is a node's tunnel address: the first address of its block as a /32, like
// Calico's tunl0 and vxlan.calico addresses (block 10.244.0.64/26: 10.244.0.64/32).
func TunnelAddress(block netip.Prefix) netip.Prefix {
	return netip.PrefixFrom(block.Masked().Addr(), 32)
}

// Direct tells whether two nodes reach each other without encapsulation in cross-subnet
// mode: each one's underlay address is in the other's underlay subnet.
func Direct(a, b Node) bool {
	return a.Subnet.IsValid() && b.Subnet.IsValid() && a.Subnet.Contains(b.Underlay) && b.Subnet.Contains(a.Underlay)
}

// Plan is every node's share, by key: nil for a node without a block (and for every node
// when the type is none). Entries are sorted the way agents report them, so plans are
// stable and compare with observations.
func Plan(in Input) (map[string]*pb.PoolEncapsulation, []*Error) {
	nodes := sortedNodes(in.Nodes)
	if errs := validate(in, nodes); len(errs) > 0 {
		return nil, errs
	}
	out := make(map[string]*pb.PoolEncapsulation, len(nodes))
	var members []Node // the nodes with a block: the only ones with a tunnel and reached
	for _, n := range nodes {
		out[n.Key] = nil
		if n.Block.IsValid() {
			members = append(members, n)
		}
	}
	if typeOf(in) == TypeNone {
		return out, nil
	}
	for _, n := range members {
		out[n.Key] = share(in, n, members)
	}
	return out, nil
}

func typeOf(in Input) string {
	if in.Type == "" {
		return TypeNone
	}
	return in.Type
}

func modeOf(in Input) string {
	if in.Mode == "" {
		return ModeAlways
	}
	return in.Mode
}

func overhead(typ string) int {
	if typ == TypeIpip {
		return IpipOverhead
	}
	return pb.VxlanOverhead
}

// mtu is the tunnel MTU on node n.
func mtu(in Input, n Node) int {
	if in.MTU != 0 {
		return in.MTU
	}
	return n.MTU - overhead(typeOf(in))
}

// mac is node n's tunnel MAC: derived from its key and the device, so it stays the same
// across plans and agents.
func mac(n Node, device string) string {
	cluster, node, _ := mesh.SplitKey(n.Key)
	return pb.DeriveMAC(cluster, node, device)
}

// share is node n's encapsulation: the tunnel toward every other member reached
// encapsulated, a direct route to every other member in its subnet (cross-subnet).
func share(in Input, n Node, members []Node) *pb.PoolEncapsulation {
	e := &pb.PoolEncapsulation{}
	var vx *pb.VxlanTunnel
	var ip *pb.IpipTunnel
	addr := TunnelAddress(n.Block).String()
	switch typeOf(in) {
	case TypeVxlan:
		port := in.Port
		if port == 0 {
			port = pb.DefaultVxlanPort
		}
		vx = &pb.VxlanTunnel{Device: &pb.VxlanDevice{
			Name: in.Device, Vni: in.VNI, Port: port, Underlay: n.Interface, LocalIp: n.Underlay.String(),
			Learning: false, Mtu: uint32(mtu(in, n)), Mac: mac(n, in.Device), Address: addr,
		}}
		e.Vxlan = vx
	case TypeIpip:
		ip = &pb.IpipTunnel{Name: in.Device, LocalIp: n.Underlay.String(), Address: addr, Mtu: uint32(mtu(in, n))}
		e.Ipip = ip
	}
	for _, o := range members {
		if o.Key == n.Key {
			continue
		}
		block := o.Block.Masked().String()
		switch {
		case modeOf(in) == ModeCrossSubnet && Direct(n, o):
			e.Direct = append(e.Direct, &pb.Route{Dst: block, Via: o.Underlay.String()})
		case vx != nil:
			om, otun := mac(o, in.Device), TunnelAddress(o.Block).Addr().String()
			vx.Fdb = append(vx.Fdb, &pb.FdbEntry{Mac: om, Dst: o.Underlay.String()})
			vx.Neighbors = append(vx.Neighbors, &pb.Neighbor{Ip: otun, Mac: om})
			vx.Routes = append(vx.Routes, &pb.Route{Dst: block, Via: otun})
		case ip != nil:
			ip.Routes = append(ip.Routes, &pb.Route{Dst: block, Via: o.Underlay.String()})
		}
	}
	Sort(e)
	return e
}

// Sort orders an encapsulation's entries the way agents report them: FDB entries by MAC
// (then destination), neighbours by address, routes by destination.
func Sort(e *pb.PoolEncapsulation) {
	if vx := e.GetVxlan(); vx != nil {
		mesh.Sort(vx)
		sort.SliceStable(vx.Fdb, func(i, j int) bool {
			a, b := vx.Fdb[i], vx.Fdb[j]
			return a.GetMac() < b.GetMac() || a.GetMac() == b.GetMac() && addrLess(a.GetDst(), b.GetDst())
		})
	}
	if ip := e.GetIpip(); ip != nil {
		sortRoutes(ip.Routes)
	}
	sortRoutes(e.Direct)
}

func sortRoutes(rs []*pb.Route) {
	sort.SliceStable(rs, func(i, j int) bool {
		x, err1 := netip.ParsePrefix(rs[i].GetDst())
		y, err2 := netip.ParsePrefix(rs[j].GetDst())
		if err1 != nil || err2 != nil || x == y {
			return rs[i].GetDst() < rs[j].GetDst() || rs[i].GetDst() == rs[j].GetDst() && addrLess(rs[i].GetVia(), rs[j].GetVia())
		}
		if x.Addr() != y.Addr() {
			return x.Addr().Less(y.Addr())
		}
		return x.Bits() < y.Bits()
	})
}

func addrLess(a, b string) bool {
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	if err1 != nil || err2 != nil {
		return a < b
	}
	return x.Less(y)
}

func sortedNodes(ns []Node) []Node {
	out := append([]Node(nil), ns...)
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
