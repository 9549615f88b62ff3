package provider

import (
	"context"
	"net/netip"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"google.golang.org/protobuf/proto"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
	"github.com/nodenet/terraform-provider-nodenet/provider/link"
	"github.com/nodenet/terraform-provider-nodenet/provider/mesh"
)

// The nodenet_cluster_link model and its conversion: the link's members are nodenet_vxlan_tunnel
// members (memberModel, observed the same way), computed from the clusters instead of given.

const linkOwnerPrefix = "nodenet_cluster_link:"

type clusterLinkModel struct {
	ID            types.String   `tfsdk:"id"`
	Name          types.String   `tfsdk:"name"`
	Clusters      types.Map      `tfsdk:"clusters"`
	Device        types.String   `tfsdk:"device"`
	VNI           types.Int64    `tfsdk:"vni"`
	Port          types.Int64    `tfsdk:"port"`
	OverlayCIDR   types.String   `tfsdk:"overlay_cidr"`
	MTU           types.Int64    `tfsdk:"mtu"`
	SNATExemption types.String   `tfsdk:"snat_exemption"`
	Members       types.Map      `tfsdk:"members"`
	Blocks        types.Map      `tfsdk:"blocks"`
	CalicoIPPools types.Map      `tfsdk:"calico_ippools"`
	Timeouts      timeouts.Value `tfsdk:"timeouts"`
}

type linkClusterModel struct {
	PodCIDR     types.String `tfsdk:"pod_cidr"`
	ServiceCIDR types.String `tfsdk:"service_cidr"`
	BlocksFrom  types.String `tfsdk:"blocks_from"`
	Blocks      types.Map    `tfsdk:"blocks"`
}

var linkClusterType = types.ObjectType{AttrTypes: map[string]attr.Type{
	"pod_cidr": types.StringType, "service_cidr": types.StringType, "blocks_from": types.StringType,
	"blocks": types.MapType{ElemType: types.ListType{ElemType: types.StringType}},
}}

// owner is the identity the agents record for the link's tunnels:
// "nodenet_cluster_link:<name>:<id>" (the name lets an import find the link by name).
func (m *clusterLinkModel) owner() string {
	id := m.ID.ValueString()
	if m.ID.IsNull() || m.ID.IsUnknown() || id == "" {
		id = "new"
	}
	return linkOwnerPrefix + m.Name.ValueString() + ":" + id
}

// linkOfOwner splits a link's owner identity into its name and id (ok false: not a link's).
func linkOfOwner(owner string) (name, id string, ok bool) {
	rest, ok := strings.CutPrefix(owner, linkOwnerPrefix)
	if !ok {
		return "", "", false
	}
	name, id, ok = strings.Cut(rest, ":")
	return name, id, ok
}

// meshDevice is what observing a member's device needs of the link.
func (m *clusterLinkModel) meshDevice() mesh.Input {
	return mesh.Input{Name: m.Device.ValueString(), VNI: m.VNI.ValueInt64(), Port: m.Port.ValueInt64()}
}

func (m *clusterLinkModel) clusters(ctx context.Context, diags *diag.Diagnostics) map[string]linkClusterModel {
	out := map[string]linkClusterModel{}
	if !m.Clusters.IsNull() && !m.Clusters.IsUnknown() {
		diags.Append(m.Clusters.ElementsAs(ctx, &out, false)...)
	}
	return out
}

func clustersValue(ctx context.Context, cs map[string]linkClusterModel, diags *diag.Diagnostics) types.Map {
	v, d := types.MapValueFrom(ctx, linkClusterType, cs)
	diags.Append(d...)
	return v
}

// priorOverlay are the overlay addresses the members had.
func priorOverlay(members map[string]memberModel) map[string]netip.Addr {
	out := map[string]netip.Addr{}
	for k, mm := range members {
		first, _, _ := strings.Cut(mm.Address.ValueString(), ",")
		if p, err := netip.ParsePrefix(strings.TrimSpace(first)); err == nil {
			out[k] = p.Addr()
		}
	}
	return out
}

// linkPlan is a link planned: the link planner's output, the mesh it feeds and the mesh's
// per-node shares.
type linkPlan struct {
	link *link.Plan
	mesh mesh.Input
	plan *mesh.Plan
	// stale are members planned from their last known state (their agents did not answer).
	stale map[string]bool
	infos map[string]*pb.NodeInfo
}

// objects are every node's vxlan_tunnel object (the stale ones left out): the mesh's share,
// with the node's NAT exemption.
func (lp *linkPlan) objects(owner string) fleet.Objects {
	var keys []string
	for _, k := range sortedKeys(lp.plan.Members) {
		if !lp.stale[k] {
			keys = append(keys, k)
		}
	}
	objs := objects(lp.plan, lp.mesh.Name, owner, keys)
	nodeOf := map[string]string{} // overlay IP -> node key
	for k, a := range lp.link.Overlay {
		nodeOf[a.Addr().String()] = k
	}
	for k, o := range objs {
		t := proto.Clone(o.GetVxlanTunnel()).(*pb.VxlanTunnel) // the plan's spec stays as planned
		for _, p := range lp.link.Exempt[k] {
			t.SnatExempt = append(t.SnatExempt, p.String())
		}
		t.HealthCheck = true
		for _, n := range t.GetNeighbors() {
			n.Node = nodeOf[n.GetIp()]
		}
		o.Spec = &pb.Object_VxlanTunnel{VxlanTunnel: t}
	}
	return objs
}

// plannedMembers are the members as planned (ifindex from prior unless recreated).
func (lp *linkPlan) plannedMembers(prior map[string]memberModel, answers map[string]*pb.ApplyResponse) map[string]memberModel {
	out := map[string]memberModel{}
	for _, mb := range lp.mesh.Members {
		mp := lp.plan.Members[mb.Key]
		mm := memberModel{
			Underlay: types.StringValue(mb.Underlay), Address: types.StringValue(mb.Address), MAC: types.StringValue(mp.MAC),
			LocalIP: types.StringValue(mp.LocalIP), MTU: types.Int64Value(mp.MTU), OperState: types.StringValue(stateUp),
			FDB: linesValue(mesh.FDBStrings(mp.Spec)), Neighbors: linesValue(mesh.NeighborStrings(mp.Spec)),
			Routes: linesValue(mesh.RouteStrings(mp.Spec)), Ifindex: types.Int64Unknown(),
		}
		_, recreated := summarize(answers[mb.Key].GetChanges())
		if pm, had := prior[mb.Key]; had && !recreated && !pm.Ifindex.IsNull() && !pm.Ifindex.IsUnknown() && pm.Ifindex.ValueInt64() != 0 {
			mm.Ifindex = pm.Ifindex
		}
		out[mb.Key] = mm
	}
	return out
}

// blocksValue is the blocks attribute: every member's blocks, comma-separated.
func (lp *linkPlan) blocksValue(ctx context.Context, diags *diag.Diagnostics) types.Map {
	out := map[string]string{}
	for k, bs := range lp.link.Blocks {
		var ss []string
		for _, b := range bs {
			ss = append(ss, b.String())
		}
		out[k] = strings.Join(ss, ",")
	}
	return mapValue(ctx, out, diags)
}

// setObserved writes what the nodes answered (members), the blocks planned and the Calico
// IPPools read back into the model.
func (m *clusterLinkModel) setObserved(ctx context.Context, lp *linkPlan, answers map[string]*pb.VxlanTunnel, calico types.Map, diags *diag.Diagnostics) {
	members := lp.plannedMembers(nil, nil)
	in := m.meshDevice()
	for k, mm := range members {
		if t, ok := answers[k]; ok {
			members[k] = observe(mm, in.Name, in, t)
		}
	}
	mv, d := membersValue(members)
	diags.Append(d...)
	m.Members = mv
	m.MTU = types.Int64Value(lp.plan.MTU)
	m.Blocks = lp.blocksValue(ctx, diags)
	m.CalicoIPPools = calico
}

// calicoWanted renders the pools a plan wants, by cluster ("<name> <cidr>" lines).
func calicoWanted(lp *linkPlan) map[string]string {
	out := map[string]string{}
	for c, pools := range lp.link.CalicoPools {
		var lines []string
		for _, p := range pools {
			lines = append(lines, p.Name+" "+p.CIDR.String())
		}
		sort.Strings(lines)
		out[c] = strings.Join(lines, "\n")
	}
	return out
}
