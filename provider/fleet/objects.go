package fleet

import (
	"context"
	"sort"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// The per-node object fan-out every resource uses: a resource is split into one object per
// node (the same id and owner, each node its own spec), and these calls reach every node's
// agent at once. Applies (and their dry runs) and deletes ask the agents to sweep too: the
// routes with nodenet's mark that no object explains go with the next change of a node.

// Objects are one resource's objects by node key.
type Objects map[string]*pb.Object

// Keys are the node keys, sorted.
func (o Objects) Keys() []string {
	out := make([]string, 0, len(o))
	for k := range o {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// DryRun asks every node what applying its object would change; nothing is changed.
func (f *Fleet) DryRun(ctx context.Context, objs Objects) (map[string]*pb.ApplyResponse, []*NodeError) {
	return f.applyEach(ctx, objs, objs.Keys(), true)
}

func (f *Fleet) applyEach(ctx context.Context, objs Objects, keys []string, dryRun bool) (map[string]*pb.ApplyResponse, []*NodeError) {
	return collect(ctx, f, keys, func(ctx context.Context, key string, c pb.NodeAgentClient) (*pb.ApplyResponse, bool, error) {
		resp, err := c.Apply(ctx, &pb.ApplyRequest{Object: objs[key], DryRun: dryRun, Sweep: true})
		return resp, err == nil, err
	})
}

// collect calls every node and gathers the answers that call says to keep, by node.
func collect[T any](ctx context.Context, f *Fleet, keys []string, call func(ctx context.Context, key string, c pb.NodeAgentClient) (T, bool, error)) (map[string]T, []*NodeError) {
	var mu sync.Mutex
	out := map[string]T{}
	errs := f.Each(ctx, keys, func(ctx context.Context, key string, c pb.NodeAgentClient) error {
		v, keep, err := call(ctx, key, c)
		if err != nil {
			return err
		}
		if keep {
			mu.Lock()
			out[key] = v
			mu.Unlock()
		}
		return nil
	})
	return out, errs
}

// ApplyResult is what an Apply across nodes did.
type ApplyResult struct {
	// Answers are the nodes that applied their object, as they observe it now. After a
	// rollback, the nodes rolled back are no longer in it.
	Answers map[string]*pb.ApplyResponse
	// Failed are the nodes that did not apply it, or whose outcome is unknown.
	Failed []*NodeError
	// RolledBack are the nodes whose change was undone because another node failed.
	RolledBack []string
	// Uncertain are the nodes that may hold the change: their apply was not answered in time
	// (it may have gone through after the deadline), or their rollback failed.
	Uncertain []*NodeError
}

// OK tells whether every node applied its object.
func (r *ApplyResult) OK() bool { return len(r.Failed) == 0 }

// MaybeApplied tells whether a failed Apply may still have changed the node: the agent
// refused it outright (invalid, a conflict, its own precondition, TLS) or it did not.
func MaybeApplied(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.NotFound, codes.PermissionDenied,
		codes.Unauthenticated, codes.Unimplemented, codes.AlreadyExists, codes.OutOfRange:
		return false
	case codes.Unavailable:
		return !AuthFailed(err)
	}
	return true
}

// Apply applies every node's object. When undo is set and a node fails, every node that
// may have applied it (those that answered, and those whose answer did not come in time and
// may still come) is taken back: undo(key) is the object to apply again there, or nil to
// delete it. The rollback gets time of its own, since the apply may have failed by running
// out of it; a node's late apply and its rollback are serialised by the agent's lock on the
// object. Without undo, nodes keep what they applied.
func (f *Fleet) Apply(ctx context.Context, objs Objects, undo func(key string) *pb.Object) *ApplyResult {
	answers, errs := f.applyEach(ctx, objs, objs.Keys(), false)
	res := &ApplyResult{Answers: answers, Failed: errs}
	if len(errs) == 0 || undo == nil {
		for _, e := range errs {
			if MaybeApplied(e.Err) {
				res.Uncertain = append(res.Uncertain, e)
			}
		}
		return res
	}
	var back []string
	for k := range answers {
		back = append(back, k)
	}
	for _, e := range errs {
		if MaybeApplied(e.Err) {
			back = append(back, e.Node)
		}
	}
	sort.Strings(back)
	rbCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.cfg.Timeout)
	defer cancel()
	failed := map[string]*NodeError{}
	for _, e := range f.Each(rbCtx, back, func(ctx context.Context, key string, c pb.NodeAgentClient) error {
		return undoOne(ctx, c, objs[key], undo(key))
	}) {
		failed[e.Node] = e
	}
	for _, k := range back {
		if e, bad := failed[k]; bad {
			res.Uncertain = append(res.Uncertain, e)
			continue
		}
		res.RolledBack = append(res.RolledBack, k)
		delete(res.Answers, k)
	}
	return res
}

// undoOne takes one node's change back: prev applied again, or the object deleted (a node
// that never got it answers NotFound, which is fine).
func undoOne(ctx context.Context, c pb.NodeAgentClient, applied, prev *pb.Object) error {
	if prev != nil {
		_, err := c.Apply(ctx, &pb.ApplyRequest{Object: prev})
		return err
	}
	_, err := c.Delete(ctx, &pb.DeleteRequest{Id: applied.GetId(), Owner: applied.GetOwner()})
	if status.Code(err) == codes.NotFound {
		return nil
	}
	return err
}

// Get reads the object id on every node. A node that does not manage it has a nil object.
func (f *Fleet) Get(ctx context.Context, id string, keys []string) (map[string]*pb.Object, []*NodeError) {
	return collect(ctx, f, keys, func(ctx context.Context, key string, c pb.NodeAgentClient) (*pb.Object, bool, error) {
		resp, err := c.Get(ctx, &pb.GetRequest{Id: id})
		if status.Code(err) == codes.NotFound {
			return nil, true, nil
		}
		return resp.GetObserved(), err == nil, err
	})
}

// Delete removes the object from the nodes as owner. A node that does not manage it is
// fine; one where another owner manages it keeps it, and is returned in others with that
// owner (the object was taken over by an import).
func (f *Fleet) Delete(ctx context.Context, id, owner string, keys []string) (others map[string]string, errs []*NodeError) {
	var mu sync.Mutex
	others = map[string]string{}
	errs = f.Each(ctx, keys, func(ctx context.Context, key string, c pb.NodeAgentClient) error {
		_, err := c.Delete(ctx, &pb.DeleteRequest{Id: id, Owner: owner, Sweep: true})
		if reason, md := pb.Reason(err); reason == pb.ReasonOtherOwner {
			mu.Lock()
			others[key] = md["owner"]
			mu.Unlock()
			return nil
		}
		if status.Code(err) == codes.NotFound {
			return nil
		}
		return err
	})
	return others, errs
}

// Adopt takes the object made by hand (found by its natural key name) under management as
// id for owner on the nodes (with dryRun it only looks). Nodes without it are left out of the
// answer.
func (f *Fleet) Adopt(ctx context.Context, id, name, owner string, keys []string, dryRun bool) (map[string]*pb.AdoptResponse, []*NodeError) {
	return collect(ctx, f, keys, func(ctx context.Context, key string, c pb.NodeAgentClient) (*pb.AdoptResponse, bool, error) {
		resp, err := c.Adopt(ctx, &pb.AdoptRequest{Id: id, Name: name, Owner: owner, DryRun: dryRun})
		if status.Code(err) == codes.NotFound {
			return nil, false, nil
		}
		return resp, err == nil, err
	})
}

// Release undoes adoptions: the nodes forget the object and get nodenet's marks back off it,
// leaving its kernel objects as they are.
func (f *Fleet) Release(ctx context.Context, id, owner string, keys []string) []*NodeError {
	return f.Each(ctx, keys, func(ctx context.Context, key string, c pb.NodeAgentClient) error {
		_, err := c.Delete(ctx, &pb.DeleteRequest{Id: id, Owner: owner, Release: true})
		if status.Code(err) == codes.NotFound {
			return nil
		}
		return err
	})
}

// List reads the objects every node manages (secrets redacted by the agents).
func (f *Fleet) List(ctx context.Context, keys []string) (map[string][]*pb.Object, []*NodeError) {
	return collect(ctx, f, keys, func(ctx context.Context, _ string, c pb.NodeAgentClient) ([]*pb.Object, bool, error) {
		resp, err := c.List(ctx, &pb.ListRequest{})
		return resp.GetObjects(), true, err
	})
}
