package server

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nodenet/terraform-provider-nodenet/internal/pki"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/store"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

func TestSecurity(t *testing.T) {
	p := newPKI(t)
	s, _ := newServer(t, "", "boot", newFake())
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
			!info.GetKernelFeatures()["vxlan"] || info.GetKernelRelease() != "6.0.0-test" || strings.Join(info.GetCapabilities(), ",") != "vxlan_tunnel,dry_run,adopt,owner,release" {
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

// TestIntentNotWritable: when the intent cannot be recorded, nothing is changed.
func TestIntentNotWritable(t *testing.T) {
	f := newFake()
	s, st := newServer(t, "", "boot", f)
	st.FailWrite = func(*store.Record) error { return errors.New("disk full") }
	_, err := s.Apply(t.Context(), &pb.ApplyRequest{Object: spec("vx0", 5)})
	wantCode(t, err, codes.Internal, "node test-cluster1/node-a: object vxlan_tunnel/vx0", "intent could not be recorded", "nothing was changed", "disk full")
	if f.applies.Load() != 0 || f.has("vx0") {
		t.Fatal("the kernel was touched without a recorded intent")
	}
	st.FailWrite = nil
	apply(t, s, spec("vx0", 5)) // the claims were given back
}

// TestOutcomeNotWritable: a change whose outcome cannot be recorded is undone: a new object
// is removed, an updated one gets its previous spec back.
func TestOutcomeNotWritable(t *testing.T) {
	f := newFake()
	s, st := newServer(t, "", "boot", f)
	st.FailWrite = func(r *store.Record) error {
		if r.Pending == nil {
			return errors.New("disk full")
		}
		return nil
	}
	_, err := s.Apply(t.Context(), &pb.ApplyRequest{Object: spec("vx0", 5)})
	wantCode(t, err, codes.Internal, "vxlan_tunnel/vx0", "state dir", "not writable", "change was undone")
	if f.has("vx0") {
		t.Fatal("a change the agent cannot record must be undone: the device is still there")
	}
	if _, err := st.Get("vxlan_tunnel/vx0"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the record of the undone change should be gone: %v", err)
	}

	st.FailWrite = nil
	apply(t, s, spec("vx0", 5))
	st.FailWrite = func(r *store.Record) error {
		if r.Pending == nil && r.Object.GetVxlanTunnel().GetDevice().GetVni() == 6 {
			return errors.New("disk full")
		}
		return nil
	}
	_, err = s.Apply(t.Context(), &pb.ApplyRequest{Object: spec("vx0", 6)})
	wantCode(t, err, codes.Internal, "change was undone")
	f.mu.Lock()
	vni := f.devs["vx0"].GetDevice().GetVni()
	f.mu.Unlock()
	if vni != 5 {
		t.Fatalf("after a failed update the device has VNI %d, want the previous 5", vni)
	}
	rec, err := st.Get("vxlan_tunnel/vx0")
	if err != nil || rec.Object.GetVxlanTunnel().GetDevice().GetVni() != 5 || rec.Pending != nil {
		t.Fatalf("the store should hold the previous spec: %+v %v", rec, err)
	}
}

// TestFailedApplyPutsTheRecordBack: an apply the reconciler refuses leaves the record as it was.
func TestFailedApplyPutsTheRecordBack(t *testing.T) {
	f := newFake()
	s, st := newServer(t, "", "boot", f)
	apply(t, s, spec("vx0", 5))
	before, _ := st.Get("vxlan_tunnel/vx0")
	f.fail["vxlan_tunnel/vx0"] = errInjected
	if _, err := s.Apply(t.Context(), &pb.ApplyRequest{Object: withRoute(spec("vx0", 6), "10.1.0.0/24")}); !strings.Contains(err.Error(), "injected") {
		t.Fatalf("want the injected error, got %v", err)
	}
	after, _ := st.Get("vxlan_tunnel/vx0")
	if after.Pending != nil || after.Object.GetVxlanTunnel().GetDevice().GetVni() != 5 || strings.Join(after.Owned, ",") != strings.Join(before.Owned, ",") {
		t.Fatalf("record after a failed apply: %+v, want %+v", after, before)
	}
	if h := s.claims.heldBy("route 10.1.0.0/24"); h != "" {
		t.Fatalf("the failed apply's claim is still held by %s", h)
	}
}

func TestErrorMapping(t *testing.T) {
	f := newFake()
	f.foreign["vxf"] = true
	s, _ := newServer(t, "", "boot", f)
	ctx := t.Context()
	_, err := s.Apply(ctx, &pb.ApplyRequest{Object: spec("vxf", 5)})
	wantCode(t, err, codes.FailedPrecondition, "node test-cluster1/node-a: object vxlan_tunnel/vxf", "terraform import")
	_, err = s.Apply(ctx, &pb.ApplyRequest{Object: spec("vx0", 0)})
	wantCode(t, err, codes.InvalidArgument, "node test-cluster1/node-a: object vxlan_tunnel/vx0", "device.vni")
	noOwner := spec("vx0", 5)
	noOwner.Owner = ""
	_, err = s.Apply(ctx, &pb.ApplyRequest{Object: noOwner})
	wantCode(t, err, codes.InvalidArgument, "owner: an owner is required")
	_, err = s.Apply(ctx, &pb.ApplyRequest{})
	wantCode(t, err, codes.InvalidArgument, "object")
	_, err = s.Get(ctx, &pb.GetRequest{Id: "bogus"})
	wantCode(t, err, codes.InvalidArgument, "id")
	_, err = s.Get(ctx, &pb.GetRequest{Id: "bgp_peer/x"})
	wantCode(t, err, codes.InvalidArgument, `unknown object kind "bgp_peer" (this agent manages: vxlan_tunnel)`)
	_, err = s.Get(ctx, &pb.GetRequest{Id: "vxlan_tunnel/nope"})
	wantCode(t, err, codes.NotFound, "node test-cluster1/node-a: object vxlan_tunnel/nope is not managed by this agent")
	_, err = s.Delete(ctx, &pb.DeleteRequest{Id: "vxlan_tunnel/nope"})
	wantCode(t, err, codes.NotFound, "not managed")
	_, err = s.Adopt(ctx, &pb.AdoptRequest{Id: "vxlan_tunnel/nope", Owner: ownerA})
	wantCode(t, err, codes.NotFound, "vxlan_tunnel/nope")
	_, err = s.Adopt(ctx, &pb.AdoptRequest{Id: "vxlan_tunnel/a", Name: "b"})
	wantCode(t, err, codes.InvalidArgument, "name")
}

// TestOwners: an object is its owner's: another owner's apply and delete are refused naming
// both; an adoption takes it over.
func TestOwners(t *testing.T) {
	f := newFake()
	s, _ := newServer(t, "", "boot", f)
	ctx := t.Context()
	apply(t, s, spec("vx0", 5))
	other := spec("vx0", 6)
	other.Owner = ownerB
	for _, dry := range []bool{true, false} {
		_, err := s.Apply(ctx, &pb.ApplyRequest{Object: other, DryRun: dry})
		wantCode(t, err, codes.FailedPrecondition, "object vxlan_tunnel/vx0 is managed by "+ownerA, "not by "+ownerB, "terraform import")
	}
	_, err := s.Delete(ctx, &pb.DeleteRequest{Id: "vxlan_tunnel/vx0", Owner: ownerB})
	wantCode(t, err, codes.FailedPrecondition, "managed by "+ownerA, "delete refused")
	if reason, md := pb.Reason(err); reason != pb.ReasonOtherOwner || md["owner"] != ownerA {
		t.Fatalf("reason %q %v, want %s naming %s", reason, md, pb.ReasonOtherOwner, ownerA)
	}
	if !f.has("vx0") {
		t.Fatal("another owner's delete removed the device")
	}
	got, err := s.Get(ctx, &pb.GetRequest{Id: "vxlan_tunnel/vx0"})
	if err != nil || got.GetObserved().GetOwner() != ownerA {
		t.Fatalf("Get: %v %v", got, err)
	}
	// Take over: a dry run only looks, the adoption records the new owner.
	ad, err := s.Adopt(ctx, &pb.AdoptRequest{Id: "vxlan_tunnel/vx0", Owner: ownerB, DryRun: true})
	if err != nil || !ad.GetManaged() || ad.GetPreviousOwner() != ownerA || ad.GetObserved().GetOwner() != ownerA {
		t.Fatalf("dry-run adopt of a managed object: %v %v", ad, err)
	}
	ad, err = s.Adopt(ctx, &pb.AdoptRequest{Id: "vxlan_tunnel/vx0", Owner: ownerB})
	if err != nil || ad.GetObserved().GetOwner() != ownerB {
		t.Fatalf("adopt: %v %v", ad, err)
	}
	apply(t, s, other)
	_, err = s.Apply(ctx, &pb.ApplyRequest{Object: spec("vx0", 5)})
	wantCode(t, err, codes.FailedPrecondition, "managed by "+ownerB)
	if _, err := s.Delete(ctx, &pb.DeleteRequest{Id: "vxlan_tunnel/vx0", Owner: ownerB}); err != nil {
		t.Fatal(err)
	}
}

// TestClaims: a kernel entry is one object's: another object that wants it is refused at
// dry run and apply, naming the holder and its owner; once the holder is gone it is free.
func TestClaims(t *testing.T) {
	f := newFake()
	s, _ := newServer(t, "", "boot", f)
	ctx := t.Context()
	apply(t, s, withRoute(spec("vxa", 5), "10.235.88.0/24"))
	b := withRoute(spec("vxb", 6), "10.235.88.0/24")
	b.Owner = ownerB
	for _, dry := range []bool{true, false} {
		_, err := s.Apply(ctx, &pb.ApplyRequest{Object: b, DryRun: dry})
		wantCode(t, err, codes.FailedPrecondition, "object vxlan_tunnel/vxb: route 10.235.88.0/24 is held by nodenet object vxlan_tunnel/vxa (managed by "+ownerA+")")
		if reason, md := pb.Reason(err); reason != pb.ReasonEntryHeld || md["holder"] != "vxlan_tunnel/vxa" || md["owner"] != ownerA {
			t.Fatalf("reason %q %v", reason, md)
		}
	}
	if f.has("vxb") {
		t.Fatal("the refused object was applied")
	}
	if _, err := s.Delete(ctx, &pb.DeleteRequest{Id: "vxlan_tunnel/vxa", Owner: ownerA}); err != nil {
		t.Fatal(err)
	}
	apply(t, s, b)
}

// TestAdopt: an adoption looks first, stores a spec the contract accepts and the marks it
// replaced; a release gives them back and forgets the object.
func TestAdopt(t *testing.T) {
	f := newFake()
	f.foreign["vxh"] = true
	s, st := newServer(t, "", "boot", f)
	ctx := t.Context()
	id := "vxlan_tunnel/vxh"
	if _, err := s.Adopt(ctx, &pb.AdoptRequest{Id: id, Name: "vxh"}); err == nil {
		t.Fatal("adopt without an owner accepted")
	}
	if _, err := s.Adopt(ctx, &pb.AdoptRequest{Id: id, Name: "vxh", DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(id); err == nil {
		t.Fatal("dry-run adopt stored the object")
	}
	resp, err := s.Adopt(ctx, &pb.AdoptRequest{Id: id, Name: "vxh", Owner: ownerA})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetObserved().GetVxlanTunnel().GetDevice().GetIfindex() != 7 || resp.GetObserved().GetOwner() != ownerA || resp.GetManaged() {
		t.Fatalf("observed: %v", resp)
	}
	rec, err := st.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	d := rec.Object.GetVxlanTunnel().GetDevice()
	if d.GetIfindex() != 0 || d.GetOperState() != "" || d.GetOwner() != "" || d.GetVni() != 9 || rec.Object.GetOwner() != ownerA {
		t.Fatalf("stored desired spec: %v", rec.Object)
	}
	if _, err := s.reg.Validate(rec.Object); err != nil {
		t.Fatalf("stored spec invalid: %v", err)
	}
	if rec.BootID != "boot" || rec.Marks["link vxh"] != "hand" || rec.Pending != nil {
		t.Fatalf("record: %+v", rec)
	}
	if _, err := s.Delete(ctx, &pb.DeleteRequest{Id: id, Owner: ownerA, Release: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("released object still recorded: %v", err)
	}
	if !f.has("vxh") {
		t.Fatal("release removed the device")
	}
}

func TestPerObjectLocks(t *testing.T) {
	f := newFake()
	f.delay = 30 * time.Millisecond
	s, _ := newServer(t, "", "boot", f)
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

// TestReplay: kernel entries come back only for records of another boot; an object whose
// replay fails keeps its old boot id, is reported in Info, and is tried again at the next
// start, while the others are replayed and stamped.
func TestReplay(t *testing.T) {
	dir := t.TempDir()
	st, _ := store.Open(dir)
	for _, n := range []string{"vxa", "vxb", "vxc"} {
		boot := "old"
		if n == "vxc" {
			boot = "new"
		}
		if err := st.Put(&store.Record{Object: spec(n, 3), BootID: boot}); err != nil {
			t.Fatal(err)
		}
	}
	f := newFake()
	f.fail["vxlan_tunnel/vxa"] = errInjected
	s, st := newServer(t, dir, "new", f)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !f.has("vxb") || f.has("vxa") || f.has("vxc") {
		t.Fatalf("replayed: vxa %v vxb %v vxc %v; want only vxb (vxa fails, vxc is of this boot)", f.has("vxa"), f.has("vxb"), f.has("vxc"))
	}
	info, err := s.Info(t.Context(), &pb.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.GetProblems()) != 1 || info.GetProblems()[0].GetId() != "vxlan_tunnel/vxa" || info.GetProblems()[0].GetProblem() != "replay_failed" ||
		!strings.Contains(info.GetProblems()[0].GetDetail(), "injected") {
		t.Fatalf("problems: %v", info.GetProblems())
	}
	for n, boot := range map[string]string{"vxa": "old", "vxb": "new"} {
		if r, _ := st.Get("vxlan_tunnel/" + n); r.BootID != boot {
			t.Errorf("%s has boot id %q, want %q", n, r.BootID, boot)
		}
	}
	// The next start (same boot) tries vxa again, and only it.
	delete(f.fail, "vxlan_tunnel/vxa")
	n := f.applies.Load()
	s2, _ := newServer(t, dir, "new", f)
	if err := s2.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !f.has("vxa") || f.applies.Load() != n+1 {
		t.Fatalf("second start: vxa %v, %d applies", f.has("vxa"), f.applies.Load()-n)
	}
	info, _ = s2.Info(t.Context(), &pb.InfoRequest{})
	if len(info.GetProblems()) != 0 {
		t.Fatalf("problems after the retry: %v", info.GetProblems())
	}
	// Enforce replays on every start.
	s3, _ := newServer(t, dir, "new", f)
	s3.cfg.Enforce = true
	if err := s3.Start(t.Context()); err != nil || f.applies.Load() != n+4 {
		t.Fatalf("enforce: err %v, %d applies", err, f.applies.Load()-n)
	}
}

// TestInterruptedReported: a record left with an intent (a crash mid-apply) is reported in
// Info at start and claims what the intent named; a delete clears it.
func TestInterruptedReported(t *testing.T) {
	dir := t.TempDir()
	st, _ := store.Open(dir)
	o := withRoute(spec("vx0", 3), "10.1.0.0/24")
	st.Put(&store.Record{Object: spec("vx0", 2), Owned: []string{"link vx0"}, BootID: "boot", AppliedAt: time.Now().Add(-time.Minute)})
	st.PutIntent(o.GetId(), o.GetOwner(), &store.Pending{Op: "apply", Claims: []string{"link vx0", "route 10.1.0.0/24"}, Started: time.Now()})
	f := newFake()
	s, _ := newServer(t, dir, "boot", f)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(t.Context(), &pb.InfoRequest{})
	if len(info.GetProblems()) != 1 || info.GetProblems()[0].GetProblem() != "interrupted" ||
		!strings.Contains(info.GetProblems()[0].GetDetail(), "the next apply finishes it, a delete removes it") {
		t.Fatalf("problems: %v", info.GetProblems())
	}
	if h := s.claims.heldBy("route 10.1.0.0/24"); h != "vxlan_tunnel/vx0" {
		t.Fatalf("the interrupted apply's route is held by %q", h)
	}
	if _, err := s.Delete(t.Context(), &pb.DeleteRequest{Id: "vxlan_tunnel/vx0", Owner: ownerA}); err != nil {
		t.Fatal(err)
	}
	info, _ = s.Info(t.Context(), &pb.InfoRequest{})
	if len(info.GetProblems()) != 0 {
		t.Fatalf("problems after the delete: %v", info.GetProblems())
	}
	if f.applies.Load() != 0 {
		t.Fatal("a start on the same boot finished the interrupted apply by itself")
	}
	// After a reboot, the interrupted object is replayed like the others.
	st.Put(&store.Record{Object: o, Owned: []string{"link vx0"}, BootID: "boot", AppliedAt: time.Now().Add(-time.Minute)})
	st.PutIntent(o.GetId(), o.GetOwner(), &store.Pending{Op: "apply", Started: time.Now()})
	s2, st2 := newServer(t, dir, "boot-2", f)
	if err := s2.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if rec, _ := st2.Get("vxlan_tunnel/vx0"); !f.has("vx0") || rec.Pending != nil || rec.BootID != "boot-2" {
		t.Fatalf("after a reboot: device %v, record %+v", f.has("vx0"), rec)
	}
}

// runtimeKind is a test kind served by a running part: it records what the server asks.
type runtimeKind struct {
	mu      sync.Mutex
	calls   []string
	running map[string]bool
}

func (k *runtimeKind) log(s string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, s)
}

func (k *runtimeKind) Kind() string                                             { return "testrt" }
func (k *runtimeKind) ValidateName(string) error                                { return nil }
func (k *runtimeKind) Validate(*pb.Object) error                                { return nil }
func (k *runtimeKind) Claims(*pb.Object) []string                               { return nil }
func (k *runtimeKind) Restore() reconcile.RestoreRule                           { return reconcile.RestoreEveryStart }
func (k *runtimeKind) Release(context.Context, string, map[string]string) error { return nil }
func (k *runtimeKind) DesiredFromObserved(o *pb.Object) (*pb.Object, error)     { return o, nil }
func (k *runtimeKind) Adopt(context.Context, string, string, bool) (*reconcile.Adoption, error) {
	return nil, &reconcile.NotFoundError{Msg: "nothing to adopt"}
}
func (k *runtimeKind) Observe(_ context.Context, id string, _ *pb.Object, _ []string) (*pb.Object, error) {
	return &pb.Object{Id: id}, nil
}
func (k *runtimeKind) Apply(_ context.Context, req reconcile.Request) (*reconcile.Result, error) {
	if !req.DryRun {
		k.log("reconfigure " + req.ID)
		k.mu.Lock()
		k.running[req.ID] = true
		k.mu.Unlock()
	}
	return &reconcile.Result{Observed: &pb.Object{Id: req.ID}}, nil
}
func (k *runtimeKind) Delete(_ context.Context, id string, _ []string, dryRun bool) ([]*pb.Change, error) {
	if !dryRun {
		k.log("remove " + id)
	}
	return nil, nil
}
func (k *runtimeKind) Start(_ context.Context, objs []*pb.Object) error {
	var ids []string
	for _, o := range objs {
		ids = append(ids, o.GetId())
	}
	k.log("start " + strings.Join(ids, ","))
	return nil
}
func (k *runtimeKind) Stop(context.Context) error {
	k.log("stop")
	return nil
}

// TestRuntimeComponent: a kind served by a running part is started from the store at every
// agent start (the same boot too), reconfigured by Apply, and stopped by Stop, without the
// kernel of the other kinds being replayed.
func TestRuntimeComponent(t *testing.T) {
	dir := t.TempDir()
	rt := &runtimeKind{running: map[string]bool{}}
	f := newFake()
	s, _ := newServer(t, dir, "boot", rt, f)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	apply(t, s, &pb.Object{Id: "testrt/speaker", Owner: ownerA})
	apply(t, s, spec("vx0", 4))
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	n := f.applies.Load()
	// A plain restart: the running part starts again from the store; the kernel kind is not replayed.
	s2, _ := newServer(t, dir, "boot", rt, f)
	if err := s2.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s2.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A runtime gets the stored objects of every kind (the speaker announces pool blocks).
	want := "start |reconfigure testrt/speaker|stop|start testrt/speaker,vxlan_tunnel/vx0|stop"
	if got := strings.Join(rt.calls, "|"); got != want {
		t.Fatalf("calls %q, want %q", got, want)
	}
	if f.applies.Load() != n {
		t.Fatal("a plain restart replayed kernel entries")
	}
}

// TestUnexplainedEntries: kernel entries with nodenet's marks that no object explains are
// reported in Info; those of a managed object, or that name one, are not.
func TestUnexplainedEntries(t *testing.T) {
	s, _ := newServer(t, "", "boot", newFake())
	k := s.cfg.Kernel.(*fakeKernel)
	k.marked = []*pb.KernelEntry{
		{Entry: "link", Key: "vx0", Detail: "ifalias nodenet:vxlan_tunnel/vx0", ObjectId: "vxlan_tunnel/vx0"},
		{Entry: "route", Key: "10.1.0.0/24", Detail: "via 10.99.0.2 dev vx0 proto 147", ObjectId: "vxlan_tunnel/vx0"},
		{Entry: "link", Key: "vxgone", Detail: "ifalias nodenet:vxlan_tunnel/vxgone", ObjectId: "vxlan_tunnel/vxgone"},
		{Entry: "route", Key: "10.2.0.0/24", Detail: "dev eth0 proto 147"},
	}
	apply(t, s, spec("vx0", 4))
	info, err := s.Info(t.Context(), &pb.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range info.GetUnexplained() {
		got = append(got, e.GetEntry()+" "+e.GetKey())
	}
	if strings.Join(got, ",") != "link vxgone,route 10.2.0.0/24" {
		t.Fatalf("unexplained %q", got)
	}
}

func TestNewRefusesAFailedProbe(t *testing.T) {
	st, _ := store.Open(t.TempDir())
	reg, _ := reconcile.NewRegistry(newFake())
	_, err := New(Config{Registry: reg, Store: st, Kernel: &fakeKernel{},
		ProbeKernelFeatures: func() (map[string]bool, string, error) { return nil, "", errors.New("operation not permitted") }})
	if err == nil || !strings.Contains(err.Error(), "operation not permitted") {
		t.Fatalf("want the probe's error, got %v", err)
	}
}

// TestInterruptedAdoptionIsReleased: an adoption interrupted before it was recorded leaves an
// intent; deleting the object gives the device's marks back and removes nothing: the device
// was made by hand.
func TestInterruptedAdoptionIsReleased(t *testing.T) {
	dir := t.TempDir()
	st, _ := store.Open(dir)
	st.PutIntent("vxlan_tunnel/vxh", ownerA, &store.Pending{Op: "adopt", Claims: []string{"link vxh"}, Marks: map[string]string{"link vxh": "hand"}, Started: time.Now()})
	f := newFake()
	f.devs["vxh"] = &pb.VxlanTunnel{Device: &pb.VxlanDevice{Name: "vxh", Vni: 9}}
	s, _ := newServer(t, dir, "boot", f)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.Info(t.Context(), &pb.InfoRequest{}); len(info.GetProblems()) != 1 || info.GetProblems()[0].GetProblem() != "interrupted" {
		t.Fatalf("problems: %v", info.GetProblems())
	}
	if _, err := s.Delete(t.Context(), &pb.DeleteRequest{Id: "vxlan_tunnel/vxh", Owner: ownerA}); err != nil {
		t.Fatal(err)
	}
	if !f.has("vxh") {
		t.Fatal("the delete of an interrupted adoption removed the hand-made device")
	}
	if _, err := s.Get(t.Context(), &pb.GetRequest{Id: "vxlan_tunnel/vxh"}); err == nil {
		t.Fatal("the interrupted adoption is still managed")
	}
}
