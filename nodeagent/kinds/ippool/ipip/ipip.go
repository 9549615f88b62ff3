// Package ipip is an IP pool's IPIP dataplane on one node: an ipip device with the node's
// tunnel address, and a route to each other node's block through it, onlink via that node's
// underlay address (the kernel takes the route's gateway as the outer destination, as Calico's
// tunl0 does). It has the shape of the vxlan package's embedding API (TunnelSteps, Observe,
// ObserveTunnel, DeleteTunnelSteps, TunnelClaims): the tunnel is part of an object of another
// kind, which runs the planned steps with its own.
//
// What to program is pure (Desired: a spec to the netlink values), so a test can check it
// without a kernel; program.go compares it with the kernel and makes the steps.
//
// The device has the node's underlay address as its local address and no remote. A device
// without a local address would be a second catch-all IPIP tunnel: the kernel keeps exactly
// one, tunl0, which it makes in every network namespace as soon as the ipip module is loaded,
// and refuses another (EEXIST). A local address also makes the kernel hand this device the
// IPIP packets addressed to the node's underlay address before tunl0 could take them. The
// kernel keeps one such tunnel per local address, so a node has one IPIP pool tunnel per
// underlay address (Calico's tunl0 is one per node for all its pools).
package ipip

import (
	"net"
	"net/netip"
	"sort"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Want is what the node must have for one IPIP tunnel, as netlink gets it.
type Want struct {
	// Link is the device as LinkAdd creates it (MTU 0: the kernel's choice), with Alias the
	// owner's mark (set after LinkAdd, which does not take it).
	Link *netlink.Iptun
	// Addr is the node's tunnel address (/32); nil when the spec has none.
	Addr *netlink.Addr
	// Routes go through the device, sorted by destination; LinkIndex 0 stands for the device
	// (the step that adds a route gives it the device's index).
	Routes []*netlink.Route
}

// Desired is what object id's tunnel t needs on the node; local is the node's underlay
// address, the tunnel's source (invalid: none, see the package comment). t has passed the
// contract's rules (ValidateIpipTunnel).
func Desired(id string, t *pb.IpipTunnel, local netip.Addr) *Want {
	la := netlink.NewLinkAttrs()
	la.Name = t.GetName()
	la.MTU = int(t.GetMtu())
	la.Alias = pb.OwnerAlias(id)
	w := &Want{Link: &netlink.Iptun{
		LinkAttrs: la,
		// Path MTU discovery on (DF set on the outer header) and TTL inherited from the
		// inner packet: what `ip link add type ipip` makes. netlink sends PMTUDISC always,
		// so 0 would turn it off.
		PMtuDisc: 1,
		Proto:    unix.IPPROTO_IPIP,
	}}
	if local.Is4() {
		w.Link.Local = net.IP(local.AsSlice())
	}
	if a, err := netip.ParsePrefix(t.GetAddress()); err == nil {
		w.Addr = &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(a.Addr().AsSlice()), Mask: net.CIDRMask(a.Bits(), 32)}}
	}
	for _, r := range t.GetRoutes() {
		dst, err1 := netip.ParsePrefix(r.GetDst())
		via, err2 := netip.ParseAddr(r.GetVia())
		if err1 != nil || err2 != nil {
			continue // refused by the contract's rules before
		}
		dst = dst.Masked()
		w.Routes = append(w.Routes, dataplane.OnlinkRoute(0, &net.IPNet{IP: net.IP(dst.Addr().AsSlice()), Mask: net.CIDRMask(dst.Bits(), 32)}, net.IP(via.AsSlice())))
	}
	sort.Slice(w.Routes, func(i, j int) bool {
		return dataplane.PrefixLess(dataplane.RouteDst(*w.Routes[i]), dataplane.RouteDst(*w.Routes[j]))
	})
	return w
}

// TunnelClaims are the kernel entries a tunnel spec will own: its device and every route
// through it (main table).
func TunnelClaims(t *pb.IpipTunnel) []string {
	keys := []string{dataplane.LinkKey(t.GetName())}
	for _, rt := range t.GetRoutes() {
		keys = append(keys, dataplane.RouteKey(dataplane.CanonPrefix(rt.GetDst()), 0))
	}
	return keys
}
