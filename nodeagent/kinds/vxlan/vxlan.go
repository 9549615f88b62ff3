// Package vxlan is the vxlan_tunnel kind: one node's share of a VXLAN overlay, its device
// and the FDB, neighbour and route entries that reach the other members. It is built on the
// dataplane's netlink handles the way flannel's vxlan backend is: one function per kernel
// object, the MAC chosen before LinkAdd and checked after link up, FDB and neighbours with
// NeighSet, onlink routes with nodenet's protocol, every change undoable. The same code plans a
// tunnel that is part of an object of another kind (an ip_pool's VXLAN encapsulation): see
// TunnelSteps in embed.go, of which the vxlan_tunnel's Apply, Observe and Delete are thin
// wrappers. A vxlan_tunnel that asks for health checks has its neighbours probed by the
// node's health.Prober (health.go); a tunnel embedded in another kind has none.
package vxlan

import (
	"context"
	"fmt"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/health"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/nat"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Reconciler manages vxlan_tunnel objects in one network namespace.
type Reconciler struct {
	dp *dataplane.Dataplane
	// health probes the neighbours of the objects with health_check; nil when the agent
	// measures no health (then such objects report every neighbour as not probed).
	health *health.Prober

	// BeforeStep, when set (by tests), runs before each reported kernel change of an Apply;
	// an error fails that step as if the kernel had refused it.
	BeforeStep func(c *pb.Change) error
	// NAT is the node's NAT table, for the tunnels' exemptions (snat_exempt); nil: none.
	NAT *nat.Table
}

var (
	_ reconcile.Reconciler = (*Reconciler)(nil)
	_ reconcile.Loader     = (*Reconciler)(nil)
)

// New returns the vxlan_tunnel reconciler over dp, with hp probing the neighbours of the
// objects that ask for health checks (nil: none are probed).
func New(dp *dataplane.Dataplane, hp *health.Prober) *Reconciler {
	return &Reconciler{dp: dp, health: hp}
}

// Kind is "vxlan_tunnel".
func (r *Reconciler) Kind() string { return pb.KindVxlanTunnel }

// ValidateName checks a device name.
func (r *Reconciler) ValidateName(name string) error { return pb.ValidateIfName("id", name) }

// Validate runs the contract's rules for a vxlan_tunnel object.
func (r *Reconciler) Validate(o *pb.Object) error { return pb.ValidateVxlanTunnelObject(o) }

// Restore: kernel entries come back after a reboot only.
func (r *Reconciler) Restore() reconcile.RestoreRule { return reconcile.RestoreAfterReboot }

// Claims are the device and every route the spec asks for (main table).
func (r *Reconciler) Claims(o *pb.Object) []string { return TunnelClaims(o.GetVxlanTunnel()) }

// kindField is where a vxlan_tunnel object's tunnel sits in its spec, for errors.
const kindField = pb.KindVxlanTunnel + "."

func deviceName(id string) (string, error) {
	kind, name, err := pb.SplitObjectID(id)
	if err != nil {
		return "", err
	}
	if kind != pb.KindVxlanTunnel {
		return "", &pb.FieldError{Field: "id", Msg: fmt.Sprintf("%q is not a %s id", id, pb.KindVxlanTunnel)}
	}
	return name, pb.ValidateIfName("id", name)
}

func object(id string, t *pb.VxlanTunnel) *pb.Object {
	return &pb.Object{Id: id, Spec: &pb.Object_VxlanTunnel{VxlanTunnel: t}}
}

// op is one operation on one tunnel, part of the object own.ID, with a netlink handle.
type op struct {
	h   *dataplane.Handle
	own *dataplane.Ownership
	// field is where the tunnel sits in its object's spec, for errors ("vxlan_tunnel.").
	field string
}

func newOp(h *dataplane.Handle, id, field string, owned []string, heldBy func(string) string) *op {
	return &op{h: h, own: dataplane.NewOwnership(id, owned, heldBy), field: field}
}

// beginOn checks that id names a vxlan_tunnel and borrows a handle for an operation on its
// device; it returns the device name. The caller releases the handle.
func (r *Reconciler) beginOn(id string, owned []string) (*op, string, error) {
	name, err := deviceName(id)
	if err != nil {
		return nil, "", err
	}
	h, err := r.dp.Handle()
	if err != nil {
		return nil, "", err
	}
	return newOp(h, id, kindField, owned, nil), name, nil
}

func (o *op) end() { o.h.Release() }

// Apply makes the kernel match the spec; when a change fails, those made are undone.
func (r *Reconciler) Apply(_ context.Context, req reconcile.Request) (*reconcile.Result, error) {
	if err := pb.ValidateVxlanTunnelObject(req.Spec); err != nil {
		return nil, err
	}
	spec := req.Spec.GetVxlanTunnel()
	h, err := r.dp.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Release()
	p, err := TunnelSteps(h, req.ID, kindField, spec, req.Owned, req.HeldBy)
	if err != nil {
		return nil, err
	}
	natSteps, err := r.natSteps(req.ID, spec)
	if err != nil {
		return nil, err
	}
	steps := append(p.Steps, natSteps...)
	if !req.DryRun {
		if err := dataplane.Run("vxlan "+spec.GetDevice().GetName(), steps, r.BeforeStep); err != nil {
			return nil, err
		}
		r.probe(req.ID, spec)
	}
	obs, err := p.Observe()
	if err != nil {
		return nil, err
	}
	if obs.SnatExempt, err = r.observeExempt(spec); err != nil {
		return nil, err
	}
	obs.Health = r.healthOf(req.ID, spec)
	return &reconcile.Result{Observed: object(req.ID, obs), Changes: dataplane.Changes(steps), Owned: r.Claims(req.Spec)}, nil
}

// Observe reads the device and its entries. Routes are those through the device that nodenet
// added or that the object wants or owns.
func (r *Reconciler) Observe(_ context.Context, id string, want *pb.Object, owned []string) (*pb.Object, error) {
	name, err := deviceName(id)
	if err != nil {
		return nil, err
	}
	h, err := r.dp.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Release()
	obs, err := ObserveTunnel(h, id, name, want.GetVxlanTunnel(), owned)
	if err != nil {
		return nil, err
	}
	if obs.SnatExempt, err = r.observeExempt(want.GetVxlanTunnel()); err != nil {
		return nil, err
	}
	obs.Health = r.healthOf(id, want.GetVxlanTunnel())
	return object(id, obs), nil
}
