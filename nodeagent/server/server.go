// Package server implements the NodeAgent gRPC service of nodenet-agent: it validates
// requests, applies them through the dataplane and keeps the desired state in the store.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/store"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Dataplane is what the server needs of *dataplane.Dataplane.
type Dataplane interface {
	Interfaces() ([]*pb.Interface, error)
	ObserveVxlan(name string, want *pb.VxlanTunnel) (*pb.VxlanTunnel, error)
	ApplyVxlan(id string, spec *pb.VxlanTunnel, dryRun bool) (*pb.VxlanTunnel, []*pb.Change, error)
	DeleteVxlan(id, name string, dryRun bool) ([]*pb.Change, error)
	AdoptVxlan(id, name string, dryRun bool) (*pb.VxlanTunnel, error)
}

// Capabilities are the contract features this agent implements.
var Capabilities = []string{pb.KindVxlanTunnel, "dry_run", "adopt"}

// Config configures a Server.
type Config struct {
	Cluster, Node, Version string
	DP                     Dataplane
	Store                  *store.Store
	// BootID is the current boot id of the node.
	BootID string
	Logger *slog.Logger
	// Enforce makes Replay re-apply the stored state on every start, not only after a reboot.
	Enforce bool
	// ProbeKernelFeatures reports the kernel's link kinds and release; New calls it once.
	// Nil means dataplane.ProbeKernelFeatures.
	ProbeKernelFeatures func() (map[string]bool, string, error)
}

// Server implements pb.NodeAgentServer.
type Server struct {
	pb.UnimplementedNodeAgentServer

	cfg Config
	log *slog.Logger

	features      map[string]bool
	kernelRelease string

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// New returns a Server; it probes the kernel features once.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, locks: map[string]*sync.Mutex{}}
	probe := cfg.ProbeKernelFeatures
	if probe == nil {
		probe = dataplane.ProbeKernelFeatures
	}
	feats, rel, err := probe()
	if err != nil {
		s.log.Warn("probing kernel features failed", "err", err)
	}
	s.features, s.kernelRelease = feats, rel
	return s
}

// lock serialises the RPCs on one object; it returns the unlock function.
func (s *Server) lock(id string) func() {
	s.mu.Lock()
	m, ok := s.locks[id]
	if !ok {
		m = &sync.Mutex{}
		s.locks[id] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

func (s *Server) where(id string) string {
	return fmt.Sprintf("node %s/%s: object %s", s.cfg.Cluster, s.cfg.Node, id)
}

// statusErr maps an error of the dataplane or of validation to a gRPC status whose
// message names the node and the object.
func (s *Server) statusErr(id string, err error) error {
	if fe, ok := pb.AsFieldError(err); ok {
		return status.Errorf(codes.InvalidArgument, "%s: %s", s.where(id), fe)
	}
	var ce *dataplane.ConflictError
	if errors.As(err, &ce) {
		return status.Errorf(codes.FailedPrecondition, "%s: %s", s.where(id), err)
	}
	var nf *dataplane.NotFoundError
	if errors.As(err, &nf) {
		return status.Errorf(codes.NotFound, "%s: %s", s.where(id), err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return status.Errorf(codes.Internal, "%s: %v", s.where(id), err)
}

func (s *Server) notManaged(id string) error {
	return status.Errorf(codes.NotFound, "%s is not managed by this agent", s.where(id))
}

// checkID validates an object id and returns its name.
func (s *Server) checkID(id string) (string, error) {
	_, name, err := pb.SplitObjectID(id)
	if err != nil {
		return "", s.statusErr(id, err)
	}
	return name, nil
}

func vxlanObject(id string, t *pb.VxlanTunnel) *pb.Object {
	return &pb.Object{Id: id, Spec: &pb.Object_VxlanTunnel{VxlanTunnel: t}}
}

// Info reports the node's identity, capabilities, interfaces and kernel features.
func (s *Server) Info(ctx context.Context, _ *pb.InfoRequest) (*pb.NodeInfo, error) {
	ifs, err := s.cfg.DP.Interfaces()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "node %s/%s: listing interfaces: %v", s.cfg.Cluster, s.cfg.Node, err)
	}
	feats := make(map[string]bool, len(s.features))
	for k, v := range s.features {
		feats[k] = v
	}
	return &pb.NodeInfo{
		Cluster:        s.cfg.Cluster,
		Node:           s.cfg.Node,
		AgentVersion:   s.cfg.Version,
		Capabilities:   append([]string(nil), Capabilities...),
		Interfaces:     ifs,
		KernelFeatures: feats,
		KernelRelease:  s.kernelRelease,
		BootId:         s.cfg.BootID,
	}, nil
}

// Apply makes the kernel match the desired object and records it.
func (s *Server) Apply(ctx context.Context, req *pb.ApplyRequest) (*pb.ApplyResponse, error) {
	obj := req.GetObject()
	id := obj.GetId()
	if err := pb.ValidateObject(obj); err != nil {
		return nil, s.statusErr(id, err)
	}
	defer s.lock(id)()
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	observed, changes, err := s.apply(obj, req.GetDryRun())
	if err != nil {
		return nil, err
	}
	s.log.Info("applied", "object", id, "dry_run", req.GetDryRun(), "changes", len(changes))
	return &pb.ApplyResponse{Observed: observed, Changes: changes}, nil
}

// apply runs one Apply with the object's lock held. The kernel is changed first and the
// desired state recorded after; if it cannot be recorded, the kernel change is undone (the
// object removed, or its previous spec applied again), so the node never holds a change the
// agent would not know about after a reboot.
func (s *Server) apply(obj *pb.Object, dryRun bool) (*pb.Object, []*pb.Change, error) {
	id := obj.GetId()
	var prev *store.Record
	if !dryRun {
		r, err := s.cfg.Store.Get(id)
		switch {
		case err == nil:
			prev = r
		case !errors.Is(err, store.ErrNotFound):
			return nil, nil, status.Errorf(codes.Internal, "%s: reading the state dir %s: %v", s.where(id), s.cfg.Store.Dir(), err)
		}
	}
	obs, changes, err := s.cfg.DP.ApplyVxlan(id, obj.GetVxlanTunnel(), dryRun)
	if err != nil {
		return nil, nil, s.statusErr(id, err)
	}
	observed := vxlanObject(id, obs)
	if dryRun {
		return observed, changes, nil
	}
	rec := &store.Record{Object: proto.Clone(obj).(*pb.Object), Owned: observed, AppliedAt: time.Now()}
	werr := s.cfg.Store.Put(rec)
	if werr == nil {
		werr = s.cfg.Store.SetBootID(s.cfg.BootID)
	}
	if werr != nil {
		s.log.Error("the desired state could not be recorded; undoing the kernel change", "object", id, "err", werr)
		var uerr error
		if prev == nil {
			_, uerr = s.cfg.DP.DeleteVxlan(id, obj.GetVxlanTunnel().GetDevice().GetName(), false)
			_ = s.cfg.Store.Delete(id) // in case the record was written but the boot id not
		} else {
			_, _, uerr = s.cfg.DP.ApplyVxlan(id, prev.Object.GetVxlanTunnel(), false)
			_ = s.cfg.Store.Put(prev)
		}
		if uerr != nil {
			return nil, nil, status.Errorf(codes.Internal,
				"%s: the state dir %s is not writable (%v) and undoing the kernel change failed too (%v): the node holds a change the agent will not restore after a reboot",
				s.where(id), s.cfg.Store.Dir(), werr, uerr)
		}
		return nil, nil, status.Errorf(codes.Internal,
			"%s: the state dir %s is not writable, so the change was undone: %v", s.where(id), s.cfg.Store.Dir(), werr)
	}
	return observed, changes, nil
}

// Get returns the observed state of a managed object.
func (s *Server) Get(ctx context.Context, req *pb.GetRequest) (*pb.GetResponse, error) {
	id := req.GetId()
	name, err := s.checkID(id)
	if err != nil {
		return nil, err
	}
	defer s.lock(id)()
	rec, err := s.cfg.Store.Get(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, s.notManaged(id)
	}
	if err != nil {
		return nil, s.statusErr(id, err)
	}
	obs, err := s.cfg.DP.ObserveVxlan(name, rec.Object.GetVxlanTunnel())
	if err != nil {
		return nil, s.statusErr(id, err)
	}
	return &pb.GetResponse{Observed: vxlanObject(id, obs)}, nil
}

// Delete removes what a managed object owns from the kernel and forgets it.
func (s *Server) Delete(ctx context.Context, req *pb.DeleteRequest) (*pb.DeleteResponse, error) {
	id := req.GetId()
	name, err := s.checkID(id)
	if err != nil {
		return nil, err
	}
	defer s.lock(id)()
	if _, err := s.cfg.Store.Get(id); errors.Is(err, store.ErrNotFound) {
		return nil, s.notManaged(id)
	} else if err != nil {
		return nil, s.statusErr(id, err)
	}
	changes, err := s.cfg.DP.DeleteVxlan(id, name, req.GetDryRun())
	if err != nil {
		return nil, s.statusErr(id, err)
	}
	if !req.GetDryRun() {
		if err := s.cfg.Store.Delete(id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, status.Errorf(codes.Internal, "%s: removed from the kernel but the state dir %s is not writable: %v",
				s.where(id), s.cfg.Store.Dir(), err)
		}
	}
	s.log.Info("deleted", "object", id, "dry_run", req.GetDryRun(), "changes", len(changes))
	return &pb.DeleteResponse{Changes: changes}, nil
}

// List returns the desired specs of the managed objects.
func (s *Server) List(ctx context.Context, _ *pb.ListRequest) (*pb.ListResponse, error) {
	recs, err := s.cfg.Store.List()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "node %s/%s: %v", s.cfg.Cluster, s.cfg.Node, err)
	}
	out := &pb.ListResponse{}
	for _, r := range recs {
		out.Objects = append(out.Objects, r.Object)
	}
	return out, nil
}

// Adopt takes a hand-made object under management.
func (s *Server) Adopt(ctx context.Context, req *pb.AdoptRequest) (*pb.AdoptResponse, error) {
	id := req.GetId()
	idName, err := s.checkID(id)
	if err != nil {
		return nil, err
	}
	name := req.GetName()
	if name == "" {
		name = idName
	}
	if err := pb.ValidateIfName("name", name); err != nil {
		return nil, s.statusErr(id, err)
	}
	if name != idName {
		return nil, s.statusErr(id, &pb.FieldError{Field: "name",
			Msg: fmt.Sprintf("device %q does not match the id %q", name, id)})
	}
	defer s.lock(id)()
	if rec, err := s.cfg.Store.Get(id); err == nil {
		obs, err := s.cfg.DP.ObserveVxlan(name, rec.Object.GetVxlanTunnel())
		if err != nil {
			return nil, s.statusErr(id, err)
		}
		return &pb.AdoptResponse{Observed: vxlanObject(id, obs)}, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, s.statusErr(id, err)
	}
	obs, err := s.cfg.DP.AdoptVxlan(id, name, req.GetDryRun())
	if err != nil {
		return nil, s.statusErr(id, err)
	}
	observed := vxlanObject(id, obs)
	if !req.GetDryRun() {
		rec := &store.Record{Object: DesiredFromObserved(observed), Owned: observed, AppliedAt: time.Now()}
		if err := s.cfg.Store.Put(rec); err != nil {
			return nil, status.Errorf(codes.Internal, "%s: adopted but the state dir %s is not writable: %v",
				s.where(id), s.cfg.Store.Dir(), err)
		}
		if err := s.cfg.Store.SetBootID(s.cfg.BootID); err != nil {
			return nil, status.Errorf(codes.Internal, "%s: the state dir %s is not writable: %v", s.where(id), s.cfg.Store.Dir(), err)
		}
	}
	s.log.Info("adopted", "object", id, "dry_run", req.GetDryRun())
	return &pb.AdoptResponse{Observed: observed}, nil
}

// DesiredFromObserved turns an observed object into a spec: the observed-only device
// fields (ifindex, oper_state, owner) are cleared.
func DesiredFromObserved(o *pb.Object) *pb.Object {
	d := proto.Clone(o).(*pb.Object)
	if dev := d.GetVxlanTunnel().GetDevice(); dev != nil {
		dev.Ifindex = 0
		dev.OperState = ""
		dev.Owner = ""
	}
	return d
}

// Replay restores the stored state after a reboot: when the store's boot id differs from
// the current one (or Enforce is set) every stored object is applied again. After a plain
// agent restart nothing is repaired, so hand edits stay visible to `terraform plan`.
func (s *Server) Replay(ctx context.Context) error {
	last := s.cfg.Store.LastBootID()
	if last == s.cfg.BootID && !s.cfg.Enforce {
		s.log.Info("same boot as the last apply; not replaying the stored state", "boot_id", last)
		return nil
	}
	recs, err := s.cfg.Store.List()
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	s.log.Info("replaying the stored state", "last_boot_id", last, "boot_id", s.cfg.BootID, "objects", len(recs), "enforce", s.cfg.Enforce)
	var errs []error
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return err
		}
		id := r.ID()
		err := func() error {
			defer s.lock(id)()
			if err := pb.ValidateObject(r.Object); err != nil {
				return s.statusErr(id, err)
			}
			_, changes, err := s.apply(r.Object, false)
			if err == nil {
				s.log.Info("replayed", "object", id, "changes", len(changes))
				for _, c := range changes {
					s.log.Info("replay change", "object", id, "action", c.GetAction().String(), "entry", c.GetEntry(), "key", c.GetKey(), "detail", c.GetDetail())
				}
			}
			return err
		}()
		if err != nil {
			s.log.Error("replay failed", "object", id, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
		}
	}
	if len(errs) > 0 {
		// The boot id stays old so the next start tries again.
		return fmt.Errorf("replay: %w", errors.Join(errs...))
	}
	if err := s.cfg.Store.SetBootID(s.cfg.BootID); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}
