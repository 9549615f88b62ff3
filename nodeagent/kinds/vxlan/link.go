package vxlan

import (
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// newVxlan is the link LinkAdd creates for w.
func newVxlan(w *wanted) *netlink.Vxlan {
	la := netlink.NewLinkAttrs()
	la.Name = w.name
	la.MTU = w.mtu
	la.HardwareAddr = w.mac
	return &netlink.Vxlan{
		LinkAttrs:    la,
		VxlanId:      w.vni,
		Port:         w.port,
		SrcAddr:      w.local,
		VtepDevIndex: w.vtep.Attrs().Index,
		Learning:     w.learning,
	}
}

func (o *op) createStep(w *wanted, ref *dataplane.LinkRef, c *pb.Change) dataplane.Step {
	return dataplane.Step{
		Change: c,
		Desc:   "link " + w.name,
		Do:     func() error { return o.h.AddLink(newVxlan(w), w.alias, ref) },
		Undo:   func() error { return o.h.LinkDel(ref.Link()) },
	}
}

// replaceSteps delete the device and create it again; undoing them brings the old device
// back with its addresses, entries and routes.
func (o *op) replaceSteps(vx *netlink.Vxlan, w *wanted, ref *dataplane.LinkRef, diff string) ([]dataplane.Step, error) {
	snap, err := o.h.TakeSnapshot(vx)
	if err != nil {
		return nil, err
	}
	del := dataplane.Step{
		Change: change(pb.Change_REPLACE, "link", w.name, diff),
		Desc:   "link " + w.name + " (delete to replace)",
		Do:     func() error { return o.h.LinkDel(ref.Link()) },
		Undo:   func() error { return o.h.Restore(snap, ref) },
	}
	return []dataplane.Step{del, o.createStep(w, ref, nil)}, nil
}

// linkUpdateSteps change the MTU and the MAC in place. The kernel drops a device's permanent
// neighbours when its MAC changes, so macChange tells the neighbour steps to set them all
// again, and undoing the MAC change puts the old neighbours back too.
func (o *op) linkUpdateSteps(vx *netlink.Vxlan, w *wanted, ref *dataplane.LinkRef) (steps []dataplane.Step, macChange bool, err error) {
	a := vx.Attrs()
	if a.MTU != w.mtu {
		old, want := a.MTU, w.mtu
		steps = append(steps, dataplane.Step{
			Change: change(pb.Change_UPDATE, "link", w.name, fmt.Sprintf("mtu %d -> %d", old, want)),
			Desc:   "link " + w.name + " mtu",
			Do:     func() error { return o.h.LinkSetMTU(ref.Link(), want) },
			Undo:   func() error { return o.h.LinkSetMTU(ref.Link(), old) },
		})
	}
	if w.mac == nil || a.HardwareAddr.String() == w.mac.String() {
		return steps, false, nil
	}
	oldNeighs, err := o.h.PermNeighs(ref.Index)
	if err != nil {
		return nil, false, fmt.Errorf("list neighbours of %s: %w", w.name, err)
	}
	old, want := a.HardwareAddr, w.mac
	steps = append(steps, dataplane.Step{
		Change: change(pb.Change_UPDATE, "link", w.name, fmt.Sprintf("mac %s -> %s", dataplane.MACString(old), want)),
		Desc:   "link " + w.name + " mac",
		Do:     func() error { return o.h.LinkSetHardwareAddr(ref.Link(), want) },
		Undo: func() error {
			if err := o.h.LinkSetHardwareAddr(ref.Link(), old); err != nil {
				return err
			}
			for _, n := range oldNeighs {
				if err := o.h.NeighSet(permNeigh(ref, n.IP, n.HardwareAddr)); err != nil {
					return err
				}
			}
			return nil
		},
	})
	return steps, true, nil
}

// upStep sets the device up and then makes sure it kept the wanted MAC.
func (o *op) upStep(w *wanted, ref *dataplane.LinkRef, isUp bool) dataplane.Step {
	s := dataplane.Step{
		Desc: "link " + w.name + " up",
		Do: func() error {
			if err := o.h.LinkSetUp(ref.Link()); err != nil {
				return err
			}
			if w.mac == nil {
				return nil
			}
			l, err := o.h.LinkByIndex(ref.Index)
			if err != nil {
				return err
			}
			if l.Attrs().HardwareAddr.String() != w.mac.String() {
				return o.h.LinkSetHardwareAddr(ref.Link(), w.mac)
			}
			return nil
		},
	}
	if isUp {
		// Already up (or created by this plan, which its ADD or REPLACE reports): no change
		// to report, but the MAC check still runs.
		return s
	}
	s.Change = change(pb.Change_UPDATE, "link", w.name, "down -> up")
	s.Undo = func() error { return o.h.LinkSetDown(ref.Link()) }
	return s
}
