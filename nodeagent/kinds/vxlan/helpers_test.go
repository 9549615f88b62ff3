package vxlan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

const (
	testDev = "vxlan-test"
	testID  = "vxlan_tunnel/vxlan-test"
	macA    = "c2:6a:9b:e5:39:8d"
	macB    = "7a:3a:fe:45:a3:76"
	ulA     = "192.168.77.1"
	ulB     = "192.168.77.2"
	ovA     = "179.17.1.21"
	ovB     = "179.17.1.31"
)

// pair is two network namespaces joined by a veth pair (veth0 on both sides, 192.168.77.1/24
// in a and .2/24 in b), each with a Dataplane and a vxlan Reconciler over it.
type pair struct {
	a, b     string
	dpA, dpB *dataplane.Dataplane
	rA, rB   *Reconciler
}

// sh runs a command and fails the test when it fails.
func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// try runs a command and returns its output and error.
func try(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

func newPair(t *testing.T, tag string) *pair {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	p := &pair{
		a: fmt.Sprintf("nntdp%d%sa", os.Getpid(), tag),
		b: fmt.Sprintf("nntdp%d%sb", os.Getpid(), tag),
	}
	for _, ns := range []string{p.a, p.b} {
		_, _ = try("ip", "netns", "del", ns) // left over from a killed run with the same pid
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := try("ip", "netns", "del", ns); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
			}
		})
	}
	sh(t, "ip", "-n", p.a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", p.b)
	for ns, addr := range map[string]string{p.a: ulA, p.b: ulB} {
		sh(t, "ip", "-n", ns, "addr", "add", addr+"/24", "dev", "veth0")
		sh(t, "ip", "-n", ns, "link", "set", "veth0", "up")
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	var err error
	if p.dpA, err = dataplane.Open("/run/netns/" + p.a); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.dpA.Close)
	if p.dpB, err = dataplane.Open("/run/netns/" + p.b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.dpB.Close)
	p.rA, p.rB = New(p.dpA, nil), New(p.dpB, nil)
	return p
}

func specA() *pb.VxlanTunnel {
	return &pb.VxlanTunnel{
		Device: &pb.VxlanDevice{
			Name: testDev, Vni: 10001, Port: 4899, Underlay: "veth0",
			Mac: macA, Address: ovA + "/24",
		},
		Fdb:       []*pb.FdbEntry{{Mac: macB, Dst: ulB}},
		Neighbors: []*pb.Neighbor{{Ip: ovB, Mac: macB}},
		Routes:    []*pb.Route{{Dst: "10.235.88.0/24", Via: ovB}},
	}
}

func specB() *pb.VxlanTunnel {
	return &pb.VxlanTunnel{
		Device: &pb.VxlanDevice{
			Name: testDev, Vni: 10001, Port: 4899, Underlay: "veth0",
			Mac: macB, Address: ovB + "/24",
		},
		Fdb:       []*pb.FdbEntry{{Mac: macA, Dst: ulA}},
		Neighbors: []*pb.Neighbor{{Ip: ovA, Mac: macA}},
		Routes:    []*pb.Route{{Dst: "10.235.87.0/24", Via: ovA}},
	}
}

// owned is what each reconciler's testID object owns, kept the way the server keeps it: set
// by a successful apply or adoption, cleared by a delete.
var owned sync.Map // *Reconciler -> []string

func ownedBy(r *Reconciler) []string {
	v, _ := owned.Load(r)
	s, _ := v.([]string)
	return s
}

// applyVx applies spec as the object testID, as the server does.
func applyVx(r *Reconciler, spec *pb.VxlanTunnel, dryRun bool) (*pb.VxlanTunnel, []*pb.Change, error) {
	obj := object(testID, spec)
	res, err := r.Apply(context.Background(), reconcile.Request{ID: testID, Spec: obj, Owned: ownedBy(r), DryRun: dryRun})
	if err != nil {
		return nil, nil, err
	}
	if !dryRun {
		owned.Store(r, res.Owned)
	}
	return res.Observed.GetVxlanTunnel(), res.Changes, nil
}

func observeVx(r *Reconciler, want *pb.VxlanTunnel) (*pb.VxlanTunnel, error) {
	var obj *pb.Object
	if want != nil {
		obj = object(testID, want)
	}
	o, err := r.Observe(context.Background(), testID, obj, ownedBy(r))
	return o.GetVxlanTunnel(), err
}

func deleteVx(r *Reconciler, dryRun bool) ([]*pb.Change, error) {
	changes, err := r.Delete(context.Background(), testID, ownedBy(r), dryRun)
	if err == nil && !dryRun {
		owned.Delete(r)
	}
	return changes, err
}

func adoptVx(r *Reconciler, id, name string, dryRun bool) (*pb.VxlanTunnel, error) {
	a, err := r.Adopt(context.Background(), id, name, dryRun)
	if err != nil {
		return nil, err
	}
	if !dryRun && id == testID {
		owned.Store(r, a.Owned)
	}
	return a.Observed.GetVxlanTunnel(), nil
}

// apply applies spec and fails the test on error.
func apply(t *testing.T, r *Reconciler, spec *pb.VxlanTunnel) (*pb.VxlanTunnel, []*pb.Change) {
	t.Helper()
	obs, changes, err := applyVx(r, spec, false)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return obs, changes
}

// applyPair applies specA in a and specB in b, and gives b an address behind its route.
func applyPair(t *testing.T, p *pair) {
	t.Helper()
	apply(t, p.rA, specA())
	apply(t, p.rB, specB())
	sh(t, "ip", "-n", p.b, "addr", "add", "10.235.88.1/32", "dev", "lo")
}

// ping pings from namespace ns, trying a few times.
func ping(t *testing.T, ns, addr string) {
	t.Helper()
	var out string
	var err error
	for i := 0; i < 3; i++ {
		if out, err = try("ip", "netns", "exec", ns, "ping", "-c1", "-W1", addr); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("ping %s from %s: %v\n%s", addr, ns, err, out)
}

func noPing(t *testing.T, ns, addr string) {
	t.Helper()
	if out, err := try("ip", "netns", "exec", ns, "ping", "-c1", "-W1", addr); err == nil {
		t.Fatalf("ping %s from %s works, expected it to fail:\n%s", addr, ns, out)
	}
}

func contains(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: missing %q in:\n%s", what, w, out)
		}
	}
}

func changeStrings(cs []*pb.Change) []string {
	var out []string
	for _, c := range cs {
		s := c.GetAction().String() + " " + c.GetEntry() + " " + c.GetKey()
		if c.GetDetail() != "" {
			s += " (" + c.GetDetail() + ")"
		}
		out = append(out, s)
	}
	return out
}

// linkGone asserts that the namespace has no link called testDev.
func linkGone(t *testing.T, ns string) {
	t.Helper()
	if out, err := try("ip", "-n", ns, "link", "show", testDev); err == nil {
		t.Fatalf("%s still exists in %s:\n%s", testDev, ns, out)
	}
}

func asConflict(err error) (*reconcile.ConflictError, bool) {
	var ce *reconcile.ConflictError
	return ce, errors.As(err, &ce)
}
