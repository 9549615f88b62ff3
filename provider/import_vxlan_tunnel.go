package provider

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/go-uuid"
	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
	"github.com/nodenet/terraform-provider-nodenet/provider/mesh"
)

// ImportState adopts a tunnel by device name ("vxlan-test") found on any configured node,
// or only in one cluster ("test-cluster1/vxlan-test"). It looks on every node first, so a
// device that cannot be adopted on one node adopts nothing anywhere; if the adoption then
// fails on some nodes, the nodes this import adopted are released again (or given back to
// their previous owner). Import is how a resource takes over an overlay another resource
// manages: the imported resource gets an identity of its own and the agents record it as
// the new owner, so the previous resource no longer manages (nor destroys) the overlay.
func (r *VxlanTunnelResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if !r.configured(&resp.Diagnostics) {
		return
	}
	f := r.data.Fleet
	cluster, name := "", req.ID
	if c, n, ok := strings.Cut(req.ID, "/"); ok {
		cluster, name = c, n
	}
	if err := pb.ValidateIfName("id", name); err != nil {
		resp.Diagnostics.AddError("Invalid import ID",
			fmt.Sprintf("expecting <device name> or <cluster>/<device name>, like vxlan-test or test-cluster1/vxlan-test: %s", err))
		return
	}
	keys := f.Keys(cluster)
	if len(keys) == 0 {
		resp.Diagnostics.AddError("Invalid import ID", fmt.Sprintf("cluster %q is not configured (clusters: %s)", cluster, strings.Join(f.Clusters(), ", ")))
		return
	}
	look, errs := f.Adopt(ctx, objectID(name), name, "", keys, true)
	if len(errs) > 0 {
		resp.Diagnostics.AddError("Cannot import "+name, fleet.Join(errs))
		return
	}
	if len(look) == 0 {
		resp.Diagnostics.AddError("Cannot import "+name, fmt.Sprintf("no node has a device %s (looked on %s)", name, strings.Join(keys, ", ")))
		return
	}
	prevOwner, err := importedFrom(name, look)
	if err != nil {
		resp.Diagnostics.AddError("Cannot import "+name, err.Error())
		return
	}
	id, err := uuid.GenerateUUID()
	if err != nil {
		resp.Diagnostics.AddError("Cannot import "+name, err.Error())
		return
	}
	found := sortedKeys(look)
	adopted, errs := f.Adopt(ctx, objectID(name), name, vxlanOwner(id), found, false)
	if len(errs) > 0 {
		for _, e := range errs {
			if fleet.MaybeApplied(e.Err) {
				adopted[e.Node] = nil // no answer in time: it may still adopt it
			}
		}
		msg := fleet.Join(errs) + r.releaseAdopted(ctx, name, vxlanOwner(id), look, adopted)
		resp.Diagnostics.AddError("Cannot import "+name, msg)
		return
	}
	observed := map[string]*pb.VxlanTunnel{}
	for k, a := range adopted {
		observed[k] = a.GetObserved().GetVxlanTunnel()
	}
	in, notes, err := mesh.Reconstruct(observed)
	if err != nil {
		resp.Diagnostics.AddError("Cannot import "+name, err.Error()+r.releaseAdopted(ctx, name, vxlanOwner(id), look, adopted))
		return
	}
	for _, n := range notes {
		resp.Diagnostics.AddWarning("Route not imported", n)
	}
	if prevOwner != "" {
		resp.Diagnostics.AddWarning("Taken over from another resource",
			fmt.Sprintf("%s was managed by %s; this import takes it over (new id %s). The other resource no longer manages it: "+
				"its next plan shows it absent, and destroying it leaves the overlay in place. Remove it from that configuration (or terraform state rm it).", name, prevOwner, id))
	}
	m := vxlanTunnelModel{
		ID: types.StringValue(id), Name: types.StringValue(name), VNI: types.Int64Value(in.VNI),
		Port: types.Int64Value(in.Port), MTU: types.Int64Value(in.MTU), Learning: types.BoolValue(in.Learning),
		Timeouts: timeouts.Value{Object: types.ObjectNull(timeoutsType)},
	}
	members := map[string]memberModel{}
	for _, mb := range in.Members {
		members[mb.Key] = observe(memberModel{Underlay: types.StringValue(mb.Underlay)}, name, in, observed[mb.Key])
	}
	mv, d := membersValue(members)
	resp.Diagnostics.Append(d...)
	m.Members = mv
	m.Routes = routesValue(ctx, in, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// importedFrom is the owner an import takes the overlay over from ("" when nodenet does not
// manage it yet). An overlay of several resources, or of another kind's resource, is refused.
func importedFrom(name string, look map[string]*pb.AdoptResponse) (string, error) {
	owners := map[string][]string{}
	for k, a := range look {
		if a.GetManaged() && a.GetPreviousOwner() != "" {
			owners[a.GetPreviousOwner()] = append(owners[a.GetPreviousOwner()], k)
		}
	}
	switch len(owners) {
	case 0:
		return "", nil
	case 1:
		for o, nodes := range owners {
			if !strings.HasPrefix(o, vxlanOwnerPrefix) {
				return "", fmt.Errorf("%s on %s is managed by %s, not by a nodenet_vxlan_tunnel: import it into that resource", name, strings.Join(nodes, ", "), o)
			}
			return o, nil
		}
	}
	var parts []string
	for _, o := range sortedKeys(owners) {
		sort.Strings(owners[o])
		parts = append(parts, fmt.Sprintf("%s on %s", o, strings.Join(owners[o], ", ")))
	}
	return "", fmt.Errorf("%s is managed by several resources (%s); import one cluster at a time (<cluster>/%s) or rename the devices", name, strings.Join(parts, "; "), name)
}

// releaseAdopted undoes an import on the nodes it adopted, or may have: those nodenet did
// not manage before are released (no ifalias or record left behind), those it took over are
// given back to their previous owner. A late adoption and its undoing are serialised by the
// agent's lock on the object. It returns what to add to the error.
func (r *VxlanTunnelResource) releaseAdopted(ctx context.Context, name, owner string, look, adopted map[string]*pb.AdoptResponse) string {
	var back []string
	giveBack := map[string][]string{} // previous owner -> nodes
	for k := range adopted {
		if prev := look[k].GetPreviousOwner(); look[k].GetManaged() && prev != "" && prev != owner {
			giveBack[prev] = append(giveBack[prev], k)
		} else if !look[k].GetManaged() {
			back = append(back, k)
		}
	}
	sort.Strings(back)
	rbCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.data.Fleet.Timeout())
	defer cancel()
	var msg []string
	if len(back) > 0 {
		if errs := r.data.Fleet.Release(rbCtx, objectID(name), owner, back); len(errs) > 0 {
			msg = append(msg, "The nodes it had adopted could not all be released:\n"+fleet.Join(errs)+
				"\nThey keep nodenet's ifalias and record; import again once they answer, or release them with a destroy of the imported resource.")
		} else {
			msg = append(msg, fmt.Sprintf("Released the nodes it had adopted (%s): they are as they were before the import.", strings.Join(back, ", ")))
		}
	}
	for _, prev := range sortedKeys(giveBack) {
		nodes := giveBack[prev]
		sort.Strings(nodes)
		if _, errs := r.data.Fleet.Adopt(rbCtx, objectID(name), name, prev, nodes, false); len(errs) > 0 {
			msg = append(msg, fmt.Sprintf("The nodes it had taken over from %s could not all be given back:\n%s", prev, fleet.Join(errs)))
		} else {
			msg = append(msg, fmt.Sprintf("Gave %s back to %s on %s.", name, prev, strings.Join(nodes, ", ")))
		}
	}
	if len(msg) == 0 {
		return ""
	}
	return "\n\n" + strings.Join(msg, "\n\n")
}
