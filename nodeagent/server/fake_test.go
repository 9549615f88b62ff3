package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nodenet/terraform-provider-nodenet/internal/pki"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/store"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// fakeDP keeps vxlan tunnels in memory.
type fakeDP struct {
	mu      sync.Mutex
	devs    map[string]*pb.VxlanTunnel // by device name
	foreign map[string]bool
	applies atomic.Int32
	delay   time.Duration
	active  map[string]int
	overlap atomic.Bool // two applies on one id overlapped
	maxConc atomic.Int32
	conc    atomic.Int32
}

func newFake() *fakeDP {
	return &fakeDP{devs: map[string]*pb.VxlanTunnel{}, foreign: map[string]bool{}, active: map[string]int{}}
}

func (f *fakeDP) Interfaces() ([]*pb.Interface, error) {
	return []*pb.Interface{{Name: "lo", Index: 1, Mtu: 65536}}, nil
}

func (f *fakeDP) ObserveVxlan(name string, want *pb.VxlanTunnel) (*pb.VxlanTunnel, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.devs[name]; ok {
		return proto.Clone(t).(*pb.VxlanTunnel), nil
	}
	return &pb.VxlanTunnel{}, nil
}

func (f *fakeDP) ApplyVxlan(id string, spec *pb.VxlanTunnel, dryRun bool) (*pb.VxlanTunnel, []*pb.Change, error) {
	name := spec.GetDevice().GetName()
	f.mu.Lock()
	if f.foreign[name] {
		f.mu.Unlock()
		return nil, nil, &dataplane.ConflictError{Msg: "link " + name + " exists and is not owned by nodenet; use terraform import"}
	}
	f.active[id]++
	if f.active[id] > 1 {
		f.overlap.Store(true)
	}
	f.mu.Unlock()
	if c := f.conc.Add(1); c > f.maxConc.Load() {
		f.maxConc.Store(c)
	}
	time.Sleep(f.delay)
	f.conc.Add(-1)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active[id]--
	f.applies.Add(1)
	obs := proto.Clone(spec).(*pb.VxlanTunnel)
	obs.Device.Ifindex = 42
	obs.Device.OperState = "up"
	obs.Device.Owner = id
	if !dryRun {
		f.devs[name] = obs
	}
	return obs, []*pb.Change{{Action: pb.Change_ADD, Entry: "link", Key: name}}, nil
}

func (f *fakeDP) DeleteVxlan(id, name string, dryRun bool) ([]*pb.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !dryRun {
		delete(f.devs, name)
	}
	return []*pb.Change{{Action: pb.Change_DELETE, Entry: "link", Key: name}}, nil
}

func (f *fakeDP) AdoptVxlan(id, name string, dryRun bool) (*pb.VxlanTunnel, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.foreign[name] {
		return nil, &dataplane.NotFoundError{Msg: "no link " + name}
	}
	t := &pb.VxlanTunnel{Device: &pb.VxlanDevice{Name: name, Vni: 9, Underlay: "u0", Ifindex: 7, OperState: "up", Owner: id}}
	if !dryRun {
		delete(f.foreign, name)
		f.devs[name] = t
	}
	return proto.Clone(t).(*pb.VxlanTunnel), nil
}

func spec(name string, vni uint32) *pb.Object {
	return &pb.Object{Id: pb.ObjectID(pb.KindVxlanTunnel, name), Spec: &pb.Object_VxlanTunnel{VxlanTunnel: &pb.VxlanTunnel{
		Device: &pb.VxlanDevice{Name: name, Vni: vni, Underlay: "u0", Address: "10.99.0.1/24"},
	}}}
}

func wantCode(t *testing.T, err error, code codes.Code, contains ...string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("want %s, got %v", code, err)
	}
	for _, c := range contains {
		if !strings.Contains(st.Message(), c) {
			t.Fatalf("message %q does not contain %q", st.Message(), c)
		}
	}
}

func TestSecurity(t *testing.T) {
	p := newPKI(t)
	s, _ := newServer(t, newFake(), "boot")
	addr := serve(t, s, p, []string{terraformID})
	nodeURI := pki.NodeURI(testCluster, testNode)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	t.Run("good client", func(t *testing.T) {
		info, err := dial(t, addr, p.ca.CertPEM, p.client, nodeURI).Info(ctx, &pb.InfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if info.GetCluster() != testCluster || info.GetNode() != testNode || info.GetBootId() != "boot" ||
			!info.GetKernelFeatures()["vxlan"] || info.GetKernelRelease() != "6.0.0-test" || len(info.GetCapabilities()) != 3 {
			t.Fatalf("info: %v", info)
		}
	})
	t.Run("plaintext client", func(t *testing.T) {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		_, err = pb.NewNodeAgentClient(cc).Info(ctx, &pb.InfoRequest{})
		wantCode(t, err, codes.Unavailable)
	})
	refused := func(t *testing.T, c pemPair) {
		t.Helper()
		_, err := dial(t, addr, p.ca.CertPEM, c, nodeURI).Info(ctx, &pb.InfoRequest{})
		wantCode(t, err, codes.Unavailable)
		t.Logf("refused: %v", err)
	}
	t.Run("client from another CA", func(t *testing.T) {
		other, err := pki.NewCA("other", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var c pemPair
		if c.cert, c.key, err = other.IssueClient(terraformID, pki.Options{}); err != nil {
			t.Fatal(err)
		}
		refused(t, c)
	})
	t.Run("expired client", func(t *testing.T) {
		var c pemPair
		var err error
		// pki clamps a leaf into its CA's validity, which starts a minute ago.
		if c.cert, c.key, err = p.ca.IssueClient(terraformID, pki.Options{
			NotBefore: time.Now().Add(-50 * time.Second), NotAfter: time.Now().Add(-30 * time.Second)}); err != nil {
			t.Fatal(err)
		}
		refused(t, c)
	})
	t.Run("client not allowed", func(t *testing.T) {
		var c pemPair
		var err error
		if c.cert, c.key, err = p.ca.IssueClient("nodenet://intruder", pki.Options{}); err != nil {
			t.Fatal(err)
		}
		refused(t, c)
	})
	t.Run("wrong agent identity", func(t *testing.T) {
		_, err := dial(t, addr, p.ca.CertPEM, p.client, "nodenet://test-cluster1/node-b").Info(ctx, &pb.InfoRequest{})
		wantCode(t, err, codes.Unavailable, "agent at "+addr+" presented identity "+nodeURI+", expected nodenet://test-cluster1/node-b")
	})
}

func TestStoreNotWritable(t *testing.T) {
	f := newFake()
	s, st := newServer(t, f, "boot")
	// A directory where the boot_id file goes: the record is written, the boot id is not.
	if err := os.MkdirAll(filepath.Join(st.Dir(), "boot_id", "in-the-way"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := s.Apply(t.Context(), &pb.ApplyRequest{Object: spec("vx0", 5)})
	wantCode(t, err, codes.Internal, "node test-cluster1/node-a", "vxlan_tunnel/vx0", "state dir", "not writable", "change was undone")
	if _, ok := f.devs["vx0"]; ok {
		t.Fatal("a change the agent cannot record must be undone: the device is still there")
	}
	if _, err := st.Get("vxlan_tunnel/vx0"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the record of the undone change should be gone: %v", err)
	}
}

func TestStoreNotWritableOnUpdateRestoresThePreviousSpec(t *testing.T) {
	f := newFake()
	s, st := newServer(t, f, "boot")
	ctx := t.Context()
	if _, err := s.Apply(ctx, &pb.ApplyRequest{Object: spec("vx0", 5)}); err != nil {
		t.Fatal(err)
	}
	// The boot id can no longer be written: a directory stands where the file was.
	bootID := filepath.Join(st.Dir(), "boot_id")
	if err := os.Remove(bootID); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(bootID, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bootID, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := s.Apply(ctx, &pb.ApplyRequest{Object: spec("vx0", 6)})
	wantCode(t, err, codes.Internal, "change was undone")
	if got := f.devs["vx0"].GetDevice().GetVni(); got != 5 {
		t.Fatalf("after a failed update the device has VNI %d, want the previous 5", got)
	}
	rec, err := st.Get("vxlan_tunnel/vx0")
	if err != nil || rec.Object.GetVxlanTunnel().GetDevice().GetVni() != 5 {
		t.Fatalf("the store should hold the previous spec: %v %v", rec, err)
	}
}

func TestErrorMapping(t *testing.T) {
	f := newFake()
	f.foreign["vxf"] = true
	s, _ := newServer(t, f, "boot")
	ctx := t.Context()
	_, err := s.Apply(ctx, &pb.ApplyRequest{Object: spec("vxf", 5)})
	wantCode(t, err, codes.FailedPrecondition, "node test-cluster1/node-a: object vxlan_tunnel/vxf", "terraform import")
	_, err = s.Apply(ctx, &pb.ApplyRequest{Object: spec("vx0", 0)})
	wantCode(t, err, codes.InvalidArgument, "node test-cluster1/node-a: object vxlan_tunnel/vx0", "device.vni")
	_, err = s.Apply(ctx, &pb.ApplyRequest{})
	wantCode(t, err, codes.InvalidArgument, "object")
	_, err = s.Get(ctx, &pb.GetRequest{Id: "bogus"})
	wantCode(t, err, codes.InvalidArgument, "id")
	_, err = s.Get(ctx, &pb.GetRequest{Id: "vxlan_tunnel/nope"})
	wantCode(t, err, codes.NotFound, "node test-cluster1/node-a: object vxlan_tunnel/nope is not managed by this agent")
	_, err = s.Delete(ctx, &pb.DeleteRequest{Id: "vxlan_tunnel/nope"})
	wantCode(t, err, codes.NotFound, "not managed")
	_, err = s.Adopt(ctx, &pb.AdoptRequest{Id: "vxlan_tunnel/nope"})
	wantCode(t, err, codes.NotFound, "vxlan_tunnel/nope")
	_, err = s.Adopt(ctx, &pb.AdoptRequest{Id: "vxlan_tunnel/a", Name: "b"})
	wantCode(t, err, codes.InvalidArgument, "name")
}

func TestAdoptStoresSpec(t *testing.T) {
	f := newFake()
	f.foreign["vxh"] = true
	s, st := newServer(t, f, "boot")
	ctx := t.Context()
	id := "vxlan_tunnel/vxh"
	if _, err := s.Adopt(ctx, &pb.AdoptRequest{Id: id, Name: "vxh", DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(id); err == nil {
		t.Fatal("dry-run adopt stored the object")
	}
	resp, err := s.Adopt(ctx, &pb.AdoptRequest{Id: id, Name: "vxh"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetObserved().GetVxlanTunnel().GetDevice().GetIfindex() != 7 {
		t.Fatalf("observed: %v", resp)
	}
	rec, err := st.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	d := rec.Object.GetVxlanTunnel().GetDevice()
	if d.GetIfindex() != 0 || d.GetOperState() != "" || d.GetOwner() != "" || d.GetVni() != 9 {
		t.Fatalf("stored desired spec: %v", rec.Object)
	}
	if err := pb.ValidateObject(rec.Object); err != nil {
		t.Fatalf("stored spec invalid: %v", err)
	}
	// Adopting again returns the observation.
	if _, err := s.Adopt(ctx, &pb.AdoptRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	if got := st.LastBootID(); got != "boot" {
		t.Fatalf("boot id %q", got)
	}
}

func TestPerObjectLocks(t *testing.T) {
	f := newFake()
	f.delay = 30 * time.Millisecond
	s, _ := newServer(t, f, "boot")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := []string{"vxa", "vxb"}[i%2]
			if _, err := s.Apply(t.Context(), &pb.ApplyRequest{Object: spec(name, uint32(i+1))}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if f.overlap.Load() {
		t.Fatal("two applies on one object interleaved")
	}
	if f.maxConc.Load() < 2 {
		t.Fatal("applies on different objects did not run concurrently")
	}
}

func TestReplayFake(t *testing.T) {
	f := newFake()
	s, st := newServer(t, f, "new")
	for _, n := range []string{"vxa", "vxb"} {
		if err := st.Put(&store.Record{Object: spec(n, 3)}); err != nil {
			t.Fatal(err)
		}
	}
	st.SetBootID("new")
	if err := s.Replay(t.Context()); err != nil || f.applies.Load() != 0 {
		t.Fatalf("same boot: err %v, applies %d", err, f.applies.Load())
	}
	st.SetBootID("old")
	if err := s.Replay(t.Context()); err != nil || f.applies.Load() != 2 {
		t.Fatalf("new boot: err %v, applies %d", err, f.applies.Load())
	}
	if st.LastBootID() != "new" {
		t.Fatalf("boot id %q after replay", st.LastBootID())
	}
	// Enforce replays on every start.
	s.cfg.Enforce = true
	if err := s.Replay(t.Context()); err != nil || f.applies.Load() != 4 {
		t.Fatalf("enforce: err %v, applies %d", err, f.applies.Load())
	}
}
