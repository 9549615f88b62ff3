package server

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/store"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Apply makes the node match the desired object and records it.
func (s *Server) Apply(ctx context.Context, req *pb.ApplyRequest) (*pb.ApplyResponse, error) {
	obj := req.GetObject()
	id := obj.GetId()
	r, err := s.reg.Validate(obj)
	if err != nil {
		return nil, s.statusErr(id, err)
	}
	defer s.lock(id)()
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	prev, err := s.record(id)
	if err != nil {
		return nil, err
	}
	if err := s.checkOwner(id, prev, obj.GetOwner(), "apply"); err != nil {
		return nil, err
	}
	res, err := s.apply(ctx, r, prev, obj, req.GetDryRun())
	if err != nil {
		return nil, err
	}
	res.Observed.Owner = obj.GetOwner()
	changes := res.Changes
	if req.GetSweep() {
		changes = append(changes, s.sweep(req.GetDryRun())...)
	}
	s.log.Info("applied", "object", id, "owner", obj.GetOwner(), "dry_run", req.GetDryRun(), "changes", len(changes))
	return &pb.ApplyResponse{Observed: res.Observed, Changes: changes}, nil
}

// apply runs one Apply with the object's lock held. The intent (the owner and the kernel
// entries the new spec claims) is recorded before the kernel is touched, so a crash leaves a record of
// what the node may hold; the outcome is recorded after. A failed change is undone by the
// reconciler and the record goes back to what it was; when the outcome cannot be recorded,
// the kernel change is undone too, so the node never holds a change the agent does not know.
func (s *Server) apply(ctx context.Context, r reconcile.Reconciler, prev *store.Record, obj *pb.Object, dryRun bool) (*reconcile.Result, error) {
	id := obj.GetId()
	claims := r.Claims(obj)
	if key, holder := s.claims.conflict(id, claims); holder != "" {
		return nil, s.claimErr(id, key, holder)
	}
	var owned []string
	if prev != nil {
		owned = prev.Entries()
	}
	req := reconcile.Request{ID: id, Spec: obj, Owned: owned, HeldBy: s.claims.heldBy, DryRun: dryRun}
	if dryRun {
		res, err := r.Apply(ctx, req)
		if err != nil {
			return nil, s.statusErr(id, err)
		}
		return res, nil
	}
	if key, holder := s.claims.add(id, claims); holder != "" {
		return nil, s.claimErr(id, key, holder) // another object took it since the check
	}
	if err := s.cfg.Store.PutIntent(id, obj.GetOwner(), &store.Pending{Op: "apply", Claims: intentClaims(prev, claims), Started: time.Now()}); err != nil {
		s.claims.set(id, owned)
		return nil, status.Errorf(codes.Internal, "%s: the intent could not be recorded in the state dir %s, so nothing was changed: %v",
			s.where(id), s.cfg.Store.Dir(), err)
	}
	if s.cfg.AfterIntent != nil {
		s.cfg.AfterIntent(id)
	}
	res, err := r.Apply(ctx, req)
	if err != nil {
		s.putBack(id, prev)
		return nil, s.statusErr(id, err)
	}
	done := &store.Record{Object: proto.Clone(obj).(*pb.Object), Owned: res.Owned, BootID: s.cfg.BootID, AppliedAt: time.Now()}
	if prev != nil {
		done.Marks = prev.Marks
	}
	if werr := s.cfg.Store.Put(done); werr != nil {
		return nil, s.undoApply(ctx, r, prev, obj, res, werr)
	}
	s.claims.set(id, res.Owned)
	s.problems.clear(id)
	return res, nil
}

// intentClaims are what an operation's intent records: the entries the new spec claims,
// and those of an operation interrupted earlier, which may still be in the kernel.
func intentClaims(prev *store.Record, claims []string) []string {
	if prev == nil || prev.Pending == nil {
		return claims
	}
	return union(prev.Pending.Claims, claims)
}

// putBack restores what an operation started from after it ended without changing the
// record: the intent of an earlier interrupted operation, or none; and the claims. prev nil
// means the object did not exist.
func (s *Server) putBack(id string, prev *store.Record) error {
	var err error
	if prev != nil && prev.Pending != nil {
		err = s.cfg.Store.PutIntent(id, prev.Object.GetOwner(), prev.Pending)
	} else {
		err = s.cfg.Store.DropIntent(id)
	}
	if prev == nil {
		s.claims.set(id, nil)
	} else {
		s.claims.set(id, prev.Entries())
	}
	if err != nil {
		s.log.Error("the record could not be put back; the next start reports the object as interrupted", "object", id, "err", err)
	}
	return err
}

// undoApply takes back a kernel change whose outcome could not be recorded: the object is
// removed, or its previous spec applied again.
func (s *Server) undoApply(ctx context.Context, r reconcile.Reconciler, prev *store.Record, obj *pb.Object, res *reconcile.Result, werr error) error {
	id := obj.GetId()
	s.log.Error("the outcome could not be recorded; undoing the kernel change", "object", id, "err", werr)
	var uerr error
	if prev == nil {
		_, uerr = r.Delete(ctx, id, union(res.Owned, r.Claims(obj)), false)
	} else {
		_, uerr = r.Apply(ctx, reconcile.Request{ID: id, Spec: prev.Object, Owned: union(res.Owned, prev.Entries()), HeldBy: s.claims.heldBy})
	}
	if uerr != nil {
		s.claims.set(id, union(res.Owned, r.Claims(obj)))
		return status.Errorf(codes.Internal,
			"%s: the state dir %s is not writable (%v) and undoing the kernel change failed too (%v): the node holds a change that the agent records only as an interrupted apply",
			s.where(id), s.cfg.Store.Dir(), werr, uerr)
	}
	s.putBack(id, prev)
	return status.Errorf(codes.Internal, "%s: the state dir %s is not writable, so the change was undone: %v", s.where(id), s.cfg.Store.Dir(), werr)
}
