package bgp

import (
	"context"
	"strings"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/bgp"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// ValidateName: the reflector node's name.
func (r *Reflector) ValidateName(name string) error {
	if strings.ContainsAny(name, "/ ") {
		return &pb.FieldError{Field: "id", Msg: "a reflector is named by its node's name: no '/' or spaces"}
	}
	return nil
}

// Validate runs the contract's rules.
func (r *Reflector) Validate(o *pb.Object) error {
	_, name, err := pb.SplitObjectID(o.GetId())
	if err != nil {
		return err
	}
	return pb.ValidateBgpReflector(name, o.GetBgpReflector())
}

// Apply sets the reflector's clients (on the reflector) or the peering with it (on a client).
func (r *Reflector) Apply(ctx context.Context, req reconcile.Request) (*reconcile.Result, error) {
	if err := r.unavailable(); err != nil {
		return nil, err
	}
	spec := req.Spec.GetBgpReflector()
	changes, err := r.sp.ApplyNeighbors(ctx, req.ID, bgp.ReflectorNeighbors(req.ID, spec), req.DryRun)
	if err != nil {
		return nil, err
	}
	obs, err := r.Observe(ctx, req.ID, req.Spec, nil)
	if err != nil {
		return nil, err
	}
	return &reconcile.Result{Observed: obs, Changes: changes}, nil
}

// Observe reads the sessions the object configured; on the reflector its clients are those
// sessions.
func (r *Reflector) Observe(ctx context.Context, id string, want *pb.Object, _ []string) (*pb.Object, error) {
	o, err := r.sp.Observe(ctx)
	if err != nil {
		return nil, err
	}
	w := want.GetBgpReflector()
	out := &pb.BgpReflector{Reflector: w.GetReflector(), Address: w.GetAddress(), Asn: w.GetAsn(), ClusterId: w.GetClusterId()}
	out.Sessions = o.SessionsAt(r.sp.Asked(id))
	for _, s := range out.Sessions {
		if w.GetClusterId() != "" {
			out.Clients = append(out.Clients, &pb.BgpNeighbor{Node: s.GetNode(), Address: s.GetPeer(), Asn: s.GetAsn()})
		}
	}
	return reflectorObject(id, out), nil
}

// Delete removes the object's peerings.
func (r *Reflector) Delete(ctx context.Context, id string, _ []string, dryRun bool) ([]*pb.Change, error) {
	return r.sp.ApplyNeighbors(ctx, id, nil, dryRun)
}
