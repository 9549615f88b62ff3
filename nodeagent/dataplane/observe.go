package dataplane

import (
	"fmt"
	"net"
	"sort"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// ObserveVxlan reads the device called name and its entries from the kernel. The answer's
// device is nil when no link of that name exists. Routes are those through the device that
// nodenet added (its route protocol) or that want asks for; with want nil (adopt), every
// gateway route through the device but the kernel's.
func (d *Dataplane) ObserveVxlan(name string, want *pb.VxlanTunnel) (*pb.VxlanTunnel, error) {
	if err := pb.ValidateIfName("name", name); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.observe(name, want)
}

// linkByName returns the link called name, or nil when there is none.
func (d *Dataplane) linkByName(name string) (netlink.Link, error) {
	l, err := d.h.LinkByName(name)
	if err != nil {
		if isLinkNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("look up link %s: %w", name, err)
	}
	return l, nil
}

func (d *Dataplane) observe(name string, want *pb.VxlanTunnel) (*pb.VxlanTunnel, error) {
	l, err := d.linkByName(name)
	if err != nil {
		return nil, err
	}
	out := &pb.VxlanTunnel{}
	if l == nil {
		return out, nil
	}
	a := l.Attrs()
	dev := &pb.VxlanDevice{
		Name:    a.Name,
		Ifindex: int32(a.Index),
		Owner:   owner(a.Alias),
		Mac:     macString(a.HardwareAddr),
	}
	out.Device = dev
	vx, ok := l.(*netlink.Vxlan)
	if !ok {
		return out, nil
	}
	dev.Vni = uint32(vx.VxlanId)
	dev.Port = uint32(vx.Port)
	dev.Learning = vx.Learning
	dev.Mtu = uint32(a.MTU)
	dev.OperState = operState(a)
	if vx.SrcAddr != nil && !vx.SrcAddr.IsUnspecified() {
		dev.LocalIp = vx.SrcAddr.String()
	}
	if vx.VtepDevIndex != 0 {
		if u, err := d.h.LinkByIndex(vx.VtepDevIndex); err == nil {
			dev.Underlay = u.Attrs().Name
		} else if !isLinkNotFound(err) {
			return nil, fmt.Errorf("look up link %d: %w", vx.VtepDevIndex, err)
		}
	}
	addrs, err := d.ipv4Addrs(l)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", name, err)
	}
	if len(addrs) > 0 {
		dev.Address = addrs[0].IPNet.String()
	}

	fdb, err := d.fdbEntries(a.Index)
	if err != nil {
		return nil, fmt.Errorf("list fdb of %s: %w", name, err)
	}
	for _, n := range fdb {
		out.Fdb = append(out.Fdb, &pb.FdbEntry{Mac: macString(n.HardwareAddr), Dst: n.IP.String()})
	}
	sort.SliceStable(out.Fdb, func(i, j int) bool {
		if out.Fdb[i].Mac != out.Fdb[j].Mac {
			return out.Fdb[i].Mac < out.Fdb[j].Mac
		}
		return out.Fdb[i].Dst < out.Fdb[j].Dst
	})

	neighs, err := d.permNeighs(a.Index)
	if err != nil {
		return nil, fmt.Errorf("list neighbours of %s: %w", name, err)
	}
	for _, n := range neighs {
		out.Neighbors = append(out.Neighbors, &pb.Neighbor{Ip: n.IP.String(), Mac: macString(n.HardwareAddr)})
	}
	sort.Slice(out.Neighbors, func(i, j int) bool { return ipLess(out.Neighbors[i].Ip, out.Neighbors[j].Ip) })

	routes, err := d.linkRoutes(a.Index)
	if err != nil {
		return nil, fmt.Errorf("list routes of %s: %w", name, err)
	}
	wanted := map[[2]string]bool{}
	for _, r := range want.GetRoutes() {
		wanted[[2]string{canonPrefix(r.GetDst()), canonIP(r.GetVia())}] = true
	}
	for _, r := range routes {
		if r.Gw == nil {
			continue
		}
		dst, via := routeDst(r), r.Gw.String()
		switch {
		case r.Protocol == RouteProtocol:
		case want != nil && wanted[[2]string{dst, via}]:
		case want == nil && r.Protocol != unix.RTPROT_KERNEL:
		default:
			continue
		}
		out.Routes = append(out.Routes, &pb.Route{Dst: dst, Via: via})
	}
	sort.SliceStable(out.Routes, func(i, j int) bool { return prefixLess(out.Routes[i].Dst, out.Routes[j].Dst) })
	return out, nil
}

// fdbEntries returns the FDB entries of a vxlan device that have a remote (dst) IP, in the
// kernel's order (a MAC's first remote first).
func (d *Dataplane) fdbEntries(index int) ([]netlink.Neigh, error) {
	all, err := retry(func() ([]netlink.Neigh, error) { return d.h.NeighList(index, unix.AF_BRIDGE) })
	if err != nil {
		return nil, err
	}
	var out []netlink.Neigh
	for _, n := range all {
		if n.LinkIndex == index && n.IP != nil && len(n.HardwareAddr) == 6 {
			out = append(out, n)
		}
	}
	return out, nil
}

// permNeighs returns the permanent IPv4 neighbours of a link.
func (d *Dataplane) permNeighs(index int) ([]netlink.Neigh, error) {
	all, err := retry(func() ([]netlink.Neigh, error) { return d.h.NeighList(index, unix.AF_INET) })
	if err != nil {
		return nil, err
	}
	var out []netlink.Neigh
	for _, n := range all {
		if n.LinkIndex == index && n.State&netlink.NUD_PERMANENT != 0 && n.IP.To4() != nil && len(n.HardwareAddr) > 0 {
			out = append(out, n)
		}
	}
	return out, nil
}

// linkRoutes returns the main-table IPv4 routes whose output device is index.
func (d *Dataplane) linkRoutes(index int) ([]netlink.Route, error) {
	return retry(func() ([]netlink.Route, error) {
		return d.h.RouteListFiltered(netlink.FAMILY_V4,
			&netlink.Route{LinkIndex: index, Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	})
}

// mainRoutes returns every main-table IPv4 route.
func (d *Dataplane) mainRoutes() ([]netlink.Route, error) {
	return retry(func() ([]netlink.Route, error) {
		return d.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
}

func routeDst(r netlink.Route) string {
	if r.Dst == nil {
		return "0.0.0.0/0"
	}
	return r.Dst.String()
}

// canonPrefix and canonIP put validated spec strings in the form the kernel reads back.
func canonPrefix(s string) string {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		return s
	}
	return n.String()
}

func canonIP(s string) string {
	ip := net.ParseIP(s)
	if ip == nil {
		return s
	}
	return ip.String()
}

func ipKey(s string) []byte {
	ip := net.ParseIP(s).To4()
	if ip == nil {
		return []byte(s)
	}
	return ip
}

func ipLess(a, b string) bool { return string(ipKey(a)) < string(ipKey(b)) }

func prefixLess(a, b string) bool {
	_, na, ea := net.ParseCIDR(a)
	_, nb, eb := net.ParseCIDR(b)
	if ea != nil || eb != nil {
		return a < b
	}
	if c := string(na.IP.To4()); c != string(nb.IP.To4()) {
		return c < string(nb.IP.To4())
	}
	la, _ := na.Mask.Size()
	lb, _ := nb.Mask.Size()
	return la < lb
}
