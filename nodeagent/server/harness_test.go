package server

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/nodenet/terraform-provider-nodenet/internal/pki"
	"github.com/nodenet/terraform-provider-nodenet/internal/tlsconf"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/store"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

const (
	testCluster = "test-cluster1"
	testNode    = "node-a"
	terraformID = "nodenet://terraform"
)

type pemPair struct{ cert, key []byte }

type testPKI struct {
	ca     *pki.CA
	server pemPair
	client pemPair
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	ca, err := pki.NewCA("nodenet test CA", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{ca: ca}
	if p.server.cert, p.server.key, err = ca.IssueServer(testCluster, testNode, []net.IP{net.IPv4(127, 0, 0, 1)}, nil, pki.Options{}); err != nil {
		t.Fatal(err)
	}
	if p.client.cert, p.client.key, err = ca.IssueClient(terraformID, pki.Options{}); err != nil {
		t.Fatal(err)
	}
	return p
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func fakeProbe() (map[string]bool, string, error) {
	return map[string]bool{"vxlan": true, "dummy": true}, "6.0.0-test", nil
}

// newServer returns a Server over the reconcilers with a store in dir ("" = a new temp dir)
// and a fake kernel.
func newServer(t *testing.T, dir, bootID string, rs ...reconcile.Reconciler) (*Server, *store.Store) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := reconcile.NewRegistry(rs...)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Cluster: testCluster, Node: testNode, Version: "test", Registry: reg, Kernel: &fakeKernel{},
		Store: st, BootID: bootID, Logger: testLogger(t), ProbeKernelFeatures: fakeProbe})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

// serve runs s on 127.0.0.1:0 with mTLS and returns the address.
func serve(t *testing.T, s *Server, p *testPKI, allowed []string) string {
	t.Helper()
	scfg, err := tlsconf.Server(p.server.cert, p.server.key, p.ca.CertPEM, allowed)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(scfg)), grpc.UnaryInterceptor(UnaryInterceptor(s.log)))
	pb.RegisterNodeAgentServer(gs, s)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	return ln.Addr().String()
}

func dial(t *testing.T, addr string, caPEM []byte, c pemPair, expect string) pb.NodeAgentClient {
	t.Helper()
	ccfg, err := tlsconf.Client(caPEM, c.cert, c.key, expect)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(tlsconf.Credentials(ccfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return pb.NewNodeAgentClient(cc)
}

var nsSeq atomic.Int32

// newNetns creates a network namespace nntsv<pid>-<n> with a veth pair u0/u1 as the
// underlay (u0 192.168.78.1/24) and deletes it when the test ends.
func newNetns(t *testing.T) (name, path string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	name = fmt.Sprintf("nntsv%d-%d", os.Getpid(), nsSeq.Add(1))
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	ip("-n", name, "link", "add", "u0", "type", "veth", "peer", "name", "u1")
	ip("-n", name, "addr", "add", "192.168.78.1/24", "dev", "u0")
	ip("-n", name, "link", "set", "u0", "up")
	ip("-n", name, "link", "set", "u1", "up")
	ip("-n", name, "link", "set", "lo", "up")
	return name, "/run/netns/" + name
}

// linkExists reports whether the namespace has a link called dev.
func linkExists(t *testing.T, ns, dev string) bool {
	t.Helper()
	err := exec.Command("ip", "-n", ns, "link", "show", "dev", dev).Run()
	return err == nil
}
