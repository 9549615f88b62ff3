package bgp

import (
	"context"
	"net/netip"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/bgp"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// ValidateName: the peer's IPv4 address.
func (p *Peer) ValidateName(name string) error {
	_, err := pb.ParseIPv4("id", name)
	return err
}

// Validate runs the contract's rules.
func (p *Peer) Validate(o *pb.Object) error {
	_, name, err := pb.SplitObjectID(o.GetId())
	if err != nil {
		return err
	}
	return pb.ValidateBgpPeer(name, o.GetBgpPeer())
}

// Apply adds or changes the peering in the speaker.
func (p *Peer) Apply(ctx context.Context, req reconcile.Request) (*reconcile.Result, error) {
	if err := p.unavailable(); err != nil {
		return nil, err
	}
	spec := req.Spec.GetBgpPeer()
	changes, err := p.sp.ApplyNeighbors(ctx, req.ID, []bgp.Neighbor{bgp.PeerNeighbor(req.ID, spec)}, req.DryRun)
	if err != nil {
		return nil, err
	}
	obs, err := p.Observe(ctx, req.ID, req.Spec, nil)
	if err != nil {
		return nil, err
	}
	return &reconcile.Result{Observed: obs, Changes: changes}, nil
}

// Observe reads the session GoBGP has with the peer. The password never leaves the agent:
// only whether one is set and whether it is the one last applied.
func (p *Peer) Observe(ctx context.Context, id string, want *pb.Object, _ []string) (*pb.Object, error) {
	o, err := p.sp.Observe(ctx)
	if err != nil {
		return nil, err
	}
	w := want.GetBgpPeer()
	out := &pb.BgpPeer{
		PeerIp: w.GetPeerIp(), EbgpMultihop: w.GetEbgpMultihop(), SourceAddress: w.GetSourceAddress(),
		Passive: w.GetPassive(), Timers: w.GetTimers(), GracefulRestart: w.GetGracefulRestart(), Port: w.GetPort(),
	}
	addr := netip.MustParseAddr(w.GetPeerIp()).String()
	for _, s := range o.Sessions {
		if s.GetPeer() == addr {
			out.Session, out.PeerAsn = s, s.GetAsn()
		}
	}
	live := o.Password(addr)
	out.PasswordSet = live != ""
	out.PasswordInSync = out.Session != nil && live == w.GetPassword()
	return peerObject(id, out), nil
}

// Delete removes the peering.
func (p *Peer) Delete(ctx context.Context, id string, _ []string, dryRun bool) ([]*pb.Change, error) {
	return p.sp.ApplyNeighbors(ctx, id, nil, dryRun)
}
