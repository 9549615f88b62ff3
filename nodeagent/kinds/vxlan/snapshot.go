package vxlan

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// snapshot is what a device had, to bring it back when its replacement fails.
type snapshot struct {
	link   *netlink.Vxlan
	up     bool
	addrs  []netlink.Addr
	fdb    []netlink.Neigh
	neighs []netlink.Neigh
	routes []netlink.Route
}

func (o *op) snapshot(vx *netlink.Vxlan) (*snapshot, error) {
	s := &snapshot{link: vx, up: vx.Attrs().Flags&net.FlagUp != 0}
	idx := vx.Attrs().Index
	var err error
	if s.addrs, err = o.h.IPv4Addrs(vx); err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", vx.Name, err)
	}
	if s.fdb, err = o.h.FdbEntries(idx); err != nil {
		return nil, fmt.Errorf("list fdb of %s: %w", vx.Name, err)
	}
	if s.neighs, err = o.h.PermNeighs(idx); err != nil {
		return nil, fmt.Errorf("list neighbours of %s: %w", vx.Name, err)
	}
	routes, err := o.h.LinkRoutes(idx)
	if err != nil {
		return nil, fmt.Errorf("list routes of %s: %w", vx.Name, err)
	}
	for _, r := range routes {
		if r.Protocol != unix.RTPROT_KERNEL {
			s.routes = append(s.routes, r)
		}
	}
	return s, nil
}

// restore deletes whatever now has the device's name and creates the snapshot's device.
func (o *op) restore(s *snapshot, ref *linkRef) error {
	if l, err := o.h.LinkByName(ref.name); err == nil && l != nil {
		if err := o.h.LinkDel(l); err != nil {
			return err
		}
	}
	vx := *s.link
	la := netlink.NewLinkAttrs()
	la.Name = s.link.Name
	la.MTU = s.link.MTU
	la.HardwareAddr = s.link.HardwareAddr
	la.TxQLen = s.link.TxQLen
	vx.LinkAttrs = la
	if err := o.addLink(&vx, s.link.Alias, ref); err != nil {
		return err
	}
	var errs []error
	for _, a := range s.addrs {
		if err := o.h.AddrAdd(ref.link(), &netlink.Addr{IPNet: a.IPNet}); err != nil {
			errs = append(errs, err)
		}
	}
	if s.up {
		if err := o.h.LinkSetUp(ref.link()); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range s.neighs {
		if err := o.h.NeighSet(permNeigh(ref, n.IP, n.HardwareAddr)); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range s.fdb {
		if err := o.h.NeighAppend(fdbNeigh(ref, n.HardwareAddr, n.IP)); err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range s.routes {
		r.LinkIndex = ref.index
		if err := o.h.RouteReplace(&r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
