package provider

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/cniconf"
	"github.com/nodenet/terraform-provider-nodenet/provider/encap"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
	"github.com/nodenet/terraform-provider-nodenet/provider/ipam"
)

// ModifyPlan plans the nodes and their blocks (existing allocations stay, new nodes take the
// lowest free blocks, a disabled pool gives no new block), then each node's share from what
// its agent reports: the NAT lines, the encapsulation's entries and the CNI configuration.
// Pools overlapping another pool planned in this run, or one the nodes have, are refused, and
// so is an encapsulation a node's kernel cannot do.
func (r *IPPoolResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.data == nil {
		return
	}
	var plan, state, cfg ipPoolModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if !req.State.Raw.IsNull() {
		resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	}
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() || !poolPlanKnown(&plan, &cfg) {
		return
	}
	pool, err := netip.ParsePrefix(plan.CIDR.ValueString())
	if err != nil {
		return
	}
	if other := r.data.pools.claim(plan.Cluster.ValueString(), pool); other != "" {
		resp.Diagnostics.AddAttributeError(path.Root("cidr"), "Overlapping pools",
			fmt.Sprintf("pool %s overlaps pool %s of cluster %s: the pools of a cluster must not overlap", pool, other, plan.Cluster.ValueString()))
		return
	}
	keys := clusterNodes(ctx, r.data.Fleet, plan.Cluster.ValueString(), cfg.Nodes, "nodes", &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	r.checkAgentsOverlap(ctx, pool, plan.objectID(), keys, &resp.Diagnostics)
	alloc := allocate(ctx, &plan, &state, pool, keys, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	plan.Nodes = setValue(ctx, nodeNames(keys), &resp.Diagnostics)
	plan.Allocations = mapValue(ctx, alloc, &resp.Diagnostics)
	r.data.pools.planned(plan.Cluster.ValueString(), pool, alloc)
	if plan.ID.IsUnknown() {
		plan.ID = types.StringValue(plan.Cluster.ValueString() + "/" + pool.String())
	}
	if plan.TunnelDevice.IsUnknown() {
		plan.TunnelDevice = types.StringValue(defaultTunnelDevice(plan.Encapsulation.ValueString(), pool))
	}
	pp := r.planNodes(ctx, &plan, true, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	plan.NAT = mapValue(ctx, pp.nat, &resp.Diagnostics)
	plan.Tunnels = unknownFor(ctx, pp.tunnels, pp.unknown, &resp.Diagnostics)
	plan.CNIConfig = unknownFor(ctx, pp.cni, pp.unknown, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
}

// poolPlanKnown tells whether what the plan depends on is known yet.
func poolPlanKnown(plan, cfg *ipPoolModel) bool {
	return !plan.Cluster.IsUnknown() && !plan.CIDR.IsUnknown() && !plan.BlockSize.IsUnknown() && !cfg.Nodes.IsUnknown() &&
		!plan.Encapsulation.IsUnknown() && !plan.EncapsulationMode.IsUnknown() && !plan.VXLANVNI.IsUnknown() &&
		!plan.VXLANPort.IsUnknown() && !cfg.TunnelDevice.IsUnknown() && !plan.MTU.IsUnknown() && !plan.NATOutgoing.IsUnknown()
}

// allocate plans every node's block: prior allocations stay, the others take the lowest
// free blocks; a disabled pool gives none to a node that has none.
func allocate(ctx context.Context, plan, state *ipPoolModel, pool netip.Prefix, keys []string, diags *diag.Diagnostics) map[string]string {
	prev := map[string]netip.Prefix{}
	for n, b := range state.allocations(ctx, diags) {
		if p, err := netip.ParsePrefix(b); err == nil {
			prev[n] = p
		}
	}
	var nodes []string
	for _, k := range keys {
		if _, had := prev[nodeName(k)]; had || !plan.Disabled.ValueBool() {
			nodes = append(nodes, nodeName(k))
		}
	}
	alloc, err := ipam.Allocate(pool, int(plan.BlockSize.ValueInt64()), nodes, prev)
	if err != nil {
		diags.AddAttributeError(path.Root("cidr"), "Pool too small", err.Error())
		return nil
	}
	out := map[string]string{}
	for n, b := range alloc {
		out[n] = b.String()
	}
	return out
}

// defaultTunnelDevice names a pool's tunnel device after the pool: the same on every node,
// different for every pool ("" without encapsulation).
func defaultTunnelDevice(typ string, pool netip.Prefix) string {
	sum := sha256.Sum256([]byte(pool.String()))
	switch typ {
	case encapVXLAN:
		return fmt.Sprintf("vxlan-%x", sum[:4])
	case encapIPIP:
		return fmt.Sprintf("tunl-%x", sum[:4])
	}
	return ""
}

// poolNodePlan is every node's share of a pool, by node key, and its rendering by node name.
type poolNodePlan struct {
	objects           fleet.Objects
	nat, tunnels, cni map[string]string // by node name
	unknown           []string          // node names whose agents did not answer (plan only)
}

// planNodes builds every node's object of the pool from the model (its nodes and
// allocations known) and the agents' Info: a node's underlay (address, subnet, interface,
// MTU) for the encapsulation and the CNI configuration, its kernel features, its CNI
// directories. At plan time (planning) a node whose agent does not answer gets unknown
// values, unless the encapsulation needs its underlay; at apply time it is an error.
func (r *IPPoolResource) planNodes(ctx context.Context, m *ipPoolModel, planning bool, diags *diag.Diagnostics) *poolNodePlan {
	keys := m.nodeKeys(ctx, diags)
	alloc := m.allocations(ctx, diags)
	pool := netip.MustParsePrefix(m.CIDR.ValueString())
	typ := m.Encapsulation.ValueString()
	infos, errs := r.data.Fleet.Infos(ctx, keys)
	pp := &poolNodePlan{objects: fleet.Objects{}, nat: map[string]string{}, tunnels: map[string]string{}, cni: map[string]string{}}
	for _, e := range errs {
		if !planning || (typ != encapNone && alloc[nodeName(e.Node)] != "") {
			diags.AddError("Node agent did not answer", fmt.Sprintf("%s: %v; the pool's share of it cannot be planned without its underlay.", e.Node, e.Err))
		}
		pp.unknown = append(pp.unknown, nodeName(e.Node))
	}
	if diags.HasError() {
		return nil
	}
	r.checkKernels(m, keys, alloc, infos, diags)
	nodes := r.underlays(m, keys, alloc, infos, diags)
	if diags.HasError() {
		return nil
	}
	shares, perrs := encap.Plan(encap.Input{
		Pool: pool, Type: typ, Mode: m.EncapsulationMode.ValueString(), Device: m.TunnelDevice.ValueString(),
		VNI: uint32(m.VXLANVNI.ValueInt64()), Port: uint32(m.VXLANPort.ValueInt64()), MTU: int(m.MTU.ValueInt64()), Nodes: nodes,
	})
	for _, e := range perrs {
		diags.AddAttributeError(encapAttr(e.Field), "Invalid encapsulation", e.Error())
	}
	if diags.HasError() {
		return nil
	}
	for _, k := range keys {
		n := nodeName(k)
		spec := m.spec(alloc[n])
		pp.nat[n] = plannedNAT(m.CIDR.ValueString(), m.NATOutgoing.ValueBool())
		if alloc[n] != "" && infos[k] != nil {
			spec.Encapsulation = shares[k]
			pp.tunnels[n] = tunnelLines(shares[k])
			cfg := r.cniConfig(m, k, alloc[n], shares[k], nodeByKey(nodes, k), infos[k], diags)
			pp.cni[n] = cfg
			if m.CNI != nil {
				spec.CniConfig, spec.CniFile = cfg, m.CNI.File.ValueString()
			}
		}
		pp.objects[k] = m.object(spec)
	}
	return pp
}

// underlays are the pool's nodes as the encapsulation planner needs them: the interface
// that holds the node's address, with its subnet and MTU.
func (r *IPPoolResource) underlays(m *ipPoolModel, keys []string, alloc map[string]string, infos map[string]*pb.NodeInfo, diags *diag.Diagnostics) []encap.Node {
	var out []encap.Node
	for _, k := range keys {
		info := infos[k]
		if info == nil {
			continue
		}
		n := encap.Node{Key: k}
		if b, err := netip.ParsePrefix(alloc[nodeName(k)]); err == nil {
			n.Block = b
		}
		fn, _ := r.data.Fleet.Node(k)
		addr, err := netip.ParseAddr(fn.Address)
		if err != nil {
			if m.Encapsulation.ValueString() != encapNone && n.Block.IsValid() {
				diags.AddAttributeError(path.Root("encapsulation"), "Node without an address",
					fmt.Sprintf("%s has no address in the provider's inventory: set clusters.%s.nodes.%s.address (its IPv4 address on the underlay: the tunnel's endpoint)",
						k, m.Cluster.ValueString(), nodeName(k)))
			}
			out = append(out, n)
			continue
		}
		n.Underlay = addr
		for _, ifc := range info.GetInterfaces() {
			for _, a := range ifc.GetAddresses() {
				if p, err := netip.ParsePrefix(a); err == nil && p.Addr() == addr {
					n.Subnet, n.Interface, n.MTU = p, ifc.GetName(), int(ifc.GetMtu())
				}
			}
		}
		if n.Interface == "" && m.Encapsulation.ValueString() != encapNone && n.Block.IsValid() {
			diags.AddAttributeError(path.Root("encapsulation"), "Underlay not found",
				fmt.Sprintf("%s: no interface of the node has its address %s (its agent reports %d interfaces); the tunnel needs it as its underlay", k, addr, len(info.GetInterfaces())))
		}
		out = append(out, n)
	}
	return out
}

// checkKernels refuses an encapsulation that a node's kernel lacks, naming every such node.
func (r *IPPoolResource) checkKernels(m *ipPoolModel, keys []string, alloc map[string]string, infos map[string]*pb.NodeInfo, diags *diag.Diagnostics) {
	typ := m.Encapsulation.ValueString()
	if typ == encapNone {
		return
	}
	var lacking []string
	for _, k := range keys {
		if info := infos[k]; info != nil && alloc[nodeName(k)] != "" && !info.GetKernelFeatures()[typ] {
			lacking = append(lacking, k)
		}
	}
	if len(lacking) > 0 {
		diags.AddAttributeError(path.Root("encapsulation"), "Encapsulation not supported by the nodes' kernels",
			fmt.Sprintf("encapsulation %q needs the %s kernel module, which the kernels of %s lack (as their agents report); load it there (modprobe %s) or choose another encapsulation",
				typ, typ, strings.Join(lacking, ", "), typ))
	}
}

// cniConfig renders a node's CNI configuration for its block: the pods' MTU is the tunnel's
// (or the underlay's without encapsulation), the IPAM data dir the agent's.
func (r *IPPoolResource) cniConfig(m *ipPoolModel, key, block string, share *pb.PoolEncapsulation, n encap.Node, info *pb.NodeInfo, diags *diag.Diagnostics) string {
	mtu := n.MTU
	switch {
	case !m.MTU.IsNull():
		mtu = int(m.MTU.ValueInt64())
	case share.GetVxlan() != nil:
		mtu = int(share.GetVxlan().GetDevice().GetMtu())
	case share.GetIpip() != nil:
		mtu = int(share.GetIpip().GetMtu())
	}
	network := "k8s-pod-network"
	if m.CNI != nil {
		network = m.CNI.Network.ValueString()
		if info.GetCniConfDir() == "" {
			diags.AddAttributeError(path.Root("cni"), "Agent writes no CNI configuration",
				fmt.Sprintf("%s: its agent has no CNI configuration directory; start it with --cni-conf-dir, or leave cni out", key))
		}
	}
	cfg, err := cniconf.Render(cniconf.Config{Network: network, Block: netip.MustParsePrefix(block), MTU: mtu, DataDir: info.GetCniIpamDataDir()})
	if err != nil {
		diags.AddAttributeError(path.Root("cni"), "Invalid CNI configuration", fmt.Sprintf("%s: %v", key, err))
	}
	return cfg
}

func nodeByKey(nodes []encap.Node, key string) encap.Node {
	for _, n := range nodes {
		if n.Key == key {
			return n
		}
	}
	return encap.Node{Key: key}
}

// encapAttrs are the attributes of the encapsulation planner's input fields.
var encapAttrs = map[string]string{
	"mode": "encapsulation_mode", "device": "tunnel_device", "vni": "vxlan_vni", "port": "vxlan_port",
	"mtu": "mtu", "pool": "cidr", "nodes": "nodes",
}

// encapAttr is the attribute an encapsulation planner error is about.
func encapAttr(field string) path.Path {
	if a, ok := encapAttrs[field]; ok {
		return path.Root(a)
	}
	return path.Root("encapsulation")
}

// unknownFor is the map with unknown values for the nodes in unknown.
func unknownFor(ctx context.Context, m map[string]string, unknown []string, diags *diag.Diagnostics) types.Map {
	if len(unknown) == 0 {
		return mapValue(ctx, m, diags)
	}
	elems := map[string]attr.Value{}
	for k, v := range m {
		elems[k] = types.StringValue(v)
	}
	for _, n := range unknown {
		elems[n] = types.StringUnknown()
	}
	v, d := types.MapValue(types.StringType, elems)
	diags.Append(d...)
	return v
}

func setValue(ctx context.Context, ss []string, diags *diag.Diagnostics) types.Set {
	sort.Strings(ss)
	v, d := types.SetValueFrom(ctx, types.StringType, ss)
	diags.Append(d...)
	return v
}

// checkAgentsOverlap refuses a pool that overlaps another pool the nodes have.
func (r *IPPoolResource) checkAgentsOverlap(ctx context.Context, pool netip.Prefix, id string, keys []string, diags *diag.Diagnostics) {
	lists, _ := r.data.Fleet.List(ctx, keys)
	for _, k := range sortedKeys(lists) {
		for _, o := range lists[k] {
			other, err := netip.ParsePrefix(o.GetIpPool().GetCidr())
			if err != nil || o.GetId() == id || !other.Overlaps(pool) {
				continue
			}
			diags.AddAttributeError(path.Root("cidr"), "Overlapping pools",
				fmt.Sprintf("pool %s overlaps pool %s, which node %s has (managed by %s)", pool, other, k, o.GetOwner()))
			return
		}
	}
}
