package provider

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

type ipPoolModel struct {
	ID                types.String   `tfsdk:"id"`
	Cluster           types.String   `tfsdk:"cluster"`
	CIDR              types.String   `tfsdk:"cidr"`
	BlockSize         types.Int64    `tfsdk:"block_size"`
	Disabled          types.Bool     `tfsdk:"disabled"`
	DisableBGPExport  types.Bool     `tfsdk:"disable_bgp_export"`
	Nodes             types.Set      `tfsdk:"nodes"`
	NATOutgoing       types.Bool     `tfsdk:"nat_outgoing"`
	Encapsulation     types.String   `tfsdk:"encapsulation"`
	EncapsulationMode types.String   `tfsdk:"encapsulation_mode"`
	VXLANVNI          types.Int64    `tfsdk:"vxlan_vni"`
	VXLANPort         types.Int64    `tfsdk:"vxlan_port"`
	TunnelDevice      types.String   `tfsdk:"tunnel_device"`
	MTU               types.Int64    `tfsdk:"mtu"`
	CNI               *poolCNIModel  `tfsdk:"cni"`
	Allocations       types.Map      `tfsdk:"allocations"`
	NAT               types.Map      `tfsdk:"nat"`
	Tunnels           types.Map      `tfsdk:"tunnels"`
	CNIConfig         types.Map      `tfsdk:"cni_config"`
	Timeouts          timeouts.Value `tfsdk:"timeouts"`
}

type poolCNIModel struct {
	Network types.String `tfsdk:"network"`
	File    types.String `tfsdk:"file"`
}

const (
	encapNone       = "none"
	encapVXLAN      = "vxlan"
	encapIPIP       = "ipip"
	modeAlways      = "always"
	modeCrossSubnet = "cross_subnet"
)

func (m *ipPoolModel) objectID() string { return pb.ObjectID(pb.KindIpPool, m.CIDR.ValueString()) }
func (m *ipPoolModel) owner() string    { return "nodenet_ippool:" + m.ID.ValueString() }

func (m *ipPoolModel) allocations(ctx context.Context, diags *diag.Diagnostics) map[string]string {
	return stringMap(ctx, m.Allocations, diags)
}

// stringMap is a map attribute's known elements (none when it is null or unknown).
func stringMap(ctx context.Context, v types.Map, diags *diag.Diagnostics) map[string]string {
	out := map[string]string{}
	if !v.IsNull() && !v.IsUnknown() {
		diags.Append(v.ElementsAs(ctx, &out, false)...)
	}
	return out
}

// nodeKeys are the keys of the pool's nodes: those it has, with a block or without.
func (m *ipPoolModel) nodeKeys(ctx context.Context, diags *diag.Diagnostics) []string {
	var names []string
	if !m.Nodes.IsNull() && !m.Nodes.IsUnknown() {
		diags.Append(m.Nodes.ElementsAs(ctx, &names, false)...)
	}
	for n := range m.allocations(ctx, diags) {
		if !contains(names, n) {
			names = append(names, n) // a state from before pools had blockless nodes
		}
	}
	var keys []string
	for _, n := range names {
		keys = append(keys, m.Cluster.ValueString()+"/"+n)
	}
	sort.Strings(keys)
	return keys
}

// spec is the part of a node's object the model says alone (the planner adds the
// encapsulation and the CNI configuration, which need the nodes' answers).
func (m *ipPoolModel) spec(block string) *pb.IpPool {
	return &pb.IpPool{
		Cidr: m.CIDR.ValueString(), Block: block, Disabled: m.Disabled.ValueBool(), DisableBgpExport: m.DisableBGPExport.ValueBool(),
		NatOutgoing: m.NATOutgoing.ValueBool(),
	}
}

func (m *ipPoolModel) object(p *pb.IpPool) *pb.Object {
	return &pb.Object{Id: m.objectID(), Owner: m.owner(), Spec: &pb.Object_IpPool{IpPool: p}}
}

// setObserved fills the computed attributes from what the nodes have: a node whose blackhole
// is gone, or that does not have the pool, has no allocation (the next plan gives it again);
// its NAT lines, tunnel entries and CNI file as they are. Nodes in down keep their last
// known values.
func (m *ipPoolModel) setObserved(ctx context.Context, observed map[string]*pb.Object, down []string, diags *diag.Diagnostics) {
	prev := map[string]map[string]string{
		"alloc": m.allocations(ctx, diags), "nat": stringMap(ctx, m.NAT, diags),
		"tunnels": stringMap(ctx, m.Tunnels, diags), "cni": stringMap(ctx, m.CNIConfig, diags),
	}
	out := map[string]map[string]string{"alloc": {}, "nat": {}, "tunnels": {}, "cni": {}}
	for k, o := range observed {
		p, n := o.GetIpPool(), nodeName(k)
		if p.GetBlock() != "" && p.GetBlackhole() {
			out["alloc"][n] = p.GetBlock()
		}
		out["nat"][n] = natLines(p.GetCidr(), p.GetNat())
		if p.GetBlock() == "" {
			continue
		}
		out["tunnels"][n] = tunnelLines(p.GetEncapsulation())
		switch {
		case m.CNI != nil:
			out["cni"][n] = p.GetCniConfig() // the node's file, as it is
		case prev["cni"][n] != "":
			out["cni"][n] = prev["cni"][n] // rendered only, not on the node: nothing to observe
		}
	}
	for _, k := range down {
		for attr := range out {
			if v, ok := prev[attr][nodeName(k)]; ok {
				out[attr][nodeName(k)] = v
			}
		}
	}
	m.Allocations = mapValue(ctx, out["alloc"], diags)
	m.NAT = mapValue(ctx, out["nat"], diags)
	m.Tunnels = mapValue(ctx, out["tunnels"], diags)
	m.CNIConfig = mapValue(ctx, out["cni"], diags)
}

func mapValue(ctx context.Context, m map[string]string, diags *diag.Diagnostics) types.Map {
	v, d := types.MapValueFrom(ctx, types.StringType, m)
	diags.Append(d...)
	return v
}

// ValidateConfig checks the block size against the pool.
func (r *IPPoolResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m ipPoolModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	noEncap := !m.Encapsulation.IsUnknown() && (m.Encapsulation.IsNull() || m.Encapsulation.ValueString() == encapNone)
	if m.EncapsulationMode.ValueString() == modeCrossSubnet && noEncap {
		resp.Diagnostics.AddAttributeError(path.Root("encapsulation_mode"), "Nothing to encapsulate",
			"encapsulation_mode cross_subnet encapsulates traffic to nodes in other subnets: it needs encapsulation vxlan or ipip (encapsulation is none)")
	}
	if !m.TunnelDevice.IsNull() && !m.TunnelDevice.IsUnknown() && noEncap {
		resp.Diagnostics.AddAttributeError(path.Root("tunnel_device"), "No tunnel",
			"tunnel_device names the pool's tunnel device: it needs encapsulation vxlan or ipip (encapsulation is none)")
	}
	if m.CIDR.IsUnknown() || m.CIDR.IsNull() || m.BlockSize.IsUnknown() || m.BlockSize.IsNull() {
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
