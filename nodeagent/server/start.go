package server

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/store"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Start brings the agent up from the store, before it serves: every record's kernel entries
// are claimed; an operation that a crash interrupted is reported (the next apply finishes
// it, a delete removes what it may have made); each kind's objects are restored by its rule:
// kernel entries only after a reboot (a new boot id) or with Enforce, runtime parts at every
// start. A replay that fails for one object leaves its boot id, so the next start tries it
// again, and is reported in Info; the others go on.
func (s *Server) Start(ctx context.Context) error {
	if c := s.cfg.Store.Cleaned(); len(c) > 0 {
		s.log.Warn("removed temporary files of interrupted writes", "files", c)
	}
	recs, err := s.cfg.Store.List()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	byKind := map[string][]*store.Record{}
	for _, rec := range recs {
		r, _, err := s.reg.ForID(rec.ID())
		if err != nil {
			s.problems.set(rec.ID(), "unknown_kind", fmt.Sprintf("this agent cannot manage it (%v): was the state dir written by a newer agent?", err))
			continue
		}
		if rec.Owned == nil && rec.Pending == nil && pb.KindOf(rec.Object) != "" {
			rec.Owned = r.Claims(rec.Object) // a record of format 1
			if err := s.cfg.Store.Put(rec); err != nil {
				return fmt.Errorf("start: %w", err)
			}
		}
		if rec.Pending != nil {
			s.problems.set(rec.ID(), "interrupted", fmt.Sprintf("the agent stopped during an %s started %s; the node may hold part of it: the next apply finishes it, a delete removes it",
				rec.Pending.Op, rec.Pending.Started.UTC().Format("2006-01-02 15:04:05 UTC")))
		}
		s.claims.set(rec.ID(), rec.Entries())
		byKind[r.Kind()] = append(byKind[r.Kind()], rec)
	}
	for _, r := range s.reg.All() {
		if l, ok := r.(reconcile.Loader); ok {
			var objs []*pb.Object
			for _, rec := range byKind[r.Kind()] {
				objs = append(objs, rec.Object)
			}
			l.Load(objs)
		}
	}
	for _, r := range s.reg.All() {
		if r.Restore() == reconcile.RestoreAfterReboot {
			s.replay(ctx, r, byKind[r.Kind()])
		}
	}
	return s.startRuntimes(ctx, byKind)
}

// replay applies the stored objects of a kind whose kernel entries the node got in another
// boot (or all of them with Enforce). After a plain agent restart nothing is repaired, so
// hand edits stay visible to `terraform plan`.
func (s *Server) replay(ctx context.Context, r reconcile.Reconciler, recs []*store.Record) {
	for _, rec := range recs {
		if ctx.Err() != nil {
			return
		}
		id := rec.ID()
		if rec.BootID == s.cfg.BootID && !s.cfg.Enforce {
			continue
		}
		if pb.KindOf(rec.Object) == "" {
			continue // an interrupted adoption: nothing to apply yet
		}
		err := func() error {
			defer s.lock(id)()
			res, err := s.apply(ctx, r, rec, rec.Object, false)
			if err == nil {
				s.log.Info("replayed", "object", id, "boot_id", s.cfg.BootID, "last_boot_id", rec.BootID, "changes", len(res.Changes))
			}
			return err
		}()
		if err != nil {
			s.log.Error("replay failed; retried at the next start", "object", id, "err", err)
			s.problems.set(id, "replay_failed", fmt.Sprintf("restoring it after the reboot failed (retried at the next agent start; the next terraform apply repairs it): %v", err))
		}
	}
}

// startRuntimes starts the running parts of the kinds that have them, from their stored
// objects, at every start.
func (s *Server) startRuntimes(ctx context.Context, byKind map[string][]*store.Record) error {
	var errs []error
	var objs []*pb.Object
	for _, r := range s.reg.All() {
		for _, rec := range byKind[r.Kind()] {
			objs = append(objs, rec.Object)
		}
	}
	for _, r := range s.reg.All() {
		rt, ok := r.(reconcile.Runtime)
		if !ok {
			continue
		}
		if err := rt.Start(ctx, objs); err != nil {
			errs = append(errs, fmt.Errorf("start %s: %w", r.Kind(), err))
			continue
		}
		s.log.Info("started", "kind", r.Kind(), "objects", len(objs))
	}
	return errors.Join(errs...)
}

// Stop stops the running parts of the kinds, last registered first. The kernel is left as
// it is.
func (s *Server) Stop(ctx context.Context) error {
	var errs []error
	all := s.reg.All()
	for i := len(all) - 1; i >= 0; i-- {
		if rt, ok := all[i].(reconcile.Runtime); ok {
			if err := rt.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", all[i].Kind(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// problemSet holds the objects that need an operator's eye, for Info.
type problemSet struct {
	mu sync.Mutex
	m  map[string]*pb.ObjectProblem
}

func newProblemSet() *problemSet { return &problemSet{m: map[string]*pb.ObjectProblem{}} }

func (p *problemSet) set(id, problem, detail string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[id] = &pb.ObjectProblem{Id: id, Problem: problem, Detail: detail}
}

func (p *problemSet) clear(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, id)
}

func (p *problemSet) list() []*pb.ObjectProblem {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*pb.ObjectProblem
	for _, v := range p.m {
		out = append(out, v)
	}
	sortProblems(out)
	return out
}
