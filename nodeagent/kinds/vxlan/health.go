package vxlan

import (
	"net/netip"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/health"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// A vxlan_tunnel with health_check has the prober send an echo request to every neighbour's
// overlay IP through its device. The targets follow the object's recorded spec: set by an
// Apply that changed the kernel, dropped by a Delete or a Release, and registered at agent
// start from the store by Load, before any replay (a plain restart replays nothing, and
// the objects are still to be probed).

// Load registers the stored objects' health targets and NAT exemptions (snat.go). It
// touches nothing in the kernel.
func (r *Reconciler) Load(objects []*pb.Object) {
	for _, o := range objects {
		if t := o.GetVxlanTunnel(); t != nil {
			r.probe(o.GetId(), t)
		}
	}
	r.loadExemptions(objects)
}

// probe makes the prober's targets for object id those of spec t (none when t is nil or
// asks for no health checks).
func (r *Reconciler) probe(id string, t *pb.VxlanTunnel) {
	if r.health != nil {
		r.health.Set(id, healthTargets(t))
	}
}

// healthTargets are the neighbours' overlay IPs, each through the tunnel's device.
func healthTargets(t *pb.VxlanTunnel) []health.Target {
	if !t.GetHealthCheck() {
		return nil
	}
	var out []health.Target
	for _, n := range t.GetNeighbors() {
		ip, err := netip.ParseAddr(n.GetIp())
		if err != nil {
			continue // the contract's rules refuse it before it gets here
		}
		out = append(out, health.Target{IP: ip, Node: n.GetNode(), Device: t.GetDevice().GetName()})
	}
	return out
}

// healthOf is what an observed object reports of its health: nothing when the desired spec
// asks for no health checks (an object without them observes as it always did), else the
// prober's results.
func (r *Reconciler) healthOf(id string, want *pb.VxlanTunnel) []*pb.PeerHealth {
	if !want.GetHealthCheck() {
		return nil
	}
	if r.health == nil {
		var out []*pb.PeerHealth
		for _, n := range want.GetNeighbors() {
			out = append(out, &pb.PeerHealth{Ip: n.GetIp(), Node: n.GetNode(), Error: "this agent runs no health checks"})
		}
		return out
	}
	return r.health.Results(id)
}
