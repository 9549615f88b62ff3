// Package bgp holds the kinds served by the node's BGP speaker: bgp_speaker (its global
// settings and the node-to-node mesh), bgp_peer (an explicit peering) and bgp_reflector (a
// route reflector's share of the node). They own no kernel entry: their applies change the
// running speaker, and the speaker (a runtime, started from the store at every agent start)
// owns the routes it learns.
package bgp

import (
	"context"
	"fmt"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/bgp"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// base is what the three kinds share: a speaker, no kernel entries of their own, and no
// hand-made object to adopt (a speaker's configuration exists only from nodenet objects; an
// import of a managed object is an owner change the server makes without the kind).
type base struct {
	sp   *bgp.Speaker
	kind string
}

func (b base) Kind() string                                             { return b.kind }
func (b base) Claims(*pb.Object) []string                               { return nil }
func (b base) Restore() reconcile.RestoreRule                           { return reconcile.RestoreEveryStart }
func (b base) Release(context.Context, string, map[string]string) error { return nil }

func (b base) Adopt(_ context.Context, id, _ string, _ bool) (*reconcile.Adoption, error) {
	return nil, &reconcile.NotFoundError{Msg: fmt.Sprintf("%s is not managed on this node; a %s exists only from nodenet objects, so there is nothing made by hand to adopt", id, b.kind)}
}

func (b base) DesiredFromObserved(o *pb.Object) (*pb.Object, error) { return o, nil }

func (b base) unavailable() error {
	if why := b.sp.Unavailable(); why != "" {
		return reconcile.Conflictf("this agent cannot run a BGP speaker: %s", why)
	}
	return nil
}

// Speaker is the bgp_speaker kind, and the runtime that starts the speaker from the stored
// objects of every BGP kind (and the pool blocks it announces).
type Speaker struct {
	base
}

// Peer is the bgp_peer kind.
type Peer struct{ base }

// Reflector is the bgp_reflector kind.
type Reflector struct{ base }

// New returns the three kinds over one speaker.
func New(sp *bgp.Speaker) (*Speaker, *Peer, *Reflector) {
	return &Speaker{base{sp, pb.KindBgpSpeaker}}, &Peer{base{sp, pb.KindBgpPeer}}, &Reflector{base{sp, pb.KindBgpReflector}}
}

var (
	_ reconcile.Reconciler = (*Speaker)(nil)
	_ reconcile.Runtime    = (*Speaker)(nil)
	_ reconcile.Reconciler = (*Peer)(nil)
	_ reconcile.Reconciler = (*Reflector)(nil)
)

// Start starts the speaker from the stored objects (of every kind: it picks its own).
func (s *Speaker) Start(ctx context.Context, objs []*pb.Object) error { return s.sp.Start(ctx, objs) }

// Stop detaches the speaker: no Cease, kernel routes kept.
func (s *Speaker) Stop(ctx context.Context) error { return s.sp.Detach(ctx) }

func speakerObject(id string, v *pb.BgpSpeaker) *pb.Object {
	return &pb.Object{Id: id, Spec: &pb.Object_BgpSpeaker{BgpSpeaker: v}}
}

func peerObject(id string, v *pb.BgpPeer) *pb.Object {
	return &pb.Object{Id: id, Spec: &pb.Object_BgpPeer{BgpPeer: v}}
}

func reflectorObject(id string, v *pb.BgpReflector) *pb.Object {
	return &pb.Object{Id: id, Spec: &pb.Object_BgpReflector{BgpReflector: v}}
}

// HeldBy: the routes the speaker learned are the speaker object's.
func (s *Speaker) HeldBy(key string) string { return s.sp.HeldBy(key) }

// Yield: a learned route gives way to an object that claims it (an encapsulated pool's).
func (s *Speaker) Yield(key, by string) bool { return s.sp.Yield(key, by) }

// Reclaim: routes no object claims any more are programmed from the best paths again.
func (s *Speaker) Reclaim(keys []string) { s.sp.Reclaim(keys) }

var _ reconcile.EntryHolder = (*Speaker)(nil)
