package provider

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
	"github.com/nodenet/terraform-provider-nodenet/provider/ipam"
)

type ipPoolModel struct {
	ID               types.String   `tfsdk:"id"`
	Cluster          types.String   `tfsdk:"cluster"`
	CIDR             types.String   `tfsdk:"cidr"`
	BlockSize        types.Int64    `tfsdk:"block_size"`
	Disabled         types.Bool     `tfsdk:"disabled"`
	DisableBGPExport types.Bool     `tfsdk:"disable_bgp_export"`
	Nodes            types.Set      `tfsdk:"nodes"`
	Allocations      types.Map      `tfsdk:"allocations"`
	Timeouts         timeouts.Value `tfsdk:"timeouts"`
}

func (m *ipPoolModel) objectID() string { return pb.ObjectID(pb.KindIpPool, m.CIDR.ValueString()) }
func (m *ipPoolModel) owner() string    { return "nodenet_ippool:" + m.ID.ValueString() }

func (m *ipPoolModel) allocations(ctx context.Context, diags *diag.Diagnostics) map[string]string {
	out := map[string]string{}
	if !m.Allocations.IsNull() && !m.Allocations.IsUnknown() {
		diags.Append(m.Allocations.ElementsAs(ctx, &out, false)...)
	}
	return out
}

// allocationKeys are the node keys of the allocations.
func (m *ipPoolModel) allocationKeys(ctx context.Context, diags *diag.Diagnostics) []string {
	var keys []string
	for _, n := range sortedKeys(m.allocations(ctx, diags)) {
		keys = append(keys, m.Cluster.ValueString()+"/"+n)
	}
	return keys
}

// objects are the per-node objects of the allocations.
func (m *ipPoolModel) objects(ctx context.Context, diags *diag.Diagnostics) fleet.Objects {
	out := fleet.Objects{}
	for node, block := range m.allocations(ctx, diags) {
		out[m.Cluster.ValueString()+"/"+node] = &pb.Object{Id: m.objectID(), Owner: m.owner(), Spec: &pb.Object_IpPool{IpPool: &pb.IpPool{
			Cidr: m.CIDR.ValueString(), Block: block, Disabled: m.Disabled.ValueBool(), DisableBgpExport: m.DisableBGPExport.ValueBool(),
		}}}
	}
	return out
}

// setObserved fills the allocations from what the nodes have: a node whose blackhole is
// gone, or that does not have the pool, has no allocation (the next plan gives it again).
// Nodes in down keep their last known allocation.
func (m *ipPoolModel) setObserved(ctx context.Context, observed map[string]*pb.Object, down []string, diags *diag.Diagnostics) {
	prev := m.allocations(ctx, diags)
	alloc := map[string]string{}
	for k, o := range observed {
		p := o.GetIpPool()
		if p.GetBlock() != "" && p.GetBlackhole() {
			alloc[nodeName(k)] = p.GetBlock()
		}
	}
	for _, k := range down {
		if b, ok := prev[nodeName(k)]; ok {
			alloc[nodeName(k)] = b
		}
	}
	v, d := types.MapValueFrom(ctx, types.StringType, alloc)
	diags.Append(d...)
	m.Allocations = v
}

// ValidateConfig checks the block size against the pool.
func (r *IPPoolResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m ipPoolModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || m.CIDR.IsUnknown() || m.CIDR.IsNull() || m.BlockSize.IsUnknown() || m.BlockSize.IsNull() {
		return
	}
	pool, err := netip.ParsePrefix(m.CIDR.ValueString())
	if err != nil {
		return // the attribute's validator reports it
	}
	if bs := m.BlockSize.ValueInt64(); bs < int64(pool.Bits()) || bs > 32 {
		resp.Diagnostics.AddAttributeError(path.Root("block_size"), "Invalid block size",
			fmt.Sprintf("block_size %d is outside the pool %s: allowed %d to 32 (blocks are parts of the pool)", bs, pool, pool.Bits()))
	}
}

// ModifyPlan plans the nodes and their blocks: existing allocations stay, new nodes take the
// lowest free blocks, a disabled pool gives no new block. Pools overlapping another pool
// planned in this run, or one the nodes have, are refused.
func (r *IPPoolResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.data == nil {
		return
	}
	var plan, state ipPoolModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if !req.State.Raw.IsNull() {
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	}
	var cfg ipPoolModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() || plan.Cluster.IsUnknown() || plan.CIDR.IsUnknown() || plan.BlockSize.IsUnknown() || cfg.Nodes.IsUnknown() {
		return
	}
	pool, err := netip.ParsePrefix(plan.CIDR.ValueString())
	if err != nil {
		return
	}
	if other := r.data.pools.claim(plan.Cluster.ValueString(), pool); other != "" {
		resp.Diagnostics.AddAttributeError(path.Root("cidr"), "Overlapping pools",
			fmt.Sprintf("pool %s overlaps pool %s of cluster %s: the pools of a cluster must not overlap", pool, other, plan.Cluster.ValueString()))
		return
	}
	keys := clusterNodes(ctx, r.data.Fleet, plan.Cluster.ValueString(), cfg.Nodes, "nodes", &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	r.checkAgentsOverlap(ctx, pool, plan.objectID(), keys, &resp.Diagnostics)
	prev := map[string]netip.Prefix{}
	for n, b := range state.allocations(ctx, &resp.Diagnostics) {
		if p, err := netip.ParsePrefix(b); err == nil {
			prev[n] = p
		}
	}
	var nodes []string
	for _, k := range keys {
		if _, had := prev[nodeName(k)]; had || !plan.Disabled.ValueBool() {
			nodes = append(nodes, nodeName(k))
		}
	}
	alloc, err := ipam.Allocate(pool, int(plan.BlockSize.ValueInt64()), nodes, prev)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("cidr"), "Pool too small", err.Error())
		return
	}
	out := map[string]string{}
	for n, b := range alloc {
		out[n] = b.String()
	}
	nodesV, d := types.SetValueFrom(ctx, types.StringType, nodeNames(keys))
	resp.Diagnostics.Append(d...)
	allocV, d := types.MapValueFrom(ctx, types.StringType, out)
	resp.Diagnostics.Append(d...)
	plan.Nodes, plan.Allocations = nodesV, allocV
	if plan.ID.IsUnknown() {
		plan.ID = types.StringValue(plan.Cluster.ValueString() + "/" + pool.String())
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

// checkAgentsOverlap refuses a pool that overlaps another pool the nodes have.
func (r *IPPoolResource) checkAgentsOverlap(ctx context.Context, pool netip.Prefix, id string, keys []string, diags *diag.Diagnostics) {
	lists, _ := r.data.Fleet.List(ctx, keys)
	for _, k := range sortedKeys(lists) {
		for _, o := range lists[k] {
			other, err := netip.ParsePrefix(o.GetIpPool().GetCidr())
			if err != nil || o.GetId() == id || !other.Overlaps(pool) {
				continue
			}
			diags.AddAttributeError(path.Root("cidr"), "Overlapping pools",
				fmt.Sprintf("pool %s overlaps pool %s, which node %s has (managed by %s)", pool, other, k, o.GetOwner()))
			return
		}
	}
}

// withTimeout bounds an operation by the resource's timeouts value (or def).
func opTimeout(ctx context.Context, get func(context.Context, time.Duration) (time.Duration, diag.Diagnostics), def time.Duration, diags *diag.Diagnostics) (context.Context, context.CancelFunc) {
	limit, d := get(ctx, def)
	diags.Append(d...)
	return context.WithTimeout(ctx, limit)
}

// configuredData reports an error when the provider was not configured.
func configuredData(d *providerData, diags *diag.Diagnostics) bool {
	if d == nil {
		diags.AddError("Provider not configured", "the nodenet provider has no configuration; this is a bug in the provider or Terraform")
		return false
	}
	return true
}
