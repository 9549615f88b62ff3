// Package server implements the NodeAgent gRPC service of nodenet-agent. It holds no
// kind-specific code: every request is checked (owner, exclusive kernel entries) and
// dispatched to the reconciler of the object's kind (nodeagent/reconcile), and the desired
// state is kept in the store, with each operation's intent recorded before the kernel is
// touched.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/store"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Kernel is what the server reads of the node itself, whatever the kinds.
type Kernel interface {
	Interfaces() ([]*pb.Interface, error)
	// Marked lists the kernel entries that carry nodenet's marks.
	Marked() ([]*pb.KernelEntry, error)
	// RemoveMarkedRoute removes the main-table routes to dst with nodenet's protocol.
	RemoveMarkedRoute(dst string) error
}

// Features are the contract features every agent of this version implements, besides one
// capability per registered kind.
var Features = []string{"dry_run", "adopt", "owner", "release"}

// Config configures a Server.
type Config struct {
	Cluster, Node, Version string
	Registry               *reconcile.Registry
	Kernel                 Kernel
	Store                  *store.Store
	// CNIConfDir and CNIIpamDataDir are reported in Info (where the pools' CNI
	// configurations go, and the IPAM data dir they name).
	CNIConfDir, CNIIpamDataDir string
	// BootID is the current boot id of the node.
	BootID string
	Logger *slog.Logger
	// Enforce makes Start re-apply the stored kernel entries on every start, not only after
	// a reboot.
	Enforce bool
	// ProbeKernelFeatures reports the kernel's link kinds and release; New calls it once.
	// Nil means no features are known.
	ProbeKernelFeatures func() (map[string]bool, string, error)
	// AfterIntent, when set (by tests), runs when an Apply's or an Adopt's intent is
	// recorded, before the kernel is touched.
	AfterIntent func(id string)
}

// Server implements pb.NodeAgentServer.
type Server struct {
	pb.UnimplementedNodeAgentServer

	cfg Config
	log *slog.Logger
	reg *reconcile.Registry

	features      map[string]bool
	kernelRelease string

	mu    sync.Mutex
	locks map[string]*sync.Mutex

	claims   *claimIndex
	problems *problemSet
}

// New returns a Server. It probes the kernel features once and fails when that fails: an
// agent that reported no features would let plans skip their kernel checks.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil || cfg.Store == nil || cfg.Kernel == nil {
		return nil, errors.New("server: a registry, a store and a kernel are required")
	}
	s := &Server{cfg: cfg, log: cfg.Logger, reg: cfg.Registry, locks: map[string]*sync.Mutex{},
		claims: newClaimIndex(), problems: newProblemSet()}
	for _, r := range cfg.Registry.All() {
		if h, ok := r.(reconcile.EntryHolder); ok {
			s.claims.held = append(s.claims.held, h.HeldBy)
		}
		if y, ok := r.(reconcile.EntryYielder); ok {
			s.claims.yielders = append(s.claims.yielders, y)
		}
	}
	if cfg.ProbeKernelFeatures != nil {
		feats, rel, err := cfg.ProbeKernelFeatures()
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		s.features, s.kernelRelease = feats, rel
	}
	return s, nil
}

// HeldByObjects is the object whose claims or owned entries hold a kernel entry key ("" when
// none does), not counting what runtimes hold: runtimes ask it.
func (s *Server) HeldByObjects(key string) string { return s.claims.heldByObjects(key) }

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

func (s *Server) node() string { return s.cfg.Cluster + "/" + s.cfg.Node }

func (s *Server) where(id string) string {
	return fmt.Sprintf("node %s: object %s", s.node(), id)
}

// statusErr maps an error of a reconciler or of validation to a gRPC status whose message
// names the node and the object; nil stays nil.
func (s *Server) statusErr(id string, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if fe, ok := pb.AsFieldError(err); ok {
		return status.Errorf(codes.InvalidArgument, "%s: %s", s.where(id), fe)
	}
	var ce *reconcile.ConflictError
	if errors.As(err, &ce) {
		return status.Errorf(codes.FailedPrecondition, "%s: %s", s.where(id), err)
	}
	var nf *reconcile.NotFoundError
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

func (s *Server) stateErr(id, what string, err error) error {
	return status.Errorf(codes.Internal, "%s: %s the state dir %s: %v", s.where(id), what, s.cfg.Store.Dir(), err)
}

// record returns the stored record of id, nil when there is none.
func (s *Server) record(id string) (*store.Record, error) {
	rec, err := s.cfg.Store.Get(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, s.stateErr(id, "reading", err)
	}
	return rec, nil
}

// checkOwner refuses a request from another owner than the record's. A record without an
// owner (written before owners existed) is claimed by the first owner that applies it.
func (s *Server) checkOwner(id string, rec *store.Record, owner, what string) error {
	if rec == nil || rec.Object.GetOwner() == "" || rec.Object.GetOwner() == owner {
		return nil
	}
	msg := fmt.Sprintf("%s is managed by %s (last applied %s), not by %s: %s refused. Two resources cannot manage one object: "+
		"give this one another name, or take the object over with terraform import",
		s.where(id), rec.Object.GetOwner(), rec.AppliedAt.UTC().Format("2006-01-02 15:04:05 UTC"), orNone(owner), what)
	return pb.StatusWithReason(codes.FailedPrecondition, msg, pb.ReasonOtherOwner, map[string]string{"owner": rec.Object.GetOwner()})
}

func orNone(s string) string {
	if s == "" {
		return "a request without an owner"
	}
	return s
}
