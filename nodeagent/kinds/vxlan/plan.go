package vxlan

import (
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// wanted is a validated spec with the node's defaults filled in.
type wanted struct {
	name     string
	alias    string
	vni      int
	port     int
	local    net.IP
	vtep     netlink.Link
	learning bool
	mtu      int
	mac      net.HardwareAddr // nil: keep the kernel's
	addr     *net.IPNet       // nil: none
	fdb      []*pb.FdbEntry   // canonical, sorted by MAC
	neighs   []*pb.Neighbor   // canonical, sorted by IP
	routes   []*pb.Route      // canonical, sorted by dst
}

func fieldError(field, format string, args ...any) error {
	return &pb.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func change(action pb.Change_Action, entry, key, detail string) *pb.Change {
	return dataplane.NewChange(action, entry, key, detail)
}

// resolve fills in the node's defaults: port, local IP, vtep device and MTU.
func (o *op) resolve(spec *pb.VxlanTunnel) (*wanted, error) {
	dev := spec.GetDevice()
	w := &wanted{
		name:     dev.GetName(),
		alias:    pb.OwnerAlias(o.own.ID),
		vni:      int(dev.GetVni()),
		port:     int(dev.GetPort()),
		learning: dev.GetLearning(),
	}
	if w.port == 0 {
		w.port = pb.DefaultVxlanPort
	}
	if err := o.resolveUnderlay(dev, w); err != nil {
		return nil, err
	}
	umtu := w.vtep.Attrs().MTU
	maxMTU := umtu - pb.VxlanOverhead
	w.mtu = int(dev.GetMtu())
	if w.mtu == 0 {
		w.mtu = maxMTU
	}
	if w.mtu > maxMTU {
		return nil, fieldError(o.field+"device.mtu", "MTU %d is above the maximum %d: underlay %s has MTU %d and VXLAN adds %d",
			w.mtu, maxMTU, w.vtep.Attrs().Name, umtu, pb.VxlanOverhead)
	}
	if dev.GetMac() != "" {
		w.mac, _ = net.ParseMAC(dev.GetMac())
	}
	if dev.GetAddress() != "" {
		ip, n, _ := net.ParseCIDR(dev.GetAddress())
		w.addr = &net.IPNet{IP: ip.To4(), Mask: n.Mask}
	}
	for _, e := range spec.GetFdb() {
		hw, _ := net.ParseMAC(e.GetMac())
		w.fdb = append(w.fdb, &pb.FdbEntry{Mac: hw.String(), Dst: dataplane.CanonIP(e.GetDst())})
	}
	sort.Slice(w.fdb, func(i, j int) bool { return w.fdb[i].Mac < w.fdb[j].Mac })
	for _, n := range spec.GetNeighbors() {
		hw, _ := net.ParseMAC(n.GetMac())
		w.neighs = append(w.neighs, &pb.Neighbor{Ip: dataplane.CanonIP(n.GetIp()), Mac: hw.String()})
	}
	sort.Slice(w.neighs, func(i, j int) bool { return dataplane.IPLess(w.neighs[i].Ip, w.neighs[j].Ip) })
	for _, r := range spec.GetRoutes() {
		w.routes = append(w.routes, &pb.Route{Dst: dataplane.CanonPrefix(r.GetDst()), Via: dataplane.CanonIP(r.GetVia())})
	}
	sort.Slice(w.routes, func(i, j int) bool { return dataplane.PrefixLess(w.routes[i].Dst, w.routes[j].Dst) })
	return w, nil
}

// resolveUnderlay finds the vtep device and the local IP: the underlay's primary IPv4
// address, or the interface that has the given local IP.
func (o *op) resolveUnderlay(dev *pb.VxlanDevice, w *wanted) error {
	p := o.field + "device."
	if dev.GetUnderlay() != "" {
		l, err := o.h.LinkByName(dev.GetUnderlay())
		if err != nil {
			return err
		}
		if l == nil {
			return fieldError(p+"underlay", "no interface %s on this node", dev.GetUnderlay())
		}
		w.vtep = l
	}
	if dev.GetLocalIp() != "" {
		w.local = net.ParseIP(dev.GetLocalIp()).To4()
	} else {
		addrs, err := o.h.IPv4Addrs(w.vtep)
		if err != nil {
			return fmt.Errorf("list addresses of %s: %w", dev.GetUnderlay(), err)
		}
		if len(addrs) == 0 {
			return fieldError(p+"underlay", "interface %s has no IPv4 address to use as the local IP", dev.GetUnderlay())
		}
		w.local = addrs[0].IP.To4()
	}
	if w.vtep != nil {
		return nil
	}
	all, err := dataplane.Retry(func() ([]netlink.Addr, error) { return o.h.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range all {
		if a.IP.Equal(w.local) {
			l, err := o.h.LinkByIndex(a.LinkIndex)
			if err != nil {
				return fmt.Errorf("look up link %d: %w", a.LinkIndex, err)
			}
			w.vtep = l
			return nil
		}
	}
	return fieldError(p+"local_ip", "no interface on this node has the address %s; give the underlay interface", w.local)
}

// plan computes the steps that bring the kernel to spec, checking every conflict first.
func (o *op) plan(spec *pb.VxlanTunnel) ([]dataplane.Step, error) {
	w, err := o.resolve(spec)
	if err != nil {
		return nil, err
	}
	l, err := o.h.LinkByName(w.name)
	if err != nil {
		return nil, err
	}
	ref := &dataplane.LinkRef{Name: w.name}
	var steps []dataplane.Step
	fresh := true // the device is created by this plan: it has no entries yet
	macChange := false
	if l != nil {
		a := l.Attrs()
		if a.Alias != w.alias {
			return nil, conflictForeign(o.own.ID, w.name, a.Alias)
		}
		vx, ok := l.(*netlink.Vxlan)
		if !ok {
			return nil, reconcile.Conflictf("device %s is a %s link, not vxlan; delete it", w.name, l.Type())
		}
		ref.Index = a.Index
		if diff := replaceDiff(vx, w); diff != "" {
			s, err := o.replaceSteps(vx, w, ref, diff)
			if err != nil {
				return nil, err
			}
			steps = append(steps, s...)
		} else {
			fresh = false
			var s []dataplane.Step
			s, macChange, err = o.linkUpdateSteps(vx, w, ref)
			if err != nil {
				return nil, err
			}
			steps = append(steps, s...)
		}
	} else {
		steps = append(steps, o.createStep(w, ref, change(pb.Change_ADD, "link", w.name, describe(w))))
	}
	entries, err := o.entrySteps(w, ref, l, fresh, macChange)
	if err != nil {
		return nil, err
	}
	return append(steps, entries...), nil
}

// entrySteps are the address, up, neighbour, FDB and route steps of the device.
func (o *op) entrySteps(w *wanted, ref *dataplane.LinkRef, l netlink.Link, fresh, macChange bool) ([]dataplane.Step, error) {
	var addrs []netlink.Addr
	var fdb, neighs []netlink.Neigh
	var err error
	if !fresh {
		if addrs, err = o.h.IPv4Addrs(l); err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", w.name, err)
		}
		if fdb, err = o.h.FdbEntries(ref.Index); err != nil {
			return nil, fmt.Errorf("list fdb of %s: %w", w.name, err)
		}
		if neighs, err = o.h.PermNeighs(ref.Index); err != nil {
			return nil, fmt.Errorf("list neighbours of %s: %w", w.name, err)
		}
	}
	all, err := o.h.MainRoutes()
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	routeSteps, conflicts := o.h.RouteSteps(o.own, ref, fresh, w.onlinkRoutes(), all)
	if len(conflicts) > 0 {
		return nil, reconcile.Conflictf("%s", strings.Join(conflicts, "; "))
	}
	var steps []dataplane.Step
	steps = append(steps, o.h.AddrSteps(ref, w.addr, addrs)...)
	steps = append(steps, o.upStep(w, ref, fresh || l.Attrs().Flags&net.FlagUp != 0))
	steps = append(steps, o.neighSteps(w, ref, neighs, macChange)...)
	steps = append(steps, o.fdbSteps(w, ref, fdb)...)
	return append(steps, routeSteps...), nil
}

// onlinkRoutes are the wanted routes as the kernel gets them.
func (w *wanted) onlinkRoutes() []*netlink.Route {
	var out []*netlink.Route
	for _, r := range w.routes {
		_, dst, _ := net.ParseCIDR(r.Dst)
		out = append(out, dataplane.OnlinkRoute(0, dst, net.ParseIP(r.Via).To4()))
	}
	return out
}

func describe(w *wanted) string {
	s := fmt.Sprintf("vxlan id %d dstport %d local %s dev %s", w.vni, w.port, w.local, w.vtep.Attrs().Name)
	if !w.learning {
		s += " nolearning"
	}
	s += fmt.Sprintf(" mtu %d", w.mtu)
	if w.mac != nil {
		s += " address " + w.mac.String()
	}
	return s
}

// replaceDiff names the attributes that differ and that only a new device can change.
func replaceDiff(vx *netlink.Vxlan, w *wanted) string {
	var d []string
	if vx.VxlanId != w.vni {
		d = append(d, fmt.Sprintf("vni %d -> %d", vx.VxlanId, w.vni))
	}
	if vx.Port != w.port {
		d = append(d, fmt.Sprintf("port %d -> %d", vx.Port, w.port))
	}
	if !vx.SrcAddr.Equal(w.local) {
		old := "none"
		if vx.SrcAddr != nil {
			old = vx.SrcAddr.String()
		}
		d = append(d, fmt.Sprintf("local %s -> %s", old, w.local))
	}
	if vx.VtepDevIndex != w.vtep.Attrs().Index {
		d = append(d, fmt.Sprintf("underlay ifindex %d -> %d (%s)", vx.VtepDevIndex, w.vtep.Attrs().Index, w.vtep.Attrs().Name))
	}
	if vx.Learning != w.learning {
		d = append(d, fmt.Sprintf("learning %t -> %t", vx.Learning, w.learning))
	}
	return strings.Join(d, ", ")
}
