package provider

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/link"
)

// ModifyPlan discovers the clusters (nodes, CIDRs, blocks) and plans every node's share from
// what the agents report, dry-running it on every node: a device another resource owns, or a
// route in the way, fails the plan naming it. The plan names per node what its kernel gets.
func (r *ClusterLinkResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.data == nil {
		return
	}
	var plan, prior, cfg clusterLinkModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	priorMembers := map[string]memberModel{}
	owner := plan.owner()
	if !req.State.Raw.IsNull() {
		resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
		pm, d := membersOf(ctx, prior.Members)
		resp.Diagnostics.Append(d...)
		priorMembers, owner = pm, prior.owner()
		if !prior.Name.Equal(plan.Name) || !prior.Device.Equal(plan.Device) || !prior.VNI.Equal(plan.VNI) || !prior.Port.Equal(plan.Port) {
			r.data.replacing.note(objectID(prior.Device.ValueString()), prior.owner())
		}
	} else if o, ok := r.data.replacing.owner(objectID(plan.Device.ValueString())); ok {
		owner = o // the create of a replacement takes the old link's objects over
	}
	if resp.Diagnostics.HasError() || !linkKnown(&cfg) {
		return
	}
	if cfg.MTU.IsNull() {
		plan.MTU = types.Int64Null() // left to the planner: the underlay's
	}
	lp := r.plan(ctx, &plan, priorOverlay(priorMembers), priorMembers, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	answers, errs := r.data.Fleet.DryRun(ctx, lp.objects(owner))
	for _, e := range errs {
		summary, detail := refusal(e)
		resp.Diagnostics.AddAttributeError(path.Root("members").AtMapKey(e.Node), summary, detail)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	mv, d := membersValue(lp.plannedMembers(priorMembers, answers))
	resp.Diagnostics.Append(d...)
	plan.Members = mv
	plan.MTU = types.Int64Value(lp.plan.MTU)
	plan.Blocks = lp.blocksValue(ctx, &resp.Diagnostics)
	plan.CalicoIPPools = mapValue(ctx, calicoWanted(lp), &resp.Diagnostics)
	if plan.ID.IsUnknown() && !prior.ID.IsNull() {
		plan.ID = prior.ID
	}
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
	warnNodeChanges(&resp.Diagnostics, plan.Name.ValueString(), answers)
	warnFindings(&resp.Diagnostics, objectID(plan.Device.ValueString()), lp.infos)
}

// linkKnown tells whether the configuration the plan needs is known.
func linkKnown(cfg *clusterLinkModel) bool {
	return !(cfg.Clusters.IsUnknown() || cfg.Device.IsUnknown() || cfg.VNI.IsUnknown() || cfg.Port.IsUnknown() ||
		cfg.OverlayCIDR.IsUnknown() || cfg.MTU.IsUnknown() || cfg.SNATExemption.IsUnknown())
}

// warnNodeChanges lists per node what the agents report the apply changes in their kernels.
func warnNodeChanges(diags *diag.Diagnostics, name string, answers map[string]*pb.ApplyResponse) {
	var summary []string
	for _, k := range sortedKeys(answers) {
		if line, _ := summarize(answers[k].GetChanges()); line != "" {
			summary = append(summary, k+": "+line)
		}
	}
	if len(summary) == 0 {
		return
	}
	const max = 20
	if len(summary) > max {
		summary = append(summary[:max], fmt.Sprintf("... and %d more nodes", len(summary)-max))
	}
	diags.AddWarning("Changes on the nodes", fmt.Sprintf("The agents report what applying %s changes in their kernels:\n%s", name, strings.Join(summary, "\n")))
}

// plan discovers the clusters, plans the link and every node's share. prev are the nodes'
// overlay addresses to keep; stale, at plan time, are the prior members, from whose last known
// state a node whose agent does not answer is planned (nil at apply time: that is an error).
func (r *ClusterLinkResource) plan(ctx context.Context, m *clusterLinkModel, prev map[string]netip.Addr, stale map[string]memberModel, diags *diag.Diagnostics) *linkPlan {
	clusters, resolved := r.discover(ctx, m, diags)
	if diags.HasError() {
		return nil
	}
	m.Clusters = clustersValue(ctx, resolved, diags)
	overlay, err := netip.ParsePrefix(m.OverlayCIDR.ValueString())
	if err != nil {
		diags.AddAttributeError(path.Root("overlay_cidr"), "Invalid overlay CIDR", err.Error())
		return nil
	}
	lpl, errs := link.Build(link.Input{
		Name: m.Name.ValueString(), Device: m.Device.ValueString(), VNI: m.VNI.ValueInt64(), Port: m.Port.ValueInt64(),
		MTU: m.MTU.ValueInt64(), Overlay: overlay, Clusters: clusters, Prev: prev, SNATExemption: m.SNATExemption.ValueString(),
	})
	for _, e := range errs {
		p := path.Root(e.Attr)
		if e.Key != "" && e.Attr == "clusters" {
			p = p.AtMapKey(e.Key)
		}
		diags.AddAttributeError(p, "Invalid cluster link", e.Error())
	}
	if diags.HasError() {
		return nil
	}
	vx := &VxlanTunnelResource{data: r.data}
	mp, planned, infos := vx.plan(ctx, lpl.Mesh, stale, diags)
	if diags.HasError() {
		return nil
	}
	return &linkPlan{link: lpl, mesh: lpl.Mesh, plan: mp, stale: planned, infos: infos}
}

func sortedStrings(ss []string) []string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	return out
}
