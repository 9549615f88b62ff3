package ippool

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Direct routes (cross_subnet): the blocks of nodes in this node's underlay subnet, via their
// underlay addresses, not encapsulated. The kernel picks the device. A route with the same
// gateway is there already whatever its protocol or owner (the BGP speaker learns exactly
// this route, and gives it way to the pool's claim); one the object may change is replaced.

func directRoute(r *pb.Route) *netlink.Route {
	dst := netip.MustParsePrefix(r.GetDst()).Masked()
	return &netlink.Route{
		Dst:      &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 32)},
		Gw:       net.ParseIP(r.GetVia()).To4(),
		Protocol: dataplane.RouteProtocol,
		Table:    unix.RT_TABLE_MAIN,
	}
}

// directSteps plan the direct routes; anything in the way is a conflict naming it.
func directSteps(h *dataplane.Handle, own *dataplane.Ownership, routes []*pb.Route) ([]dataplane.Step, error) {
	var steps []dataplane.Step
	var conflicts []string
	for _, r := range routes {
		want := directRoute(r)
		existing, err := routesAt(h, netip.MustParsePrefix(r.GetDst()).Masked())
		if err != nil {
			return nil, err
		}
		var old *netlink.Route
		present := false
		for i, e := range existing {
			ok, holder := own.MayChangeRoute(e)
			switch {
			case e.Gw.Equal(want.Gw) && isUnicast(e):
				present = true
			case holder != "":
				conflicts = append(conflicts, fmt.Sprintf("%s is held by nodenet object %s", h.DescribeRoute(e), holder))
			case ok && isUnicast(e):
				old = &existing[i]
			default:
				conflicts = append(conflicts, h.DescribeRoute(e)+" exists and is not nodenet's")
			}
		}
		if present {
			continue
		}
		steps = append(steps, directStep(h, want, old))
	}
	if len(conflicts) > 0 {
		return nil, reconcile.Conflictf("direct routes of the pool: %s", strings.Join(conflicts, "; "))
	}
	return steps, nil
}

func directStep(h *dataplane.Handle, want, old *netlink.Route) dataplane.Step {
	dst, via := want.Dst.String(), want.Gw.String()
	s := dataplane.Step{
		Change: dataplane.NewChange(pb.Change_ADD, "route", dst, "via "+via),
		Desc:   fmt.Sprintf("route %s via %s", dst, via),
		Do:     func() error { return h.RouteReplace(want) },
		Undo:   func() error { return ignoreMissing(h.RouteDel(want)) },
	}
	if old != nil {
		prev := *old
		s.Change = dataplane.NewChange(pb.Change_UPDATE, "route", dst, strings.TrimPrefix(h.DescribeRoute(prev), "route "+dst+" ")+" -> via "+via)
		s.Undo = func() error {
			if err := ignoreMissing(h.RouteDel(want)); err != nil {
				return err
			}
			return h.RouteReplace(&prev)
		}
	}
	return s
}

// observeDirect reads the wanted direct routes back: those the kernel has with the wanted
// gateway.
func observeDirect(h *dataplane.Handle, routes []*pb.Route) ([]*pb.Route, error) {
	var out []*pb.Route
	for _, r := range routes {
		existing, err := routesAt(h, netip.MustParsePrefix(r.GetDst()).Masked())
		if err != nil {
			return nil, err
		}
		for _, e := range existing {
			if isUnicast(e) && e.Gw != nil && e.Gw.String() == r.GetVia() {
				out = append(out, &pb.Route{Dst: dataplane.RouteDst(e), Via: e.Gw.String()})
			}
		}
	}
	return out, nil
}

func isUnicast(r netlink.Route) bool { return r.Type == unix.RTN_UNICAST || r.Type == 0 }
