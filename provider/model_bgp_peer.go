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

type peerModel struct {
	ID              types.String   `tfsdk:"id"`
	Cluster         types.String   `tfsdk:"cluster"`
	Nodes           types.Set      `tfsdk:"nodes"`
	PeerIP          types.String   `tfsdk:"peer_ip"`
	PeerASN         types.Int64    `tfsdk:"peer_asn"`
	Password        types.String   `tfsdk:"password_wo"`
	PasswordVersion types.Int64    `tfsdk:"password_wo_version"`
	EbgpMultihop    types.Int64    `tfsdk:"ebgp_multihop"`
	SourceAddress   types.String   `tfsdk:"source_address"`
	Passive         types.Bool     `tfsdk:"passive"`
	Keepalive       types.Int64    `tfsdk:"keepalive"`
	HoldTime        types.Int64    `tfsdk:"hold_time"`
	GracefulRestart types.Object   `tfsdk:"graceful_restart"`
	Sessions        types.Map      `tfsdk:"sessions"`
	Timeouts        timeouts.Value `tfsdk:"timeouts"`
}

// passwordDrift is the password_wo_version a read records when a node's password is not the
// one Terraform set: no configuration has it, so the plan shows a change that sends the
// password again.
const passwordDrift = -1

func (m *peerModel) objectID() string { return pb.ObjectID(pb.KindBgpPeer, m.PeerIP.ValueString()) }
func (m *peerModel) owner() string    { return "nodenet_bgp_peer:" + m.ID.ValueString() }

func (m *peerModel) nodeKeys(ctx context.Context, diags *diag.Diagnostics) []string {
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

// objects are the peering on every node, with the password of this run's configuration.
func (m *peerModel) objects(ctx context.Context, password string, diags *diag.Diagnostics) fleet.Objects {
	spec := &pb.BgpPeer{
		PeerIp: m.PeerIP.ValueString(), PeerAsn: uint32(m.PeerASN.ValueInt64()), Password: password,
		EbgpMultihop: uint32(m.EbgpMultihop.ValueInt64()), SourceAddress: m.SourceAddress.ValueString(), Passive: m.Passive.ValueBool(),
		Timers: &pb.BgpTimers{Keepalive: uint32(m.Keepalive.ValueInt64()), HoldTime: uint32(m.HoldTime.ValueInt64())},
	}
	if !m.GracefulRestart.IsNull() && !m.GracefulRestart.IsUnknown() {
		var gr struct {
			Enabled     types.Bool  `tfsdk:"enabled"`
			RestartTime types.Int64 `tfsdk:"restart_time"`
		}
		diags.Append(m.GracefulRestart.As(ctx, &gr, basetypes.ObjectAsOptions{})...)
		spec.GracefulRestart = &pb.BgpGracefulRestart{Enabled: gr.Enabled.ValueBool(), RestartTime: uint32(gr.RestartTime.ValueInt64())}
	}
	out := fleet.Objects{}
	for _, k := range m.nodeKeys(ctx, diags) {
		out[k] = &pb.Object{Id: m.objectID(), Owner: m.owner(), Spec: &pb.Object_BgpPeer{BgpPeer: spec}}
	}
	return out
}

// setObserved: the session state per node; the peer AS the nodes have; a node whose
// password differs from the one Terraform set (or has one when none is set) makes the
// password version drift.
func (m *peerModel) setObserved(ctx context.Context, observed map[string]*pb.Object, down []string, diags *diag.Diagnostics) {
	sessions := map[string]string{}
	drift := false
	for _, k := range sortedKeys(observed) {
		p := observed[k].GetBgpPeer()
		state := p.GetSession().GetState()
		if state == "" {
			state = "no speaker"
		}
		sessions[nodeName(k)] = state
		if p.GetPeerAsn() != 0 && int64(p.GetPeerAsn()) != m.PeerASN.ValueInt64() {
			m.PeerASN = types.Int64Value(int64(p.GetPeerAsn()))
		}
		wantPassword := !m.PasswordVersion.IsNull()
		if p.GetSession() != nil && (wantPassword && !p.GetPasswordInSync() || !wantPassword && p.GetPasswordSet()) {
			drift = true
			diags.AddWarning("Password changed on a node", fmt.Sprintf("%s: the TCP MD5 password for %s is not the one Terraform set; the plan sets it again.", k, m.PeerIP.ValueString()))
		}
	}
	for _, k := range down {
		sessions[nodeName(k)] = "agent not answering"
	}
	if drift {
		m.PasswordVersion = types.Int64Value(passwordDrift)
	}
	sv, d := types.MapValueFrom(ctx, types.StringType, sessions)
	diags.Append(d...)
	m.Sessions = sv
}

// ValidateConfig: a password needs its version, and a version its password.
func (r *BGPPeerResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m peerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || m.Password.IsUnknown() || m.PasswordVersion.IsUnknown() {
		return
	}
	switch {
	case !m.Password.IsNull() && m.PasswordVersion.IsNull():
		resp.Diagnostics.AddAttributeError(path.Root("password_wo_version"), "Missing password version",
			"password_wo is write-only: Terraform cannot tell when it changes, so set password_wo_version with it (any number; change it to send a new password)")
	case m.Password.IsNull() && !m.PasswordVersion.IsNull():
		resp.Diagnostics.AddAttributeError(path.Root("password_wo"), "Missing password", "password_wo_version is set but password_wo is not")
	case !m.Password.IsNull() && len(m.Password.ValueString()) > 80:
		resp.Diagnostics.AddAttributeError(path.Root("password_wo"), "Password too long", fmt.Sprintf("the password is %d bytes; TCP MD5 keys are at most 80", len(m.Password.ValueString())))
	}
}

// ModifyPlan plans the nodes (every node of the cluster unless given), checks them, and asks
// the agents (dry run).
func (r *BGPPeerResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.data == nil {
		return
	}
	var plan, cfg peerModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() || plan.Cluster.IsUnknown() || plan.PeerIP.IsUnknown() || cfg.Nodes.IsUnknown() || plan.PeerASN.IsUnknown() {
		return
	}
	if plan.Keepalive.ValueInt64() >= plan.HoldTime.ValueInt64() {
		resp.Diagnostics.AddAttributeError(path.Root("keepalive"), "Invalid timers",
			fmt.Sprintf("keepalive %d must be less than hold_time %d", plan.Keepalive.ValueInt64(), plan.HoldTime.ValueInt64()))
		return
	}
	keys := clusterNodes(ctx, r.data.Fleet, plan.Cluster.ValueString(), cfg.Nodes, "nodes", &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	nv, d := types.SetValueFrom(ctx, types.StringType, nodeNames(keys))
	resp.Diagnostics.Append(d...)
	plan.Nodes = nv
	plan.ID = types.StringValue(plan.Cluster.ValueString() + "/" + plan.PeerIP.ValueString())
	if _, errs := r.data.Fleet.DryRun(ctx, plan.objects(ctx, cfg.Password.ValueString(), &resp.Diagnostics)); len(errs) > 0 {
		resp.Diagnostics.AddError("BGP peer refused", "The agents refused the peering:\n"+fleet.Join(errs))
		return
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

// ImportState takes over a peering nodenet manages, by `<cluster>/<peer_ip>`. The password
// cannot be read back: set password_wo and password_wo_version after the import.
func (r *BGPPeerResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	cluster, ip, _ := strings.Cut(req.ID, "/")
	f := r.data.Fleet
	if _, err := pb.ParseIPv4("id", ip); err != nil || len(f.Keys(cluster)) == 0 {
		resp.Diagnostics.AddError("Invalid import ID", fmt.Sprintf("expecting <cluster>/<peer ip>, like demo/10.20.30.1 (clusters: %s); got %q", strings.Join(f.Clusters(), ", "), req.ID))
		return
	}
	m := peerModel{ID: types.StringValue(req.ID), Cluster: types.StringValue(cluster), PeerIP: types.StringValue(ip),
		Timeouts: timeouts.Value{Object: types.ObjectNull(timeoutsType)}, PasswordVersion: types.Int64Null(), Password: types.StringNull()}
	adopted, errs := f.Adopt(ctx, m.objectID(), ip, m.owner(), f.Keys(cluster), false)
	if len(adopted) == 0 {
		resp.Diagnostics.AddError("Cannot import peer "+req.ID, "no node of the cluster has a peering with it that nodenet manages"+joinErrs(errs))
		return
	}
	observed := map[string]*pb.Object{}
	var first *pb.BgpPeer
	for _, k := range sortedKeys(adopted) {
		observed[k] = adopted[k].GetObserved()
		if first == nil {
			first = observed[k].GetBgpPeer()
		}
	}
	m.PeerASN = types.Int64Value(int64(first.GetPeerAsn()))
	m.EbgpMultihop = nullIfZero(first.GetEbgpMultihop())
	m.SourceAddress = types.StringNull()
	if first.GetSourceAddress() != "" {
		m.SourceAddress = types.StringValue(first.GetSourceAddress())
	}
	m.Passive = types.BoolValue(first.GetPassive())
	m.Keepalive = types.Int64Value(int64(orDefault(first.GetTimers().GetKeepalive(), 3)))
	m.HoldTime = types.Int64Value(int64(orDefault(first.GetTimers().GetHoldTime(), 9)))
	m.GracefulRestart = types.ObjectNull(gracefulRestartTypes)
	if gr := first.GetGracefulRestart(); gr != nil {
		m.GracefulRestart = types.ObjectValueMust(gracefulRestartTypes, map[string]attr.Value{
			"enabled": types.BoolValue(gr.GetEnabled()), "restart_time": types.Int64Value(int64(gr.GetRestartTime()))})
	}
	nv, d := types.SetValueFrom(ctx, types.StringType, nodeNames(sortedKeys(adopted)))
	resp.Diagnostics.Append(d...)
	m.Nodes = nv
	if first.GetPasswordSet() {
		resp.Diagnostics.AddWarning("Password not imported", "the nodes have a TCP MD5 password for this peer; write-only values cannot be read back: set password_wo and password_wo_version in the configuration")
	}
	m.setObserved(ctx, observed, nil, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func nullIfZero(v uint32) types.Int64 {
	if v == 0 {
		return types.Int64Null()
	}
	return types.Int64Value(int64(v))
}
