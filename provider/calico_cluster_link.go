package provider

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// A cluster link's Calico IPPools (snat_exemption = "calico"): made, read back and deleted
// through each cluster's API.

// applyCalicoPools makes the Calico IPPools the plan wants in every cluster.
func (r *ClusterLinkResource) applyCalicoPools(ctx context.Context, m *clusterLinkModel, lp *linkPlan, diags *diag.Diagnostics) {
	for _, c := range sortedKeys(lp.link.CalicoPools) {
		kc := r.data.Kube[c]
		if kc == nil {
			diags.AddAttributeError(path.Root("snat_exemption"), "No Kubernetes access",
				fmt.Sprintf("snat_exemption \"calico\" makes IPPools through cluster %s's API: give the cluster a kubernetes attribute in the provider", c))
			continue
		}
		for _, p := range lp.link.CalicoPools[c] {
			if err := kc.ApplyCalicoPool(ctx, m.ID.ValueString(), p.Name, p.CIDR.String()); err != nil {
				diags.AddAttributeError(path.Root("calico_ippools").AtMapKey(c), "Calico IPPool not applied", err.Error())
			}
		}
	}
}

// deleteStaleCalicoPools deletes the link's IPPools the plan no longer wants (lp nil: all).
func (r *ClusterLinkResource) deleteStaleCalicoPools(ctx context.Context, m *clusterLinkModel, lp *linkPlan, diags *diag.Diagnostics) {
	want := map[string]bool{}
	if lp != nil {
		for c, pools := range lp.link.CalicoPools {
			for _, p := range pools {
				want[c+"/"+p.Name] = true
			}
		}
	}
	for _, c := range sortedKeys(m.clusters(ctx, diags)) {
		kc := r.data.Kube[c]
		if kc == nil {
			continue
		}
		pools, err := kc.CalicoPools(ctx)
		if err != nil {
			diags.AddWarning("Calico IPPools not read", fmt.Sprintf("cluster %s: %v; the link's IPPools there are left as they are", c, err))
			continue
		}
		for _, p := range pools {
			if p.Link == m.ID.ValueString() && !want[c+"/"+p.Name] {
				if err := kc.DeleteCalicoPool(ctx, m.ID.ValueString(), p.Name); err != nil {
					diags.AddError("Calico IPPool not deleted", err.Error())
				}
			}
		}
	}
}

// calicoLines reads the link's IPPools back from every linked cluster's API ("<name> <cidr>"
// lines by cluster; clusters without any are left out). A cluster whose API does not answer
// keeps what the plan wanted (lp) or nothing.
func (r *ClusterLinkResource) calicoLines(ctx context.Context, m *clusterLinkModel, lp *linkPlan) types.Map {
	var diags diag.Diagnostics
	out := map[string]string{}
	for _, c := range sortedKeys(m.clusters(ctx, &diags)) {
		kc := r.data.Kube[c]
		if kc == nil {
			continue
		}
		pools, err := kc.CalicoPools(ctx)
		if err != nil {
			if lp != nil {
				if w, ok := calicoWanted(lp)[c]; ok {
					out[c] = w
				}
			}
			continue
		}
		var lines []string
		for _, p := range pools {
			if p.Link == m.ID.ValueString() && p.Disabled && !p.NATOutgoing {
				lines = append(lines, p.Name+" "+p.CIDR)
			}
		}
		if len(lines) > 0 {
			sort.Strings(lines)
			out[c] = strings.Join(lines, "\n")
		}
	}
	return mapValue(ctx, out, &diags)
}
