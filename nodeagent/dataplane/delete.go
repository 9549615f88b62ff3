package dataplane

import (
	"fmt"

	"github.com/vishvananda/netlink"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// DeleteVxlan deletes the device name when the object id owns it; the kernel drops its
// addresses, FDB and neighbour entries and routes with it. A missing device is no change;
// a device someone else owns is a conflict and is left alone.
func (d *Dataplane) DeleteVxlan(id, name string, dryRun bool) ([]*pb.Change, error) {
	unlock, l, err := d.lockedLink(id, name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if l == nil {
		return []*pb.Change{}, nil
	}
	if l.Attrs().Alias != pb.OwnerAlias(id) {
		return nil, conflictForeign(id, name, l.Attrs().Alias)
	}
	changes := []*pb.Change{change(pb.Change_DELETE, "link", name, "")}
	if dryRun {
		return changes, nil
	}
	if err := d.h.LinkDel(l); err != nil {
		return nil, fmt.Errorf("vxlan %s: delete link: %w", name, err)
	}
	return changes, nil
}

// AdoptVxlan takes the vxlan device name, made by hand, under management as the object id
// by setting its ifalias (not with dryRun), and returns what it reads back.
func (d *Dataplane) AdoptVxlan(id, name string, dryRun bool) (*pb.VxlanTunnel, error) {
	unlock, l, err := d.lockedLink(id, name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if l == nil {
		return nil, &NotFoundError{Msg: fmt.Sprintf("no device %s on this node", name)}
	}
	if _, ok := l.(*netlink.Vxlan); !ok {
		return nil, &ConflictError{Msg: fmt.Sprintf("device %s is a %s link, not vxlan", name, l.Type())}
	}
	alias := l.Attrs().Alias
	switch {
	case alias == pb.OwnerAlias(id):
	case owner(alias) != "":
		return nil, conflictForeign(id, name, alias)
	case !dryRun:
		if err := d.h.LinkSetAlias(l, pb.OwnerAlias(id)); err != nil {
			return nil, fmt.Errorf("vxlan %s: set ifalias: %w", name, err)
		}
	}
	return d.observe(name, nil)
}

// lockedLink checks the object id and device name, takes the dataplane's lock and looks the
// link up (nil when absent). The caller runs unlock when done.
func (d *Dataplane) lockedLink(id, name string) (unlock func(), l netlink.Link, err error) {
	if err := checkID(id, ""); err != nil {
		return nil, nil, err
	}
	if err := pb.ValidateIfName("name", name); err != nil {
		return nil, nil, err
	}
	d.mu.Lock()
	l, err = d.linkByName(name)
	if err != nil {
		d.mu.Unlock()
		return nil, nil, err
	}
	return d.mu.Unlock, l, nil
}
