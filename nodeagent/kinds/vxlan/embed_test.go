package vxlan

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// An ip_pool's VXLAN tunnel, as the pool's planner makes it: block 10.244.0.0/26 on a,
// 10.244.0.64/26 on b, each node's tunnel address the first of its block.
const (
	poolID    = "ip_pool/10.244.0.0/16"
	poolField = "ip_pool.encapsulation.vxlan."
	poolDev   = "vxlan-pool0"
	blockA    = "10.244.0.0/26"
	blockB    = "10.244.0.64/26"
	tunA      = "10.244.0.0"
	tunB      = "10.244.0.64"
)

func poolTunnel(mac, local, addr, peerMAC, peerUnderlay, peerTun, peerBlock string) *pb.VxlanTunnel {
	return &pb.VxlanTunnel{
		Device: &pb.VxlanDevice{
			Name: poolDev, Vni: 4096, Port: 4789, Underlay: "veth0", LocalIp: local,
			Mtu: 1450, Mac: mac, Address: addr + "/32",
		},
		Fdb:       []*pb.FdbEntry{{Mac: peerMAC, Dst: peerUnderlay}},
		Neighbors: []*pb.Neighbor{{Ip: peerTun, Mac: peerMAC}},
		Routes:    []*pb.Route{{Dst: peerBlock, Via: peerTun}},
	}
}

func poolTunnelA() *pb.VxlanTunnel { return poolTunnel(macA, ulA, tunA, macB, ulB, tunB, blockB) }
func poolTunnelB() *pb.VxlanTunnel { return poolTunnel(macB, ulB, tunB, macA, ulA, tunA, blockA) }

// embedded applies t as part of the pool object on dp, the way the ip_pool reconciler
// composes it: its steps with the pool's own (extra) in one Run. It returns the plan's
// changes and what the plan observes afterwards.
func embedded(t *testing.T, dp *dataplane.Dataplane, tun *pb.VxlanTunnel, owned []string, extra ...dataplane.Step) ([]*pb.Change, *pb.VxlanTunnel, error) {
	t.Helper()
	h, err := dp.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	p, err := TunnelSteps(h, poolID, poolField, tun, owned, nil)
	if err != nil {
		return nil, nil, err
	}
	steps := append(p.Steps, extra...)
	if err := dataplane.Run("ip_pool 10.244.0.0/16", steps, nil); err != nil {
		return nil, nil, err
	}
	obs, err := p.Observe()
	if err != nil {
		t.Fatal(err)
	}
	return dataplane.Changes(steps), obs, nil
}

func embeddedDelete(t *testing.T, dp *dataplane.Dataplane, owned []string, extra ...dataplane.Step) ([]*pb.Change, error) {
	t.Helper()
	h, err := dp.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	steps, err := DeleteTunnelSteps(h, poolID, poolDev, owned)
	if err != nil {
		return nil, err
	}
	steps = append(steps, extra...)
	return dataplane.Changes(steps), dataplane.Run("ip_pool 10.244.0.0/16", steps, nil)
}

func observePool(t *testing.T, dp *dataplane.Dataplane, want *pb.VxlanTunnel, owned []string) *pb.VxlanTunnel {
	t.Helper()
	h, err := dp.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	obs, err := ObserveTunnel(h, poolID, poolDev, want, owned)
	if err != nil {
		t.Fatal(err)
	}
	return obs
}

// failing is a step of another part of the object (the pool's NAT, say) that the kernel
// refuses.
var failing = dataplane.Step{
	Change: dataplane.NewChange(pb.Change_ADD, "nat", "10.244.0.0/16", ""),
	Desc:   "nat 10.244.0.0/16",
	Do:     func() error { return errors.New("refused") },
}

// TestEmbeddedInPool: a VXLAN tunnel owned by an ip_pool object (not a vxlan_tunnel), its
// device named by the spec: apply on two nodes, a ping across the overlay to the other
// node's block, an observation that reads back the spec, a second apply with no change,
// drift shown and repaired, the pool's blackhole left alone, a delete that fails in
// another part of the object undone, and a delete that leaves the node as it was.
func TestEmbeddedInPool(t *testing.T) {
	p := newPair(t, "em")
	// What nodenet could leave: links (by name), IPv4 routes of every table, addresses and
	// permanent neighbours. (Link flags and IPv6 routes change as the veth's carrier comes up.)
	state := func(ns string) string {
		var links []string
		for _, l := range strings.Split(strings.TrimSpace(sh(t, "ip", "-o", "-n", ns, "link", "show")), "\n") {
			links = append(links, strings.Fields(l)[1])
		}
		return strings.Join(links, " ") + "\n" + sh(t, "ip", "-4", "-n", ns, "route", "show", "table", "all") +
			sh(t, "ip", "-n", ns, "neigh", "show", "nud", "permanent") + sh(t, "ip", "-4", "-n", ns, "addr", "show")
	}
	// The pool's own part, which the tunnel must not touch: its block's blackhole.
	sh(t, "ip", "-n", p.a, "route", "add", "blackhole", blockA, "proto", "147")
	before := state(p.a)

	// What the pool owns: its blackhole and the tunnel's claims.
	ownedA := append([]string{dataplane.RouteKey(blockA, 0)}, TunnelClaims(poolTunnelA())...)
	if want := []string{"route " + blockA, "link " + poolDev, "route " + blockB}; !reflect.DeepEqual(ownedA, want) {
		t.Fatalf("claims %q, want %q", ownedA, want)
	}

	changes, obs, err := embedded(t, p.dpA, poolTunnelA(), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantChanges := []string{
		"ADD link vxlan-pool0 (vxlan id 4096 dstport 4789 local 192.168.77.1 dev veth0 nolearning mtu 1450 address c2:6a:9b:e5:39:8d)",
		"ADD addr 10.244.0.0/32",
		"ADD neigh 10.244.0.64 (lladdr 7a:3a:fe:45:a3:76)",
		"ADD fdb 7a:3a:fe:45:a3:76 (dst 192.168.77.2)",
		"ADD route 10.244.0.64/26 (via 10.244.0.64)",
	}
	if got := changeStrings(changes); !reflect.DeepEqual(got, wantChanges) {
		t.Errorf("changes:\n got %q\nwant %q", got, wantChanges)
	}
	if _, _, err := embedded(t, p.dpB, poolTunnelB(), nil); err != nil {
		t.Fatal(err)
	}
	sh(t, "ip", "-n", p.b, "addr", "add", "10.244.0.65/32", "dev", "lo") // a pod of b's block

	contains(t, "ip -d link", sh(t, "ip", "-n", p.a, "-d", "link", "show", poolDev),
		"alias nodenet:ip_pool/10.244.0.0/16", "vxlan id 4096", "local 192.168.77.1", "dstport 4789", "nolearning", "mtu 1450", ",UP")
	contains(t, "ip route", sh(t, "ip", "-n", p.a, "route"),
		"10.244.0.64/26 via 10.244.0.64 dev vxlan-pool0 proto 147 onlink", "blackhole 10.244.0.0/26 proto 147")
	ping(t, p.a, tunB)
	ping(t, p.a, "10.244.0.65")
	ping(t, p.b, tunA)

	dev := obs.GetDevice()
	wantDev := &pb.VxlanDevice{
		Name: poolDev, Vni: 4096, Port: 4789, Underlay: "veth0", LocalIp: ulA, Mtu: 1450, Mac: macA,
		Address: tunA + "/32", Addresses: []string{tunA + "/32"}, Ifindex: dev.GetIfindex(), OperState: "up",
		Owner: "nodenet:" + poolID,
	}
	if !proto.Equal(dev, wantDev) || dev.GetIfindex() == 0 {
		t.Errorf("observed device:\n got %v\nwant %v", dev, wantDev)
	}
	want := poolTunnelA()
	want.Device = dev
	if !proto.Equal(obs, want) {
		t.Errorf("observed:\n got %v\nwant %v", obs, want)
	}
	if again := observePool(t, p.dpA, poolTunnelA(), ownedA); !proto.Equal(again, obs) {
		t.Errorf("ObserveTunnel differs from the plan's observation:\n%v\n%v", again, obs)
	}

	// Applied again with everything the pool owns: no change, the blackhole untouched.
	if changes, _, err := embedded(t, p.dpA, poolTunnelA(), ownedA); err != nil || len(changes) != 0 {
		t.Errorf("second apply: %q, %v", changeStrings(changes), err)
	}

	// Drift: an FDB entry and the route removed by hand show, and an apply puts them back.
	sh(t, "ip", "netns", "exec", p.a, "bridge", "fdb", "del", macB, "dev", poolDev, "dst", ulB)
	sh(t, "ip", "-n", p.a, "route", "del", blockB)
	noPing(t, p.a, "10.244.0.65")
	drifted := observePool(t, p.dpA, poolTunnelA(), ownedA)
	if len(drifted.GetFdb()) != 0 || len(drifted.GetRoutes()) != 0 || len(drifted.GetNeighbors()) != 1 {
		t.Errorf("observation does not show the drift: %v", drifted)
	}
	changes, _, err = embedded(t, p.dpA, poolTunnelA(), ownedA)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := changeStrings(changes), []string{"ADD fdb 7a:3a:fe:45:a3:76 (dst 192.168.77.2)", "ADD route 10.244.0.64/26 (via 10.244.0.64)"}; !reflect.DeepEqual(got, want) {
		t.Errorf("repair: %q, want %q", got, want)
	}
	ping(t, p.a, "10.244.0.65")

	// Errors about the node name the field where the pool has the tunnel.
	big := poolTunnelA()
	big.Device.Mtu = 1451
	_, _, err = embedded(t, p.dpA, big, ownedA)
	if fe, ok := pb.AsFieldError(err); !ok || fe.Field != poolField+"device.mtu" {
		t.Errorf("want a FieldError on %sdevice.mtu, got %v", poolField, err)
	}
	big.Device.Mtu, big.Device.Underlay = 0, "eth9"
	_, _, err = embedded(t, p.dpA, big, ownedA)
	if fe, ok := pb.AsFieldError(err); !ok || fe.Field != poolField+"device.underlay" {
		t.Errorf("want a FieldError on %sdevice.underlay, got %v", poolField, err)
	}

	// A delete whose other part fails is undone: the device comes back with its entries.
	linked := sh(t, "ip", "-n", p.a, "-d", "link", "show", poolDev)
	if _, err := embeddedDelete(t, p.dpA, ownedA, failing); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("want the failing step's error, got %v", err)
	}
	contains(t, "restored link", sh(t, "ip", "-n", p.a, "-d", "link", "show", poolDev), "alias nodenet:"+poolID, "vxlan id 4096", ",UP")
	restored := observePool(t, p.dpA, poolTunnelA(), ownedA)
	restored.Device.Ifindex = dev.GetIfindex()
	if !proto.Equal(restored, obs) {
		t.Errorf("after the undone delete:\n got %v\nwant %v\n(link before: %s)", restored, obs, linked)
	}
	ping(t, p.a, "10.244.0.65")

	// The delete: the device and its entries go, the blackhole (the pool's other part) stays,
	// and the node is as it was before the tunnel.
	changes, err = embeddedDelete(t, p.dpA, ownedA)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := changeStrings(changes), []string{"DELETE link vxlan-pool0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("delete: %q, want %q", got, want)
	}
	if after := state(p.a); after != before {
		t.Errorf("delete left the node changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if obs := observePool(t, p.dpA, poolTunnelA(), ownedA); obs.GetDevice() != nil || len(obs.GetRoutes()) != 0 {
		t.Errorf("observed after delete: %v", obs)
	}
	if changes, err := embeddedDelete(t, p.dpA, ownedA); err != nil || len(changes) != 0 {
		t.Errorf("second delete: %q, %v", changeStrings(changes), err)
	}
}

// TestEmbeddedOwnership: a pool's tunnel and a vxlan_tunnel object do not take each other's
// devices; a device made by hand is refused with advice that fits a pool; and the pool's
// direct routes (owned, nodenet's protocol, not through the device) go with the tunnel's
// delete while its blackhole stays.
func TestEmbeddedOwnership(t *testing.T) {
	p := newPair(t, "eo")
	if _, _, err := embedded(t, p.dpA, poolTunnelA(), nil); err != nil {
		t.Fatal(err)
	}
	// A vxlan_tunnel object of the same device name: the pool owns it.
	spec := specA()
	spec.Device.Name = poolDev
	id := pb.ObjectID(pb.KindVxlanTunnel, poolDev)
	_, err := p.rA.Apply(t.Context(), reconcileRequest(id, spec))
	if ce, ok := asConflict(err); !ok || !strings.Contains(ce.Msg, "device vxlan-pool0 is owned by nodenet object "+poolID) {
		t.Errorf("vxlan_tunnel over the pool's device: want a conflict naming the pool, got %v", err)
	}
	if _, err := p.rA.Delete(t.Context(), id, nil, false); err == nil {
		t.Errorf("vxlan_tunnel delete of the pool's device succeeded")
	}

	// A device made by hand with the pool's device name.
	sh(t, "ip", "-n", p.b, "link", "add", poolDev, "type", "vxlan", "id", "7", "dstport", "4789", "dev", "veth0")
	_, _, err = embedded(t, p.dpB, poolTunnelB(), nil)
	ce, ok := asConflict(err)
	if !ok || !strings.Contains(ce.Msg, "device vxlan-pool0 already exists and is not managed by nodenet") ||
		!strings.Contains(ce.Msg, "another device name") || strings.Contains(ce.Msg, "terraform import") {
		t.Errorf("hand-made device: got %v", err)
	}
	if _, err := embeddedDelete(t, p.dpB, []string{dataplane.LinkKey(poolDev)}); err == nil {
		t.Errorf("deleting a device made by hand succeeded")
	}
	contains(t, "hand-made device", sh(t, "ip", "-n", p.b, "-d", "link", "show", poolDev), "vxlan id 7")

	// The pool's direct route and blackhole beside the tunnel.
	sh(t, "ip", "-n", p.a, "route", "add", "10.244.1.0/26", "via", ulB, "proto", "147")
	sh(t, "ip", "-n", p.a, "route", "add", "blackhole", blockA, "proto", "147")
	owned := append([]string{dataplane.RouteKey(blockA, 0), dataplane.RouteKey("10.244.1.0/26", 0)}, TunnelClaims(poolTunnelA())...)
	changes, err := embeddedDelete(t, p.dpA, owned)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := changeStrings(changes), []string{"DELETE link vxlan-pool0", "DELETE route 10.244.1.0/26"}; !reflect.DeepEqual(got, want) {
		t.Errorf("delete: %q, want %q", got, want)
	}
	routes := sh(t, "ip", "-n", p.a, "route")
	if strings.Contains(routes, "10.244.1.0/26") || !strings.Contains(routes, "blackhole 10.244.0.0/26 proto 147") {
		t.Errorf("after the delete:\n%s", routes)
	}
}

func reconcileRequest(id string, spec *pb.VxlanTunnel) reconcile.Request {
	return reconcile.Request{ID: id, Spec: object(id, spec)}
}
