package ippool

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/bgp"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/cnifile"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/kinds/ippool/ipip"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/kinds/vxlan"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Observe reads every part of the node's share back from the node.
func (r *Reconciler) Observe(_ context.Context, id string, want *pb.Object, owned []string) (*pb.Object, error) {
	h, err := r.dp.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Release()
	spec := want.GetIpPool()
	e := spec.GetEncapsulation()
	return r.observe(h, id, spec, owned, func() (*pb.PoolEncapsulation, error) {
		var out *pb.PoolEncapsulation
		switch {
		case e.GetVxlan() != nil:
			t, err := vxlan.ObserveTunnel(h, id, e.GetVxlan().GetDevice().GetName(), e.GetVxlan(), owned)
			if err != nil {
				return nil, err
			}
			out = &pb.PoolEncapsulation{Vxlan: t}
		case e.GetIpip() != nil:
			t, err := ipip.ObserveTunnel(h, id, e.GetIpip().GetName(), e.GetIpip(), owned)
			if err != nil {
				return nil, err
			}
			out = &pb.PoolEncapsulation{Ipip: t}
		default:
			return nil, nil
		}
		out.Direct, err = observeDirect(h, e.GetDirect())
		return out, err
	})
}

// observe is the node's share as the kernel, the speaker, the NAT table and the CNI directory
// have it. The spec's settings are echoed (they are not in the kernel); everything else is read.
func (r *Reconciler) observe(h *dataplane.Handle, id string, want *pb.IpPool, owned []string, tunnel func() (*pb.PoolEncapsulation, error)) (*pb.Object, error) {
	out := &pb.IpPool{Cidr: want.GetCidr(), Block: want.GetBlock(), Disabled: want.GetDisabled(), DisableBgpExport: want.GetDisableBgpExport(),
		NatOutgoing: want.GetNatOutgoing(), CniFile: want.GetCniFile()}
	var err error
	if out.Blackhole, err = hasBlackhole(h, want); err != nil {
		return nil, err
	}
	if block, ok := bgp.PoolBlock(want); ok {
		out.Advertised = r.sp.Announced(block.Prefix)
	}
	if out.Encapsulation, err = tunnel(); err != nil {
		return nil, err
	}
	if pool, err := netip.ParsePrefix(want.GetCidr()); err == nil {
		if out.Nat, err = r.nat.Observe(pool.Masked()); err != nil {
			return nil, fmt.Errorf("NAT table: %w", err)
		}
	}
	if want.GetCniFile() != "" && r.cniDir != "" {
		if out.CniConfig, err = cnifile.Observe(r.cniDir, want.GetCniFile()); err != nil {
			return nil, err
		}
	}
	return object(id, out), nil
}
