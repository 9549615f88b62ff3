package vxlan

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Delete deletes the device when it carries the object's ifalias (the kernel drops its
// addresses, FDB and neighbour entries and routes with it), and the routes elsewhere the
// object owns that still carry nodenet's protocol. A missing device is no change; a device
// someone else owns is a conflict and is left alone. When a step fails, those made are undone.
func (r *Reconciler) Delete(_ context.Context, id string, owned []string, dryRun bool) ([]*pb.Change, error) {
	name, err := deviceName(id)
	if err != nil {
		return nil, err
	}
	h, err := r.dp.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Release()
	steps, err := DeleteTunnelSteps(h, id, name, owned)
	if err != nil {
		return nil, err
	}
	natSteps, err := r.natSteps(id, nil)
	if err != nil {
		return nil, err
	}
	steps = append(steps, natSteps...)
	if !dryRun {
		if err := dataplane.Run("vxlan "+name, steps, nil); err != nil {
			return nil, err
		}
		r.probe(id, nil)
	}
	return dataplane.Changes(steps), nil
}

// Adopt takes the vxlan device name, made by hand, under management as the object id by
// setting its ifalias (not with dryRun), and returns what it reads back. The previous ifalias
// is kept in the adoption's marks for Release.
func (r *Reconciler) Adopt(_ context.Context, id, name string, dryRun bool) (*reconcile.Adoption, error) {
	o, _, err := r.beginOn(id, nil)
	if err != nil {
		return nil, err
	}
	defer o.end()
	l, err := o.h.LinkByName(name)
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, &reconcile.NotFoundError{Msg: fmt.Sprintf("no device %s on this node", name)}
	}
	if _, ok := l.(*netlink.Vxlan); !ok {
		return nil, reconcile.Conflictf("device %s is a %s link, not vxlan", name, l.Type())
	}
	alias := l.Attrs().Alias
	switch {
	case alias == pb.OwnerAlias(id):
	case dataplane.Owner(alias) != "":
		return nil, conflictForeign(id, name, alias)
	case !dryRun:
		if err := o.h.LinkSetAlias(l, pb.OwnerAlias(id)); err != nil {
			return nil, fmt.Errorf("vxlan %s: set ifalias: %w", name, err)
		}
	}
	obs, err := o.observe(name, nil, true)
	if err != nil {
		return nil, err
	}
	owned, err := o.adoptedOwned(l)
	if err != nil {
		return nil, err
	}
	return &reconcile.Adoption{Observed: object(id, obs), Owned: owned, Marks: map[string]string{dataplane.LinkKey(name): alias}}, nil
}

// adoptedOwned is what an adoption owns: the device, and the routes through it that carry
// nodenet's protocol. Routes typed by hand become the object's once an Apply wants them.
func (o *op) adoptedOwned(l netlink.Link) ([]string, error) {
	owned := []string{dataplane.LinkKey(l.Attrs().Name)}
	routes, err := o.h.LinkRoutes(l.Attrs().Index)
	if err != nil {
		return nil, fmt.Errorf("list routes of %s: %w", l.Attrs().Name, err)
	}
	for _, rt := range routes {
		if rt.Protocol == dataplane.RouteProtocol {
			owned = append(owned, dataplane.RouteKey(dataplane.RouteDst(rt), 0))
		}
	}
	return owned, nil
}

// Release puts the device's ifalias back as it was before the adoption. The object is no
// longer managed: its health checks stop.
func (r *Reconciler) Release(_ context.Context, id string, marks map[string]string) (err error) {
	o, name, err := r.beginOn(id, nil)
	if err != nil {
		return err
	}
	defer o.end()
	defer func() {
		if err == nil {
			r.probe(id, nil)
		}
	}()
	l, err := o.h.LinkByName(name)
	if err != nil || l == nil {
		return err // gone: nothing to give back
	}
	if l.Attrs().Alias != pb.OwnerAlias(id) {
		return nil // not our mark any more
	}
	if err := o.h.LinkSetAlias(l, marks[dataplane.LinkKey(name)]); err != nil {
		return fmt.Errorf("vxlan %s: restore ifalias: %w", name, err)
	}
	return nil
}
