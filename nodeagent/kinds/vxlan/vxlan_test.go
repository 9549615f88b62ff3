package vxlan

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

func TestApplyPair(t *testing.T) {
	p := newPair(t, "ap")

	obs, changes := apply(t, p.rA, specA())
	t.Logf("first apply in a: %q", changeStrings(changes))
	wantChanges := []string{
		"ADD link vxlan-test (vxlan id 10001 dstport 4899 local 192.168.77.1 dev veth0 nolearning mtu 1450 address c2:6a:9b:e5:39:8d)",
		"ADD addr 179.17.1.21/24",
		"ADD neigh 179.17.1.31 (lladdr 7a:3a:fe:45:a3:76)",
		"ADD fdb 7a:3a:fe:45:a3:76 (dst 192.168.77.2)",
		"ADD route 10.235.88.0/24 (via 179.17.1.31)",
	}
	if got := changeStrings(changes); !reflect.DeepEqual(got, wantChanges) {
		t.Errorf("changes:\n got %q\nwant %q", got, wantChanges)
	}
	dev := obs.GetDevice()
	wantDev := &pb.VxlanDevice{
		Name: testDev, Vni: 10001, Port: 4899, Underlay: "veth0", LocalIp: ulA, Learning: false,
		Mtu: 1450, Mac: macA, Address: ovA + "/24", Addresses: []string{ovA + "/24"}, Ifindex: dev.GetIfindex(), OperState: "up",
		Owner: "nodenet:" + testID,
	}
	if !proto.Equal(dev, wantDev) || dev.GetIfindex() == 0 {
		t.Errorf("observed device:\n got %v\nwant %v", dev, wantDev)
	}
	wantObs := &pb.VxlanTunnel{Device: dev, Fdb: specA().Fdb, Neighbors: specA().Neighbors, Routes: specA().Routes}
	if !proto.Equal(obs, wantObs) {
		t.Errorf("observed:\n got %v\nwant %v", obs, wantObs)
	}
	applyPair2(t, p)

	contains(t, "ip -d link show", sh(t, "ip", "-n", p.a, "-d", "link", "show", testDev),
		"mtu 1450", "link/ether "+macA, "vxlan id 10001", "local 192.168.77.1", "dev veth0", "dstport 4899", "nolearning",
		"alias nodenet:vxlan_tunnel/vxlan-test", ",UP")
	contains(t, "bridge fdb show", sh(t, "ip", "netns", "exec", p.a, "bridge", "fdb", "show", "dev", testDev),
		macB+" dst "+ulB+" self permanent")
	contains(t, "ip neigh", sh(t, "ip", "-n", p.a, "neigh", "show", "dev", testDev), ovB+" lladdr "+macB+" PERMANENT")
	contains(t, "ip route", sh(t, "ip", "-n", p.a, "route"), "10.235.88.0/24 via 179.17.1.31 dev vxlan-test proto 147 onlink")
	contains(t, "ip addr", sh(t, "ip", "-n", p.a, "addr", "show", "dev", testDev), "inet 179.17.1.21/24")

	ping(t, p.a, ovB)
	ping(t, p.a, "10.235.88.1") // through the route, to b's loopback
	ping(t, p.b, ovA)

	for _, r := range []*Reconciler{p.rA, p.rB} {
		spec := specA()
		if r == p.rB {
			spec = specB()
		}
		obs2, changes, err := applyVx(r, spec, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) != 0 {
			t.Errorf("second apply made changes: %q", changeStrings(changes))
		}
		if r == p.rA && !proto.Equal(obs2, obs) {
			t.Errorf("second observation differs:\n%v\n%v", obs2, obs)
		}
	}

	ifs, err := p.dpA.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var found *pb.Interface
	for _, i := range ifs {
		if i.GetName() == testDev {
			found = i
		}
	}
	want := &pb.Interface{Name: testDev, Index: dev.GetIfindex(), Mtu: 1450, Mac: macA, Addresses: []string{ovA + "/24"},
		OperState: "up", Kind: "vxlan", Owner: "nodenet:" + testID}
	if !proto.Equal(found, want) {
		t.Errorf("Interfaces: got %v, want %v (all: %v)", found, want, ifs)
	}
}

// applyPair2 applies b's side and gives b an address behind a's route.
func applyPair2(t *testing.T, p *pair) {
	t.Helper()
	apply(t, p.rB, specB())
	sh(t, "ip", "-n", p.b, "addr", "add", "10.235.88.1/32", "dev", "lo")
}

func TestDrift(t *testing.T) {
	p := newPair(t, "dr")
	applyPair(t, p)
	ping(t, p.a, ovB)

	sh(t, "ip", "netns", "exec", p.a, "bridge", "fdb", "del", macB, "dev", testDev, "dst", ulB)
	sh(t, "ip", "-n", p.a, "link", "set", "dev", testDev, "address", "c2:6a:9b:e5:39:8e")
	noPing(t, p.a, ovB)

	obs, err := observeVx(p.rA, specA())
	if err != nil {
		t.Fatal(err)
	}
	if obs.GetDevice().GetMac() != "c2:6a:9b:e5:39:8e" || len(obs.GetFdb()) != 0 || len(obs.GetNeighbors()) != 0 {
		t.Errorf("observation does not show the drift: %v", obs)
	}

	state := func() string {
		return sh(t, "ip", "-n", p.a, "-d", "link", "show", testDev) +
			sh(t, "ip", "netns", "exec", p.a, "bridge", "fdb", "show", "dev", testDev) +
			sh(t, "ip", "-n", p.a, "neigh", "show", "dev", testDev, "nud", "permanent")
	}
	before := state()
	dobs, changes, err := applyVx(p.rA, specA(), true)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel flushes a link's neighbours, permanent ones too, when its MAC changes
	// (neigh_changeaddr), so the neighbour is drift as well.
	want := []string{
		"UPDATE link vxlan-test (mac c2:6a:9b:e5:39:8e -> c2:6a:9b:e5:39:8d)",
		"ADD neigh 179.17.1.31 (lladdr 7a:3a:fe:45:a3:76)",
		"ADD fdb 7a:3a:fe:45:a3:76 (dst 192.168.77.2)",
	}
	if got := changeStrings(changes); !reflect.DeepEqual(got, want) {
		t.Errorf("dry-run changes:\n got %q\nwant %q", got, want)
	}
	if !proto.Equal(dobs, obs) {
		t.Errorf("dry-run observation %v, want the current %v", dobs, obs)
	}
	after := state()
	if before != after {
		t.Errorf("dry run touched the kernel:\n%s\n---\n%s", before, after)
	}

	obs, changes = apply(t, p.rA, specA())
	if got := changeStrings(changes); !reflect.DeepEqual(got, want) {
		t.Errorf("changes:\n got %q\nwant %q", got, want)
	}
	if obs.GetDevice().GetMac() != macA || len(obs.GetFdb()) != 1 || obs.GetFdb()[0].GetDst() != ulB {
		t.Errorf("not repaired: %v", obs)
	}
	ping(t, p.a, ovB)
	ping(t, p.a, "10.235.88.1")

	// Stale entries are removed: a hand-added FDB remote, a permanent neighbour, an extra
	// address and a nodenet route the spec no longer has.
	sh(t, "ip", "netns", "exec", p.a, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", testDev, "dst", "192.168.77.9")
	sh(t, "ip", "-n", p.a, "neigh", "replace", "179.17.1.99", "lladdr", "02:00:00:00:00:99", "nud", "permanent", "dev", testDev)
	sh(t, "ip", "-n", p.a, "addr", "add", "179.17.2.21/24", "dev", testDev)
	sh(t, "ip", "-n", p.a, "route", "add", "10.235.99.0/24", "via", ovB, "dev", testDev, "onlink", "proto", "147")
	_, changes = apply(t, p.rA, specA())
	want = []string{
		"DELETE addr 179.17.2.21/24",
		"DELETE neigh 179.17.1.99 (lladdr 02:00:00:00:00:99)",
		"DELETE fdb 00:00:00:00:00:00 (dst 192.168.77.9)",
		"DELETE route 10.235.99.0/24 (via 179.17.1.31)",
	}
	if got := changeStrings(changes); !reflect.DeepEqual(got, want) {
		t.Errorf("changes:\n got %q\nwant %q", got, want)
	}
	if _, changes = apply(t, p.rA, specA()); len(changes) != 0 {
		t.Errorf("not converged: %q", changeStrings(changes))
	}
	ping(t, p.a, ovB)
}

func TestOwnership(t *testing.T) {
	p := newPair(t, "ow")
	handMade := []string{"ip", "-n", p.a, "link", "add", testDev, "type", "vxlan", "id", "10001", "dstport", "4899",
		"local", ulA, "dev", "veth0", "nolearning"}
	show := []string{"ip", "-n", p.a, "-d", "link", "show", testDev}

	// A foreign route to the wanted dst: a conflict, found before anything is created.
	sh(t, "ip", "-n", p.a, "route", "add", "10.235.88.0/24", "via", ulB, "dev", "veth0")
	_, _, err := applyVx(p.rA, specA(), false)
	ce, ok := asConflict(err)
	if !ok {
		t.Fatalf("want a ConflictError, got %v", err)
	}
	if want := "route 10.235.88.0/24 via 192.168.77.2 dev veth0 proto boot exists and is not nodenet's"; ce.Msg != want {
		t.Errorf("conflict %q, want %q", ce.Msg, want)
	}
	linkGone(t, p.a)
	sh(t, "ip", "-n", p.a, "route", "del", "10.235.88.0/24")

	// A hand-made device of the same name is left byte-identical.
	sh(t, handMade...)
	before := sh(t, show...)
	_, _, err = applyVx(p.rA, specA(), false)
	if ce, ok = asConflict(err); !ok {
		t.Fatalf("want a ConflictError, got %v", err)
	}
	t.Logf("conflict: %s", ce.Msg)
	contains(t, "conflict", ce.Msg, `device vxlan-test already exists and is not managed by nodenet (ifalias ""); adopt it with: terraform import <address of the nodenet_vxlan_tunnel> vxlan-test, or delete it`)
	if _, err := deleteVx(p.rA, false); err == nil {
		t.Errorf("DeleteVxlan of a foreign device succeeded")
	} else if _, ok := asConflict(err); !ok {
		t.Errorf("DeleteVxlan: want a ConflictError, got %v", err)
	}
	if after := sh(t, show...); after != before {
		t.Errorf("foreign device changed:\n%s\n---\n%s", before, after)
	}

	// Another object's device.
	if _, err := adoptVx(p.rA, "vxlan_tunnel/other", testDev, false); err != nil {
		t.Fatal(err)
	}
	_, _, err = applyVx(p.rA, specA(), false)
	if ce, ok = asConflict(err); !ok || ce.Msg != "device vxlan-test is owned by nodenet object vxlan_tunnel/other" {
		t.Fatalf("want the owner conflict, got %v", err)
	}
	if _, err := adoptVx(p.rA, testID, testDev, false); err == nil {
		t.Fatalf("adopting another object's device succeeded")
	}
	sh(t, "ip", "-n", p.a, "link", "set", testDev, "alias", "")

	// Adopt.
	if _, err := adoptVx(p.rA, testID, "nothere", false); err == nil || !errors.As(err, new(*reconcile.NotFoundError)) {
		t.Errorf("adopt of a missing device: want NotFoundError, got %v", err)
	}
	sh(t, "ip", "-n", p.a, "link", "add", "br0", "type", "bridge")
	if _, err := adoptVx(p.rA, testID, "br0", false); err == nil || !errors.As(err, new(*reconcile.ConflictError)) {
		t.Errorf("adopt of a bridge: want ConflictError, got %v", err)
	}
	dry, err := adoptVx(p.rA, testID, testDev, true)
	if err != nil {
		t.Fatal(err)
	}
	if dry.GetDevice().GetOwner() != "" {
		t.Errorf("dry-run adopt set the owner: %v", dry)
	}
	// A foreign route through the device, made by hand before adoption, is observed by
	// adopt and left alone by Apply.
	sh(t, "ip", "-n", p.a, "link", "set", testDev, "up")
	sh(t, "ip", "-n", p.a, "route", "add", "10.98.0.0/16", "via", ovB, "dev", testDev, "onlink")
	adopted, err := adoptVx(p.rA, testID, testDev, false)
	if err != nil {
		t.Fatal(err)
	}
	if adopted.GetDevice().GetOwner() != "nodenet:"+testID || adopted.GetDevice().GetVni() != 10001 ||
		adopted.GetDevice().GetUnderlay() != "veth0" || adopted.GetDevice().GetLearning() {
		t.Errorf("adopted: %v", adopted)
	}
	if len(adopted.GetRoutes()) != 1 || adopted.GetRoutes()[0].GetDst() != "10.98.0.0/16" {
		t.Errorf("adopt should observe the hand-made route: %v", adopted.GetRoutes())
	}
	obs, changes := apply(t, p.rA, specA())
	t.Logf("apply after adopt: %q", changeStrings(changes))
	for _, c := range changes {
		if c.GetAction() == pb.Change_REPLACE {
			t.Errorf("adopted device replaced: %v", c)
		}
	}
	if obs.GetDevice().GetIfindex() != adopted.GetDevice().GetIfindex() {
		t.Errorf("ifindex changed %d -> %d", adopted.GetDevice().GetIfindex(), obs.GetDevice().GetIfindex())
	}
	for _, r := range obs.GetRoutes() {
		if r.GetDst() == "10.98.0.0/16" {
			t.Errorf("foreign route reported as managed: %v", obs.GetRoutes())
		}
	}
	contains(t, "ip route", sh(t, "ip", "-n", p.a, "route"), "10.98.0.0/16 via 179.17.1.31 dev vxlan-test", "10.235.88.0/24 via 179.17.1.31 dev vxlan-test proto 147 onlink")
	applyPair2(t, p)
	ping(t, p.a, ovB)

	// Delete removes the device and leaves foreign routes elsewhere alone.
	sh(t, "ip", "-n", p.a, "route", "add", "10.99.0.0/16", "via", ulB, "dev", "veth0")
	dchanges, err := deleteVx(p.rA, true)
	if err != nil || len(dchanges) != 1 {
		t.Fatalf("dry-run delete: %q, %v", changeStrings(dchanges), err)
	}
	sh(t, show...)
	dchanges, err = deleteVx(p.rA, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := changeStrings(dchanges); !reflect.DeepEqual(got, []string{"DELETE link vxlan-test"}) {
		t.Errorf("delete changes %q", got)
	}
	linkGone(t, p.a)
	contains(t, "ip route", sh(t, "ip", "-n", p.a, "route"), "10.99.0.0/16 via 192.168.77.2 dev veth0")
	if dchanges, err = deleteVx(p.rA, false); err != nil || len(dchanges) != 0 {
		t.Errorf("delete of an absent device: %q, %v", changeStrings(dchanges), err)
	}
	if obs, err := observeVx(p.rA, nil); err != nil || obs.GetDevice() != nil {
		t.Errorf("observe after delete: %v, %v", obs, err)
	}
}

func TestRollback(t *testing.T) {
	p := newPair(t, "rb")

	// A real kernel refusal: an onlink route whose gateway is the node's own overlay address.
	spec := specA()
	spec.Routes = []*pb.Route{{Dst: "10.235.88.0/24", Via: ovA}}
	_, _, err := applyVx(p.rA, spec, false)
	if err == nil {
		t.Fatal("apply with a local gateway succeeded")
	}
	t.Logf("error: %v", err)
	contains(t, "error", err.Error(), "vxlan vxlan-test: route 10.235.88.0/24 via 179.17.1.21")
	linkGone(t, p.a)

	// An injected failure on an existing device undoes the MTU change and the FDB entry.
	applyPair(t, p)
	before := sh(t, "ip", "-n", p.a, "-d", "link", "show", testDev) +
		sh(t, "ip", "netns", "exec", p.a, "bridge", "fdb", "show", "dev", testDev) +
		sh(t, "ip", "-n", p.a, "neigh", "show", "dev", testDev)
	spec = specA()
	spec.Device.Mtu = 1400
	spec.Fdb = append(spec.Fdb, &pb.FdbEntry{Mac: "02:00:00:00:00:02", Dst: "192.168.77.3"})
	spec.Neighbors = append(spec.Neighbors, &pb.Neighbor{Ip: "179.17.1.41", Mac: "02:00:00:00:00:02"})
	spec.Routes = append(spec.Routes, &pb.Route{Dst: "10.235.89.0/24", Via: "179.17.1.41"})
	injected := errors.New("injected")
	p.rA.BeforeStep = func(c *pb.Change) error {
		if c.GetEntry() == "route" {
			return injected
		}
		return nil
	}
	_, _, err = applyVx(p.rA, spec, false)
	if !errors.Is(err, injected) {
		t.Fatalf("want the injected error, got %v", err)
	}
	contains(t, "error", err.Error(), "vxlan vxlan-test: route 10.235.89.0/24 via 179.17.1.41: injected")
	after := sh(t, "ip", "-n", p.a, "-d", "link", "show", testDev) +
		sh(t, "ip", "netns", "exec", p.a, "bridge", "fdb", "show", "dev", testDev) +
		sh(t, "ip", "-n", p.a, "neigh", "show", "dev", testDev)
	if before != after {
		t.Errorf("not rolled back:\n%s\n---\n%s", before, after)
	}

	// An injected failure after a REPLACE brings the old device back with its entries.
	oldObs, err := observeVx(p.rA, specA())
	if err != nil {
		t.Fatal(err)
	}
	spec = specA()
	spec.Device.Vni = 10002
	_, changes, err := applyVx(p.rA, spec, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replace plan: %q", changeStrings(changes))
	_, _, err = applyVx(p.rA, spec, false)
	if !errors.Is(err, injected) {
		t.Fatalf("want the injected error, got %v", err)
	}
	p.rA.BeforeStep = nil
	newObs, err := observeVx(p.rA, specA())
	if err != nil {
		t.Fatal(err)
	}
	if newObs.GetDevice().GetVni() != 10001 {
		t.Errorf("old device not restored: %v", newObs)
	}
	newObs.Device.Ifindex = oldObs.GetDevice().GetIfindex()
	if !proto.Equal(newObs, oldObs) {
		t.Errorf("restored device differs:\n got %v\nwant %v", newObs, oldObs)
	}
	ping(t, p.a, ovB)
	ping(t, p.a, "10.235.88.1")
	if _, changes = apply(t, p.rA, specA()); len(changes) != 0 {
		t.Errorf("restored device is not as specified: %q", changeStrings(changes))
	}
}

func TestMTUAndReplace(t *testing.T) {
	p := newPair(t, "mt")
	spec := specA()
	spec.Device.Mtu = 1451
	_, _, err := applyVx(p.rA, spec, false)
	fe, ok := pb.AsFieldError(err)
	if !ok || fe.Field != "vxlan_tunnel.device.mtu" {
		t.Fatalf("want a FieldError on vxlan_tunnel.device.mtu, got %v", err)
	}
	t.Logf("field error: %v", fe)
	contains(t, "field error", fe.Msg, "1450")
	linkGone(t, p.a)

	// Invalid specs come back as the contract's FieldError, unchanged.
	bad := specA()
	bad.Device.Vni = 0
	if _, _, err := applyVx(p.rA, bad, false); !errors.As(err, new(*pb.FieldError)) {
		t.Errorf("vni 0: want a FieldError, got %v", err)
	}
	bad = specA()
	bad.Device.Underlay = "nothere"
	if _, _, err := applyVx(p.rA, bad, false); err == nil || !strings.Contains(err.Error(), "vxlan_tunnel.device.underlay") {
		t.Errorf("missing underlay: want a FieldError on the underlay, got %v", err)
	}

	applyPair(t, p)
	obs0, err := observeVx(p.rA, specA())
	if err != nil {
		t.Fatal(err)
	}

	spec = specA()
	spec.Device.Mtu = 1400
	obs1, changes := apply(t, p.rA, spec)
	if got, want := changeStrings(changes), []string{"UPDATE link vxlan-test (mtu 1450 -> 1400)"}; !reflect.DeepEqual(got, want) {
		t.Errorf("changes %q, want %q", got, want)
	}
	if obs1.GetDevice().GetIfindex() != obs0.GetDevice().GetIfindex() || obs1.GetDevice().GetMtu() != 1400 {
		t.Errorf("mtu change: before %v after %v", obs0.GetDevice(), obs1.GetDevice())
	}

	// A spec giving only the local IP finds the underlay by its address.
	spec.Device.Vni = 10002
	spec.Device.Underlay = ""
	spec.Device.LocalIp = ulA
	obs2, changes := apply(t, p.rA, spec)
	t.Logf("vni change: %q", changeStrings(changes))
	if len(changes) == 0 || changes[0].GetAction() != pb.Change_REPLACE || changes[0].GetDetail() != "vni 10001 -> 10002" {
		t.Errorf("want a REPLACE for the VNI first, got %q", changeStrings(changes))
	}
	if obs2.GetDevice().GetIfindex() == obs1.GetDevice().GetIfindex() {
		t.Errorf("REPLACE kept ifindex %d", obs1.GetDevice().GetIfindex())
	}
	want := proto.Clone(obs1).(*pb.VxlanTunnel)
	want.Device.Vni = 10002
	want.Device.Ifindex = obs2.GetDevice().GetIfindex()
	if !proto.Equal(obs2, want) {
		t.Errorf("after replace:\n got %v\nwant %v", obs2, want)
	}
	contains(t, "ip -d link", sh(t, "ip", "-n", p.a, "-d", "link", "show", testDev), "vxlan id 10002", "mtu 1400", "alias nodenet:"+testID)
	if _, changes = apply(t, p.rA, spec); len(changes) != 0 {
		t.Errorf("not converged: %q", changeStrings(changes))
	}
	// b still has VNI 10001: the overlay is cut until it follows.
	noPing(t, p.a, ovB)
	specBx := specB()
	specBx.Device.Vni = 10002
	apply(t, p.rB, specBx)
	ping(t, p.a, ovB)
}

// TestConcurrentUse: reads and applies from many goroutines share the dataplane's handles
// safely. Applies of one object are serialised, as the server's per-object lock does.
func TestConcurrentUse(t *testing.T) {
	p := newPair(t, "cc")
	var wg sync.WaitGroup
	var objectLock sync.Mutex
	errs := make(chan error, 120)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				objectLock.Lock()
				_, _, err := applyVx(p.rA, specA(), false)
				objectLock.Unlock()
				if err != nil {
					errs <- err
				}
				if _, err := observeVx(p.rA, specA()); err != nil {
					errs <- err
				}
				if _, err := p.dpA.Interfaces(); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, changes := apply(t, p.rA, specA()); len(changes) != 0 {
		t.Errorf("not converged: %q", changeStrings(changes))
	}
}
