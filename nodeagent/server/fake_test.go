package server

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// fakeKernel has a loopback and the marked entries a test gives it.
type fakeKernel struct {
	mu     sync.Mutex
	marked []*pb.KernelEntry
}

func (k *fakeKernel) Interfaces() ([]*pb.Interface, error) {
	return []*pb.Interface{{Name: "lo", Index: 1, Mtu: 65536}}, nil
}

func (k *fakeKernel) Marked() ([]*pb.KernelEntry, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]*pb.KernelEntry(nil), k.marked...), nil
}

func (k *fakeKernel) RemoveMarkedRoute(dst string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	var keep []*pb.KernelEntry
	for _, e := range k.marked {
		if e.GetEntry() != "route" || e.GetKey() != dst {
			keep = append(keep, e)
		}
	}
	k.marked = keep
	return nil
}

// fakeVx is a vxlan_tunnel reconciler that keeps devices in memory: the server's unit tests
// need no kernel. The real one is tested in nodeagent/kinds/vxlan and in netns_test.go.
type fakeVx struct {
	mu      sync.Mutex
	devs    map[string]*pb.VxlanTunnel // by device name
	foreign map[string]bool
	applies atomic.Int32
	delay   time.Duration
	active  map[string]int
	overlap atomic.Bool // two applies on one id overlapped
	maxConc atomic.Int32
	conc    atomic.Int32
	fail    map[string]error // Apply of this id fails
}

func newFake() *fakeVx {
	return &fakeVx{devs: map[string]*pb.VxlanTunnel{}, foreign: map[string]bool{}, active: map[string]int{}, fail: map[string]error{}}
}

func (f *fakeVx) Kind() string                                             { return pb.KindVxlanTunnel }
func (f *fakeVx) ValidateName(n string) error                              { return pb.ValidateIfName("id", n) }
func (f *fakeVx) Validate(o *pb.Object) error                              { return pb.ValidateVxlanTunnelObject(o) }
func (f *fakeVx) Restore() reconcile.RestoreRule                           { return reconcile.RestoreAfterReboot }
func (f *fakeVx) Release(context.Context, string, map[string]string) error { return nil }

func (f *fakeVx) Claims(o *pb.Object) []string {
	t := o.GetVxlanTunnel()
	keys := []string{dataplane.LinkKey(t.GetDevice().GetName())}
	for _, r := range t.GetRoutes() {
		keys = append(keys, dataplane.RouteKey(r.GetDst(), 0))
	}
	return keys
}

func (f *fakeVx) Apply(_ context.Context, req reconcile.Request) (*reconcile.Result, error) {
	id := req.ID
	spec := req.Spec.GetVxlanTunnel()
	name := spec.GetDevice().GetName()
	f.mu.Lock()
	if f.foreign[name] {
		f.mu.Unlock()
		return nil, reconcile.Conflictf("link %s exists and is not owned by nodenet; use terraform import", name)
	}
	if err := f.fail[id]; err != nil {
		f.mu.Unlock()
		return nil, err
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
	obs.Device.Owner = pb.OwnerAlias(id)
	if !req.DryRun {
		f.devs[name] = obs
	}
	return &reconcile.Result{Observed: &pb.Object{Id: id, Spec: &pb.Object_VxlanTunnel{VxlanTunnel: proto.Clone(obs).(*pb.VxlanTunnel)}},
		Changes: []*pb.Change{{Action: pb.Change_ADD, Entry: "link", Key: name}}, Owned: f.Claims(req.Spec)}, nil
}

func (f *fakeVx) Observe(_ context.Context, id string, _ *pb.Object, _ []string) (*pb.Object, error) {
	_, name, _ := pb.SplitObjectID(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &pb.VxlanTunnel{}
	if d, ok := f.devs[name]; ok {
		t = proto.Clone(d).(*pb.VxlanTunnel)
	}
	return &pb.Object{Id: id, Spec: &pb.Object_VxlanTunnel{VxlanTunnel: t}}, nil
}

func (f *fakeVx) Delete(_ context.Context, id string, _ []string, dryRun bool) ([]*pb.Change, error) {
	_, name, _ := pb.SplitObjectID(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !dryRun {
		delete(f.devs, name)
	}
	return []*pb.Change{{Action: pb.Change_DELETE, Entry: "link", Key: name}}, nil
}

func (f *fakeVx) Adopt(_ context.Context, id, name string, dryRun bool) (*reconcile.Adoption, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.foreign[name] {
		return nil, &reconcile.NotFoundError{Msg: "no link " + name}
	}
	t := &pb.VxlanTunnel{Device: &pb.VxlanDevice{Name: name, Vni: 9, Underlay: "u0", Ifindex: 7, OperState: "up", Owner: pb.OwnerAlias(id)}}
	if !dryRun {
		delete(f.foreign, name)
		f.devs[name] = t
	}
	return &reconcile.Adoption{Observed: &pb.Object{Id: id, Spec: &pb.Object_VxlanTunnel{VxlanTunnel: proto.Clone(t).(*pb.VxlanTunnel)}},
		Owned: []string{dataplane.LinkKey(name)}, Marks: map[string]string{dataplane.LinkKey(name): "hand"}}, nil
}

func (f *fakeVx) DesiredFromObserved(o *pb.Object) (*pb.Object, error) {
	d := proto.Clone(o).(*pb.Object)
	dev := d.GetVxlanTunnel().GetDevice()
	dev.Ifindex, dev.OperState, dev.Owner = 0, "", ""
	return d, nil
}

func (f *fakeVx) has(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.devs[name]
	return ok
}

const ownerA, ownerB = "nodenet_vxlan_tunnel:aaaa", "nodenet_vxlan_tunnel:bbbb"

func spec(name string, vni uint32) *pb.Object {
	return &pb.Object{Id: pb.ObjectID(pb.KindVxlanTunnel, name), Owner: ownerA, Spec: &pb.Object_VxlanTunnel{VxlanTunnel: &pb.VxlanTunnel{
		Device: &pb.VxlanDevice{Name: name, Vni: vni, Underlay: "u0", Address: "10.99.0.1/24"},
	}}}
}

func withRoute(o *pb.Object, dst string) *pb.Object {
	o.GetVxlanTunnel().Routes = append(o.GetVxlanTunnel().Routes, &pb.Route{Dst: dst, Via: "10.99.0.2"})
	return o
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

func apply(t *testing.T, s *Server, o *pb.Object) *pb.ApplyResponse {
	t.Helper()
	resp, err := s.Apply(t.Context(), &pb.ApplyRequest{Object: o})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

var errInjected = errors.New("injected")
