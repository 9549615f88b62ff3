package dataplane

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// The link-level pieces the tunnel kinds share (a vxlan_tunnel's device, an ip_pool's vxlan
// or ipip device): creating a device with its owner's mark, its one address, deleting it so
// that an undo brings it back as it was.

// LinkRef is the device a plan's steps work on. Its index changes when a step (re)creates the
// device, so steps read it when they run, not when they are planned.
type LinkRef struct {
	Name  string
	Index int
}

// Link is the device as netlink calls that go by index need it.
func (r *LinkRef) Link() netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: r.Name, Index: r.Index}}
}

// AddLink creates l, marks it with alias and records its index in ref; a link it created but
// could not mark is deleted again, so no unmarked device is left behind.
func (h *Handle) AddLink(l netlink.Link, alias string, ref *LinkRef) error {
	if err := h.LinkAdd(l); err != nil {
		return err
	}
	nl, err := h.Handle.LinkByName(l.Attrs().Name)
	if err != nil {
		_ = h.LinkDel(l)
		return err
	}
	ref.Index = nl.Attrs().Index
	if err := h.LinkSetAlias(nl, alias); err != nil {
		_ = h.LinkDel(nl)
		return fmt.Errorf("set ifalias: %w", err)
	}
	return nil
}

// AddrSteps leave the device exactly the wanted address (nil: none); others (added by hand)
// go.
func (h *Handle) AddrSteps(ref *LinkRef, want *net.IPNet, have []netlink.Addr) []Step {
	var steps []Step
	present := false
	// Delete in reverse: secondaries before the primary that would take them along.
	for i := len(have) - 1; i >= 0; i-- {
		a := have[i]
		if want != nil && a.IPNet.String() == want.String() {
			present = true
			continue
		}
		ipn := *a.IPNet
		steps = append(steps, Step{
			Change: NewChange(pb.Change_DELETE, "addr", ipn.String(), ""),
			Desc:   "addr " + ipn.String(),
			Do: func() error {
				err := h.AddrDel(ref.Link(), &netlink.Addr{IPNet: &ipn})
				if errors.Is(err, unix.EADDRNOTAVAIL) {
					return nil // went with its primary
				}
				return err
			},
			Undo: func() error { return h.AddrAdd(ref.Link(), &netlink.Addr{IPNet: &ipn}) },
		})
	}
	if want != nil && !present {
		ipn := *want
		steps = append(steps, Step{
			Change: NewChange(pb.Change_ADD, "addr", ipn.String(), ""),
			Desc:   "addr " + ipn.String(),
			Do:     func() error { return h.AddrAdd(ref.Link(), &netlink.Addr{IPNet: &ipn}) },
			Undo:   func() error { return h.AddrDel(ref.Link(), &netlink.Addr{IPNet: &ipn}) },
		})
	}
	return steps
}

// Snapshot is what a device had, to bring it back when a step that deleted it is undone.
type Snapshot struct {
	link   netlink.Link // as LinkAdd makes it again; nil: a type this package cannot remake
	alias  string
	up     bool
	addrs  []netlink.Addr
	fdb    []netlink.Neigh
	neighs []netlink.Neigh
	routes []netlink.Route
}

// remakeable is l as LinkAdd creates it again: its type's attributes, with only the link
// attributes LinkAdd sets (the kernel refuses some of those it reports, like the index).
// Only the types nodenet makes are known; others give nil.
func remakeable(l netlink.Link) netlink.Link {
	a := l.Attrs()
	la := netlink.NewLinkAttrs()
	la.Name = a.Name
	la.MTU = a.MTU
	la.TxQLen = a.TxQLen
	switch l := l.(type) {
	case *netlink.Vxlan:
		c := *l
		la.HardwareAddr = a.HardwareAddr
		c.LinkAttrs = la
		return &c
	case *netlink.Iptun:
		c := *l // its "hardware address" is the local IP, which LinkAdd does not take
		c.LinkAttrs = la
		return &c
	}
	return nil
}

// TakeSnapshot reads what l has: its addresses, permanent neighbours, FDB entries and the
// routes through it that are not the kernel's own.
func (h *Handle) TakeSnapshot(l netlink.Link) (*Snapshot, error) {
	a := l.Attrs()
	s := &Snapshot{link: remakeable(l), alias: a.Alias, up: a.Flags&net.FlagUp != 0}
	var err error
	if s.addrs, err = h.IPv4Addrs(l); err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", a.Name, err)
	}
	if s.fdb, err = h.FdbEntries(a.Index); err != nil {
		return nil, fmt.Errorf("list fdb of %s: %w", a.Name, err)
	}
	if s.neighs, err = h.PermNeighs(a.Index); err != nil {
		return nil, fmt.Errorf("list neighbours of %s: %w", a.Name, err)
	}
	routes, err := h.LinkRoutes(a.Index)
	if err != nil {
		return nil, fmt.Errorf("list routes of %s: %w", a.Name, err)
	}
	for _, r := range routes {
		if r.Protocol != unix.RTPROT_KERNEL {
			s.routes = append(s.routes, r)
		}
	}
	return s, nil
}

// Restore deletes whatever now has the device's name and creates the snapshot's device again,
// with its mark, addresses, state, entries and routes; ref gets its new index.
func (h *Handle) Restore(s *Snapshot, ref *LinkRef) error {
	if s.link == nil {
		return fmt.Errorf("cannot create a link like %s again", ref.Name)
	}
	if l, err := h.LinkByName(ref.Name); err == nil && l != nil {
		if err := h.LinkDel(l); err != nil {
			return err
		}
	}
	if err := h.AddLink(s.link, s.alias, ref); err != nil {
		return err
	}
	var errs []error
	for _, a := range s.addrs {
		if err := h.AddrAdd(ref.Link(), &netlink.Addr{IPNet: a.IPNet}); err != nil {
			errs = append(errs, err)
		}
	}
	if s.up {
		if err := h.LinkSetUp(ref.Link()); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range s.neighs {
		if err := h.NeighSet(&netlink.Neigh{LinkIndex: ref.Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: n.IP, HardwareAddr: n.HardwareAddr}); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range s.fdb {
		if err := h.NeighAppend(&netlink.Neigh{LinkIndex: ref.Index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT, HardwareAddr: n.HardwareAddr, IP: n.IP}); err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range s.routes {
		r.LinkIndex = ref.Index
		if err := h.RouteReplace(&r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// LinkDeleteStep deletes l (the kernel takes its addresses, entries and routes along); undoing
// it creates l again as it was, when it is of a type nodenet makes (vxlan, ipip).
func (h *Handle) LinkDeleteStep(l netlink.Link) (Step, error) {
	name := l.Attrs().Name
	ref := &LinkRef{Name: name, Index: l.Attrs().Index}
	s := Step{
		Change: NewChange(pb.Change_DELETE, "link", name, ""),
		Desc:   "link " + name,
		Do:     func() error { return h.LinkDel(ref.Link()) },
	}
	snap, err := h.TakeSnapshot(l)
	if err != nil {
		return Step{}, err
	}
	if snap.link != nil {
		s.Undo = func() error { return h.Restore(snap, ref) }
	}
	return s, nil
}

// DeleteLinkSteps plan the deletion of object id's device and of its routes that outlive it:
// the device when it carries the object's ifalias (the kernel takes its addresses, entries
// and routes along; undoing the step makes it again as it was), and the unicast routes among
// owned that carry nodenet's protocol and go elsewhere (OwnedRouteDeletes). device "" or a
// device that is gone: only the routes. A device of that name with another ifalias is
// foreign(alias)'s error, and nothing is deleted.
func (h *Handle) DeleteLinkSteps(id, device string, owned []string, foreign func(alias string) error) ([]Step, error) {
	var steps []Step
	devIndex := 0
	if device != "" {
		l, err := h.LinkByName(device)
		if err != nil {
			return nil, err
		}
		if l != nil {
			if l.Attrs().Alias != pb.OwnerAlias(id) {
				return nil, foreign(l.Attrs().Alias)
			}
			devIndex = l.Attrs().Index
			s, err := h.LinkDeleteStep(l)
			if err != nil {
				return nil, err
			}
			steps = append(steps, s)
		}
	}
	routes, err := h.MainRoutes()
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	return append(steps, h.OwnedRouteDeletes(NewOwnership(id, owned, nil), devIndex, routes)...), nil
}
