// Package ippool is the ip_pool kind: an IP pool's share of one node, the node's block of the
// pool with a blackhole route for it (as Calico's BIRD makes: traffic to an address of the
// block that no pod has is dropped here instead of bouncing between nodes) and the block
// announced by the node's BGP speaker.
package ippool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/bgp"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Reconciler manages ip_pool objects.
type Reconciler struct {
	dp *dataplane.Dataplane
	sp *bgp.Speaker
}

var _ reconcile.Reconciler = (*Reconciler)(nil)

// New returns the ip_pool reconciler; sp announces the blocks.
func New(dp *dataplane.Dataplane, sp *bgp.Speaker) *Reconciler { return &Reconciler{dp: dp, sp: sp} }

// Kind is "ip_pool".
func (r *Reconciler) Kind() string { return pb.KindIpPool }

// ValidateName: the pool's CIDR.
func (r *Reconciler) ValidateName(name string) error {
	_, err := pb.ParseCIDR("id", name)
	return err
}

// Validate runs the contract's rules.
func (r *Reconciler) Validate(o *pb.Object) error {
	_, name, err := pb.SplitObjectID(o.GetId())
	if err != nil {
		return err
	}
	return pb.ValidateIpPool(name, o.GetIpPool())
}

// Restore: the blackhole comes back after a reboot; the announcement is the speaker's, which
// starts from the store at every start.
func (r *Reconciler) Restore() reconcile.RestoreRule { return reconcile.RestoreAfterReboot }

// Claims: the blackhole route of the block.
func (r *Reconciler) Claims(o *pb.Object) []string {
	if b := o.GetIpPool().GetBlock(); b != "" {
		return []string{dataplane.RouteKey(b, 0)}
	}
	return nil
}

func object(id string, p *pb.IpPool) *pb.Object {
	return &pb.Object{Id: id, Spec: &pb.Object_IpPool{IpPool: p}}
}

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

// Apply puts the blackhole of the block in the kernel (removing the one of a block the object
// had before) and has the speaker announce it.
func (r *Reconciler) Apply(ctx context.Context, req reconcile.Request) (*reconcile.Result, error) {
	spec := req.Spec.GetIpPool()
	h, err := r.dp.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Release()
	steps, err := r.plan(h, req, spec)
	if err != nil {
		return nil, err
	}
	block, hasBlock := bgp.PoolBlock(spec)
	var want *bgp.Block
	if hasBlock {
		want = &block
	}
	changes := dataplane.Changes(steps)
	more, err := r.sp.ApplyBlock(ctx, req.ID, want, true)
	if err != nil {
		return nil, err
	}
	changes = append(changes, more...)
	if !req.DryRun {
		steps = append(steps, dataplane.Step{Desc: "bgp announcement", Do: func() error {
			_, err := r.sp.ApplyBlock(ctx, req.ID, want, false)
			return err
		}})
		if err := dataplane.Run("ip_pool "+spec.GetCidr(), steps, nil); err != nil {
			return nil, err
		}
	}
	obs, err := r.observe(h, req.ID, spec)
	if err != nil {
		return nil, err
	}
	return &reconcile.Result{Observed: obs, Changes: changes, Owned: r.Claims(req.Spec)}, nil
}

// plan is the kernel steps: the old block's blackhole removed, the new one's added.
func (r *Reconciler) plan(h *dataplane.Handle, req reconcile.Request, spec *pb.IpPool) ([]dataplane.Step, error) {
	var steps []dataplane.Step
	claims := map[string]bool{}
	for _, k := range r.Claims(req.Spec) {
		claims[k] = true
	}
	for _, k := range req.Owned {
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
	owned := len(req.Owned) > 0 && contains(req.Owned, dataplane.RouteKey(block.Prefix.String(), 0))
	for _, rt := range existing {
		if isOurBlackhole(rt) {
			return steps, nil
		}
		if !owned {
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

func (r *Reconciler) observe(h *dataplane.Handle, id string, want *pb.IpPool) (*pb.Object, error) {
	out := &pb.IpPool{Cidr: want.GetCidr(), Block: want.GetBlock(), Disabled: want.GetDisabled(), DisableBgpExport: want.GetDisableBgpExport()}
	block, ok := bgp.PoolBlock(want)
	if !ok {
		return object(id, out), nil
	}
	existing, err := routesAt(h, block.Prefix)
	if err != nil {
		return nil, err
	}
	for _, rt := range existing {
		if isOurBlackhole(rt) {
			out.Blackhole = true
		}
	}
	out.Advertised = r.sp.Announced(block.Prefix)
	return object(id, out), nil
}

// Observe reads the blackhole and the announcement.
func (r *Reconciler) Observe(_ context.Context, id string, want *pb.Object, _ []string) (*pb.Object, error) {
	h, err := r.dp.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Release()
	return r.observe(h, id, want.GetIpPool())
}

// Delete withdraws the block and removes its blackhole.
func (r *Reconciler) Delete(ctx context.Context, id string, owned []string, dryRun bool) ([]*pb.Change, error) {
	h, err := r.dp.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Release()
	var steps []dataplane.Step
	for _, k := range owned {
		_, dst := dataplane.SplitKey(k)
		if p, err := netip.ParsePrefix(dst); err == nil {
			s, err := removeStep(h, p)
			if err != nil {
				return nil, err
			}
			steps = append(steps, s...)
		}
	}
	changes, err := r.sp.ApplyBlock(ctx, id, nil, true)
	if err != nil {
		return nil, err
	}
	changes = append(dataplane.Changes(steps), changes...)
	if dryRun {
		return changes, nil
	}
	if _, err := r.sp.ApplyBlock(ctx, id, nil, false); err != nil {
		return nil, err
	}
	return changes, dataplane.Run("ip_pool "+id, steps, nil)
}

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

// DesiredFromObserved: the observation is the spec.
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
