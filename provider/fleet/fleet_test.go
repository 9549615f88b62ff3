package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nodenet/terraform-provider-nodenet/internal/pki"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

func testFleet(t *testing.T, n, parallelism int) *Fleet {
	t.Helper()
	ca, err := pki.NewCA("test", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.IssueClient("nodenet://terraform", pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{CACert: ca.CertPEM, ClientCert: cert, ClientKey: key, Parallelism: parallelism}
	for i := 0; i < n; i++ {
		cfg.Nodes = append(cfg.Nodes, Node{Cluster: "c1", Name: fmt.Sprintf("n%d", i), Agent: "127.0.0.1:1"})
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func TestEachBoundsParallelismAndSortsErrors(t *testing.T) {
	f := testFleet(t, 8, 3)
	var running, peak atomic.Int32
	errs := f.Each(context.Background(), f.Keys(""), func(ctx context.Context, key string, _ pb.NodeAgentClient) error {
		now := running.Add(1)
		for {
			p := peak.Load()
			if now <= p || peak.CompareAndSwap(p, now) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		running.Add(-1)
		if strings.HasSuffix(key, "5") || strings.HasSuffix(key, "2") {
			return status.Error(codes.FailedPrecondition, "node "+key+": conflict")
		}
		return nil
	})
	if p := peak.Load(); p != 3 {
		t.Errorf("peak parallelism %d, want 3", p)
	}
	if len(errs) != 2 || errs[0].Node != "c1/n2" || errs[1].Node != "c1/n5" {
		t.Fatalf("errors %v, want c1/n2 then c1/n5", errs)
	}
	// The agent named the node already: not twice.
	if got := errs[0].Error(); got != "node c1/n2: conflict" {
		t.Errorf("error text %q", got)
	}
	if errs[0].Unreachable() {
		t.Error("a FailedPrecondition is an answer, not an unreachable agent")
	}
}

func TestUnknownNodeAndUnreachable(t *testing.T) {
	f := testFleet(t, 2, 0)
	errs := f.Each(context.Background(), []string{"c1/n9"}, func(context.Context, string, pb.NodeAgentClient) error { return nil })
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "c1/n9 is not in the provider's inventory (configured: c1/n0, c1/n1)") {
		t.Fatalf("unknown node: %v", errs)
	}
	// Nothing listens on 127.0.0.1:1: the agent is unreachable, and says so.
	errs = f.Each(context.Background(), []string{"c1/n0"}, func(ctx context.Context, _ string, c pb.NodeAgentClient) error {
		_, err := c.Info(ctx, &pb.InfoRequest{})
		return err
	})
	if len(errs) != 1 || !errs[0].Unreachable() || !strings.Contains(errs[0].Error(), "c1/n0: agent unreachable") {
		t.Fatalf("unreachable: %v", errs)
	}
	if AuthFailed(errs[0].Err) || !errors.Is(errs[0], errs[0].Err) {
		t.Errorf("classification of %v", errs[0])
	}
}
