package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
	"github.com/nodenet/terraform-provider-nodenet/provider/mesh"
)

// ValidateConfig checks the relations between values (one overlay subnet, routes through
// members); each value on its own is checked by its attribute's validators.
func (r *VxlanTunnelResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m vxlanTunnelModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	in, known, d := input(ctx, &m)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() || !known {
		// Members and routes that come from other resources are checked at plan time.
		return
	}
	addMeshErrors(&resp.Diagnostics, "Invalid VXLAN tunnel", mesh.ValidateCross(in))
}

// ModifyPlan asks the agents: it plans every member's MAC, MTU, local IP and entries from
// what the nodes report, dry-runs the apply on every node (so conflicts with objects nodenet
// does not own, or that another resource owns, fail here and not half-way through apply),
// and names per node what the kernel will get.
func (r *VxlanTunnelResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.data == nil {
		return
	}
	var planned vxlanTunnelModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &planned)...)
	if resp.Diagnostics.HasError() {
		return
	}
	priorMembers := map[string]memberModel{}
	owner := planned.owner()
	if !req.State.Raw.IsNull() {
		var prior vxlanTunnelModel
		resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
		pm, d := membersOf(ctx, prior.Members)
		resp.Diagnostics.Append(d...)
		priorMembers = pm
		owner = prior.owner()
		if replaced(&prior, &planned) {
			r.data.replacing.note(objectID(prior.Name.ValueString()), prior.owner())
		}
	} else if o, ok := r.data.replacing.owner(objectID(planned.Name.ValueString())); ok {
		owner = o // the create of a replacement: it takes the old resource's objects over
	}
	in, known, d := input(ctx, &planned)
	resp.Diagnostics.Append(d...)
	if !known || resp.Diagnostics.HasError() || !configKnown(ctx, req, &resp.Diagnostics) {
		return
	}
	p, stale, infos := r.plan(ctx, in, priorMembers, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	var live []string
	for _, k := range sortedKeys(p.Members) {
		if !stale[k] {
			live = append(live, k)
		}
	}
	answers, errs := r.data.Fleet.DryRun(ctx, objects(p, in.Name, owner, live))
	for _, e := range errs {
		summary, detail := refusal(e)
		resp.Diagnostics.AddAttributeError(path.Root("members").AtMapKey(e.Node), summary, detail)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	r.setPlanned(ctx, &planned, p, answers, priorMembers, resp)
	warnFindings(&resp.Diagnostics, objectID(in.Name), infos)
}

// setPlanned writes every member's planned values into the plan and warns with the changes
// the agents report, per node.
func (r *VxlanTunnelResource) setPlanned(ctx context.Context, planned *vxlanTunnelModel, p *mesh.Plan, answers map[string]*pb.ApplyResponse, priorMembers map[string]memberModel, resp *resource.ModifyPlanResponse) {
	plannedMembers, d := membersOf(ctx, planned.Members)
	resp.Diagnostics.Append(d...)
	name := planned.Name.ValueString()
	var summary []string
	for _, key := range sortedKeys(plannedMembers) {
		mm := plannedMembers[key]
		mp := p.Members[key]
		mm.MAC = types.StringValue(mp.MAC)
		mm.LocalIP = types.StringValue(mp.LocalIP)
		mm.MTU = types.Int64Value(mp.MTU)
		mm.OperState = types.StringValue(stateUp)
		mm.FDB = linesValue(mesh.FDBStrings(mp.Spec))
		mm.Neighbors = linesValue(mesh.NeighborStrings(mp.Spec))
		mm.Routes = linesValue(mesh.RouteStrings(mp.Spec))
		mm.Ifindex = types.Int64Unknown()
		line, recreated := summarize(answers[key].GetChanges())
		pm, had := priorMembers[key]
		if had && !recreated && !pm.Ifindex.IsNull() && !pm.Ifindex.IsUnknown() && pm.Ifindex.ValueInt64() != 0 {
			mm.Ifindex = pm.Ifindex
		}
		if had && pm.Underlay.ValueString() != mm.Underlay.ValueString() {
			resp.Diagnostics.AddAttributeWarning(path.Root("members").AtMapKey(key).AtName("underlay"), "Member device is recreated",
				fmt.Sprintf("The underlay of %s changes from %q to %q: its %s device is deleted and created again (traffic through it pauses); other members keep their devices.", key, pm.Underlay.ValueString(), mm.Underlay.ValueString(), name))
		}
		if line != "" {
			summary = append(summary, key+": "+line)
		}
		plannedMembers[key] = mm
	}
	mv, d := membersValue(plannedMembers)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("members"), mv)...)
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("mtu"), types.Int64Value(p.MTU))...)
	if len(summary) > 0 {
		const max = 20
		if len(summary) > max {
			summary = append(summary[:max], fmt.Sprintf("... and %d more nodes", len(summary)-max))
		}
		resp.Diagnostics.AddWarning("Changes on the nodes",
			fmt.Sprintf("The agents report what applying %s changes in their kernels:\n%s", name, strings.Join(summary, "\n")))
	}
}

// plan resolves the members on their nodes and plans every member's share. With prior
// members (at plan time), a member whose agent does not answer is planned from its last known
// state with a warning, and returned in stale; without, that is an error (apply needs it).
func (r *VxlanTunnelResource) plan(ctx context.Context, in mesh.Input, prior map[string]memberModel, diags *diag.Diagnostics) (p *mesh.Plan, stale map[string]bool, infos map[string]*pb.NodeInfo) {
	f := r.data.Fleet
	var keys []string
	for _, m := range in.Members {
		if _, ok := f.Node(m.Key); !ok {
			cluster, _, _ := mesh.SplitKey(m.Key)
			msg := fmt.Sprintf("%q names no configured node. Configured nodes: %s.", m.Key, strings.Join(f.Keys(""), ", "))
			if !contains(f.Clusters(), cluster) {
				msg = fmt.Sprintf("%q names cluster %q, which the provider does not configure (clusters: %s).", m.Key, cluster, strings.Join(f.Clusters(), ", "))
			}
			diags.AddAttributeError(path.Root("members").AtMapKey(m.Key), "Unknown node", msg)
			continue
		}
		keys = append(keys, m.Key)
	}
	if diags.HasError() {
		return nil, nil, nil
	}
	infos, errs := f.Infos(ctx, keys)
	if len(errs) > 0 && ctx.Err() != nil {
		diags.AddError("Time limit reached", fmt.Sprintf("The operation ran out of time before the agents answered (%v). Raise the resource's timeouts block or the provider's timeout.", ctx.Err()))
		return nil, nil, nil
	}
	stale = map[string]bool{}
	for _, e := range errs {
		if pm, ok := prior[e.Node]; ok && e.Unreachable() && pm.LocalIP.ValueString() != "" && pm.MTU.ValueInt64() > 0 {
			infos[e.Node] = lastKnownInfo(pm)
			stale[e.Node] = true
			diags.AddAttributeWarning(path.Root("members").AtMapKey(e.Node), "Node agent did not answer",
				fmt.Sprintf("%s. Planned from its last known state; apply fails until it answers.", e.Error()))
			continue
		}
		diags.AddAttributeError(path.Root("members").AtMapKey(e.Node), nodeErrorSummary(e), e.Error())
	}
	if diags.HasError() {
		return nil, nil, nil
	}
	p, merrs := mesh.Build(in, infos)
	addMeshErrors(diags, "Invalid VXLAN tunnel", merrs)
	return p, stale, infos
}

// nodeErrorSummary names what went wrong with one node, for a diagnostic's summary.
func nodeErrorSummary(e *fleet.NodeError) string {
	switch {
	case fleet.AuthFailed(e.Err):
		return "Node agent failed authentication"
	case e.Unreachable():
		return "Node agent did not answer"
	}
	return "Node agent refused the request"
}

// refusal is the diagnostic of an agent's refusal; one that names another resource says how
// to find it.
func refusal(e *fleet.NodeError) (summary, detail string) {
	reason, md := pb.Reason(e.Err)
	switch reason {
	case pb.ReasonOtherOwner:
		return "Managed by another resource", fmt.Sprintf("%s\n\nThe other resource's id is %s: find it with `terraform state list` and `terraform state show`, in this or another configuration.",
			e.Error(), strings.TrimPrefix(md["owner"], vxlanOwnerPrefix))
	case pb.ReasonEntryHeld:
		return "Kernel entry held by another object", e.Error()
	}
	return nodeErrorSummary(e), e.Error()
}

// warnFindings passes on what the agents report about the object: an apply that was
// interrupted, a replay that failed, and kernel entries that name it but that no record
// explains (an apply takes them over, a destroy removes them).
func warnFindings(diags *diag.Diagnostics, id string, infos map[string]*pb.NodeInfo) {
	for _, key := range sortedKeys(infos) {
		ni := infos[key]
		for _, p := range ni.GetProblems() {
			if p.GetId() == id {
				diags.AddAttributeWarning(path.Root("members").AtMapKey(key), "Node reports a problem with "+id,
					fmt.Sprintf("%s: %s: %s", key, p.GetProblem(), p.GetDetail()))
			}
		}
		var entries, orphans []string
		for _, u := range ni.GetUnexplained() {
			switch u.GetObjectId() {
			case id:
				entries = append(entries, u.GetEntry()+" "+u.GetKey()+" "+u.GetDetail())
			case "":
				orphans = append(orphans, u.GetEntry()+" "+u.GetKey()+" "+u.GetDetail())
			}
		}
		if len(orphans) > 0 {
			diags.AddAttributeWarning(path.Root("members").AtMapKey(key), "Unexplained kernel entries on "+key,
				fmt.Sprintf("%s holds entries marked as nodenet's that no object explains (a lost state dir, or made by hand): %s. The next apply or destroy that changes this node removes them.",
					key, strings.Join(orphans, "; ")))
		}
		if len(entries) > 0 {
			diags.AddAttributeWarning(path.Root("members").AtMapKey(key), "Unrecorded kernel entries of "+id,
				fmt.Sprintf("%s holds kernel entries marked as nodenet's %s that its agent has no record of (left by a lost state dir or an agent from before records): %s. This apply takes them over; a destroy removes them.",
					key, id, strings.Join(entries, "; ")))
		}
	}
}

// summarize counts an agent's changes by action and entry, in the order they come
// ("+1 link, +1 addr, +5 neigh"), and tells whether the device is (re)created.
func summarize(changes []*pb.Change) (line string, recreated bool) {
	sign := map[pb.Change_Action]string{pb.Change_ADD: "+", pb.Change_UPDATE: "~", pb.Change_DELETE: "-", pb.Change_REPLACE: "-/+"}
	type kind struct{ action, entry string }
	var order []kind
	count := map[kind]int{}
	for _, c := range changes {
		if c.GetEntry() == "link" && (c.GetAction() == pb.Change_ADD || c.GetAction() == pb.Change_REPLACE) {
			recreated = true
		}
		k := kind{sign[c.GetAction()], c.GetEntry()}
		if count[k] == 0 {
			order = append(order, k)
		}
		count[k]++
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%s%d %s", k.action, count[k], k.entry)
	}
	return strings.Join(parts, ", "), recreated
}

// configKnown tells whether the configured MTU and MACs are known: in the plan, a computed
// value left to the provider is unknown too, so the configuration tells them apart.
func configKnown(ctx context.Context, req resource.ModifyPlanRequest, diags *diag.Diagnostics) bool {
	var cfg vxlanTunnelModel
	diags.Append(req.Config.Get(ctx, &cfg)...)
	if diags.HasError() || cfg.MTU.IsUnknown() {
		return false
	}
	members, d := membersOf(ctx, cfg.Members)
	diags.Append(d...)
	for _, m := range members {
		if m.MAC.IsUnknown() {
			return false
		}
	}
	return !cfg.Members.IsUnknown()
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// replaced tells whether the plan replaces the tunnel: a change of an attribute that
// requires a new one.
func replaced(prior, planned *vxlanTunnelModel) bool {
	return !prior.Name.Equal(planned.Name) || !prior.VNI.Equal(planned.VNI) || !prior.Port.Equal(planned.Port)
}
