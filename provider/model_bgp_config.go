package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
)

type bgpConfigModel struct {
	ID              types.String   `tfsdk:"id"`
	Cluster         types.String   `tfsdk:"cluster"`
	ASN             types.Int64    `tfsdk:"asn"`
	Mesh            types.Bool     `tfsdk:"node_to_node_mesh"`
	ListenPort      types.Int64    `tfsdk:"listen_port"`
	GracefulRestart types.Object   `tfsdk:"graceful_restart"`
	Keepalive       types.Int64    `tfsdk:"keepalive"`
	HoldTime        types.Int64    `tfsdk:"hold_time"`
	Nodes           types.Set      `tfsdk:"nodes"`
	RouterIDs       types.Map      `tfsdk:"router_ids"`
	Speakers        types.Map      `tfsdk:"speakers"`
	Timeouts        timeouts.Value `tfsdk:"timeouts"`
}

var speakerTypes = map[string]attr.Type{"router_id": types.StringType, "state": types.StringType}

// speakerRunning is a speaker's state when it runs with everything it learned in the kernel;
// the plan expects it of every node, so any other state read back is a change to apply.
const speakerRunning = "running"

func (m *bgpConfigModel) objectID() string { return pb.ObjectID(pb.KindBgpSpeaker, pb.SpeakerName) }
func (m *bgpConfigModel) owner() string    { return "nodenet_bgp_config:" + m.Cluster.ValueString() }

func (m *bgpConfigModel) nodeKeys(ctx context.Context, diags *diag.Diagnostics) []string {
	var names []string
	if !m.Nodes.IsNull() && !m.Nodes.IsUnknown() {
		diags.Append(m.Nodes.ElementsAs(ctx, &names, false)...)
	}
	var keys []string
	for _, n := range names {
		keys = append(keys, m.Cluster.ValueString()+"/"+n)
	}
	return keys
}

// routerIDs are the router ids given, by node name.
func (m *bgpConfigModel) routerIDs(ctx context.Context, diags *diag.Diagnostics) map[string]string {
	out := map[string]string{}
	if !m.RouterIDs.IsNull() && !m.RouterIDs.IsUnknown() {
		diags.Append(m.RouterIDs.ElementsAs(ctx, &out, false)...)
	}
	return out
}

func (m *bgpConfigModel) gracefulRestart(ctx context.Context, diags *diag.Diagnostics) *pb.BgpGracefulRestart {
	var gr struct {
		Enabled     types.Bool  `tfsdk:"enabled"`
		RestartTime types.Int64 `tfsdk:"restart_time"`
	}
	if m.GracefulRestart.IsNull() || m.GracefulRestart.IsUnknown() {
		return &pb.BgpGracefulRestart{Enabled: true, RestartTime: 120}
	}
	diags.Append(m.GracefulRestart.As(ctx, &gr, basetypes.ObjectAsOptions{})...)
	return &pb.BgpGracefulRestart{Enabled: gr.Enabled.ValueBool(), RestartTime: uint32(gr.RestartTime.ValueInt64())}
}

// objects are the speakers of the nodes, each with the others as mesh peers when the mesh
// is on.
func (m *bgpConfigModel) objects(ctx context.Context, f *fleet.Fleet, diags *diag.Diagnostics) fleet.Objects {
	keys := m.nodeKeys(ctx, diags)
	gr := m.gracefulRestart(ctx, diags)
	asn := uint32(m.ASN.ValueInt64())
	rids := m.routerIDs(ctx, diags)
	out := fleet.Objects{}
	for _, k := range keys {
		n, _ := f.Node(k)
		s := &pb.BgpSpeaker{Asn: asn, Address: n.Address, RouterId: rids[nodeName(k)], ListenPort: uint32(m.ListenPort.ValueInt64()), GracefulRestart: gr,
			Timers: &pb.BgpTimers{Keepalive: uint32(m.Keepalive.ValueInt64()), HoldTime: uint32(m.HoldTime.ValueInt64())}}
		if m.Mesh.ValueBool() {
			for _, o := range keys {
				if on, _ := f.Node(o); o != k {
					s.Mesh = append(s.Mesh, &pb.BgpNeighbor{Node: nodeName(o), Address: on.Address, Asn: asn})
				}
			}
		}
		out[k] = &pb.Object{Id: m.objectID(), Owner: m.owner(), Spec: &pb.Object_BgpSpeaker{BgpSpeaker: s}}
	}
	return out
}

// setObserved takes the AS the speakers run with (a change out of band shows as drift), the
// nodes that have a speaker, and each speaker's state: a speaker that lost learned routes
// (deleted by hand) is not "running", which the plan changes. Nodes in down keep their last
// state.
func (m *bgpConfigModel) setObserved(ctx context.Context, observed map[string]*pb.Object, down []string, diags *diag.Diagnostics) {
	prev := map[string]types.Object{}
	if !m.Speakers.IsNull() && !m.Speakers.IsUnknown() {
		diags.Append(m.Speakers.ElementsAs(ctx, &prev, false)...)
	}
	speakers := map[string]attr.Value{}
	var nodes []string
	for _, k := range sortedKeys(observed) {
		s := observed[k].GetBgpSpeaker()
		if s.GetAsn() != 0 && int64(s.GetAsn()) != m.ASN.ValueInt64() {
			m.ASN = types.Int64Value(int64(s.GetAsn())) // drift: the plan sets it back
		}
		if s.GetState() != speakerRunning {
			continue // no speaker runs there: the plan starts it again
		}
		state := speakerRunning
		if n := len(s.GetRoutesMissing()); n > 0 {
			state = fmt.Sprintf("%d learned routes deleted by hand", n)
			diags.AddWarning("Learned routes deleted by hand", fmt.Sprintf("%s: %d routes the speaker learned are no longer in the kernel (%s); apply puts them back.",
				k, n, strings.Join(s.GetRoutesMissing(), ", ")))
		}
		speakers[nodeName(k)] = speakerValue(routerIDOf(s), state)
		nodes = append(nodes, nodeName(k))
	}
	for _, k := range down {
		if v, ok := prev[nodeName(k)]; ok {
			speakers[nodeName(k)] = v
			nodes = append(nodes, nodeName(k))
		}
	}
	sv, d := types.MapValue(types.ObjectType{AttrTypes: speakerTypes}, speakers)
	diags.Append(d...)
	nv, d := types.SetValueFrom(ctx, types.StringType, nodes)
	diags.Append(d...)
	m.Speakers, m.Nodes = sv, nv
}

func routerIDOf(s *pb.BgpSpeaker) string {
	if s.GetRouterId() != "" {
		return s.GetRouterId()
	}
	return s.GetAddress()
}

func speakerValue(routerID, state string) types.Object {
	return types.ObjectValueMust(speakerTypes, map[string]attr.Value{"router_id": types.StringValue(routerID), "state": types.StringValue(state)})
}

// plannedSpeakers is what the plan expects of every node: its speaker running, with its
// address as router id.
func plannedSpeakers(f *fleet.Fleet, keys []string, routerIDs map[string]string, diags *diag.Diagnostics) types.Map {
	speakers := map[string]attr.Value{}
	for _, k := range keys {
		n, _ := f.Node(k)
		rid := n.Address
		if r, ok := routerIDs[nodeName(k)]; ok {
			rid = r
		}
		speakers[nodeName(k)] = speakerValue(rid, speakerRunning)
	}
	v, d := types.MapValue(types.ObjectType{AttrTypes: speakerTypes}, speakers)
	diags.Append(d...)
	return v
}

// ModifyPlan plans the nodes (every node of the cluster unless given), checks that each has
// an address, and asks the agents (a dry run): a node that cannot run a speaker fails the
// plan, naming it.
func (r *BGPConfigResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.data == nil {
		return
	}
	var plan, cfg bgpConfigModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() || plan.Cluster.IsUnknown() || plan.ASN.IsUnknown() || cfg.Nodes.IsUnknown() ||
		plan.GracefulRestart.IsUnknown() || plan.Keepalive.IsUnknown() || plan.HoldTime.IsUnknown() || plan.ListenPort.IsUnknown() {
		return
	}
	if plan.Keepalive.ValueInt64() >= plan.HoldTime.ValueInt64() {
		resp.Diagnostics.AddAttributeError(path.Root("keepalive"), "Invalid timers",
			fmt.Sprintf("keepalive %d must be less than hold_time %d (usually a third of it)", plan.Keepalive.ValueInt64(), plan.HoldTime.ValueInt64()))
		return
	}
	keys := clusterNodes(ctx, r.data.Fleet, plan.Cluster.ValueString(), cfg.Nodes, "nodes", &resp.Diagnostics)
	for _, k := range keys {
		if n, _ := r.data.Fleet.Node(k); n.Address == "" {
			resp.Diagnostics.AddAttributeError(path.Root("nodes"), "Node without an address",
				fmt.Sprintf("%s has no address in the provider's inventory: set clusters.%s.nodes.%s.address (its IPv4 address on the underlay: BGP source, next hop and router id)",
					k, plan.Cluster.ValueString(), nodeName(k)))
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}
	nv, d := types.SetValueFrom(ctx, types.StringType, nodeNames(keys))
	resp.Diagnostics.Append(d...)
	plan.Nodes = nv
	rids := plan.routerIDs(ctx, &resp.Diagnostics)
	for n := range rids {
		if !contains(nodeNames(keys), n) {
			resp.Diagnostics.AddAttributeError(path.Root("router_ids"), "Unknown node", fmt.Sprintf("router_ids: %q is not one of the speakers' nodes (%s)", n, strings.Join(nodeNames(keys), ", ")))
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}
	plan.Speakers = plannedSpeakers(r.data.Fleet, keys, rids, &resp.Diagnostics)
	plan.ID = plan.Cluster
	if _, errs := r.data.Fleet.DryRun(ctx, plan.objects(ctx, r.data.Fleet, &resp.Diagnostics)); len(errs) > 0 {
		resp.Diagnostics.AddError("BGP speakers cannot run", "The agents refused the speakers:\n"+fleet.Join(errs))
		return
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

// ImportState adopts the speakers a cluster's nodes run (by cluster name): the configuration
// is read back from them.
func (r *BGPConfigResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	f := r.data.Fleet
	keys := f.Keys(req.ID)
	if len(keys) == 0 || strings.Contains(req.ID, "/") {
		resp.Diagnostics.AddError("Invalid import ID", fmt.Sprintf("expecting a cluster name (clusters: %s); got %q", strings.Join(f.Clusters(), ", "), req.ID))
		return
	}
	m := bgpConfigModel{ID: types.StringValue(req.ID), Cluster: types.StringValue(req.ID), Timeouts: timeouts.Value{Object: types.ObjectNull(timeoutsType)}}
	adopted, _ := f.Adopt(ctx, m.objectID(), pb.SpeakerName, m.owner(), keys, false)
	if len(adopted) == 0 {
		resp.Diagnostics.AddError("Cannot import the BGP configuration of "+req.ID, "no node of the cluster runs a speaker that nodenet manages")
		return
	}
	observed := map[string]*pb.Object{}
	var first *pb.BgpSpeaker
	for _, k := range sortedKeys(adopted) {
		observed[k] = adopted[k].GetObserved()
		if first == nil {
			first = observed[k].GetBgpSpeaker()
		}
	}
	m.ASN = types.Int64Value(int64(first.GetAsn()))
	m.Mesh = types.BoolValue(len(first.GetMesh()) > 0 || len(adopted) == 1)
	m.ListenPort = types.Int64Value(int64(orDefault(first.GetListenPort(), 179)))
	gr := first.GetGracefulRestart()
	m.GracefulRestart = types.ObjectValueMust(gracefulRestartTypes, map[string]attr.Value{
		"enabled": types.BoolValue(gr.GetEnabled()), "restart_time": types.Int64Value(int64(gr.GetRestartTime()))})
	m.Keepalive = types.Int64Value(int64(orDefault(first.GetTimers().GetKeepalive(), 3)))
	m.HoldTime = types.Int64Value(int64(orDefault(first.GetTimers().GetHoldTime(), 9)))
	m.Speakers = types.MapNull(types.ObjectType{AttrTypes: speakerTypes})
	rids := map[string]string{}
	for k, a := range adopted {
		if s := a.GetObserved().GetBgpSpeaker(); s.GetRouterId() != "" {
			rids[nodeName(k)] = s.GetRouterId()
		}
	}
	m.RouterIDs = types.MapNull(types.StringType)
	if len(rids) > 0 {
		m.RouterIDs, _ = types.MapValueFrom(ctx, types.StringType, rids)
	}
	m.setObserved(ctx, observed, nil, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func orDefault(v, d uint32) uint32 {
	if v == 0 {
		return d
	}
	return v
}
