package ippool

import (
	"errors"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/bgp"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

func blackhole(prefix netip.Prefix) *netlink.Route {
	return &netlink.Route{
		Dst:      &net.IPNet{IP: prefix.Addr().AsSlice(), Mask: net.CIDRMask(prefix.Bits(), 32)},
		Type:     unix.RTN_BLACKHOLE,
		Protocol: dataplane.RouteProtocol,
		Table:    unix.RT_TABLE_MAIN,
	}
}

// routesAt lists the main-table routes to exactly prefix.
func routesAt(h *dataplane.Handle, prefix netip.Prefix) ([]netlink.Route, error) {
	return dataplane.Retry(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN, Dst: blackhole(prefix).Dst}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
	})
}

func isOurBlackhole(rt netlink.Route) bool {
	return rt.Type == unix.RTN_BLACKHOLE && rt.Protocol == dataplane.RouteProtocol
}

// hasBlackhole tells whether the kernel has nodenet's blackhole for the pool's block.
func hasBlackhole(h *dataplane.Handle, p *pb.IpPool) (bool, error) {
	block, ok := bgp.PoolBlock(p)
	if !ok {
		return false, nil
	}
	existing, err := routesAt(h, block.Prefix)
	if err != nil {
		return false, err
	}
	for _, rt := range existing {
		if isOurBlackhole(rt) {
			return true, nil
		}
	}
	return false, nil
}

// blackholeSteps are the kernel steps of the block: the old block's blackhole removed, the
// new one's added. A route of another protocol at the block is a conflict unless the object
// owns it (adopted).
func blackholeSteps(h *dataplane.Handle, owned, claimed []string, spec *pb.IpPool) ([]dataplane.Step, error) {
	var steps []dataplane.Step
	claims := map[string]bool{}
	for _, k := range claimed {
		claims[k] = true
	}
	for _, k := range owned {
		if claims[k] {
			continue
		}
		_, dst := dataplane.SplitKey(k)
		if p, err := netip.ParsePrefix(dst); err == nil {
			s, err := removeStep(h, p)
			if err != nil {
				return nil, err
			}
			steps = append(steps, s...)
		}
	}
	block, ok := bgp.PoolBlock(spec)
	if !ok {
		return steps, nil
	}
	existing, err := routesAt(h, block.Prefix)
	if err != nil {
		return nil, err
	}
	ownsIt := contains(owned, dataplane.RouteKey(block.Prefix.String(), 0))
	for _, rt := range existing {
		if isOurBlackhole(rt) {
			return steps, nil
		}
		if !ownsIt {
			return nil, reconcile.Conflictf("route %s is in the kernel and nodenet does not own it (%s); remove it, or import the pool to adopt a blackhole made by hand",
				block.Prefix, h.DescribeRoute(rt))
		}
	}
	rt := blackhole(block.Prefix)
	return append(steps, dataplane.Step{
		Change: dataplane.NewChange(pb.Change_ADD, "route", block.Prefix.String(), "blackhole proto "+dataplane.RouteProtocol.String()),
		Desc:   "blackhole " + block.Prefix.String(),
		Do:     func() error { return h.RouteReplace(rt) },
		Undo:   func() error { return ignoreMissing(h.RouteDel(rt)) },
	}), nil
}

// removeStep removes the object's blackhole of a block it no longer has.
func removeStep(h *dataplane.Handle, p netip.Prefix) ([]dataplane.Step, error) {
	existing, err := routesAt(h, p)
	if err != nil {
		return nil, err
	}
	for _, rt := range existing {
		if !isOurBlackhole(rt) {
			continue
		}
		rt := rt
		return []dataplane.Step{{
			Change: dataplane.NewChange(pb.Change_DELETE, "route", p.String(), "blackhole"),
			Desc:   "blackhole " + p.String(),
			Do:     func() error { return ignoreMissing(h.RouteDel(&rt)) },
			Undo:   func() error { return h.RouteReplace(&rt) },
		}}, nil
	}
	return nil, nil
}

func ignoreMissing(err error) error {
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

func contains(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}
