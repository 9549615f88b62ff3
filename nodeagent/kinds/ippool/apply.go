package ippool

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/bgp"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/cnifile"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/kinds/ippool/ipip"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/kinds/vxlan"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Apply makes the node's share of the pool what the spec says, all or nothing: the block's
// blackhole and its announcement, the encapsulation, the NAT table, the CNI file.
func (r *Reconciler) Apply(ctx context.Context, req reconcile.Request) (*reconcile.Result, error) {
	spec := req.Spec.GetIpPool()
	h, err := r.dp.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Release()
	var want *bgp.Block
	if block, ok := bgp.PoolBlock(spec); ok {
		want = &block
	}
	var announce []dataplane.Step
	if !req.DryRun {
		announce = []dataplane.Step{r.announceStep(ctx, req.ID, want)}
	}
	claims := r.Claims(req.Spec)
	steps, observeTunnel, err := r.plan(h, req, claims, announce)
	if err != nil {
		return nil, err
	}
	changes := dataplane.Changes(steps)
	more, err := r.sp.ApplyBlock(ctx, req.ID, want, true)
	if err != nil {
		return nil, err
	}
	changes = append(changes, more...)
	if !req.DryRun {
		if err := dataplane.Run("ip_pool "+spec.GetCidr(), steps, nil); err != nil {
			return nil, err
		}
	}
	obs, err := r.observe(h, req.ID, spec, claims, observeTunnel)
	if err != nil {
		return nil, err
	}
	return &reconcile.Result{Observed: obs, Changes: changes, Owned: claims}, nil
}

// announceStep has the speaker announce the block (nil: none), and the block it announced
// before if a later step fails.
func (r *Reconciler) announceStep(ctx context.Context, id string, want *bgp.Block) dataplane.Step {
	var undo func() error
	return dataplane.Step{
		Desc: "bgp announcement",
		Do: func() error {
			var prev *bgp.Block
			if b, ok := r.sp.Block(id); ok {
				prev = &b
			}
			if _, err := r.sp.ApplyBlock(ctx, id, want, false); err != nil {
				return err
			}
			undo = func() error {
				_, err := r.sp.ApplyBlock(context.WithoutCancel(ctx), id, prev, false)
				return err
			}
			return nil
		},
		Undo: func() error {
			if undo == nil {
				return nil
			}
			return undo()
		},
	}
}

// plan is every part's steps, in the order they run, and how to observe the tunnel after.
// announce runs right after the blackhole: peers are told of the block as soon as the
// node drops its traffic rather than loop it; the tunnel, the NAT table and the CNI file
// do not change where the block's traffic goes, and GoBGP's UPDATE does not wait for them.
func (r *Reconciler) plan(h *dataplane.Handle, req reconcile.Request, claims []string, announce []dataplane.Step) ([]dataplane.Step, func() (*pb.PoolEncapsulation, error), error) {
	spec := req.Spec.GetIpPool()
	steps, err := blackholeSteps(h, req.Owned, claims, spec)
	if err != nil {
		return nil, nil, err
	}
	steps = append(steps, announce...)
	tunnel, observeTunnel, err := r.encapSteps(h, req, spec.GetEncapsulation())
	if err != nil {
		return nil, nil, err
	}
	steps = append(steps, tunnel...)
	natSteps, err := r.nat.Steps(req.ID, contribution(spec))
	if err != nil {
		return nil, nil, fmt.Errorf("NAT table: %w", err)
	}
	steps = append(steps, natSteps...)
	cni, err := r.cniSteps(req.Owned, spec)
	if err != nil {
		return nil, nil, err
	}
	return append(steps, cni...), observeTunnel, nil
}

// encapSteps plan the encapsulation: the tunnel of the spec (a device of another name or
// type that the object had is deleted after it), then the direct routes; without
// encapsulation, the tunnel the object had is deleted with its routes. It also returns how to
// read the encapsulation back.
func (r *Reconciler) encapSteps(h *dataplane.Handle, req reconcile.Request, e *pb.PoolEncapsulation) ([]dataplane.Step, func() (*pb.PoolEncapsulation, error), error) {
	direct := directKeys(e)
	owned := without(req.Owned, direct) // the tunnel's plan deletes stale routes among these
	had := ownedDevices(req.Owned)
	var steps []dataplane.Step
	var observe func() (*pb.PoolEncapsulation, error)
	switch {
	case e.GetVxlan() != nil:
		p, err := vxlan.TunnelSteps(h, req.ID, "ip_pool.encapsulation.vxlan.", e.GetVxlan(), owned, req.HeldBy)
		if err != nil {
			return nil, nil, err
		}
		steps = p.Steps
		observe = func() (*pb.PoolEncapsulation, error) {
			t, err := p.Observe()
			return &pb.PoolEncapsulation{Vxlan: t}, err
		}
	case e.GetIpip() != nil:
		local, _ := netip.ParseAddr(e.GetIpip().GetLocalIp())
		p, err := ipip.TunnelSteps(h, req.ID, e.GetIpip(), local, owned, req.HeldBy)
		if err != nil {
			return nil, nil, err
		}
		steps = p.Steps
		observe = func() (*pb.PoolEncapsulation, error) {
			t, err := p.Observe()
			return &pb.PoolEncapsulation{Ipip: t}, err
		}
	default:
		observe = func() (*pb.PoolEncapsulation, error) { return nil, nil }
	}
	for _, dev := range had {
		if dev == tunnelName(e) {
			continue
		}
		var gone []string
		if e == nil {
			gone = req.Owned // the tunnel's routes and any direct ones go too; never the blackhole
		}
		del, err := vxlan.DeleteTunnelSteps(h, req.ID, dev, gone)
		if err != nil {
			return nil, nil, err
		}
		steps = append(steps, del...)
	}
	ds, err := directSteps(h, dataplane.NewOwnership(req.ID, req.Owned, req.HeldBy), e.GetDirect())
	if err != nil {
		return nil, nil, err
	}
	withDirect := func() (*pb.PoolEncapsulation, error) {
		out, err := observe()
		if err != nil || out == nil {
			return out, err
		}
		out.Direct, err = observeDirect(h, e.GetDirect())
		return out, err
	}
	return append(steps, ds...), withDirect, nil
}

// cniSteps write the block's CNI configuration, or remove the one the object wrote before
// (no configuration now, or another file name).
func (r *Reconciler) cniSteps(owned []string, spec *pb.IpPool) ([]dataplane.Step, error) {
	var steps []dataplane.Step
	wantPath := ""
	if spec.GetCniFile() != "" {
		path, err := cnifile.Path(r.cniDir, spec.GetCniFile())
		if err != nil {
			return nil, err
		}
		wantPath = path
		s, err := cnifile.Steps(r.cniDir, spec.GetCniFile(), spec.GetCniConfig(), contains(owned, cnifile.FileKey(path)))
		if err != nil {
			return nil, err
		}
		steps = append(steps, s...)
	}
	for _, path := range ownedFiles(owned) {
		if path == wantPath {
			continue
		}
		s, err := cnifile.DeleteSteps(filepath.Dir(path), filepath.Base(path))
		if err != nil {
			return nil, err
		}
		steps = append(steps, s...)
	}
	return steps, nil
}

// tunnelName is the encapsulation's device name ("" for none).
func tunnelName(e *pb.PoolEncapsulation) string {
	if v := e.GetVxlan(); v != nil {
		return v.GetDevice().GetName()
	}
	return e.GetIpip().GetName()
}
