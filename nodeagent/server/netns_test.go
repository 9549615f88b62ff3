package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/nodenet/terraform-provider-nodenet/internal/pki"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/health"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/kinds/vxlan"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/store"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// realAgent is a Server over the real vxlan reconciler in a fresh namespace, served with mTLS.
type realAgent struct {
	ns     string
	srv    *Server
	st     *store.Store
	client pb.NodeAgentClient
	dp     *dataplane.Dataplane
	vx     *vxlan.Reconciler
}

func newRealAgent(t *testing.T, bootID string) *realAgent {
	t.Helper()
	ns, path := newNetns(t)
	dp, err := dataplane.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dp.Close)
	return startReal(t, ns, dp, t.TempDir(), bootID)
}

// startReal starts an agent (Start, then serving) over dp and the state dir, as Run does.
func startReal(t *testing.T, ns string, dp *dataplane.Dataplane, stateDir, bootID string) *realAgent {
	t.Helper()
	return startRealProbing(t, ns, dp, stateDir, bootID, nil)
}

// startRealProbing is startReal with hp probing the tunnels' health (nil: none).
func startRealProbing(t *testing.T, ns string, dp *dataplane.Dataplane, stateDir, bootID string, hp *health.Prober) *realAgent {
	t.Helper()
	st, err := store.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	vx := vxlan.New(dp, hp)
	reg, err := reconcile.NewRegistry(vx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Cluster: testCluster, Node: testNode, Version: "test", Registry: reg, Kernel: dp, Store: st,
		BootID: bootID, Logger: testLogger(t), ProbeKernelFeatures: fakeProbe})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	p := newPKI(t)
	addr := serve(t, s, p, []string{terraformID})
	c := dial(t, addr, p.ca.CertPEM, p.client, pki.NodeURI(testCluster, testNode))
	return &realAgent{ns: ns, srv: s, st: st, client: c, dp: dp, vx: vx}
}

func tunnel(name string, vni uint32) *pb.Object {
	return &pb.Object{Id: pb.ObjectID(pb.KindVxlanTunnel, name), Owner: ownerA, Spec: &pb.Object_VxlanTunnel{VxlanTunnel: &pb.VxlanTunnel{
		Device:    &pb.VxlanDevice{Name: name, Vni: vni, Underlay: "u0", Address: "10.99.0.1/24"},
		Fdb:       []*pb.FdbEntry{{Mac: "02:00:00:00:00:02", Dst: "192.168.78.2"}},
		Neighbors: []*pb.Neighbor{{Ip: "10.99.0.2", Mac: "02:00:00:00:00:02"}},
		Routes:    []*pb.Route{{Dst: "10.234.118.0/24", Via: "10.99.0.2"}},
	}}}
}

// mesh is one node's share of an overlay of n members: n-1 FDB, neighbour and route entries.
func mesh(name string, n int) *pb.Object {
	o := tunnel(name, 300)
	t := o.GetVxlanTunnel()
	t.Fdb, t.Neighbors, t.Routes = nil, nil, nil
	for i := 2; i <= n; i++ {
		mac := fmt.Sprintf("02:00:00:00:01:%02x", i)
		t.Fdb = append(t.Fdb, &pb.FdbEntry{Mac: mac, Dst: fmt.Sprintf("192.168.78.%d", i)})
		t.Neighbors = append(t.Neighbors, &pb.Neighbor{Ip: fmt.Sprintf("10.99.0.%d", i), Mac: mac})
		t.Routes = append(t.Routes, &pb.Route{Dst: fmt.Sprintf("10.240.%d.0/24", i), Via: fmt.Sprintf("10.99.0.%d", i)})
	}
	return o
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func ipOut(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestRealLifecycle(t *testing.T) {
	a := newRealAgent(t, "boot-1")
	c := ctx(t)
	obj := tunnel("vxt0", 100)

	info, err := a.client.Info(c, &pb.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, i := range info.GetInterfaces() {
		found = found || i.GetName() == "u0"
	}
	if !found {
		t.Fatalf("Info does not list the underlay u0: %v", info.GetInterfaces())
	}

	// Dry run changes nothing.
	dry, err := a.client.Apply(c, &pb.ApplyRequest{Object: obj, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.GetChanges()) == 0 {
		t.Fatal("dry run reports no changes")
	}
	if linkExists(t, a.ns, "vxt0") {
		t.Fatal("dry run created the device")
	}
	if l, _ := a.client.List(c, &pb.ListRequest{}); len(l.GetObjects()) != 0 {
		t.Fatal("dry run stored the object")
	}

	resp, err := a.client.Apply(c, &pb.ApplyRequest{Object: obj})
	if err != nil {
		t.Fatal(err)
	}
	obs := resp.GetObserved()
	if obs.GetId() != obj.GetId() || obs.GetOwner() != ownerA || obs.GetVxlanTunnel().GetDevice().GetIfindex() == 0 || obs.GetVxlanTunnel().GetDevice().GetVni() != 100 {
		t.Fatalf("observed: %v", obs)
	}
	if !linkExists(t, a.ns, "vxt0") {
		t.Fatal("device not created")
	}
	got, err := a.client.Get(c, &pb.GetRequest{Id: obj.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.GetObserved(), obs) {
		t.Fatalf("Get differs from Apply:\nget   %v\napply %v", got.GetObserved(), obs)
	}
	list, err := a.client.List(c, &pb.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetObjects()) != 1 || !proto.Equal(list.GetObjects()[0], obj) {
		t.Fatalf("List: %v", list)
	}
	rec, err := a.st.Get(obj.GetId())
	if err != nil || rec.BootID != "boot-1" || strings.Join(rec.Owned, ",") != "link vxt0,route 10.234.118.0/24" {
		t.Fatalf("record: %+v %v", rec, err)
	}
	// Applying again is a no-op.
	again, err := a.client.Apply(c, &pb.ApplyRequest{Object: obj})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.GetChanges()) != 0 {
		t.Fatalf("second apply changed: %v", again.GetChanges())
	}

	if _, err := a.client.Delete(c, &pb.DeleteRequest{Id: obj.GetId(), Owner: ownerA}); err != nil {
		t.Fatal(err)
	}
	_, err = a.client.Get(c, &pb.GetRequest{Id: obj.GetId()})
	wantCode(t, err, codes.NotFound, "node test-cluster1/node-a: object vxlan_tunnel/vxt0 is not managed by this agent")
	if linkExists(t, a.ns, "vxt0") {
		t.Fatal("device still there after Delete")
	}
	_, err = a.client.Delete(c, &pb.DeleteRequest{Id: obj.GetId(), Owner: ownerA})
	wantCode(t, err, codes.NotFound)
}

func TestRealInvalidAndConflict(t *testing.T) {
	a := newRealAgent(t, "boot-1")
	c := ctx(t)
	_, err := a.client.Apply(c, &pb.ApplyRequest{Object: tunnel("vxt0", 0)})
	wantCode(t, err, codes.InvalidArgument, "test-cluster1/node-a", "vxlan_tunnel/vxt0", "device.vni")

	if out, err := exec.Command("ip", "-n", a.ns, "link", "add", "vxf", "type", "vxlan", "id", "77", "dev", "u0", "dstport", "4789").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	_, err = a.client.Apply(c, &pb.ApplyRequest{Object: tunnel("vxf", 77)})
	wantCode(t, err, codes.FailedPrecondition, "test-cluster1/node-a", "vxlan_tunnel/vxf", "terraform import")
	if !linkExists(t, a.ns, "vxf") {
		t.Fatal("foreign device removed")
	}

	// Adopt takes it under management; a later Get compares against the adopted spec.
	ad, err := a.client.Adopt(c, &pb.AdoptRequest{Id: "vxlan_tunnel/vxf", Name: "vxf", Owner: ownerA})
	if err != nil {
		t.Fatal(err)
	}
	if ad.GetObserved().GetVxlanTunnel().GetDevice().GetVni() != 77 {
		t.Fatalf("adopted: %v", ad)
	}
	list, err := a.client.List(c, &pb.ListRequest{})
	if err != nil || len(list.GetObjects()) != 1 || list.GetObjects()[0].GetVxlanTunnel().GetDevice().GetIfindex() != 0 {
		t.Fatalf("list after adopt: %v %v", list, err)
	}
	if _, err := a.client.Get(c, &pb.GetRequest{Id: "vxlan_tunnel/vxf"}); err != nil {
		t.Fatal(err)
	}
	// A release (undoing an import) gives the ifalias back and leaves the device.
	if _, err := a.client.Delete(c, &pb.DeleteRequest{Id: "vxlan_tunnel/vxf", Owner: ownerA, Release: true}); err != nil {
		t.Fatal(err)
	}
	if out := ipOut(t, a.ns, "-d", "link", "show", "vxf"); strings.Contains(out, "alias") {
		t.Fatalf("release kept nodenet's ifalias:\n%s", out)
	}
}

func TestRealReplay(t *testing.T) {
	ns, path := newNetns(t)
	dp, err := dataplane.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dp.Close)
	obj := tunnel("vxr0", 200)

	// Same boot id: a plain restart repairs nothing.
	dir := t.TempDir()
	st, _ := store.Open(dir)
	if err := st.Put(&store.Record{Object: obj, BootID: "boot-2", AppliedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	a := startReal(t, ns, dp, dir, "boot-2")
	if linkExists(t, ns, "vxr0") {
		t.Fatal("a start on the same boot recreated the device")
	}
	got, err := a.client.Get(ctx(t), &pb.GetRequest{Id: obj.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetObserved().GetVxlanTunnel().GetDevice() != nil {
		t.Fatalf("missing device observed as %v", got.GetObserved())
	}

	// Another boot id: the node rebooted, so the stored state is applied again.
	startReal(t, ns, dp, dir, "boot-3")
	if !linkExists(t, ns, "vxr0") {
		t.Fatal("a start after a reboot did not recreate the device")
	}
	st, _ = store.Open(dir) // what the agent wrote (a store caches what it read)
	rec, err := st.Get(obj.GetId())
	if err != nil || rec.BootID != "boot-3" || len(rec.Owned) != 2 {
		t.Fatalf("record after the replay: %+v %v", rec, err)
	}
}

// TestRealHealthAfterRestart: an agent probes the neighbours of a tunnel with health_check
// and reports them in Get; after a plain restart (same boot: nothing is replayed) it probes
// them again from the stored object alone. A tunnel without health_check has no health.
func TestRealHealthAfterRestart(t *testing.T) {
	ns, path := newNetns(t)
	dp, err := dataplane.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dp.Close)
	prober := func() *health.Prober {
		hp, err := health.New(path, 50*time.Millisecond, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(hp.Close)
		return hp
	}
	checked, plain := tunnel("vxh0", 300), tunnel("vxh1", 301)
	checked.GetVxlanTunnel().HealthCheck = true
	checked.GetVxlanTunnel().Neighbors[0].Node = "c/n2"
	plain.GetVxlanTunnel().Device.Address = "10.98.0.1/24"
	plain.GetVxlanTunnel().Fdb[0].Dst = "192.168.78.3"
	plain.GetVxlanTunnel().Neighbors[0].Ip = "10.98.0.2"
	plain.GetVxlanTunnel().Routes[0] = &pb.Route{Dst: "10.234.119.0/24", Via: "10.98.0.2"}
	// probed waits until Get reports the one neighbour of checked as probed: nobody has its
	// address, so every probe is lost.
	probed := func(a *realAgent, when string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err := a.client.Get(ctx(t), &pb.GetRequest{Id: checked.GetId()})
			if err != nil {
				t.Fatal(err)
			}
			hs := got.GetObserved().GetVxlanTunnel().GetHealth()
			if len(hs) == 1 && hs[0].GetIp() == "10.99.0.2" && hs[0].GetNode() == "c/n2" && hs[0].GetSent() > 0 &&
				!hs[0].GetReachable() && hs[0].GetError() == "no reply to the last 3 probes" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: health %v", when, hs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	dir := t.TempDir()
	hp := prober()
	a := startRealProbing(t, ns, dp, dir, "boot-1", hp)
	for _, o := range []*pb.Object{checked, plain} {
		if _, err := a.client.Apply(ctx(t), &pb.ApplyRequest{Object: o}); err != nil {
			t.Fatal(err)
		}
	}
	probed(a, "after the apply")
	hp.Close() // the agent stops; the kernel keeps the tunnels

	b := startRealProbing(t, ns, dp, dir, "boot-1", prober())
	probed(b, "after a restart")
	got, err := b.client.Get(ctx(t), &pb.GetRequest{Id: plain.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if hs := got.GetObserved().GetVxlanTunnel().GetHealth(); hs != nil {
		t.Errorf("a tunnel without health_check reports health: %v", hs)
	}
}

// TestRealCrashMidApply: an agent that dies part-way through applying a 20-member mesh
// leaves its intent in the store: after a restart it manages the object, reports it as
// interrupted, explains every kernel entry it made, and a Delete removes them all (an Apply
// would finish it). A temporary file of an interrupted write is removed at the start.
func TestRealCrashMidApply(t *testing.T) {
	ns, path := newNetns(t)
	dp, err := dataplane.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dp.Close)
	dir := t.TempDir()
	a := startReal(t, ns, dp, dir, "boot-1")
	// The "crash": after 45 kernel changes (the device, its address, 19 neighbours, 19 FDB
	// entries and 5 of the 19 routes) the apply stops for good, as a process killed with
	// SIGKILL does: nothing after it runs.
	var steps atomic.Int32
	crashed, never := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(never) })
	a.vx.BeforeStep = func(*pb.Change) error {
		if steps.Add(1) == 45 {
			close(crashed)
			<-never
			return fmt.Errorf("the test ended")
		}
		return nil
	}
	obj := mesh("vxm", 20)
	go a.client.Apply(context.Background(), &pb.ApplyRequest{Object: obj}) //nolint:errcheck // it never answers
	<-crashed
	if !linkExists(t, ns, "vxm") || !strings.Contains(ipOut(t, ns, "route"), "proto 147") {
		t.Fatal("the crash came before the kernel was changed")
	}
	os.WriteFile(filepath.Join(dir, "objects", ".vxlan_tunnel%2Fvxm.json.tmp-4242"), []byte("{"), 0o600)

	b := startReal(t, ns, dp, dir, "boot-1") // a restart: same boot
	info, err := b.client.Info(ctx(t), &pb.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.GetProblems()) != 1 || info.GetProblems()[0].GetId() != "vxlan_tunnel/vxm" || info.GetProblems()[0].GetProblem() != "interrupted" {
		t.Fatalf("problems after the restart: %v", info.GetProblems())
	}
	if len(info.GetUnexplained()) != 0 {
		t.Fatalf("entries of the interrupted apply reported as unexplained: %v", info.GetUnexplained())
	}
	if list, _ := b.client.List(ctx(t), &pb.ListRequest{}); len(list.GetObjects()) != 1 {
		t.Fatalf("the restarted agent manages %d objects, want the interrupted one", len(list.GetObjects()))
	}
	if _, err := os.Stat(filepath.Join(dir, "objects", ".vxlan_tunnel%2Fvxm.json.tmp-4242")); err == nil {
		t.Fatal("the temporary file was not removed at the start")
	}
	if _, err := b.client.Delete(ctx(t), &pb.DeleteRequest{Id: obj.GetId(), Owner: ownerA}); err != nil {
		t.Fatal(err)
	}
	if linkExists(t, ns, "vxm") || strings.Contains(ipOut(t, ns, "route"), "proto 147") {
		t.Fatalf("the delete left entries of the interrupted apply:\n%s", ipOut(t, ns, "route"))
	}
}

// TestRealUnexplained: a device and a route with nodenet's marks but no record (a lost
// state dir) are reported in Info; an Apply of the id they name takes them over, and a Delete
// of an id with no record removes what names it.
func TestRealUnexplained(t *testing.T) {
	a := newRealAgent(t, "boot-1")
	c := ctx(t)
	ipOut(t, a.ns, "link", "add", "vxo", "type", "vxlan", "id", "5", "dstport", "4789", "dev", "u0", "nolearning")
	ipOut(t, a.ns, "link", "set", "vxo", "alias", "nodenet:vxlan_tunnel/vxo", "up")
	ipOut(t, a.ns, "route", "add", "10.250.0.0/24", "via", "10.99.0.9", "dev", "vxo", "onlink", "proto", "147")
	info, err := a.client.Info(c, &pb.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range info.GetUnexplained() {
		got = append(got, e.GetEntry()+" "+e.GetKey()+" "+e.GetDetail()+" -> "+e.GetObjectId())
	}
	want := "link vxo ifalias nodenet:vxlan_tunnel/vxo -> vxlan_tunnel/vxo|route 10.250.0.0/24 via 10.99.0.9 dev vxo proto 147 -> vxlan_tunnel/vxo"
	if strings.Join(got, "|") != want {
		t.Fatalf("unexplained:\n got %q\nwant %q", strings.Join(got, "|"), want)
	}
	dry, err := a.client.Delete(c, &pb.DeleteRequest{Id: "vxlan_tunnel/vxo", Owner: ownerA, DryRun: true})
	if err != nil || len(dry.GetChanges()) != 1 || !linkExists(t, a.ns, "vxo") {
		t.Fatalf("dry-run delete of an unrecorded object: %v %v", dry, err)
	}
	if _, err := a.client.Delete(c, &pb.DeleteRequest{Id: "vxlan_tunnel/vxo", Owner: ownerA}); err != nil {
		t.Fatal(err)
	}
	if linkExists(t, a.ns, "vxo") || strings.Contains(ipOut(t, a.ns, "route"), "10.250.0.0") {
		t.Fatal("the delete left the unexplained entries")
	}
	info, _ = a.client.Info(c, &pb.InfoRequest{})
	if len(info.GetUnexplained()) != 0 {
		t.Fatalf("unexplained after the delete: %v", info.GetUnexplained())
	}
	// An apply takes a marked device without a record over.
	ipOut(t, a.ns, "link", "add", "vxt0", "type", "vxlan", "id", "100", "dstport", "4789", "local", "192.168.78.1", "dev", "u0", "nolearning")
	ipOut(t, a.ns, "link", "set", "vxt0", "alias", "nodenet:vxlan_tunnel/vxt0")
	idx := ipOut(t, a.ns, "-o", "link", "show", "vxt0")
	if _, err := a.client.Apply(c, &pb.ApplyRequest{Object: tunnel("vxt0", 100)}); err != nil {
		t.Fatal(err)
	}
	if now := ipOut(t, a.ns, "-o", "link", "show", "vxt0"); strings.Fields(now)[0] != strings.Fields(idx)[0] {
		t.Fatalf("the device was recreated instead of taken over: %s -> %s", idx, now)
	}
}

// TestRealSweep: a route with nodenet's protocol that names no object (through the
// underlay, as a lost state dir leaves a pool's route, or typed by hand) is reported in Info;
// an Apply or Delete with sweep removes it, a dry run only reports it, and routes that an
// object owns, or of another protocol, stay.
func TestRealSweep(t *testing.T) {
	a := newRealAgent(t, "boot-1")
	c := ctx(t)
	ipOut(t, a.ns, "route", "add", "10.250.0.0/24", "via", "192.168.78.2", "dev", "u0", "proto", "147")
	ipOut(t, a.ns, "route", "add", "10.251.0.0/24", "via", "192.168.78.2", "dev", "u0", "proto", "12")
	info, err := a.client.Info(c, &pb.InfoRequest{})
	if err != nil || len(info.GetUnexplained()) != 1 || info.GetUnexplained()[0].GetKey() != "10.250.0.0/24" {
		t.Fatalf("Info should report the one unexplained route: %v %v", info.GetUnexplained(), err)
	}
	// A plain apply leaves it; a dry run with sweep reports it and leaves it.
	if _, err := a.client.Apply(c, &pb.ApplyRequest{Object: tunnel("vxs", 100)}); err != nil {
		t.Fatal(err)
	}
	dry, err := a.client.Apply(c, &pb.ApplyRequest{Object: tunnel("vxs", 100), DryRun: true, Sweep: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.GetChanges()) != 1 || dry.GetChanges()[0].GetKey() != "10.250.0.0/24" || dry.GetChanges()[0].GetAction() != pb.Change_DELETE {
		t.Fatalf("the dry run with sweep should report removing the route: %v", dry.GetChanges())
	}
	if !strings.Contains(ipOut(t, a.ns, "route"), "10.250.0.0/24") {
		t.Fatal("a dry run removed the route")
	}
	if _, err := a.client.Apply(c, &pb.ApplyRequest{Object: tunnel("vxs", 100), Sweep: true}); err != nil {
		t.Fatal(err)
	}
	routes := ipOut(t, a.ns, "route")
	if strings.Contains(routes, "10.250.0.0/24") || !strings.Contains(routes, "10.251.0.0/24") {
		t.Fatalf("the sweep should remove only nodenet's unexplained route:\n%s", routes)
	}
	// A delete with sweep reaches one added since.
	ipOut(t, a.ns, "route", "add", "10.252.0.0/24", "via", "192.168.78.2", "dev", "u0", "proto", "147")
	del, err := a.client.Delete(c, &pb.DeleteRequest{Id: "vxlan_tunnel/vxs", Owner: ownerA, Sweep: true})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ipOut(t, a.ns, "route"), "10.252.0.0/24") || len(del.GetChanges()) == 0 {
		t.Fatalf("the delete with sweep left the unexplained route: %v", del.GetChanges())
	}
	if info, _ := a.client.Info(c, &pb.InfoRequest{}); len(info.GetUnexplained()) != 0 {
		t.Fatalf("unexplained after the sweep: %v", info.GetUnexplained())
	}
}

// TestRealTwoObjectsAtOnce: applies of two objects on one node run at the same time through
// the server and the real dataplane; only one object's applies are serialised.
func TestRealTwoObjectsAtOnce(t *testing.T) {
	a := newRealAgent(t, "boot-1")
	var inFlight, most atomic.Int32
	a.vx.BeforeStep = func(*pb.Change) error {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		inFlight.Add(-1)
		return nil
	}
	errs := make(chan error, 2)
	for i, name := range []string{"vxa", "vxb"} {
		go func() {
			o := tunnel(name, uint32(10+i))
			o.GetVxlanTunnel().Device.Address = fmt.Sprintf("10.9%d.0.1/24", i)
			o.GetVxlanTunnel().Neighbors[0].Ip = fmt.Sprintf("10.9%d.0.2", i)
			o.GetVxlanTunnel().Routes[0] = &pb.Route{Dst: fmt.Sprintf("10.23%d.0.0/24", i), Via: fmt.Sprintf("10.9%d.0.2", i)}
			_, err := a.client.Apply(ctx(t), &pb.ApplyRequest{Object: o})
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if most.Load() < 2 {
		t.Fatalf("the two objects' applies never overlapped (at most %d kernel steps in flight)", most.Load())
	}
}
