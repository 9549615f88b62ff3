package encap

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/mesh"
)

// Lines renders a node's encapsulation as text lines for the plan, one kernel entry a line:
//
//	vxlan vxlan-pool0 vni 4096 port 4789 local 192.168.1.11 dev eth0 mac 0a:.. address 10.244.0.0/32 mtu 1450
//	fdb <mac> dst <underlay ip>
//	neigh <tunnel ip> lladdr <mac>
//	route <block> via <tunnel ip> dev vxlan-pool0 onlink
//	ipip tunl-pool0 address 10.244.0.0/32 mtu 1480
//	route <block> via <underlay ip> dev tunl-pool0 onlink
//	route <block> via <underlay ip>          (direct, cross-subnet)
//
// The same function renders the planned share and the agent's observation: only what the
// plan sets is rendered (not the ifindex, oper state or owner the observation adds), the
// fields the kernel fills in are rendered as the planner fills them (port 4789 for 0), and
// every group is sorted, so a node in sync gives the planned lines exactly and drift (an entry
// gone, one added by hand, a second address) shows as changed lines. A tunnel that is
// absent (an observed VXLAN tunnel without a device, an IPIP tunnel that is nil) has no
// device line; nil renders nothing.
func Lines(e *pb.PoolEncapsulation) []string {
	out := []string{}
	if e == nil {
		return out
	}
	e, _ = proto.Clone(e).(*pb.PoolEncapsulation)
	Sort(e)
	if vx := e.GetVxlan(); vx != nil {
		name := vx.GetDevice().GetName()
		if d := vx.GetDevice(); d != nil {
			out = append(out, vxlanLine(d))
		}
		for _, s := range mesh.FDBStrings(vx) {
			out = append(out, "fdb "+s)
		}
		for _, s := range mesh.NeighborStrings(vx) {
			out = append(out, "neigh "+s)
		}
		out = append(out, routeLines(vx.GetRoutes(), name)...)
	}
	if ip := e.GetIpip(); ip != nil {
		out = append(out, fmt.Sprintf("ipip %s local %s address %s mtu %d", ip.GetName(), ip.GetLocalIp(), ip.GetAddress(), ip.GetMtu()))
		out = append(out, routeLines(ip.GetRoutes(), ip.GetName())...)
	}
	return append(out, routeLines(e.GetDirect(), "")...)
}

func vxlanLine(d *pb.VxlanDevice) string {
	port := d.GetPort()
	if port == 0 {
		port = pb.DefaultVxlanPort
	}
	// Every address the device has: one added by hand shows as a change of address.
	addr := d.GetAddress()
	if len(d.GetAddresses()) > 1 {
		addr = strings.Join(d.GetAddresses(), ",")
	}
	s := fmt.Sprintf("vxlan %s vni %d port %d local %s dev %s mac %s address %s mtu %d",
		d.GetName(), d.GetVni(), port, d.GetLocalIp(), d.GetUnderlay(), d.GetMac(), addr, d.GetMtu())
	if d.GetLearning() {
		s += " learning"
	}
	return s
}

// routeLines render routes "route <dst> via <gw>" as `ip route` prints them, through dev
// onlink when dev is given (a tunnel's routes).
func routeLines(rs []*pb.Route, dev string) []string {
	var out []string
	for _, s := range mesh.RouteStrings(&pb.VxlanTunnel{Routes: rs}) {
		if dev != "" {
			s += " dev " + dev + " onlink"
		}
		out = append(out, "route "+s)
	}
	return out
}
