package vxlan

import (
	"strings"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// A VXLAN tunnel as part of an object of any kind: the vxlan_tunnel kind is one object that
// is nothing but a tunnel; an ip_pool with VXLAN encapsulation has one too, beside its
// blackhole route and NAT. The functions below are what both use. The tunnel belongs to the
// object id (its device's ifalias is "nodenet:<id>"); the device's name comes from the spec.
// Nothing runs inside them: they plan steps on the caller's netlink handle, which the caller
// runs with its other steps in one dataplane.Run (all or nothing) and releases afterwards.
// Health checks are no part of them: only the vxlan_tunnel reconciler probes a tunnel's
// members (health.go), and what these functions observe has no health entries.

// TunnelPlan is what makes the node match a tunnel spec.
type TunnelPlan struct {
	// Steps make the changes in order; dataplane.Changes(Steps) is what a dry run reports.
	Steps []dataplane.Step
	o     *op
	want  *pb.VxlanTunnel
}

// TunnelSteps plans the kernel changes that make the node match t, for the object id. t has
// passed the contract's rules for its place (the object's Validate: ValidateVxlanTunnelObject,
// ValidatePoolEncapsulation), which differ in the device's address.
//   - field is where t sits in the object's spec (for errors: "ip_pool.encapsulation.vxlan.");
//   - owned are the kernel entries (dataplane keys) the object owned after its last apply,
//     less those another part of the object still wants (an ip_pool's blackhole and direct
//     routes): the plan deletes the routes among them that carry nodenet's protocol and that t
//     no longer has;
//   - heldBy names the object that holds a key ("" when none does); routes held by another
//     object are conflicts.
//
// Everything in the way is found before any step is returned: a device of that name that is
// not the object's (ConflictError), a route of another owner, an underlay the node lacks
// (FieldError). A route through the device that t no longer has is deleted by the plan (it
// deletes exactly that route): run the steps before those of another part that puts a route
// to the same destination elsewhere (a pool's direct route where a tunnel route was). The
// plan uses h until its Observe: release h after that.
func TunnelSteps(h *dataplane.Handle, id, field string, t *pb.VxlanTunnel, owned []string, heldBy func(string) string) (*TunnelPlan, error) {
	o := newOp(h, id, field, owned, heldBy)
	steps, err := o.plan(t)
	if err != nil {
		return nil, err
	}
	return &TunnelPlan{Steps: steps, o: o, want: t}, nil
}

// Observe reads the tunnel back from the kernel: after the steps ran, or instead of running
// them for a dry run.
func (p *TunnelPlan) Observe() (*pb.VxlanTunnel, error) {
	return p.o.observe(p.want.GetDevice().GetName(), p.want, false)
}

// ObserveTunnel reads the device called device and its FDB, neighbour and route entries as
// the object id has them. The answer's Device is nil when there is no link of that name;
// routes are the gateway routes through the device that carry nodenet's protocol, that the
// object owns or that want asks for.
func ObserveTunnel(h *dataplane.Handle, id, device string, want *pb.VxlanTunnel, owned []string) (*pb.VxlanTunnel, error) {
	return newOp(h, id, "", owned, nil).observe(device, want, false)
}

// DeleteTunnelSteps plans the deletion of the object id's tunnel: its device when it carries
// the object's ifalias (the kernel takes its addresses, FDB and neighbour entries and routes
// along), and the unicast routes among owned that carry nodenet's protocol and go elsewhere
// (an ip_pool's direct routes; a route of the tunnel left on another device). Blackhole routes
// are never among them. device "" or a device that is gone: only the routes. A device of that
// name that another owner has is a ConflictError, and nothing is deleted. Undoing the steps
// brings everything back, the device with its entries.
func DeleteTunnelSteps(h *dataplane.Handle, id, device string, owned []string) ([]dataplane.Step, error) {
	return h.DeleteLinkSteps(id, device, owned, func(alias string) error { return conflictForeign(id, device, alias) })
}

// TunnelClaims are the kernel entries a tunnel spec will own: its device and every route
// through it (main table).
func TunnelClaims(t *pb.VxlanTunnel) []string {
	keys := []string{dataplane.LinkKey(t.GetDevice().GetName())}
	for _, rt := range t.GetRoutes() {
		keys = append(keys, dataplane.RouteKey(dataplane.CanonPrefix(rt.GetDst()), 0))
	}
	return keys
}

// conflictForeign is the error for a link of the wanted name that object id does not own.
func conflictForeign(id, name, alias string) error {
	if other, ok := strings.CutPrefix(alias, pb.OwnerPrefix); ok {
		return reconcile.Conflictf("device %s is owned by nodenet object %s", name, other)
	}
	if kind, _, _ := pb.SplitObjectID(id); kind != pb.KindVxlanTunnel {
		return reconcile.Conflictf("device %s already exists and is not managed by nodenet (ifalias %q); delete it, or give the tunnel of %s another device name",
			name, alias, id)
	}
	// The agent does not know the resource's address in the configuration: <address> stands for it.
	return reconcile.Conflictf("device %s already exists and is not managed by nodenet (ifalias %q); adopt it with: terraform import <address of the nodenet_vxlan_tunnel> %s, or delete it",
		name, alias, name)
}
