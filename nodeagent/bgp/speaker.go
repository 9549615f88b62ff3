// Package bgp is the node's BGP speaker: an embedded GoBGP v3 server configured from the
// agent's objects (the speaker's global settings and mesh, explicit peers, reflectors and
// their clients, pool blocks to announce), with the best paths it learns programmed into the
// kernel. It is a runtime component: started from the store at every agent start, changed
// in place by Apply, and detached on SIGTERM without a Cease and without touching the kernel,
// so peers keep this node's routes as stale and this node keeps theirs while it restarts.
package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/proto"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Options configure a Speaker.
type Options struct {
	Dataplane *dataplane.Dataplane
	// StateDir holds the GoBGP API socket (gobgp.sock, for the gobgp CLI: root only) and the
	// record of the routes the speaker put in the kernel.
	StateDir string
	Logger   *slog.Logger
	// Unavailable says why this agent cannot run a speaker ("" when it can): an agent
	// whose netlink work happens in another network namespace than its own would open
	// its BGP sessions in the wrong one.
	Unavailable string
}

// Speaker is the node's one BGP speaker. Its methods are safe for concurrent use.
type Speaker struct {
	opts Options
	log  *slog.Logger
	rib  *kernelRIB

	mu sync.Mutex
	// srv is the running GoBGP server; nil when no speaker object is applied.
	srv *server.BgpServer
	// stopWatch ends the watches of the running server.
	stopWatch context.CancelFunc
	// global is the applied speaker object's spec; running is what srv was started with.
	global, running *pb.BgpSpeaker
	// sources are the neighbours each object asks for; applied what GoBGP has, by address.
	sources map[string][]Neighbor
	applied map[string]appliedNeighbor
	// blocks are the pool blocks to announce, by object id.
	blocks map[string]Block
	// announced are the prefixes GoBGP originates now, with their next hop.
	announced map[netip.Prefix]string
	// restarting is true until the first start of the process has added its neighbours:
	// those carry the graceful restart bits.
	restarting bool
}

type appliedNeighbor struct {
	Neighbor
	key sessionKey
}

// Block is a pool block the node announces.
type Block struct {
	Prefix netip.Prefix
	Export bool
}

// New returns a speaker that is not running yet.
func New(o Options) *Speaker {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Speaker{
		opts:      o,
		log:       o.Logger.With("component", "bgp"),
		sources:   map[string][]Neighbor{},
		applied:   map[string]appliedNeighbor{},
		blocks:    map[string]Block{},
		announced: map[netip.Prefix]string{},
	}
	s.rib = newKernelRIB(o.Dataplane, s.log, filepath.Join(o.StateDir, "bgp-learned.json"))
	return s
}

// UnavailableIn says why an agent whose netlink work happens in the network namespace at
// netnsPath ("" = its own) cannot run a speaker ("" when it can): the speaker's sockets open
// in the agent's own namespace, so that must be the node's.
func UnavailableIn(netnsPath string) string {
	if netnsPath == "" {
		return ""
	}
	same, err := dataplane.SameNetns(netnsPath)
	switch {
	case err != nil:
		return fmt.Sprintf("cannot compare network namespaces: %v", err)
	case !same:
		return fmt.Sprintf("the agent runs in another network namespace than %s, where it does its netlink work, and BGP sessions would open in the wrong one: run the agent inside the node's namespace (ip netns exec)", netnsPath)
	}
	return ""
}

// Unavailable says why this agent cannot run a speaker ("" when it can).
func (s *Speaker) Unavailable() string { return s.opts.Unavailable }

// SetHeldBy tells the speaker which object holds a kernel entry key: a learned route whose
// destination another object's route holds is left out of the kernel and reported.
func (s *Speaker) SetHeldBy(f func(key string) string) { s.rib.setHeldBy(f) }

// HeldBy returns the speaker's object id when key is a route it programmed.
func (s *Speaker) HeldBy(key string) string {
	if s.rib.holds(key) {
		return pb.ObjectID(pb.KindBgpSpeaker, pb.SpeakerName)
	}
	return ""
}

// Start brings the speaker up from the stored objects of the BGP kinds, at agent start.
// When a speaker was stored, this is a restart: peers keep this node's routes as stale,
// and the routes learned before stay in the kernel until new best paths replace them or
// the stale sweep after End-of-RIB removes them.
func (s *Speaker) Start(ctx context.Context, objs []*pb.Object) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range objs {
		switch {
		case o.GetBgpSpeaker() != nil:
			s.global = proto.Clone(o.GetBgpSpeaker()).(*pb.BgpSpeaker)
			s.sources[o.GetId()] = meshNeighbors(o.GetId(), s.global)
		case o.GetBgpPeer() != nil:
			s.sources[o.GetId()] = []Neighbor{peerNeighbor(o.GetId(), o.GetBgpPeer())}
		case o.GetBgpReflector() != nil:
			s.sources[o.GetId()] = reflectorNeighbors(o.GetId(), o.GetBgpReflector())
		case o.GetIpPool() != nil:
			if b, ok := poolBlock(o.GetIpPool()); ok {
				s.blocks[o.GetId()] = b
			}
		}
	}
	if err := s.rib.loadStale(); err != nil {
		s.log.Warn("reading the learned routes of the last run", "err", err)
	}
	if s.global == nil {
		return nil
	}
	if s.opts.Unavailable != "" {
		return fmt.Errorf("a speaker is stored but cannot run: %s", s.opts.Unavailable)
	}
	s.restarting = true
	defer func() { s.restarting = false }()
	return s.startLocked(ctx)
}

// startLocked starts GoBGP with the applied global settings, announces the blocks, then adds
// the neighbours: peers learn this node's blocks in the first update after their session
// comes up. The best-path watch is registered before any neighbour exists.
func (s *Speaker) startLocked(ctx context.Context) error {
	g := s.global
	sock := filepath.Join(s.opts.StateDir, "gobgp.sock")
	_ = os.Remove(sock) // left by a killed agent; GoBGP cannot listen on it otherwise
	srv := server.NewBgpServer(server.LoggerOption(newLogAdapter(s.log)), server.GrpcListenAddress("unix://"+sock))
	go srv.Serve()
	req := &api.StartBgpRequest{Global: &api.Global{
		Asn:             g.GetAsn(),
		RouterId:        routerID(g),
		ListenPort:      int32(orDefault(g.GetListenPort(), defaultPort)),
		ListenAddresses: []string{"0.0.0.0"},
	}}
	// Graceful restart is set per neighbour (GoBGP negotiates it there; its global setting
	// only seeds peer groups), so a change of it re-adds the sessions, not the speaker.
	if err := srv.StartBgp(ctx, req); err != nil {
		srv.Stop()
		return fmt.Errorf("start the BGP speaker (AS %d, router id %s, port %d): %w", g.GetAsn(), routerID(g), req.Global.ListenPort, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	if err := s.rib.watch(wctx, srv, restartBound(g), allEOR(srv)); err != nil {
		cancel()
		srv.Stop()
		return err
	}
	s.srv, s.stopWatch, s.running = srv, cancel, proto.Clone(g).(*pb.BgpSpeaker)
	s.announced = map[netip.Prefix]string{}
	s.applied = map[string]appliedNeighbor{}
	if _, err := s.syncPathsLocked(ctx); err != nil {
		return err
	}
	_, err := s.syncNeighborsLocked(ctx, false)
	return err
}

// stopLocked stops GoBGP with a Cease to every peer: the speaker was removed or restarts
// with another AS or router id, and peers must drop its routes.
func (s *Speaker) stopLocked() {
	if s.srv == nil {
		return
	}
	s.stopWatch()
	s.srv.Stop()
	s.srv, s.running = nil, nil
	s.applied = map[string]appliedNeighbor{}
	s.announced = map[netip.Prefix]string{}
}

// Detach ends the speaker at agent shutdown without a Cease: its sessions' sockets are shut
// down first, so peers see the connection close and keep this node's routes as stale
// (graceful restart), and the kernel keeps every route.
func (s *Speaker) Detach(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return s.rib.flush()
	}
	s.stopWatch()
	n, err := shutdownSessions(s.sessionPorts())
	if err != nil {
		s.log.Warn("closing BGP sessions without a notification", "err", err)
	}
	s.log.Info("detached: sessions closed without a Cease, kernel routes kept", "sockets", n)
	s.srv.Stop() // the Cease it sends finds closed sockets
	s.srv, s.running = nil, nil
	return s.rib.flush()
}

// sessionPorts are the TCP ports of the speaker's sessions: its listen port and every
// neighbour's remote port.
func (s *Speaker) sessionPorts() map[uint16]bool {
	ports := map[uint16]bool{uint16(orDefault(s.running.GetListenPort(), defaultPort)): true}
	for _, a := range s.applied {
		ports[uint16(a.apiPeer(s.running, false).GetTransport().GetRemotePort())] = true
	}
	return ports
}

func routerID(g *pb.BgpSpeaker) string {
	if g.GetRouterId() != "" {
		return g.GetRouterId()
	}
	return g.GetAddress()
}

// needsRestart: GoBGP cannot change the AS, router id or listen port of a running server.
// Anything else (mesh, timers, graceful restart) changes the neighbours concerned only.
func needsRestart(running, want *pb.BgpSpeaker) bool {
	return running.GetAsn() != want.GetAsn() || routerID(running) != routerID(want) ||
		orDefault(running.GetListenPort(), defaultPort) != orDefault(want.GetListenPort(), defaultPort)
}
