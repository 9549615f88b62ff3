package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/bgp"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/health"
	bgpkinds "github.com/nodenet/terraform-provider-nodenet/nodeagent/kinds/bgp"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/kinds/ippool"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/kinds/vxlan"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/nat"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/store"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// AgentConfig is a whole agent: what `nodenet-agent serve` runs, and what the lab runs
// in-process for tests.
type AgentConfig struct {
	Cluster, Node, Version string
	// NetnsPath is the network namespace the agent's netlink work happens in ("" = its own).
	NetnsPath string
	Creds     credentials.TransportCredentials
	StateDir  string
	BootID    string
	Logger    *slog.Logger
	Enforce   bool
	// GracefulTimeout bounds the graceful stop; 0 means 10 s.
	GracefulTimeout time.Duration
	// AfterIntent is a test hook (see Config.AfterIntent).
	AfterIntent func(id string)
	// CNIConfDir is the node's CNI configuration directory (--cni-conf-dir), where the CNI
	// configurations of IP pools are written.
	CNIConfDir string
	// CNIIpamDataDir is the host-local IPAM data dir the configurations name
	// (--cni-ipam-data-dir; "" for host-local's default).
	CNIIpamDataDir string
	// HealthInterval is how often the members of tunnels with health checks are probed;
	// 0 means health.DefaultInterval (tests make it shorter).
	HealthInterval time.Duration
}

// Node is what the kinds share on one node: the dataplane, the BGP speaker, the NAT table,
// where CNI configurations go and the prober of the tunnels' health checks.
type Node struct {
	Dataplane  *dataplane.Dataplane
	Speaker    *bgp.Speaker
	NAT        *nat.Table
	CNIConfDir string
	Health     *health.Prober
}

// Kinds returns the reconcilers of every kind this agent manages on one node. Adding a kind
// is a package under nodeagent/kinds and one line here.
func Kinds(n Node) (*reconcile.Registry, error) {
	speaker, peer, reflector := bgpkinds.New(n.Speaker)
	vx := vxlan.New(n.Dataplane, n.Health)
	vx.NAT = n.NAT
	return reconcile.NewRegistry(
		vx,
		speaker, peer, reflector,
		ippool.New(n.Dataplane, n.Speaker, n.NAT, n.CNIConfDir),
	)
}

// Run opens the dataplane and the store, starts from the stored state (replaying it if the
// node rebooted), and serves on ln until ctx ends. Then it stops gracefully and leaves the
// kernel as it is.
func Run(ctx context.Context, cfg AgentConfig, ln net.Listener) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.GracefulTimeout <= 0 {
		cfg.GracefulTimeout = 10 * time.Second
	}
	st, err := store.Open(cfg.StateDir)
	if err != nil {
		return err
	}
	dp, err := dataplane.Open(cfg.NetnsPath)
	if err != nil {
		return err
	}
	defer dp.Close() // closes netlink sockets only; kernel state stays
	sp := bgp.New(bgp.Options{Dataplane: dp, StateDir: cfg.StateDir, Logger: log, Unavailable: bgp.UnavailableIn(cfg.NetnsPath)})
	nt, err := nat.Open(cfg.NetnsPath)
	if err != nil {
		return err
	}
	defer nt.Close() // the table stays in the kernel
	hp, err := health.New(cfg.NetnsPath, cfg.HealthInterval, log)
	if err != nil {
		return err
	}
	defer hp.Close()
	reg, err := Kinds(Node{Dataplane: dp, Speaker: sp, NAT: nt, CNIConfDir: cfg.CNIConfDir, Health: hp})
	if err != nil {
		return err
	}
	srv, err := New(Config{
		Cluster: cfg.Cluster, Node: cfg.Node, Version: cfg.Version, Registry: reg, Kernel: dp,
		Store: st, BootID: cfg.BootID, Logger: log, Enforce: cfg.Enforce,
		ProbeKernelFeatures: dataplane.ProbeKernelFeatures, AfterIntent: cfg.AfterIntent,
		CNIConfDir: cfg.CNIConfDir, CNIIpamDataDir: cfg.CNIIpamDataDir,
	})
	if err != nil {
		return err
	}
	sp.SetHeldBy(srv.HeldByObjects)
	if err := srv.Start(ctx); err != nil {
		// Keep serving: the problems are in Info and the log, and the provider sees the drift.
		log.Error("starting from the stored state failed", "err", err)
	}
	gs := grpc.NewServer(grpc.Creds(cfg.Creds), grpc.UnaryInterceptor(UnaryInterceptor(log)))
	pb.RegisterNodeAgentServer(gs, srv)
	log.Info("nodenet-agent serving", "cluster", cfg.Cluster, "node", cfg.Node, "version", cfg.Version,
		"addr", ln.Addr().String(), "netns", cfg.NetnsPath, "state_dir", cfg.StateDir, "cni_conf_dir", cfg.CNIConfDir, "boot_id", cfg.BootID,
		"kinds", reg.Kinds())
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("stopping (kernel state is left in place)")
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.GracefulTimeout):
		log.Warn("graceful stop timed out; closing connections", "timeout", cfg.GracefulTimeout)
		gs.Stop()
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.GracefulTimeout)
	defer cancel()
	return srv.Stop(stopCtx)
}
