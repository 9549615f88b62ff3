package fleet

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/nodenet/terraform-provider-nodenet/internal/pki"
	"github.com/nodenet/terraform-provider-nodenet/internal/tlsconf"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// fakeAgent answers Apply after a delay (ignoring the deadline, as a slow kernel would) or
// with an error, and serialises calls on one object as the real agent's lock does.
type fakeAgent struct {
	pb.UnimplementedNodeAgentServer
	delay time.Duration
	fail  error

	lock    sync.Mutex // the object's lock
	mu      sync.Mutex
	holds   bool
	deletes int
}

func (a *fakeAgent) Apply(_ context.Context, req *pb.ApplyRequest) (*pb.ApplyResponse, error) {
	a.lock.Lock()
	defer a.lock.Unlock()
	time.Sleep(a.delay)
	if a.fail != nil {
		return nil, a.fail
	}
	a.mu.Lock()
	a.holds = !req.GetDryRun() || a.holds
	a.mu.Unlock()
	return &pb.ApplyResponse{Observed: req.GetObject()}, nil
}

func (a *fakeAgent) Delete(_ context.Context, req *pb.DeleteRequest) (*pb.DeleteResponse, error) {
	a.lock.Lock()
	defer a.lock.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.deletes++
	if !a.holds {
		return nil, status.Error(codes.NotFound, "not managed")
	}
	a.holds = false
	return &pb.DeleteResponse{}, nil
}

func (a *fakeAgent) holding() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.holds
}

// agentFleet serves one fake agent per node over mTLS and returns a fleet that reaches them.
func agentFleet(t *testing.T, timeout time.Duration, agents ...*fakeAgent) *Fleet {
	t.Helper()
	ca, err := pki.NewCA("test", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.IssueClient("nodenet://terraform", pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{CACert: ca.CertPEM, ClientCert: cert, ClientKey: key, Timeout: timeout}
	for i, a := range agents {
		name := fmt.Sprintf("n%d", i)
		sc, sk, err := ca.IssueServer("c1", name, []net.IP{net.IPv4(127, 0, 0, 1)}, nil, pki.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tc, err := tlsconf.Server(sc, sk, ca.CertPEM, nil)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)))
		pb.RegisterNodeAgentServer(gs, a)
		go gs.Serve(ln)
		t.Cleanup(gs.Stop)
		cfg.Nodes = append(cfg.Nodes, Node{Cluster: "c1", Name: name, Agent: ln.Addr().String()})
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func objectsFor(f *Fleet) Objects {
	objs := Objects{}
	for _, k := range f.Keys("") {
		objs[k] = &pb.Object{Id: "vxlan_tunnel/vx", Owner: "nodenet_vxlan_tunnel:1"}
	}
	return objs
}

// TestApplyRollsBackLateAnswers: when one node refuses, every node that may have applied is
// rolled back, including one whose answer came after the deadline; the refusing node is not
// asked to undo what it never did.
func TestApplyRollsBackLateAnswers(t *testing.T) {
	fast := &fakeAgent{}
	refuses := &fakeAgent{fail: status.Error(codes.FailedPrecondition, "node c1/n1: conflict")}
	late := &fakeAgent{delay: 600 * time.Millisecond}
	f := agentFleet(t, 400*time.Millisecond, fast, refuses, late)
	res := f.Apply(context.Background(), objectsFor(f), func(string) *pb.Object { return nil })
	if res.OK() || len(res.Failed) != 2 || res.Failed[0].Node != "c1/n1" || res.Failed[1].Node != "c1/n2" {
		t.Fatalf("failed %v, want c1/n1 (refused) and c1/n2 (late)", res.Failed)
	}
	if strings.Join(res.RolledBack, ",") != "c1/n0,c1/n2" || len(res.Uncertain) != 0 || len(res.Answers) != 0 {
		t.Fatalf("rolled back %v, uncertain %v, answers %v", res.RolledBack, res.Uncertain, res.Answers)
	}
	time.Sleep(300 * time.Millisecond) // whatever the late node still does
	if fast.holding() || late.holding() {
		t.Fatalf("a node still holds the change: fast %v, late %v", fast.holding(), late.holding())
	}
	if refuses.deletes != 0 {
		t.Error("the node that refused was asked to roll back")
	}
}

// TestApplyReportsWhatMayRemain: a node whose late apply outlasts the rollback's time is
// reported as uncertain: it may hold the change.
func TestApplyReportsWhatMayRemain(t *testing.T) {
	fast := &fakeAgent{}
	stuck := &fakeAgent{delay: 1500 * time.Millisecond}
	f := agentFleet(t, 300*time.Millisecond, fast, stuck)
	res := f.Apply(context.Background(), objectsFor(f), func(string) *pb.Object { return nil })
	if len(res.Uncertain) != 1 || res.Uncertain[0].Node != "c1/n1" || strings.Join(res.RolledBack, ",") != "c1/n0" {
		t.Fatalf("uncertain %v, rolled back %v", res.Uncertain, res.RolledBack)
	}
	if !MaybeApplied(res.Failed[0].Err) || MaybeApplied(status.Error(codes.FailedPrecondition, "x")) {
		t.Error("MaybeApplied classification")
	}
	// Without undo nothing is rolled back and the late node is uncertain.
	f2 := agentFleet(t, 300*time.Millisecond, &fakeAgent{}, &fakeAgent{delay: 600 * time.Millisecond})
	res = f2.Apply(context.Background(), objectsFor(f2), nil)
	if len(res.RolledBack) != 0 || len(res.Answers) != 1 || len(res.Uncertain) != 1 {
		t.Fatalf("without undo: %+v", res)
	}
}
