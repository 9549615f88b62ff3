package vxlan

import (
	"fmt"
	"sort"

	"github.com/vishvananda/netlink"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// observe reads the device called name and its entries. The answer's device is nil when no
// link of that name exists. Routes through the device are those with nodenet's protocol, those
// the object owns and those want asks for; when adopting, every gateway route through it but
// the kernel's.
func (o *op) observe(name string, want *pb.VxlanTunnel, adopting bool) (*pb.VxlanTunnel, error) {
	l, err := o.h.LinkByName(name)
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
		Owner:   dataplane.Owner(a.Alias),
		Mac:     dataplane.MACString(a.HardwareAddr),
	}
	out.Device = dev
	vx, ok := l.(*netlink.Vxlan)
	if !ok {
		return out, nil
	}
	if err := o.observeDevice(vx, dev); err != nil {
		return nil, err
	}
	if out.Fdb, err = o.observeFdb(a.Index); err != nil {
		return nil, fmt.Errorf("list fdb of %s: %w", name, err)
	}
	if out.Neighbors, err = o.observeNeighbors(a.Index); err != nil {
		return nil, fmt.Errorf("list neighbours of %s: %w", name, err)
	}
	if out.Routes, err = o.h.ObserveLinkRoutes(o.own, a.Index, want.GetRoutes(), adopting); err != nil {
		return nil, fmt.Errorf("list routes of %s: %w", name, err)
	}
	return out, nil
}

func (o *op) observeDevice(vx *netlink.Vxlan, dev *pb.VxlanDevice) error {
	a := vx.Attrs()
	dev.Vni = uint32(vx.VxlanId)
	dev.Port = uint32(vx.Port)
	dev.Learning = vx.Learning
	dev.Mtu = uint32(a.MTU)
	dev.OperState = dataplane.OperState(a)
	if vx.SrcAddr != nil && !vx.SrcAddr.IsUnspecified() {
		dev.LocalIp = vx.SrcAddr.String()
	}
	if vx.VtepDevIndex != 0 {
		if u, err := o.h.LinkByIndex(vx.VtepDevIndex); err == nil {
			dev.Underlay = u.Attrs().Name
		} else if !dataplane.IsLinkNotFound(err) {
			return fmt.Errorf("look up link %d: %w", vx.VtepDevIndex, err)
		}
	}
	addrs, err := o.h.IPv4Addrs(vx)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", a.Name, err)
	}
	for _, ad := range addrs {
		dev.Addresses = append(dev.Addresses, ad.IPNet.String())
	}
	if len(dev.Addresses) > 0 {
		dev.Address = dev.Addresses[0]
	}
	return nil
}

func (o *op) observeFdb(index int) ([]*pb.FdbEntry, error) {
	fdb, err := o.h.FdbEntries(index)
	if err != nil {
		return nil, err
	}
	var out []*pb.FdbEntry
	for _, n := range fdb {
		out = append(out, &pb.FdbEntry{Mac: dataplane.MACString(n.HardwareAddr), Dst: n.IP.String()})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Mac != out[j].Mac {
			return out[i].Mac < out[j].Mac
		}
		return out[i].Dst < out[j].Dst
	})
	return out, nil
}

func (o *op) observeNeighbors(index int) ([]*pb.Neighbor, error) {
	neighs, err := o.h.PermNeighs(index)
	if err != nil {
		return nil, err
	}
	var out []*pb.Neighbor
	for _, n := range neighs {
		out = append(out, &pb.Neighbor{Ip: n.IP.String(), Mac: dataplane.MACString(n.HardwareAddr)})
	}
	sort.Slice(out, func(i, j int) bool { return dataplane.IPLess(out[i].Ip, out[j].Ip) })
	return out, nil
}
