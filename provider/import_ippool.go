package provider

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
)

// ImportState adopts a pool by `<cluster>/<cidr>` (like demo/10.244.0.0/16): every node of
// the cluster with a blackhole route inside the pool (made by hand or by Calico's BIRD, or a
// block nodenet manages) gets that block as its allocation. It looks on every node first,
// so a node that cannot be adopted adopts nothing anywhere.
func (r *IPPoolResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	cluster, cidr, _ := strings.Cut(req.ID, "/")
	pool, err := pb.ParseCIDR("id", cidr)
	if err != nil || cluster == "" {
		resp.Diagnostics.AddError("Invalid import ID", fmt.Sprintf("expecting <cluster>/<cidr>, like demo/10.244.0.0/16; got %q", req.ID))
		return
	}
	f := r.data.Fleet
	keys := f.Keys(cluster)
	if len(keys) == 0 {
		resp.Diagnostics.AddError("Invalid import ID", fmt.Sprintf("cluster %q is not configured (clusters: %s)", cluster, strings.Join(f.Clusters(), ", ")))
		return
	}
	m := ipPoolModel{ID: types.StringValue(cluster + "/" + pool.String()), Cluster: types.StringValue(cluster), CIDR: types.StringValue(pool.String())}
	look, errs := f.Adopt(ctx, m.objectID(), pool.String(), "", keys, true)
	if len(errs) > 0 {
		resp.Diagnostics.AddError("Cannot import pool "+pool.String(), fleet.Join(errs))
		return
	}
	var found []string
	bits := 0
	for _, k := range sortedKeys(look) {
		b, err := netip.ParsePrefix(look[k].GetObserved().GetIpPool().GetBlock())
		if err != nil {
			continue
		}
		if bits != 0 && b.Bits() != bits {
			resp.Diagnostics.AddError("Cannot import pool "+pool.String(), fmt.Sprintf("its blocks have different sizes (/%d and /%d on %s); a pool has one block size", bits, b.Bits(), k))
			return
		}
		bits = b.Bits()
		found = append(found, k)
	}
	if len(found) == 0 {
		resp.Diagnostics.AddError("Cannot import pool "+pool.String(), fmt.Sprintf("no node of %s has a block of it (a blackhole route inside %s)", cluster, pool))
		return
	}
	adopted, errs := f.Adopt(ctx, m.objectID(), pool.String(), m.owner(), found, false)
	if len(errs) > 0 {
		f.Release(ctx, m.objectID(), m.owner(), sortedKeys(adopted))
		resp.Diagnostics.AddError("Cannot import pool "+pool.String(), fleet.Join(errs))
		return
	}
	observed := map[string]*pb.Object{}
	export := true
	for k, a := range adopted {
		observed[k] = a.GetObserved()
		export = export && !a.GetObserved().GetIpPool().GetDisableBgpExport()
	}
	m.BlockSize = types.Int64Value(int64(bits))
	m.Disabled = types.BoolValue(false)
	m.DisableBGPExport = types.BoolValue(!export)
	nodes, d := types.SetValueFrom(ctx, types.StringType, nodeNames(found))
	resp.Diagnostics.Append(d...)
	m.Nodes = nodes
	m.Timeouts = timeouts.Value{Object: types.ObjectNull(timeoutsType)}
	// An import adopts the blocks: NAT and encapsulation start as nodenet's defaults, and a
	// configuration that asks for them plans them on the next apply.
	m.NATOutgoing = types.BoolValue(false)
	m.Encapsulation, m.EncapsulationMode = types.StringValue(encapNone), types.StringValue(modeAlways)
	m.VXLANVNI, m.VXLANPort = types.Int64Value(4096), types.Int64Value(int64(pb.DefaultVxlanPort))
	m.TunnelDevice, m.MTU = types.StringValue(""), types.Int64Null()
	m.NAT, m.Tunnels, m.CNIConfig = types.MapNull(types.StringType), types.MapNull(types.StringType), types.MapNull(types.StringType)
	m.setObserved(ctx, observed, nil, &resp.Diagnostics)
	// The CNI configurations are rendered from the blocks and the nodes' answers, as a plan
	// renders them.
	var d2 diag.Diagnostics
	if pp := r.planNodes(ctx, &m, true, &d2); pp != nil && !d2.HasError() {
		m.CNIConfig = mapValue(ctx, pp.cni, &resp.Diagnostics)
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
