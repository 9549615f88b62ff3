package vxlan

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// TestMACChangeKeepsNeighbours: the kernel drops a device's permanent neighbours when its
// MAC changes; an apply that changes the MAC sets them again, and a rollback of it puts the
// old ones back.
func TestMACChangeKeepsNeighbours(t *testing.T) {
	p := newPair(t, "mc")
	applyPair(t, p)
	neighs := func() string { return sh(t, "ip", "-n", p.a, "neigh", "show", "dev", testDev, "nud", "permanent") }
	before := neighs()
	contains(t, "neighbours", before, ovB+" lladdr "+macB)

	spec := specA()
	spec.Device.Mac = "c2:6a:9b:e5:39:8f"
	_, changes := apply(t, p.rA, spec)
	want := []string{
		"UPDATE link vxlan-test (mac c2:6a:9b:e5:39:8d -> c2:6a:9b:e5:39:8f)",
		"UPDATE neigh 179.17.1.31 (lladdr 7a:3a:fe:45:a3:76 (set again: the MAC change drops it))",
	}
	if got := changeStrings(changes); !reflect.DeepEqual(got, want) {
		t.Errorf("changes:\n got %q\nwant %q", got, want)
	}
	if got := neighs(); got != before {
		t.Errorf("neighbours after the MAC change:\n%s\nwant\n%s", got, before)
	}
	if _, changes = apply(t, p.rA, spec); len(changes) != 0 {
		t.Errorf("not converged after the MAC change: %q", changeStrings(changes))
	}
	// b learns the new MAC through its own spec, as the provider plans it.
	specBx := specB()
	specBx.Fdb[0].Mac, specBx.Neighbors[0].Mac = spec.Device.Mac, spec.Device.Mac
	apply(t, p.rB, specBx)
	ping(t, p.a, ovB)

	// A failure after the MAC change rolls it back, neighbours included.
	spec2 := specA()
	spec2.Routes = append(spec2.Routes, &pb.Route{Dst: "10.235.89.0/24", Via: ovB})
	injected := errors.New("injected")
	p.rA.BeforeStep = func(c *pb.Change) error {
		if c.GetEntry() == "route" {
			return injected
		}
		return nil
	}
	defer func() { p.rA.BeforeStep = nil }()
	if _, _, err := applyVx(p.rA, spec2, false); !errors.Is(err, injected) {
		t.Fatalf("want the injected error, got %v", err)
	}
	if got := neighs(); got != before {
		t.Errorf("neighbours after the rolled-back MAC change:\n%s\nwant\n%s", got, before)
	}
	contains(t, "link", sh(t, "ip", "-n", p.a, "link", "show", testDev), "link/ether c2:6a:9b:e5:39:8f")
}

// TestExtraAddressIsObserved: an address added by hand shows in the observation (all of
// them, primary first), and apply removes it.
func TestExtraAddressIsObserved(t *testing.T) {
	p := newPair(t, "ea")
	applyPair(t, p)
	sh(t, "ip", "-n", p.a, "addr", "add", "10.77.0.1/24", "dev", testDev)
	obs, err := observeVx(p.rA, specA())
	if err != nil {
		t.Fatal(err)
	}
	if got := obs.GetDevice().GetAddresses(); !reflect.DeepEqual(got, []string{ovA + "/24", "10.77.0.1/24"}) {
		t.Errorf("observed addresses %q", got)
	}
	_, changes := apply(t, p.rA, specA())
	if got := changeStrings(changes); !reflect.DeepEqual(got, []string{"DELETE addr 10.77.0.1/24"}) {
		t.Errorf("changes %q", got)
	}
}

// TestAdoptRefusesWhatASpecCannotHold: a hand-made overlay with a flood entry, a MAC with two
// remotes or two addresses cannot be stored as a spec the contract accepts: the adoption is
// refused with the commands that fix it, and nothing is marked. A clean one is stored as a
// spec the contract accepts.
func TestAdoptRefusesWhatASpecCannotHold(t *testing.T) {
	p := newPair(t, "ad")
	sh(t, "ip", "-n", p.a, "link", "add", testDev, "type", "vxlan", "id", "10001", "dstport", "4899", "local", ulA, "dev", "veth0", "nolearning")
	sh(t, "ip", "-n", p.a, "addr", "add", ovA+"/24", "dev", testDev)
	bridge := func(args ...string) { sh(t, append([]string{"ip", "netns", "exec", p.a, "bridge", "fdb"}, args...)...) }
	bridge("append", "00:00:00:00:00:00", "dst", ulB, "dev", testDev)
	bridge("append", macB, "dst", ulB, "dev", testDev)
	// This kernel keeps one remote per unicast MAC; a multicast MAC may have several.
	bridge("append", "01:00:5e:00:00:05", "dst", ulB, "dev", testDev)
	bridge("append", "01:00:5e:00:00:05", "dst", "192.168.77.3", "dev", testDev)
	sh(t, "ip", "-n", p.a, "addr", "add", "10.77.0.1/24", "dev", testDev)

	a, err := p.rA.Adopt(context.Background(), testID, testDev, true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.rA.DesiredFromObserved(a.Observed)
	ce, ok := asConflict(err)
	if !ok {
		t.Fatalf("want a ConflictError, got %v", err)
	}
	contains(t, "refusal", ce.Msg,
		"cannot adopt device vxlan-test",
		"an all-zero (flood) FDB entry dst 192.168.77.2: remove it with `bridge fdb del 00:00:00:00:00:00 dst 192.168.77.2 dev vxlan-test`",
		"FDB entries for the multicast MAC 01:00:5e:00:00:05 (dst 192.168.77.2, 192.168.77.3)",
		"a second address 10.77.0.1/24 besides 179.17.1.21/24: remove it with `ip addr del 10.77.0.1/24 dev vxlan-test`")

	bridge("del", "00:00:00:00:00:00", "dst", ulB, "dev", testDev)
	bridge("del", "01:00:5e:00:00:05", "dst", ulB, "dev", testDev)
	bridge("del", "01:00:5e:00:00:05", "dst", "192.168.77.3", "dev", testDev)
	sh(t, "ip", "-n", p.a, "addr", "del", "10.77.0.1/24", "dev", testDev)
	a, err = p.rA.Adopt(context.Background(), testID, testDev, true)
	if err != nil {
		t.Fatal(err)
	}
	desired, err := p.rA.DesiredFromObserved(a.Observed)
	if err != nil {
		t.Fatal(err)
	}
	desired.Owner = "test:owner"
	if err := errors.Join(pb.ValidateEnvelope(desired, true), p.rA.Validate(desired)); err != nil {
		t.Fatalf("desired spec refused by the contract: %v\n%v", err, desired)
	}
	if d := desired.GetVxlanTunnel().GetDevice(); d.GetIfindex() != 0 || d.GetOwner() != "" || d.GetAddresses() != nil || d.GetAddress() != ovA+"/24" {
		t.Errorf("observed-only fields kept: %v", d)
	}
}

// TestRoutesOfOtherObjects: a nodenet route another object holds is a conflict naming it and
// is left alone by apply and delete; one no object holds (left by an interrupted apply) is
// taken over.
func TestRoutesOfOtherObjects(t *testing.T) {
	p := newPair(t, "ro")
	sh(t, "ip", "-n", p.a, "link", "add", "blk0", "type", "veth", "peer", "name", "blk1")
	sh(t, "ip", "-n", p.a, "link", "set", "blk0", "up")
	sh(t, "ip", "-n", p.a, "route", "add", "10.235.88.0/24", "dev", "blk0", "proto", "147")
	route := func() string { return sh(t, "ip", "-n", p.a, "route", "show", "10.235.88.0/24") }
	before := route()

	heldBy := func(key string) string {
		if key == dataplane.RouteKey("10.235.88.0/24", 0) {
			return "ippool/10.235.0.0/16"
		}
		return ""
	}
	obj := object(testID, specA())
	_, err := p.rA.Apply(context.Background(), reconcile.Request{ID: testID, Spec: obj, HeldBy: heldBy})
	ce, ok := asConflict(err)
	if !ok || !strings.Contains(ce.Msg, "route 10.235.88.0/24 dev blk0 proto 147 is held by nodenet object ippool/10.235.0.0/16") {
		t.Fatalf("want a conflict naming the holder, got %v", err)
	}
	linkGone(t, p.a)
	if got := route(); got != before {
		t.Errorf("the other object's route changed: %q -> %q", before, got)
	}

	// Owned by nobody: taken over.
	_, changes := apply(t, p.rA, specA())
	if !strings.Contains(strings.Join(changeStrings(changes), "\n"), "UPDATE route 10.235.88.0/24 (dev blk0 proto 147 -> via 179.17.1.31 dev vxlan-test)") {
		t.Errorf("changes %q", changeStrings(changes))
	}
	contains(t, "route", route(), "via 179.17.1.31 dev vxlan-test proto 147 onlink")

	// Delete leaves a route that another object holds since (same dst, other table entry gone).
	if _, err := deleteVx(p.rA, false); err != nil {
		t.Fatal(err)
	}
	linkGone(t, p.a)
}

// TestTwoObjectsAtOnce: applies of two objects on one node run at the same time; the
// dataplane does not serialise them.
func TestTwoObjectsAtOnce(t *testing.T) {
	p := newPair(t, "to")
	var inFlight, most atomic.Int32
	p.rA.BeforeStep = func(*pb.Change) error {
		n := inFlight.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		inFlight.Add(-1)
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i, name := range []string{"vxa", "vxb"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			spec := specA()
			spec.Device.Name = name
			spec.Device.Vni = uint32(100 + i)
			spec.Device.Mac = ""
			spec.Device.Address = []string{"179.17.1.21/24", "179.17.2.21/24"}[i]
			spec.Neighbors[0].Ip = []string{"179.17.1.31", "179.17.2.31"}[i]
			spec.Routes[0].Dst = []string{"10.235.88.0/24", "10.235.89.0/24"}[i]
			spec.Routes[0].Via = spec.Neighbors[0].Ip
			id := pb.ObjectID(pb.KindVxlanTunnel, name)
			_, err := p.rA.Apply(context.Background(), reconcile.Request{ID: id, Spec: object(id, spec)})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if most.Load() < 2 {
		t.Fatalf("the two applies never ran at the same time (at most %d steps in flight)", most.Load())
	}
	contains(t, "links", sh(t, "ip", "-n", p.a, "link", "show", "type", "vxlan"), "vxa:", "vxb:")
}
