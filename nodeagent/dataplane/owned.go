package dataplane

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Ownership is what one operation on one object may change: the object's id, the kernel
// entries (keys) it owned after its last apply, and who holds the others. The route rules
// below are the same for every device nodenet routes through (a vxlan_tunnel's, an ip_pool's
// vxlan or ipip device), so they live here once.
type Ownership struct {
	ID     string
	owned  map[string]bool
	heldBy func(key string) string
}

// NewOwnership is the ownership of object id; heldBy nil means no other object holds anything.
func NewOwnership(id string, owned []string, heldBy func(key string) string) *Ownership {
	o := &Ownership{ID: id, owned: map[string]bool{}, heldBy: heldBy}
	for _, k := range owned {
		o.owned[k] = true
	}
	if o.heldBy == nil {
		o.heldBy = func(string) string { return "" }
	}
	return o
}

// Owns tells whether the object owned the entry key after its last apply.
func (o *Ownership) Owns(key string) bool { return o.owned[key] }

// MayChangeRoute tells whether the object may replace or delete a route: one it owns (adopted
// routes keep the protocol they were typed with), or one with nodenet's protocol that no
// other object holds (left by an interrupted apply). A route another object holds is never
// touched (holder names it), nor one of another protocol the object does not own.
func (o *Ownership) MayChangeRoute(r netlink.Route) (ok bool, holder string) {
	key := RouteKey(RouteDst(r), 0)
	if holder := o.heldBy(key); holder != "" && holder != o.ID {
		return false, holder
	}
	return r.Protocol == RouteProtocol || o.owned[key], ""
}

// OnlinkRoute is a route nodenet adds through a tunnel device: dst via gw, onlink (the gateway
// is not on the device's subnet), nodenet's protocol, main table. Plans make it with index 0
// and the step fills in the device's index when it runs.
func OnlinkRoute(index int, dst *net.IPNet, gw net.IP) *netlink.Route {
	return &netlink.Route{
		LinkIndex: index,
		Dst:       dst,
		Gw:        gw,
		Flags:     int(netlink.FLAG_ONLINK),
		Protocol:  RouteProtocol,
		Scope:     netlink.SCOPE_UNIVERSE,
		Table:     unix.RT_TABLE_MAIN,
	}
}

// on is route r through the device ref (as it is when the step runs).
func on(r *netlink.Route, ref *LinkRef) *netlink.Route {
	c := *r
	c.LinkIndex = ref.Index
	return &c
}

// unicast: a tunnel's routes are unicast; a blackhole with the object's keys (an ip_pool's
// block) is another part of the object and never a tunnel route's to replace or delete.
func unicast(r netlink.Route) bool { return r.Type == unix.RTN_UNICAST || r.Type == 0 }

// RouteSteps plan the routes through the device ref: want (OnlinkRoutes, sorted by dst; their
// index is ignored) checked against the main table all. One with the same dst, gateway and
// device is there already (whatever its protocol: a route typed by hand before an import
// counts); one the object may change is replaced; anything else with the dst is a conflict
// naming it. Routes the object may change whose dst want no longer has are deleted: through
// the device (when it stays, fresh false) if it owns them or they carry nodenet's protocol,
// and elsewhere if it owns them and they still carry nodenet's protocol. Deletes come first.
// When anything is in the way, there are no steps and conflicts describe each obstacle (the
// caller reports them as a conflict).
func (h *Handle) RouteSteps(own *Ownership, ref *LinkRef, fresh bool, want []*netlink.Route, all []netlink.Route) (steps []Step, conflicts []string) {
	wantDst := map[string]bool{}
	var sets []Step
	for _, wr := range want {
		dst, via := RouteDst(*wr), wr.Gw.String()
		wantDst[dst] = true
		present, old, conflict := h.classify(own, wr, ref, fresh, all)
		conflicts = append(conflicts, conflict...)
		if present {
			continue
		}
		s := Step{
			Desc: fmt.Sprintf("route %s via %s", dst, via),
			Do:   func() error { return h.RouteReplace(on(wr, ref)) },
		}
		if old != nil {
			prev := *old
			s.Change = NewChange(pb.Change_UPDATE, "route", dst, fmt.Sprintf("%s -> via %s dev %s", strings.TrimPrefix(h.DescribeRoute(prev), "route "+dst+" "), via, ref.Name))
			s.Undo = func() error {
				if err := h.RouteDel(on(wr, ref)); err != nil && !errors.Is(err, unix.ESRCH) {
					return err
				}
				return h.RouteReplace(&prev)
			}
		} else {
			s.Change = NewChange(pb.Change_ADD, "route", dst, "via "+via)
			s.Undo = func() error { return h.RouteDel(on(wr, ref)) }
		}
		sets = append(sets, s)
	}
	if len(conflicts) > 0 {
		return nil, conflicts
	}
	return append(h.staleRouteDeletes(own, ref, fresh, all, wantDst), sets...), nil
}

// classify looks at the main-table routes to a wanted route's dst: present when the wanted
// route is there; old is a route the object may replace; conflicts name the others.
func (h *Handle) classify(own *Ownership, wr *netlink.Route, ref *LinkRef, fresh bool, all []netlink.Route) (present bool, old *netlink.Route, conflicts []string) {
	dst := RouteDst(*wr)
	for i, r := range all {
		if RouteDst(r) != dst {
			continue
		}
		onDev := ref.Index != 0 && r.LinkIndex == ref.Index
		switch {
		case onDev && fresh:
			// goes with the device this plan replaces
		case onDev && r.Gw.Equal(wr.Gw):
			present = true
		default:
			ok, holder := own.MayChangeRoute(r)
			switch {
			case holder != "":
				conflicts = append(conflicts, fmt.Sprintf("%s is held by nodenet object %s", h.DescribeRoute(r), holder))
			case ok && old == nil:
				old = &all[i]
			case !ok:
				conflicts = append(conflicts, h.DescribeRoute(r)+" exists and is not nodenet's")
			}
		}
	}
	if present {
		return true, nil, nil
	}
	return false, old, conflicts
}

// staleRouteDeletes are the routes whose dst the spec no longer has: through the object's
// device (when the device stays) if it owns them or they carry nodenet's protocol, and
// elsewhere if it owns them and they still carry nodenet's protocol.
func (h *Handle) staleRouteDeletes(own *Ownership, ref *LinkRef, fresh bool, all []netlink.Route, wantDst map[string]bool) []Step {
	var cands []netlink.Route
	for _, r := range all {
		dst := RouteDst(r)
		if wantDst[dst] || !unicast(r) {
			continue
		}
		onDev := ref.Index != 0 && r.LinkIndex == ref.Index
		if onDev && fresh {
			continue // goes with the device
		}
		owned := own.Owns(RouteKey(dst, 0))
		nodenets := r.Protocol == RouteProtocol
		if !(onDev && (owned || nodenets)) && !(owned && nodenets) {
			continue // a route of that dst that someone else put there since
		}
		if ok, _ := own.MayChangeRoute(r); ok {
			cands = append(cands, r)
		}
	}
	return h.routeDeletes(cands, true)
}

// OwnedRouteDeletes are the deletes of an object's routes that outlive its device: the
// unicast routes it owns that still carry nodenet's protocol and do not go through the device
// devIndex (0: none), which takes its own routes along when it is deleted.
func (h *Handle) OwnedRouteDeletes(own *Ownership, devIndex int, all []netlink.Route) []Step {
	var cands []netlink.Route
	for _, r := range all {
		if (devIndex != 0 && r.LinkIndex == devIndex) || r.Protocol != RouteProtocol || !unicast(r) || !own.Owns(RouteKey(RouteDst(r), 0)) {
			continue
		}
		cands = append(cands, r)
	}
	return h.routeDeletes(cands, false)
}

// routeDeletes delete routes in dst order; undoing one puts it back. detail adds the gateway
// to the change.
func (h *Handle) routeDeletes(routes []netlink.Route, detail bool) []Step {
	sort.SliceStable(routes, func(i, j int) bool { return PrefixLess(RouteDst(routes[i]), RouteDst(routes[j])) })
	var dels []Step
	for _, r := range routes {
		prev := r
		via := ""
		if r.Gw != nil && detail {
			via = "via " + r.Gw.String()
		}
		dels = append(dels, Step{
			Change: NewChange(pb.Change_DELETE, "route", RouteDst(r), via),
			Desc:   h.DescribeRoute(r),
			Do:     func() error { return h.RouteDel(&prev) },
			Undo:   func() error { return h.RouteReplace(&prev) },
		})
	}
	return dels
}

// ObserveLinkRoutes lists the gateway routes through the device index that the object has:
// those with nodenet's protocol, those it owns and those want asks for; when adopting, every
// gateway route through it but the kernel's. Sorted by dst.
func (h *Handle) ObserveLinkRoutes(own *Ownership, index int, want []*pb.Route, adopting bool) ([]*pb.Route, error) {
	routes, err := h.LinkRoutes(index)
	if err != nil {
		return nil, err
	}
	wanted := map[[2]string]bool{}
	for _, r := range want {
		wanted[[2]string{CanonPrefix(r.GetDst()), CanonIP(r.GetVia())}] = true
	}
	var out []*pb.Route
	for _, r := range routes {
		if r.Gw == nil {
			continue
		}
		dst, via := RouteDst(r), r.Gw.String()
		switch {
		case r.Protocol == RouteProtocol:
		case own.Owns(RouteKey(dst, 0)):
		case wanted[[2]string{dst, via}]:
		case adopting && r.Protocol != unix.RTPROT_KERNEL:
		default:
			continue
		}
		out = append(out, &pb.Route{Dst: dst, Via: via})
	}
	sort.SliceStable(out, func(i, j int) bool { return PrefixLess(out[i].Dst, out[j].Dst) })
	return out, nil
}
