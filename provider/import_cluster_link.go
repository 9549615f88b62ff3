package provider

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/hashicorp/go-uuid"
	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
	"github.com/nodenet/terraform-provider-nodenet/provider/link"
)

// ImportState takes a link over by its name: the nodes whose tunnels a nodenet_cluster_link of
// that name manages (as their agents record) are found on every configured node; the link's
// settings are read back from their devices (VNI, port, overlay subnet, NAT exemptions, the
// Calico IPPools of its id), the clusters are theirs, and everything else is planned as a plan
// would. As every import, it takes the tunnels over with an identity of its own.
func (r *ClusterLinkResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	name := req.ID
	if !linkName.MatchString(name) {
		resp.Diagnostics.AddError("Invalid import ID", fmt.Sprintf("expecting the link's name, a lower-case DNS label like multicluster; got %q", name))
		return
	}
	found, oldID, device := r.findLink(ctx, name, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	id, err := uuid.GenerateUUID()
	if err != nil {
		resp.Diagnostics.AddError("Cannot import "+name, err.Error())
		return
	}
	m := clusterLinkModel{ID: types.StringValue(id), Name: types.StringValue(name), Device: types.StringValue(device),
		Timeouts: timeouts.Value{Object: types.ObjectNull(timeoutsType)}, MTU: types.Int64Null()}
	r.settingsFrom(ctx, &m, found, oldID, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	adopted, errs := r.data.Fleet.Adopt(ctx, objectID(device), device, m.owner(), sortedKeys(found), false)
	if len(errs) > 0 {
		resp.Diagnostics.AddError("Cannot import "+name, fleet.Join(errs)+"\n\nNodes taken over before the failure keep the new owner; import again once every node answers.")
		return
	}
	lp := r.plan(ctx, &m, observedOverlay(found), nil, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	answers := map[string]*pb.VxlanTunnel{}
	for _, mb := range lp.mesh.Members {
		answers[mb.Key] = adopted[mb.Key].GetObserved().GetVxlanTunnel() // a member without it: absent
		if answers[mb.Key] == nil {
			answers[mb.Key] = &pb.VxlanTunnel{}
		}
	}
	m.CalicoIPPools = r.calicoLines(ctx, &m, nil)
	if oldID != "" {
		r.relabelCalicoPools(ctx, &m, oldID, &resp.Diagnostics)
		m.CalicoIPPools = r.calicoLines(ctx, &m, nil)
	}
	m.setObserved(ctx, lp, answers, m.CalicoIPPools, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// findLink finds, on every configured node, the tunnels a link of that name owns: their
// observed objects by node, the link's id and device.
func (r *ClusterLinkResource) findLink(ctx context.Context, name string, diags *diag.Diagnostics) (map[string]*pb.VxlanTunnel, string, string) {
	lists, errs := r.data.Fleet.List(ctx, r.data.Fleet.Keys(""))
	for _, e := range errs {
		diags.AddWarning("Node agent did not answer", e.Error()+"; it is left out of the import")
	}
	found := map[string]*pb.VxlanTunnel{}
	var id, device string
	for _, k := range sortedKeys(lists) {
		for _, o := range lists[k] {
			n, oid, ok := linkOfOwner(o.GetOwner())
			if !ok || n != name || o.GetVxlanTunnel() == nil {
				continue
			}
			if id != "" && oid != id {
				diags.AddError("Cannot import "+name, fmt.Sprintf("two links are named %s (ids %s and %s); remove one first", name, id, oid))
				return nil, "", ""
			}
			id, device = oid, o.GetVxlanTunnel().GetDevice().GetName()
			found[k] = o.GetVxlanTunnel()
		}
	}
	if len(found) == 0 {
		diags.AddError("Cannot import "+name, fmt.Sprintf("no node has a tunnel of a cluster link named %s (looked on %d nodes)", name, len(lists)))
	}
	return found, id, device
}

// settingsFrom sets the link's configuration from what its nodes have: the clusters of its
// nodes, the device's VNI and port, the overlay subnet of their addresses, and the NAT
// exemption (nodenet's when the tunnels carry exemptions, calico's when the link's IPPools
// exist, else none).
func (r *ClusterLinkResource) settingsFrom(ctx context.Context, m *clusterLinkModel, found map[string]*pb.VxlanTunnel, oldID string, diags *diag.Diagnostics) {
	clusters := map[string]linkClusterModel{}
	exempt := false
	for _, k := range sortedKeys(found) {
		t := found[k]
		cluster, _, _ := strings.Cut(k, "/")
		clusters[cluster] = linkClusterModel{PodCIDR: types.StringNull(), ServiceCIDR: types.StringNull(), BlocksFrom: types.StringNull(),
			Blocks: types.MapNull(types.ListType{ElemType: types.StringType})}
		d := t.GetDevice()
		m.VNI, m.Port = types.Int64Value(int64(d.GetVni())), types.Int64Value(int64(d.GetPort()))
		if p, err := netip.ParsePrefix(d.GetAddress()); err == nil {
			m.OverlayCIDR = types.StringValue(p.Masked().String())
		}
		exempt = exempt || len(t.GetSnatExempt()) > 0
	}
	if m.OverlayCIDR.IsNull() || m.OverlayCIDR.ValueString() == "" {
		diags.AddError("Cannot import "+m.Name.ValueString(), "no node of the link has an overlay address on its device")
		return
	}
	m.Clusters = clustersValue(ctx, clusters, diags)
	m.SNATExemption = types.StringValue(link.ExemptNone)
	old := clusterLinkModel{ID: types.StringValue(oldID), Clusters: m.Clusters}
	switch {
	case exempt:
		m.SNATExemption = types.StringValue(link.ExemptNodenet)
	case len(r.calicoLines(ctx, &old, nil).Elements()) > 0:
		m.SNATExemption = types.StringValue(link.ExemptCalico)
	}
}

// relabelCalicoPools gives the link's IPPools (labelled with its old id) the new id.
func (r *ClusterLinkResource) relabelCalicoPools(ctx context.Context, m *clusterLinkModel, oldID string, diags *diag.Diagnostics) {
	for _, c := range sortedKeys(m.clusters(ctx, diags)) {
		kc := r.data.Kube[c]
		if kc == nil {
			continue
		}
		pools, err := kc.CalicoPools(ctx)
		if err != nil {
			diags.AddWarning("Calico IPPools not read", err.Error())
			continue
		}
		for _, p := range pools {
			if p.Link != oldID {
				continue
			}
			if err := kc.RelabelCalicoPool(ctx, p.Name, oldID, m.ID.ValueString()); err != nil {
				diags.AddError("Calico IPPool not taken over", err.Error())
			}
		}
	}
}

// observedOverlay are the overlay addresses the nodes have.
func observedOverlay(found map[string]*pb.VxlanTunnel) map[string]netip.Addr {
	out := map[string]netip.Addr{}
	for k, t := range found {
		if p, err := netip.ParsePrefix(t.GetDevice().GetAddress()); err == nil {
			out[k] = p.Addr()
		}
	}
	return out
}
