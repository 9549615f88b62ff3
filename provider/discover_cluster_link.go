package provider

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/nodenet/terraform-provider-nodenet/provider/kube"
	"github.com/nodenet/terraform-provider-nodenet/provider/link"
)

// A cluster link's discovery: what it reads of the linked clusters at every plan.

// discover resolves every linked cluster: its nodes (the provider's inventory), its pod and
// service CIDRs (given, or read from its API) and its nodes' blocks (blocks_from). It returns
// the clusters for the planner and their attributes as resolved.
func (r *ClusterLinkResource) discover(ctx context.Context, m *clusterLinkModel, diags *diag.Diagnostics) ([]link.Cluster, map[string]linkClusterModel) {
	cfg := m.clusters(ctx, diags)
	var out []link.Cluster
	resolved := map[string]linkClusterModel{}
	for _, name := range sortedKeys(cfg) {
		cm := cfg[name]
		at := path.Root("clusters").AtMapKey(name)
		keys := r.data.Fleet.Keys(name)
		if len(keys) == 0 {
			diags.AddAttributeError(at, "Unknown cluster", fmt.Sprintf("%q is not a cluster of the provider's configuration (clusters: %s)", name, strings.Join(r.data.Fleet.Clusters(), ", ")))
			continue
		}
		kc := r.data.Kube[name]
		if cm.BlocksFrom.IsNull() || cm.BlocksFrom.IsUnknown() {
			cm.BlocksFrom = types.StringValue(blocksStatic)
			if kc != nil {
				cm.BlocksFrom = types.StringValue(blocksKubernetes)
			}
		}
		c := link.Cluster{Name: name}
		c.PodCIDR, cm.PodCIDR = r.podCIDR(ctx, name, cm, kc, diags)
		c.ServiceCIDR, cm.ServiceCIDR = r.serviceCIDR(ctx, name, cm, kc, diags)
		keys = r.inCluster(ctx, name, keys, kc, diags)
		blocks := r.blocks(ctx, name, cm, c.PodCIDR, keys, kc, diags)
		for _, k := range keys {
			n, _ := r.data.Fleet.Node(k)
			addr, _ := netip.ParseAddr(n.Address)
			c.Nodes = append(c.Nodes, link.Node{Key: k, Address: addr, Blocks: blocks[nodeName(k)]})
		}
		out = append(out, c)
		resolved[name] = cm
	}
	return out, resolved
}

// inCluster are the inventory's nodes of a cluster that are its members: with access to the
// cluster's API, those that are Nodes there (a node deleted from the cluster leaves the link,
// even while the provider still lists it); without, all of them.
func (r *ClusterLinkResource) inCluster(ctx context.Context, name string, keys []string, kc *kube.Client, diags *diag.Diagnostics) []string {
	if kc == nil {
		return keys
	}
	nodes, err := kc.Nodes(ctx)
	if err != nil {
		diags.AddAttributeError(path.Root("clusters").AtMapKey(name), "Cannot read the nodes", err.Error())
		return nil
	}
	there := map[string]bool{}
	for _, n := range nodes {
		there[n.Name] = true
	}
	var out, left []string
	for _, k := range keys {
		if there[nodeName(k)] {
			out = append(out, k)
		} else {
			left = append(left, k)
		}
	}
	if len(left) > 0 {
		diags.AddWarning("Nodes not in their cluster", fmt.Sprintf("%s: not Nodes of cluster %s's API, so not members of the link (their share is removed where they have one)", strings.Join(left, ", "), name))
	}
	return out
}

// podCIDR is the cluster's pod CIDR: given, or its one enabled Calico IPPool (not a link's).
func (r *ClusterLinkResource) podCIDR(ctx context.Context, name string, cm linkClusterModel, kc *kube.Client, diags *diag.Diagnostics) (netip.Prefix, types.String) {
	at := path.Root("clusters").AtMapKey(name).AtName("pod_cidr")
	if !cm.PodCIDR.IsNull() && !cm.PodCIDR.IsUnknown() {
		p, err := netip.ParsePrefix(cm.PodCIDR.ValueString())
		if err != nil {
			return netip.Prefix{}, cm.PodCIDR // the attribute's validator reports it
		}
		return p.Masked(), types.StringValue(p.Masked().String())
	}
	if kc == nil {
		diags.AddAttributeError(at, "Pod CIDR unknown", fmt.Sprintf("cluster %s has no kubernetes attribute in the provider to read its pod CIDR from: give pod_cidr", name))
		return netip.Prefix{}, types.StringNull()
	}
	pools, err := kc.CalicoPools(ctx)
	if err != nil {
		diags.AddAttributeError(at, "Pod CIDR unknown", fmt.Sprintf("cluster %s: %v; give pod_cidr", name, err))
		return netip.Prefix{}, types.StringNull()
	}
	var enabled []string
	for _, p := range pools {
		if !p.Disabled && p.Link == "" {
			enabled = append(enabled, p.CIDR)
		}
	}
	if len(enabled) != 1 {
		diags.AddAttributeError(at, "Pod CIDR unknown", fmt.Sprintf("cluster %s has %d enabled Calico IPPools (%s); give pod_cidr", name, len(enabled), strings.Join(enabled, ", ")))
		return netip.Prefix{}, types.StringNull()
	}
	p, err := netip.ParsePrefix(enabled[0])
	if err != nil {
		diags.AddAttributeError(at, "Pod CIDR unknown", fmt.Sprintf("cluster %s: its Calico IPPool has CIDR %q: %v", name, enabled[0], err))
		return netip.Prefix{}, types.StringNull()
	}
	return p.Masked(), types.StringValue(p.Masked().String())
}

// serviceCIDR is the cluster's service CIDR: given, or its one ServiceCIDR; without either
// (no API access), none: only the pod CIDR is then exempt from NAT.
func (r *ClusterLinkResource) serviceCIDR(ctx context.Context, name string, cm linkClusterModel, kc *kube.Client, diags *diag.Diagnostics) (netip.Prefix, types.String) {
	if !cm.ServiceCIDR.IsNull() && !cm.ServiceCIDR.IsUnknown() {
		p, err := netip.ParsePrefix(cm.ServiceCIDR.ValueString())
		if err != nil {
			return netip.Prefix{}, cm.ServiceCIDR
		}
		return p.Masked(), types.StringValue(p.Masked().String())
	}
	if kc == nil {
		return netip.Prefix{}, types.StringValue("")
	}
	cidrs, err := kc.ServiceCIDRs(ctx)
	at := path.Root("clusters").AtMapKey(name).AtName("service_cidr")
	if err != nil || len(cidrs) != 1 {
		diags.AddAttributeError(at, "Service CIDR unknown", fmt.Sprintf("cluster %s: its API has %d ServiceCIDRs (%s) %v; give service_cidr", name, len(cidrs), strings.Join(cidrs, ", "), errOrEmpty(err)))
		return netip.Prefix{}, types.StringNull()
	}
	p, err := netip.ParsePrefix(cidrs[0])
	if err != nil {
		diags.AddAttributeError(at, "Service CIDR unknown", fmt.Sprintf("cluster %s: ServiceCIDR %q: %v", name, cidrs[0], err))
		return netip.Prefix{}, types.StringNull()
	}
	return p.Masked(), types.StringValue(p.Masked().String())
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return "(" + err.Error() + ")"
}

// blocks are the blocks of the cluster's nodes, by node name, from where blocks_from says.
func (r *ClusterLinkResource) blocks(ctx context.Context, name string, cm linkClusterModel, pods netip.Prefix, keys []string, kc *kube.Client, diags *diag.Diagnostics) map[string][]netip.Prefix {
	at := path.Root("clusters").AtMapKey(name)
	out := map[string][]netip.Prefix{}
	add := func(node, cidr, source string) {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			diags.AddAttributeError(at, "Invalid pod block", fmt.Sprintf("cluster %s, node %s: %s block %q: %v", name, node, source, cidr, err))
			return
		}
		out[node] = append(out[node], p.Masked())
	}
	from := cm.BlocksFrom.ValueString()
	if (from == blocksKubernetes || from == blocksCalico) && kc == nil {
		diags.AddAttributeError(at.AtName("blocks_from"), "No Kubernetes access", fmt.Sprintf("blocks_from %q reads cluster %s's API: give the cluster a kubernetes attribute in the provider, or use static blocks", from, name))
		return nil
	}
	if !cm.Blocks.IsNull() && from != blocksStatic {
		diags.AddAttributeError(at.AtName("blocks"), "Blocks given twice", fmt.Sprintf("blocks are for blocks_from = \"static\"; cluster %s takes them from %s", name, from))
		return nil
	}
	switch from {
	case blocksKubernetes:
		nodes, err := kc.Nodes(ctx)
		if err != nil {
			diags.AddAttributeError(at, "Cannot read the nodes", err.Error())
			return nil
		}
		for _, n := range nodes {
			for _, c := range n.PodCIDRs {
				add(n.Name, c, "spec.podCIDRs")
			}
		}
	case blocksCalico:
		affs, err := kc.BlockAffinities(ctx)
		if err != nil {
			diags.AddAttributeError(at, "Cannot read the block affinities", err.Error())
			return nil
		}
		for _, a := range affs {
			add(a.Node, a.CIDR, "BlockAffinity")
		}
	case blocksNodenet:
		// The pools planned in this run, as planned (the nodes have them once applied); the
		// others as the nodes have them.
		planned := r.data.pools.allocations(name)
		for pool, alloc := range planned {
			if pods.IsValid() && !pods.Contains(pool.Addr()) {
				continue
			}
			for _, n := range sortedKeys(alloc) {
				if contains(nodeNames(keys), n) {
					add(n, alloc[n], "nodenet pool")
				}
			}
		}
		lists, errs := r.data.Fleet.List(ctx, keys)
		for _, e := range errs {
			diags.AddAttributeError(at, "Node agent did not answer", e.Error())
		}
		for k, objs := range lists {
			for _, o := range objs {
				pool, _ := netip.ParsePrefix(o.GetIpPool().GetCidr())
				if _, done := planned[pool]; done {
					continue
				}
				b, err := netip.ParsePrefix(o.GetIpPool().GetBlock())
				if err == nil && (!pods.IsValid() || pods.Contains(b.Addr())) {
					add(nodeName(k), b.String(), "nodenet pool")
				}
			}
		}
	case blocksStatic:
		given := map[string][]string{}
		if !cm.Blocks.IsNull() && !cm.Blocks.IsUnknown() {
			diags.Append(cm.Blocks.ElementsAs(ctx, &given, false)...)
		}
		for _, n := range sortedKeys(given) {
			if !contains(nodeNames(keys), n) {
				diags.AddAttributeError(at.AtName("blocks").AtMapKey(n), "Unknown node", fmt.Sprintf("%q is not a node of cluster %s (nodes: %s)", n, name, strings.Join(nodeNames(keys), ", ")))
			}
			for _, c := range given[n] {
				add(n, c, "given")
			}
		}
	}
	return out
}
