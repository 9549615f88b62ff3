package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
)

type reflectorModel struct {
	ID        types.String   `tfsdk:"id"`
	Cluster   types.String   `tfsdk:"cluster"`
	Node      types.String   `tfsdk:"node"`
	ASN       types.Int64    `tfsdk:"asn"`
	ClusterID types.String   `tfsdk:"cluster_id"`
	Clients   types.Set      `tfsdk:"clients"`
	Sessions  types.Map      `tfsdk:"sessions"`
	Timeouts  timeouts.Value `tfsdk:"timeouts"`
}

func (m *reflectorModel) objectID() string {
	return pb.ObjectID(pb.KindBgpReflector, m.Node.ValueString())
}
func (m *reflectorModel) owner() string {
	return "nodenet_route_reflector:" + m.Cluster.ValueString() + "/" + m.Node.ValueString()
}
func (m *reflectorModel) reflectorKey() string {
	return m.Cluster.ValueString() + "/" + m.Node.ValueString()
}

func (m *reflectorModel) clientKeys(ctx context.Context, diags *diag.Diagnostics) []string {
	var names []string
	if !m.Clients.IsNull() && !m.Clients.IsUnknown() {
		diags.Append(m.Clients.ElementsAs(ctx, &names, false)...)
	}
	var keys []string
	for _, n := range names {
		keys = append(keys, m.Cluster.ValueString()+"/"+n)
	}
	return keys
}

// nodeKeys are the reflector and its clients.
func (m *reflectorModel) nodeKeys(ctx context.Context, diags *diag.Diagnostics) []string {
	return append([]string{m.reflectorKey()}, m.clientKeys(ctx, diags)...)
}

// objects: the reflector's cluster id and clients on the reflector; the peering with the
// reflector on every client.
func (m *reflectorModel) objects(ctx context.Context, f *fleet.Fleet, diags *diag.Diagnostics) fleet.Objects {
	asn := uint32(m.ASN.ValueInt64())
	self, _ := f.Node(m.reflectorKey())
	rr := &pb.BgpReflector{Reflector: m.Node.ValueString(), Address: self.Address, Asn: asn, ClusterId: m.ClusterID.ValueString()}
	out := fleet.Objects{}
	for _, k := range m.clientKeys(ctx, diags) {
		n, _ := f.Node(k)
		rr.Clients = append(rr.Clients, &pb.BgpNeighbor{Node: nodeName(k), Address: n.Address, Asn: asn})
		out[k] = m.object(&pb.BgpReflector{Reflector: m.Node.ValueString(), Address: self.Address, Asn: asn})
	}
	out[m.reflectorKey()] = m.object(rr)
	return out
}

func (m *reflectorModel) object(r *pb.BgpReflector) *pb.Object {
	return &pb.Object{Id: m.objectID(), Owner: m.owner(), Spec: &pb.Object_BgpReflector{BgpReflector: r}}
}

// setObserved: each node's session state with the other side; clients that lost their
// peering drop out of clients (the plan adds them again).
func (m *reflectorModel) setObserved(ctx context.Context, observed map[string]*pb.Object, down []string, diags *diag.Diagnostics) {
	sessions := map[string]string{}
	var clients []string
	for _, k := range sortedKeys(observed) {
		r := observed[k].GetBgpReflector()
		established := 0
		for _, s := range r.GetSessions() {
			if s.GetState() == "Established" {
				established++
			}
		}
		sessions[nodeName(k)] = fmt.Sprintf("%d of %d Established", established, len(r.GetSessions()))
		if k != m.reflectorKey() {
			clients = append(clients, nodeName(k))
		}
	}
	for _, k := range down {
		if k != m.reflectorKey() {
			clients = append(clients, nodeName(k))
		}
		sessions[nodeName(k)] = "agent not answering"
	}
	sv, d := types.MapValueFrom(ctx, types.StringType, sessions)
	diags.Append(d...)
	cv, d := types.SetValueFrom(ctx, types.StringType, clients)
	diags.Append(d...)
	m.Sessions, m.Clients = sv, cv
}

// ModifyPlan plans the clients (every other node unless given) and the cluster id (the
// reflector's address unless given), checks the nodes, and asks the agents.
func (r *RouteReflectorResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.data == nil {
		return
	}
	var plan, cfg reflectorModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() || plan.Cluster.IsUnknown() || plan.Node.IsUnknown() || plan.ASN.IsUnknown() || cfg.Clients.IsUnknown() || cfg.ClusterID.IsUnknown() {
		return
	}
	f := r.data.Fleet
	all := clusterNodes(ctx, f, plan.Cluster.ValueString(), types.SetNull(types.StringType), "clients", &resp.Diagnostics)
	self, ok := f.Node(plan.reflectorKey())
	if !ok {
		resp.Diagnostics.AddAttributeError(path.Root("node"), "Unknown node",
			fmt.Sprintf("node %q is not in cluster %q of the provider's inventory (nodes: %s)", plan.Node.ValueString(), plan.Cluster.ValueString(), strings.Join(nodeNames(all), ", ")))
		return
	}
	var clients []string
	if cfg.Clients.IsNull() {
		for _, k := range all {
			if k != plan.reflectorKey() {
				clients = append(clients, k)
			}
		}
	} else {
		clients = clusterNodes(ctx, f, plan.Cluster.ValueString(), cfg.Clients, "clients", &resp.Diagnostics)
	}
	for _, k := range append([]string{plan.reflectorKey()}, clients...) {
		if n, _ := f.Node(k); n.Address == "" {
			resp.Diagnostics.AddAttributeError(path.Root("clients"), "Node without an address",
				fmt.Sprintf("%s has no address in the provider's inventory: set clusters.%s.nodes.%s.address", k, plan.Cluster.ValueString(), nodeName(k)))
		}
		if k == plan.reflectorKey() && contains(clients, k) {
			resp.Diagnostics.AddAttributeError(path.Root("clients"), "Reflector among its clients", fmt.Sprintf("%s is the reflector itself", nodeName(k)))
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}
	if cfg.ClusterID.IsNull() {
		plan.ClusterID = types.StringValue(self.Address)
	}
	cv, d := types.SetValueFrom(ctx, types.StringType, nodeNames(clients))
	resp.Diagnostics.Append(d...)
	plan.Clients = cv
	plan.ID = types.StringValue(plan.reflectorKey())
	if _, errs := f.DryRun(ctx, plan.objects(ctx, f, &resp.Diagnostics)); len(errs) > 0 {
		resp.Diagnostics.AddError("Route reflector refused", "The agents refused it:\n"+fleet.Join(errs))
		return
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

// ImportState takes over a reflector nodenet manages, by `<cluster>/<node>`.
func (r *RouteReflectorResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	cluster, node, ok := strings.Cut(req.ID, "/")
	f := r.data.Fleet
	if _, known := f.Node(req.ID); !ok || !known {
		resp.Diagnostics.AddError("Invalid import ID", fmt.Sprintf("expecting <cluster>/<node> of the inventory, like calico/master01; got %q", req.ID))
		return
	}
	m := reflectorModel{ID: types.StringValue(req.ID), Cluster: types.StringValue(cluster), Node: types.StringValue(node),
		Timeouts: timeouts.Value{Object: types.ObjectNull(timeoutsType)}}
	adopted, errs := f.Adopt(ctx, m.objectID(), node, m.owner(), f.Keys(cluster), false)
	rr := adopted[req.ID].GetObserved().GetBgpReflector()
	if rr.GetClusterId() == "" {
		resp.Diagnostics.AddError("Cannot import reflector "+req.ID, fmt.Sprintf("%s is not a reflector nodenet manages%s", req.ID, joinErrs(errs)))
		return
	}
	m.ASN = types.Int64Value(int64(rr.GetAsn()))
	m.ClusterID = types.StringValue(rr.GetClusterId())
	observed := map[string]*pb.Object{}
	for k, a := range adopted {
		observed[k] = a.GetObserved()
	}
	m.setObserved(ctx, observed, nil, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func joinErrs(errs []*fleet.NodeError) string {
	if len(errs) == 0 {
		return ""
	}
	return ":\n" + fleet.Join(errs)
}
