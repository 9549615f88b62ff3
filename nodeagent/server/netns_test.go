package server

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/nodenet/terraform-provider-nodenet/internal/pki"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/store"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

var _ Dataplane = (*dataplane.Dataplane)(nil)

// realAgent is a Server over a real dataplane in a fresh namespace, served with mTLS.
type realAgent struct {
	ns     string
	srv    *Server
	st     *store.Store
	client pb.NodeAgentClient
	dp     *dataplane.Dataplane
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

func startReal(t *testing.T, ns string, dp *dataplane.Dataplane, stateDir, bootID string) *realAgent {
	t.Helper()
	st, err := store.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Cluster: testCluster, Node: testNode, Version: "test", DP: dp, Store: st,
		BootID: bootID, Logger: testLogger(t), ProbeKernelFeatures: fakeProbe})
	p := newPKI(t)
	addr := serve(t, s, p, []string{terraformID})
	c := dial(t, addr, p.ca.CertPEM, p.client, pki.NodeURI(testCluster, testNode))
	return &realAgent{ns: ns, srv: s, st: st, client: c, dp: dp}
}

func tunnel(name string, vni uint32) *pb.Object {
	return &pb.Object{Id: pb.ObjectID(pb.KindVxlanTunnel, name), Spec: &pb.Object_VxlanTunnel{VxlanTunnel: &pb.VxlanTunnel{
		Device:    &pb.VxlanDevice{Name: name, Vni: vni, Underlay: "u0", Address: "10.99.0.1/24"},
		Fdb:       []*pb.FdbEntry{{Mac: "02:00:00:00:00:02", Dst: "192.168.78.2"}},
		Neighbors: []*pb.Neighbor{{Ip: "10.99.0.2", Mac: "02:00:00:00:00:02"}},
		Routes:    []*pb.Route{{Dst: "10.234.118.0/24", Via: "10.99.0.2"}},
	}}}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
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
	if obs.GetId() != obj.GetId() || obs.GetVxlanTunnel().GetDevice().GetIfindex() == 0 || obs.GetVxlanTunnel().GetDevice().GetVni() != 100 {
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
	if a.st.LastBootID() != "boot-1" {
		t.Fatalf("boot id not recorded: %q", a.st.LastBootID())
	}
	// Applying again is a no-op.
	again, err := a.client.Apply(c, &pb.ApplyRequest{Object: obj})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.GetChanges()) != 0 {
		t.Fatalf("second apply changed: %v", again.GetChanges())
	}

	if _, err := a.client.Delete(c, &pb.DeleteRequest{Id: obj.GetId()}); err != nil {
		t.Fatal(err)
	}
	_, err = a.client.Get(c, &pb.GetRequest{Id: obj.GetId()})
	wantCode(t, err, codes.NotFound, "node test-cluster1/node-a: object vxlan_tunnel/vxt0 is not managed by this agent")
	if linkExists(t, a.ns, "vxt0") {
		t.Fatal("device still there after Delete")
	}
	_, err = a.client.Delete(c, &pb.DeleteRequest{Id: obj.GetId()})
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
	ad, err := a.client.Adopt(c, &pb.AdoptRequest{Id: "vxlan_tunnel/vxf", Name: "vxf"})
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
	if err := st.Put(&store.Record{Object: obj, AppliedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	st.SetBootID("boot-2")
	a := startReal(t, ns, dp, dir, "boot-2")
	if err := a.srv.Replay(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if linkExists(t, ns, "vxr0") {
		t.Fatal("replay on the same boot recreated the device")
	}
	got, err := a.client.Get(ctx(t), &pb.GetRequest{Id: obj.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetObserved().GetVxlanTunnel().GetDevice() != nil {
		t.Fatalf("missing device observed as %v", got.GetObserved())
	}

	// Another boot id: the node rebooted, so the stored state is applied again.
	st.SetBootID("old")
	b := startReal(t, ns, dp, dir, "boot-3")
	if err := b.srv.Replay(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if !linkExists(t, ns, "vxr0") {
		t.Fatal("replay did not recreate the device")
	}
	if st.LastBootID() != "boot-3" {
		t.Fatalf("boot id after replay: %q", st.LastBootID())
	}
	rec, err := st.Get(obj.GetId())
	if err != nil || rec.Owned.GetVxlanTunnel().GetDevice().GetIfindex() == 0 {
		t.Fatalf("owned not recorded after replay: %v %v", rec, err)
	}
}
