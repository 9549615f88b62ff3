package ippool

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/cnifile"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/kinds/vxlan"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Delete removes the node's share, all or nothing: the blackhole, the tunnel with its routes
// and the direct routes, the pool's part of the NAT table, the CNI file; then the block is
// withdrawn. Only what the object owns goes (a device must carry its mark).
func (r *Reconciler) Delete(ctx context.Context, id string, owned []string, dryRun bool) ([]*pb.Change, error) {
	h, err := r.dp.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Release()
	steps, err := r.deleteSteps(h, id, owned)
	if err != nil {
		return nil, err
	}
	changes, err := r.sp.ApplyBlock(ctx, id, nil, true)
	if err != nil {
		return nil, err
	}
	changes = append(dataplane.Changes(steps), changes...)
	if dryRun {
		return changes, nil
	}
	steps = append(steps, dataplane.Step{Desc: "bgp withdrawal", Do: func() error {
		_, err := r.sp.ApplyBlock(ctx, id, nil, false)
		return err
	}})
	return changes, dataplane.Run("ip_pool "+id, steps, nil)
}

func (r *Reconciler) deleteSteps(h *dataplane.Handle, id string, owned []string) ([]dataplane.Step, error) {
	var steps []dataplane.Step
	for _, k := range owned {
		_, dst := dataplane.SplitKey(k)
		if p, err := netip.ParsePrefix(dst); err == nil {
			s, err := removeStep(h, p) // only a blackhole of the object's
			if err != nil {
				return nil, err
			}
			steps = append(steps, s...)
		}
	}
	devices := ownedDevices(owned)
	if len(devices) == 0 {
		devices = []string{""} // no tunnel: its routes only
	}
	routes := owned
	for _, dev := range devices {
		del, err := vxlan.DeleteTunnelSteps(h, id, dev, routes)
		if err != nil {
			return nil, err
		}
		steps = append(steps, del...)
		routes = nil // the first delete takes the routes
	}
	natSteps, err := r.nat.Steps(id, nil)
	if err != nil {
		return nil, fmt.Errorf("NAT table: %w", err)
	}
	steps = append(steps, natSteps...)
	for _, path := range ownedFiles(owned) {
		s, err := cnifile.DeleteSteps(filepath.Dir(path), filepath.Base(path))
		if err != nil {
			return nil, err
		}
		steps = append(steps, s...)
	}
	return steps, nil
}
