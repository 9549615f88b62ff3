package vxlan

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

func ourRoute(ref *linkRef, dst *net.IPNet, gw net.IP) *netlink.Route {
	return &netlink.Route{
		LinkIndex: ref.index,
		Dst:       dst,
		Gw:        gw,
		Flags:     int(netlink.FLAG_ONLINK),
		Protocol:  dataplane.RouteProtocol,
		Scope:     netlink.SCOPE_UNIVERSE,
		Table:     unix.RT_TABLE_MAIN,
	}
}

// mayChange tells whether this object may replace or delete a route: one it owns (adopted
// routes keep the protocol they were typed with), or one with nodenet's protocol that no
// other object holds (left by an interrupted apply). A route another object holds is never
// touched, nor one of another protocol the object does not own.
func (o *op) mayChange(r netlink.Route) (bool, string) {
	key := dataplane.RouteKey(dataplane.RouteDst(r), 0)
	if holder := o.heldBy(key); holder != "" && holder != o.id {
		return false, holder
	}
	return r.Protocol == dataplane.RouteProtocol || o.owned[key], ""
}

// routeSteps checks every wanted route against the main table: one with the same dst, gateway
// and device is there already (whatever its protocol: a route typed by hand before an import
// counts); one the object may change is replaced; anything else with the dst is a conflict
// naming it. Routes the object may change that the spec no longer has are deleted.
func (o *op) routeSteps(w *wanted, ref *linkRef, fresh bool, all []netlink.Route) ([]dataplane.Step, error) {
	wantDst := map[string]bool{}
	var conflicts []string
	var sets []dataplane.Step
	for _, wr := range w.routes {
		wantDst[wr.Dst] = true
		present, old, conflict := o.classify(wr, ref, fresh, all)
		conflicts = append(conflicts, conflict...)
		if present {
			continue
		}
		_, dst, _ := net.ParseCIDR(wr.Dst)
		gw := net.ParseIP(wr.Via).To4()
		s := dataplane.Step{
			Desc: fmt.Sprintf("route %s via %s", wr.Dst, wr.Via),
			Do:   func() error { return o.h.RouteReplace(ourRoute(ref, dst, gw)) },
		}
		if old != nil {
			prev := *old
			s.Change = change(pb.Change_UPDATE, "route", wr.Dst, fmt.Sprintf("%s -> via %s dev %s", strings.TrimPrefix(o.h.DescribeRoute(prev), "route "+wr.Dst+" "), wr.Via, w.name))
			s.Undo = func() error {
				if err := o.h.RouteDel(ourRoute(ref, dst, gw)); err != nil && !errors.Is(err, unix.ESRCH) {
					return err
				}
				return o.h.RouteReplace(&prev)
			}
		} else {
			s.Change = change(pb.Change_ADD, "route", wr.Dst, "via "+wr.Via)
			s.Undo = func() error { return o.h.RouteDel(ourRoute(ref, dst, gw)) }
		}
		sets = append(sets, s)
	}
	if len(conflicts) > 0 {
		return nil, reconcile.Conflictf("%s", strings.Join(conflicts, "; "))
	}
	return append(o.routeDeletes(ref, fresh, all, wantDst), sets...), nil
}

// classify looks at the main-table routes to a wanted route's dst: present when the wanted
// route is there; old is a route the object may replace; conflicts name the others.
func (o *op) classify(wr *pb.Route, ref *linkRef, fresh bool, all []netlink.Route) (present bool, old *netlink.Route, conflicts []string) {
	gw := net.ParseIP(wr.Via).To4()
	for i, r := range all {
		if dataplane.RouteDst(r) != wr.Dst {
			continue
		}
		onDev := ref.index != 0 && r.LinkIndex == ref.index
		switch {
		case onDev && fresh:
			// goes with the device this plan replaces
		case onDev && r.Gw.Equal(gw):
			present = true
		default:
			ok, holder := o.mayChange(r)
			switch {
			case holder != "":
				conflicts = append(conflicts, fmt.Sprintf("%s is held by nodenet object %s", o.h.DescribeRoute(r), holder))
			case ok && old == nil:
				old = &all[i]
			case !ok:
				conflicts = append(conflicts, o.h.DescribeRoute(r)+" exists and is not nodenet's")
			}
		}
	}
	if present {
		return true, nil, nil
	}
	return false, old, conflicts
}

// routeDeletes are the routes whose dst the spec no longer has: through the object's device
// (when the device stays) if it owns them or they carry nodenet's protocol, and elsewhere if
// it owns them and they still carry nodenet's protocol.
func (o *op) routeDeletes(ref *linkRef, fresh bool, all []netlink.Route, wantDst map[string]bool) []dataplane.Step {
	var cands []netlink.Route
	for _, r := range all {
		dst := dataplane.RouteDst(r)
		if wantDst[dst] {
			continue
		}
		onDev := ref.index != 0 && r.LinkIndex == ref.index
		if onDev && fresh {
			continue // goes with the device
		}
		owned := o.owned[dataplane.RouteKey(dst, 0)]
		nodenets := r.Protocol == dataplane.RouteProtocol
		if !(onDev && (owned || nodenets)) && !(owned && nodenets) {
			continue // a route of that dst that someone else put there since
		}
		if ok, _ := o.mayChange(r); ok {
			cands = append(cands, r)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		return dataplane.PrefixLess(dataplane.RouteDst(cands[i]), dataplane.RouteDst(cands[j]))
	})
	var dels []dataplane.Step
	for _, r := range cands {
		prev := r
		via := ""
		if r.Gw != nil {
			via = "via " + r.Gw.String()
		}
		dels = append(dels, dataplane.Step{
			Change: change(pb.Change_DELETE, "route", dataplane.RouteDst(r), via),
			Desc:   o.h.DescribeRoute(r),
			Do:     func() error { return o.h.RouteDel(&prev) },
			Undo:   func() error { return o.h.RouteReplace(&prev) },
		})
	}
	return dels
}
