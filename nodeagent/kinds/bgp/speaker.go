package bgp

import (
	"context"
	"fmt"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/bgp"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// ValidateName: a node has one speaker, "default".
func (s *Speaker) ValidateName(name string) error {
	if name != pb.SpeakerName {
		return &pb.FieldError{Field: "id", Msg: fmt.Sprintf("a node has one speaker, %q; got %q", pb.ObjectID(pb.KindBgpSpeaker, pb.SpeakerName), pb.ObjectID(pb.KindBgpSpeaker, name))}
	}
	return nil
}

// Validate runs the contract's rules.
func (s *Speaker) Validate(o *pb.Object) error { return pb.ValidateBgpSpeaker(o.GetBgpSpeaker()) }

// Apply starts, changes or restarts the speaker.
func (s *Speaker) Apply(ctx context.Context, req reconcile.Request) (*reconcile.Result, error) {
	if err := s.unavailable(); err != nil {
		return nil, err
	}
	spec := req.Spec.GetBgpSpeaker()
	changes, err := s.sp.ApplySpeaker(ctx, req.ID, spec, req.DryRun)
	if err != nil {
		return nil, err
	}
	obs, err := s.Observe(ctx, req.ID, req.Spec, nil)
	if err != nil {
		return nil, err
	}
	return &reconcile.Result{Observed: obs, Changes: changes}, nil
}

// Observe reads the running speaker: AS, router id and port as GoBGP has them, every
// session, the mesh as the sessions show it, and the learned routes in the kernel. The node
// address, graceful restart and timers are the applied ones (GoBGP runs with them).
func (s *Speaker) Observe(ctx context.Context, id string, want *pb.Object, _ []string) (*pb.Object, error) {
	o, err := s.sp.Observe(ctx)
	if err != nil {
		return nil, err
	}
	w := want.GetBgpSpeaker()
	out := &pb.BgpSpeaker{
		Address: w.GetAddress(), GracefulRestart: w.GetGracefulRestart(), Timers: w.GetTimers(),
		State: o.State, Sessions: o.Sessions, RoutesInstalled: uint32(o.Installed), Conflicts: o.Conflicts, RoutesMissing: o.Missing,
	}
	if g := o.Global; g != nil {
		out.Asn, out.ListenPort = g.GetAsn(), g.GetListenPort()
		out.RouterId = g.GetRouterId()
		if w.GetRouterId() == "" && out.RouterId == w.GetAddress() {
			out.RouterId = "" // the default: the node's address
		}
		if w.GetListenPort() == 0 && out.ListenPort == 179 {
			out.ListenPort = 0
		}
	}
	for _, ss := range o.SessionsAt(s.sp.Asked(id)) {
		if ss.GetType() == bgp.TypeMesh || ss.GetNode() != "" {
			out.Mesh = append(out.Mesh, &pb.BgpNeighbor{Node: ss.GetNode(), Address: ss.GetPeer(), Asn: ss.GetAsn()})
		}
	}
	return speakerObject(id, out), nil
}

// Delete stops the speaker (a Cease to every peer) and removes the routes it learned.
func (s *Speaker) Delete(ctx context.Context, id string, _ []string, dryRun bool) ([]*pb.Change, error) {
	return s.sp.ApplySpeaker(ctx, id, nil, dryRun)
}
