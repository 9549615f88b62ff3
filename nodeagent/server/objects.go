package server

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/store"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// forID is the reconciler of an id's kind, as a gRPC error when there is none.
func (s *Server) forID(id string) (reconcile.Reconciler, string, error) {
	r, name, err := s.reg.ForID(id)
	if err != nil {
		return nil, "", s.statusErr(id, err)
	}
	return r, name, nil
}

// Get returns the observed state of a managed object, with the owner the agent recorded.
func (s *Server) Get(ctx context.Context, req *pb.GetRequest) (*pb.GetResponse, error) {
	id := req.GetId()
	r, _, err := s.forID(id)
	if err != nil {
		return nil, err
	}
	defer s.lock(id)()
	rec, err := s.record(id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, s.notManaged(id)
	}
	obs, err := r.Observe(ctx, id, rec.Object, rec.Entries())
	if err != nil {
		return nil, s.statusErr(id, err)
	}
	obs.Owner = rec.Object.GetOwner()
	return &pb.GetResponse{Observed: obs}, nil
}

// Delete removes what a managed object owns from the kernel and forgets it; with release it
// only forgets it and takes back nodenet's marks. An id the agent has no record of, but
// kernel entries name (left by an apply interrupted before it was recorded), has those removed.
func (s *Server) Delete(ctx context.Context, req *pb.DeleteRequest) (*pb.DeleteResponse, error) {
	id := req.GetId()
	r, _, err := s.forID(id)
	if err != nil {
		return nil, err
	}
	defer s.lock(id)()
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err() // the caller gave up while we waited: do nothing
	}
	rec, err := s.record(id)
	if err != nil {
		return nil, err
	}
	var changes []*pb.Change
	switch {
	case rec == nil:
		changes, err = s.deleteUnrecorded(ctx, r, id, req.GetDryRun())
	case req.GetRelease():
		err = s.release(ctx, r, rec, req.GetOwner(), req.GetDryRun())
	default:
		changes, err = s.deleteRecorded(ctx, r, rec, req.GetOwner(), req.GetDryRun())
	}
	if err != nil {
		return nil, err
	}
	if req.GetSweep() && !req.GetRelease() {
		changes = append(changes, s.sweep(req.GetDryRun())...)
	}
	s.log.Info("deleted", "object", id, "owner", req.GetOwner(), "dry_run", req.GetDryRun(), "release", req.GetRelease(), "changes", len(changes))
	return &pb.DeleteResponse{Changes: changes}, nil
}

func (s *Server) deleteRecorded(ctx context.Context, r reconcile.Reconciler, rec *store.Record, owner string, dryRun bool) ([]*pb.Change, error) {
	id := rec.ID()
	if err := s.checkOwner(id, rec, owner, "delete"); err != nil {
		return nil, err
	}
	if rec.Pending != nil && rec.Pending.Op == "adopt" && pb.KindOf(rec.Object) == "" {
		// An adoption interrupted before it was recorded: the device was made by hand, so
		// its marks are given back and nothing is removed.
		adopted := *rec
		adopted.Marks = rec.Pending.Marks
		return nil, s.release(ctx, r, &adopted, owner, dryRun)
	}
	if dryRun {
		changes, err := r.Delete(ctx, id, rec.Entries(), true)
		return changes, s.statusErr(id, err)
	}
	if err := s.cfg.Store.PutIntent(id, rec.Object.GetOwner(), &store.Pending{Op: "delete", Claims: intentClaims(rec, nil), Started: time.Now()}); err != nil {
		return nil, status.Errorf(codes.Internal, "%s: the intent could not be recorded in the state dir %s, so nothing was changed: %v", s.where(id), s.cfg.Store.Dir(), err)
	}
	changes, err := r.Delete(ctx, id, rec.Entries(), false)
	if err != nil {
		s.putBack(id, rec)
		return nil, s.statusErr(id, err)
	}
	if err := s.cfg.Store.Delete(id); err != nil {
		return nil, status.Errorf(codes.Internal, "%s: removed from the kernel but the state dir %s is not writable: %v", s.where(id), s.cfg.Store.Dir(), err)
	}
	s.claims.set(id, nil)
	s.problems.clear(id)
	return changes, nil
}

// deleteUnrecorded removes the kernel entries that name id although the agent has no record
// of it; NotFound when there are none.
func (s *Server) deleteUnrecorded(ctx context.Context, r reconcile.Reconciler, id string, dryRun bool) ([]*pb.Change, error) {
	marked, err := s.cfg.Kernel.Marked()
	if err != nil {
		return nil, s.statusErr(id, err)
	}
	var keys []string
	for _, e := range marked {
		if e.GetObjectId() == id {
			keys = append(keys, e.GetEntry()+" "+e.GetKey())
		}
	}
	if len(keys) == 0 {
		return nil, s.notManaged(id)
	}
	changes, err := r.Delete(ctx, id, keys, dryRun)
	if err != nil {
		return nil, s.statusErr(id, err)
	}
	return changes, nil
}

// release forgets an object and takes back the marks its adoption set (or nodenet's own
// marks, for an object it created), leaving its kernel objects as they are.
func (s *Server) release(ctx context.Context, r reconcile.Reconciler, rec *store.Record, owner string, dryRun bool) error {
	id := rec.ID()
	if err := s.checkOwner(id, rec, owner, "release"); err != nil {
		return err
	}
	if dryRun {
		return nil
	}
	if err := r.Release(ctx, id, rec.Marks); err != nil {
		return s.statusErr(id, err)
	}
	if err := s.cfg.Store.Delete(id); err != nil {
		return s.stateErr(id, "released, but could not update", err)
	}
	s.claims.set(id, nil)
	s.problems.clear(id)
	return nil
}

// List returns the desired specs of the managed objects, with their owners.
func (s *Server) List(ctx context.Context, _ *pb.ListRequest) (*pb.ListResponse, error) {
	recs, err := s.cfg.Store.List()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "node %s: %v", s.node(), err)
	}
	out := &pb.ListResponse{}
	for _, r := range recs {
		out.Objects = append(out.Objects, pb.Redacted(r.Object))
	}
	return out, nil
}

// Adopt takes a hand-made object under management, or an object another owner manages over.
// It looks first: an object its kind cannot express is refused before anything is marked.
func (s *Server) Adopt(ctx context.Context, req *pb.AdoptRequest) (*pb.AdoptResponse, error) {
	id := req.GetId()
	r, idName, err := s.forID(id)
	if err != nil {
		return nil, err
	}
	name := req.GetName()
	if name == "" {
		name = idName
	}
	if name != idName {
		return nil, s.statusErr(id, &pb.FieldError{Field: "name", Msg: fmt.Sprintf("%q does not match the id %q", name, id)})
	}
	if !req.GetDryRun() {
		if err := pb.ValidateOwner("owner", req.GetOwner()); err != nil {
			return nil, s.statusErr(id, err)
		}
	}
	defer s.lock(id)()
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err() // the caller gave up while we waited: do nothing
	}
	rec, err := s.record(id)
	if err != nil {
		return nil, err
	}
	if rec != nil {
		return s.takeOver(ctx, r, rec, req.GetOwner(), req.GetDryRun())
	}
	obs, err := s.adopt(ctx, r, id, name, req.GetOwner(), req.GetDryRun())
	if err != nil {
		return nil, err
	}
	s.log.Info("adopted", "object", id, "owner", req.GetOwner(), "dry_run", req.GetDryRun())
	return &pb.AdoptResponse{Observed: obs}, nil
}

// takeOver answers an Adopt of a managed object: its observation with its owner, and (not
// with dry run) the new owner recorded.
func (s *Server) takeOver(ctx context.Context, r reconcile.Reconciler, rec *store.Record, owner string, dryRun bool) (*pb.AdoptResponse, error) {
	id := rec.ID()
	obs, err := r.Observe(ctx, id, rec.Object, rec.Entries())
	if err != nil {
		return nil, s.statusErr(id, err)
	}
	prevOwner := rec.Object.GetOwner()
	obs.Owner = prevOwner
	if !dryRun && owner != prevOwner {
		rec.Object.Owner = owner
		err := s.cfg.Store.Put(rec)
		if err == nil && rec.Pending != nil {
			err = s.cfg.Store.PutIntent(id, owner, rec.Pending) // an interrupted operation stays on record
		}
		if err != nil {
			return nil, s.stateErr(id, "could not record the new owner in", err)
		}
		s.log.Warn("object taken over by an import", "object", id, "from", prevOwner, "to", owner)
		obs.Owner = owner
	}
	return &pb.AdoptResponse{Observed: obs, Managed: true, PreviousOwner: prevOwner}, nil
}

// adopt takes an object made by hand under management: it looks, checks that the kind can
// express what it found and that no other object holds its entries, records the intent,
// marks it and records it.
func (s *Server) adopt(ctx context.Context, r reconcile.Reconciler, id, name, owner string, dryRun bool) (*pb.Object, error) {
	look, err := r.Adopt(ctx, id, name, true)
	if err != nil {
		return nil, s.statusErr(id, err)
	}
	desired, err := r.DesiredFromObserved(look.Observed)
	if err != nil {
		return nil, s.statusErr(id, err)
	}
	desired.Owner = owner
	look.Observed.Owner = owner
	if key, holder := s.claims.conflict(id, look.Owned); holder != "" {
		return nil, s.claimErr(id, key, holder)
	}
	if dryRun {
		return look.Observed, nil
	}
	if key, holder := s.claims.add(id, look.Owned); holder != "" {
		return nil, s.claimErr(id, key, holder)
	}
	if err := s.cfg.Store.PutIntent(id, owner, &store.Pending{Op: "adopt", Claims: look.Owned, Marks: look.Marks, Started: time.Now()}); err != nil {
		s.claims.set(id, nil)
		return nil, s.stateErr(id, "nothing was adopted: could not write", err)
	}
	if s.cfg.AfterIntent != nil {
		s.cfg.AfterIntent(id)
	}
	a, err := r.Adopt(ctx, id, name, false)
	if err != nil {
		s.putBack(id, nil)
		return nil, s.statusErr(id, err)
	}
	done := &store.Record{Object: desired, Owned: a.Owned, BootID: s.cfg.BootID, AppliedAt: time.Now(), Marks: a.Marks}
	if err := s.cfg.Store.Put(done); err != nil {
		_ = r.Release(ctx, id, a.Marks)
		s.putBack(id, nil)
		return nil, s.stateErr(id, "nothing was adopted: could not write", err)
	}
	s.claims.set(id, a.Owned)
	a.Observed.Owner = owner
	return a.Observed, nil
}
