// Package reconcile is the agent's contract with the kinds of objects it manages. Every kind
// (vxlan_tunnel now; pool blocks, the BGP speaker and others later) is one Reconciler,
// registered by kind in a Registry; the server dispatches every RPC through the registry and
// holds no kind-specific code. Adding a kind is one package implementing Reconciler and one
// line registering it.
package reconcile

import (
	"context"
	"fmt"
	"sort"
	"strings"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// RestoreRule says what an agent start does with a kind's stored objects.
type RestoreRule int

const (
	// RestoreAfterReboot replays the object's kernel entries only when the node's boot id
	// changed: after a plain agent restart nothing is repaired, so hand edits stay visible to
	// `terraform plan`.
	RestoreAfterReboot RestoreRule = iota
	// RestoreEveryStart hands the kind's objects to its Runtime at every agent start: what
	// runs (a BGP speaker) does not survive the agent, whatever the kernel kept.
	RestoreEveryStart
)

func (r RestoreRule) String() string {
	if r == RestoreEveryStart {
		return "every start"
	}
	return "after a reboot"
}

// Request is one Apply of one object.
type Request struct {
	ID   string
	Spec *pb.Object
	// Owned are the kernel entries (dataplane keys) the object owned after its last apply; nil
	// for an object the agent did not manage. Only these, and entries that name the object
	// (a device whose ifalias is its id), may be changed or removed.
	Owned []string
	// HeldBy tells which other object holds a kernel entry key ("" when none does).
	HeldBy func(key string) string
	// DryRun reports the changes without making them.
	DryRun bool
}

// Result is what an Apply did (or, with DryRun, would do).
type Result struct {
	// Observed is read back from the kernel, never echoed from the request.
	Observed *pb.Object
	// Changes made, in order.
	Changes []*pb.Change
	// Owned are the kernel entries the object owns now.
	Owned []string
}

// Adoption is an object made by hand taken under management.
type Adoption struct {
	Observed *pb.Object
	Owned    []string
	// Marks holds what the adoption overwrote (a link's previous ifalias, by entry key), so
	// that Release can put it back.
	Marks map[string]string
}

// Reconciler manages the objects of one kind on this node. Every method may be called for
// different objects at once; the server serialises calls on one object id.
type Reconciler interface {
	// Kind is the kind's name: the name of its field in Object's spec oneof.
	Kind() string
	// ValidateName checks the name (natural key) of an id of this kind.
	ValidateName(name string) error
	// Validate checks a desired object: the contract's rules for the kind.
	Validate(o *pb.Object) error
	// Claims are the kernel entries the desired object will own (dataplane keys). Two
	// objects never claim one entry: the server refuses the second, naming the first.
	Claims(o *pb.Object) []string
	// Apply makes the node match the desired object, all or nothing: when a change fails,
	// those made are undone before the error returns.
	Apply(ctx context.Context, req Request) (*Result, error)
	// Observe reads what the node has of the object; want is its desired spec.
	Observe(ctx context.Context, id string, want *pb.Object, owned []string) (*pb.Object, error)
	// Delete removes what the object owns, and kernel objects that name it (left by an apply
	// that was interrupted before it was recorded); nothing else.
	Delete(ctx context.Context, id string, owned []string, dryRun bool) ([]*pb.Change, error)
	// Adopt takes the object made by hand, found by its natural key, under management as id
	// (with dryRun it only looks). NotFoundError when there is none.
	Adopt(ctx context.Context, id, name string, dryRun bool) (*Adoption, error)
	// Release puts back the marks an adoption set, leaving the kernel objects as they are.
	Release(ctx context.Context, id string, marks map[string]string) error
	// DesiredFromObserved is the desired object that reproduces an observation. It fails
	// (ConflictError) when the node holds what the kind cannot express: adopting it would
	// store a spec the contract refuses, and a replay after a reboot would fail.
	DesiredFromObserved(observed *pb.Object) (*pb.Object, error)
	// Restore is the kind's restore rule.
	Restore() RestoreRule
}

// Runtime is implemented by reconcilers of kinds served by something that runs, like the
// BGP speaker: the server starts it from the store at every agent start (before serving),
// the reconciler's Apply and Delete reconfigure it, and the server stops it on SIGTERM.
type Runtime interface {
	// Start brings the running part up from the stored objects. It gets the objects of
	// every kind: one runtime may serve several (the speaker serves peers, reflectors and
	// the pool blocks it announces) and must see them all before it starts.
	Start(ctx context.Context, objects []*pb.Object) error
	// Stop ends it, leaving the kernel as it is (routes stay; peers keep theirs as stale).
	Stop(ctx context.Context) error
}

// Loader is implemented by reconcilers whose objects share a kernel object that each
// contributes to, like the pools' NAT table (the union of every pool's CIDRs), or that keep
// something running for their objects whatever the kernel holds, like the vxlan_tunnel's
// health checks: at every start, before any replay or Apply, the server hands Load the
// stored objects of the kind, so the shared object is planned from all of them and the
// probes resume. Load touches nothing in the kernel.
type Loader interface {
	Load(objects []*pb.Object)
}

// EntryHolder is implemented by runtimes that hold kernel entries no stored object records,
// like the routes the BGP speaker learns: the server counts them as held by the object id
// HeldBy returns ("" when key is not theirs), so no other object takes them over and Info
// does not report them as unexplained.
type EntryHolder interface {
	HeldBy(key string) string
}

// EntryYielder is implemented by runtimes whose entries give way to objects, like the BGP
// speaker's learned routes: a pool with encapsulation claims the routes to the other nodes'
// blocks that the speaker also learns. The server lets the object's claim through and has the
// runtime Yield the entry (forget it as its own, leaving the kernel to the object); when no
// object claims a key any more, Reclaim hands it back, and the runtime programs it again if
// it still has it.
type EntryYielder interface {
	EntryHolder
	Yield(key, by string) bool
	Reclaim(keys []string)
}

// ConflictError is something in the way that the object does not own (FailedPrecondition).
type ConflictError struct{ Msg string }

func (e *ConflictError) Error() string { return e.Msg }

// NotFoundError is a missing thing the request needs (NotFound).
type NotFoundError struct{ Msg string }

func (e *NotFoundError) Error() string { return e.Msg }

// Conflictf returns a ConflictError.
func Conflictf(format string, args ...any) error {
	return &ConflictError{Msg: fmt.Sprintf(format, args...)}
}

// Registry holds the reconcilers by kind.
type Registry struct {
	byKind map[string]Reconciler
}

// NewRegistry registers the reconcilers; two of one kind are an error.
func NewRegistry(rs ...Reconciler) (*Registry, error) {
	reg := &Registry{byKind: map[string]Reconciler{}}
	for _, r := range rs {
		k := r.Kind()
		if _, dup := reg.byKind[k]; dup {
			return nil, fmt.Errorf("reconcile: kind %q registered twice", k)
		}
		reg.byKind[k] = r
	}
	return reg, nil
}

// Kinds lists the registered kinds, sorted.
func (r *Registry) Kinds() []string {
	out := make([]string, 0, len(r.byKind))
	for k := range r.byKind {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// All returns the reconcilers in kind order.
func (r *Registry) All() []Reconciler {
	var out []Reconciler
	for _, k := range r.Kinds() {
		out = append(out, r.byKind[k])
	}
	return out
}

// ForID returns the reconciler of an id's kind and the id's name, checked by the kind.
func (r *Registry) ForID(id string) (Reconciler, string, error) {
	kind, name, err := pb.SplitObjectID(id)
	if err != nil {
		return nil, "", err
	}
	rec, ok := r.byKind[kind]
	if !ok {
		return nil, "", &pb.FieldError{Field: "id", Msg: fmt.Sprintf("unknown object kind %q (this agent manages: %s)", kind, strings.Join(r.Kinds(), ", "))}
	}
	if err := rec.ValidateName(name); err != nil {
		return nil, "", err
	}
	return rec, name, nil
}

// Validate checks a desired object as Apply receives it: its envelope (id, owner, a spec of
// the id's kind), then the rules of its kind.
func (r *Registry) Validate(o *pb.Object) (Reconciler, error) {
	if err := pb.ValidateEnvelope(o, true); err != nil {
		return nil, err
	}
	rec, _, err := r.ForID(o.GetId())
	if err != nil {
		return nil, err
	}
	if err := rec.Validate(o); err != nil {
		return nil, err
	}
	return rec, nil
}
