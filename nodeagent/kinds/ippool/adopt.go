package ippool

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Adopt finds a blackhole route made by hand inside the pool (as the seed's BIRD config or
// `ip route add blackhole` made it) and takes it as the node's block: the route gets
// nodenet's protocol; Release puts the old one back.
func (r *Reconciler) Adopt(_ context.Context, id, name string, dryRun bool) (*reconcile.Adoption, error) {
	pool, err := pb.ParseCIDR("name", name)
	if err != nil {
		return nil, err
	}
	h, err := r.dp.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Release()
	routes, err := h.MainRoutes()
	if err != nil {
		return nil, err
	}
	var found []netlink.Route
	for _, rt := range routes {
		if p, ok := dstPrefix(rt); ok && rt.Type == unix.RTN_BLACKHOLE && pool.Contains(p.Addr()) && p.Bits() >= pool.Bits() {
			found = append(found, rt)
		}
	}
	switch {
	case len(found) == 0:
		return &reconcile.Adoption{Observed: object(id, &pb.IpPool{Cidr: pool.String()})}, nil
	case len(found) > 1:
		return nil, reconcile.Conflictf("%d blackhole routes inside %s on this node; a node has one block of a pool", len(found), pool)
	}
	rt := found[0]
	p, _ := dstPrefix(rt)
	key := dataplane.RouteKey(p.String(), 0)
	adoption := &reconcile.Adoption{
		Observed: object(id, &pb.IpPool{Cidr: pool.String(), Block: p.String(), Blackhole: true}),
		Owned:    []string{key},
		Marks:    map[string]string{key: fmt.Sprint(int(rt.Protocol))},
	}
	if !dryRun && rt.Protocol != dataplane.RouteProtocol {
		if err := h.RouteReplace(blackhole(p)); err != nil {
			return nil, err
		}
	}
	return adoption, nil
}

// Release gives an adopted blackhole its old protocol back.
func (r *Reconciler) Release(_ context.Context, _ string, marks map[string]string) error {
	h, err := r.dp.Handle()
	if err != nil {
		return err
	}
	defer h.Release()
	for key, proto := range marks {
		_, dst := dataplane.SplitKey(key)
		p, err := netip.ParsePrefix(dst)
		if err != nil {
			continue
		}
		var n int
		fmt.Sscan(proto, &n)
		rt := blackhole(p)
		rt.Protocol = netlink.RouteProtocol(n)
		if err := h.RouteReplace(rt); err != nil {
			return err
		}
	}
	return nil
}

// DesiredFromObserved: an adopted pool is its block (Adopt finds nothing else); NAT,
// encapsulation and the CNI file come with the next apply of the imported resource.
func (r *Reconciler) DesiredFromObserved(o *pb.Object) (*pb.Object, error) {
	p := o.GetIpPool()
	return object(o.GetId(), &pb.IpPool{Cidr: p.GetCidr(), Block: p.GetBlock(), Disabled: p.GetDisabled(), DisableBgpExport: p.GetDisableBgpExport()}), nil
}

func dstPrefix(rt netlink.Route) (netip.Prefix, bool) {
	if rt.Dst == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(rt.Dst.IP.To4())
	bits, _ := rt.Dst.Mask.Size()
	return netip.PrefixFrom(a, bits), ok
}
