package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/hashicorp/go-uuid"
	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
	"github.com/nodenet/terraform-provider-nodenet/provider/link"
	"github.com/nodenet/terraform-provider-nodenet/provider/validators"
)

var (
	_ resource.Resource                = &ClusterLinkResource{}
	_ resource.ResourceWithConfigure   = &ClusterLinkResource{}
	_ resource.ResourceWithImportState = &ClusterLinkResource{}
	_ resource.ResourceWithModifyPlan  = &ClusterLinkResource{}
)

// NewClusterLinkResource is nodenet_cluster_link.
func NewClusterLinkResource() resource.Resource { return &ClusterLinkResource{} }

// ClusterLinkResource joins the pod networks of several clusters: a VXLAN mesh across all their
// nodes (each node's share is a vxlan_tunnel object, built by the same code as
// nodenet_vxlan_tunnel's), with a route on every node to every remote node's pod block, the
// blocks discovered from the clusters' APIs. Schema and CRUD are here; the model in
// model_cluster_link.go, discovery and the plan in plan_cluster_link.go, import in
// import_cluster_link.go.
type ClusterLinkResource struct {
	data *providerData
}

// Where the blocks of a cluster's nodes come from.
const (
	blocksKubernetes = "kubernetes" // node.spec.podCIDRs
	blocksCalico     = "calico"     // Calico BlockAffinity objects
	blocksNodenet    = "nodenet"    // the nodes' nodenet_ippool blocks inside the pod CIDR
	blocksStatic     = "static"     // given in blocks
)

var linkName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

func (r *ClusterLinkResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_cluster_link"
}

func (r *ClusterLinkResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	entries := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: desc + " One per line, sorted."}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "The pod networks of several clusters joined, as the multi-cluster write-up does by hand: a VXLAN device on every " +
			"node of every linked cluster (stable MAC, an overlay address from `overlay_cidr`), an FDB entry and a permanent neighbour " +
			"for every other node, a route on every node to every remote node's pod block through that node, and the remote clusters' " +
			"CIDRs exempt from source NAT. The blocks are discovered from each cluster (`node.spec.podCIDR`, Calico's block affinities, " +
			"or nodenet pools), so a node that joins or leaves, or a block that moves, shows in the next plan as the entries that change.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true, MarkdownDescription: "The link's identity (a UUID made at create): the agents record `nodenet_cluster_link:<id>` as the owner of every node's tunnel.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				Required: true, MarkdownDescription: "The link's name (the import ID), a lower-case DNS label; it names the Calico IPPools it keeps (`<name>-pod-<cluster>`).",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators:    []validator.String{stringvalidator.RegexMatches(linkName, "must be a lower-case DNS label (a-z, 0-9, '-'), at most 63 characters")},
			},
			"clusters": schema.MapNestedAttribute{
				Required: true,
				MarkdownDescription: "The linked clusters (two or more), keyed by their names in the provider's `clusters`; every node of each is a member. " +
					"Their pod and service CIDRs must not overlap.",
				Validators: []validator.Map{mapvalidator.SizeAtLeast(2)},
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"pod_cidr": schema.StringAttribute{
						Optional: true, Computed: true,
						MarkdownDescription: "The cluster's pod CIDR. Default: discovered from the cluster's API (its one enabled Calico IPPool).",
						Validators:          []validator.String{validators.CIDR()},
					},
					"service_cidr": schema.StringAttribute{
						Optional: true, Computed: true,
						MarkdownDescription: "The cluster's service CIDR. Default: discovered from the cluster's API (its ServiceCIDR objects).",
						Validators:          []validator.String{validators.CIDR()},
					},
					"blocks_from": schema.StringAttribute{
						Optional: true, Computed: true,
						MarkdownDescription: "Where the nodes' pod blocks come from: `kubernetes` (each Node's `spec.podCIDRs`; the default with a `kubernetes` attribute), " +
							"`calico` (Calico's BlockAffinity objects: what `kubectl get blockaffinity` shows), `nodenet` (the blocks of the nodes' nodenet pools inside the pod CIDR) " +
							"or `static` (`blocks`; the default without Kubernetes access).",
						Validators: []validator.String{stringvalidator.OneOf(blocksKubernetes, blocksCalico, blocksNodenet, blocksStatic)},
					},
					"blocks": schema.MapAttribute{
						Optional: true, ElementType: types.ListType{ElemType: types.StringType},
						MarkdownDescription: "With `blocks_from = \"static\"`: node name -> its pod blocks.",
					},
				}},
			},
			"device": schema.StringAttribute{
				Optional: true, Computed: true, Default: stringdefault.StaticString("vxlan-link"),
				MarkdownDescription: "The VXLAN device's name on every node (default `vxlan-link`). A `nodenet_vxlan_tunnel` of the same name on a node of the link is refused at plan time. Changing it replaces the link.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators:          []validator.String{validators.IfName()},
			},
			"vni": schema.Int64Attribute{
				Required: true, MarkdownDescription: "VXLAN network identifier. Changing it replaces the link.",
				PlanModifiers: []planmodifier.Int64{int64planmodifier.RequiresReplace()},
				Validators:    []validator.Int64{validators.VNI()},
			},
			"port": schema.Int64Attribute{
				Optional: true, Computed: true, Default: int64default.StaticInt64(pb.DefaultVxlanPort),
				MarkdownDescription: "UDP port (default 4789). Changing it replaces the link.",
				PlanModifiers:       []planmodifier.Int64{int64planmodifier.RequiresReplace()},
				Validators:          []validator.Int64{validators.Port()},
			},
			"overlay_cidr": schema.StringAttribute{
				Required: true, MarkdownDescription: "The overlay subnet, like `179.17.1.0/24`: every node gets an address in it, kept while the node stays (a new node takes the lowest free one).",
				Validators: []validator.String{validators.CIDR()},
			},
			"mtu": schema.Int64Attribute{
				Optional: true, Computed: true,
				MarkdownDescription: "The devices' MTU. Default: the smallest underlay MTU less 50 (VXLAN's overhead).",
				Validators:          []validator.Int64{validators.MTU()},
			},
			"snat_exemption": schema.StringAttribute{
				Optional: true, Computed: true, Default: stringdefault.StaticString(link.ExemptNone),
				MarkdownDescription: "How traffic to the other clusters keeps its pod source address: `calico` (a disabled, natOutgoing=false Calico IPPool for every " +
					"remote pod and service CIDR, made in each cluster through its API, as the write-up applies them), `nodenet` (the remote CIDRs exempt in the " +
					"agents' nftables table, for pools with `nat_outgoing`) or `none` (default).",
				Validators: []validator.String{stringvalidator.OneOf(link.ExemptCalico, link.ExemptNodenet, link.ExemptNone)},
			},
			"members": schema.MapNestedAttribute{
				Computed: true,
				MarkdownDescription: "Every node of the link, keyed `<cluster>/<node>`: its underlay and overlay addresses, MAC, and the entries its device has, as the node reports them. " +
					"A node that joins or leaves, or a block that moves, changes the entries of every other node in the plan.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"underlay":   schema.StringAttribute{Computed: true, MarkdownDescription: "The node's underlay address (the provider's `address` of the node)."},
					"address":    schema.StringAttribute{Computed: true, MarkdownDescription: "The node's overlay address with the overlay's prefix length."},
					"mac":        schema.StringAttribute{Computed: true, MarkdownDescription: "The device's MAC (derived from cluster, node and device name: stable)."},
					"local_ip":   schema.StringAttribute{Computed: true, MarkdownDescription: "The underlay IPv4 address the device sends from."},
					"mtu":        schema.Int64Attribute{Computed: true, MarkdownDescription: "The device's MTU on this node."},
					"ifindex":    schema.Int64Attribute{Computed: true, MarkdownDescription: "The device's interface index (0 when absent)."},
					"oper_state": schema.StringAttribute{Computed: true, MarkdownDescription: "`up`, `down`, `absent` or `unreachable`."},
					"fdb":        entries("FDB entries, `<mac> dst <underlay ip>`, one per other node."),
					"neighbors":  entries("Permanent neighbours, `<overlay ip> lladdr <mac>`, one per other node."),
					"routes":     entries("Routes to the remote clusters' blocks, `<block> via <overlay ip>`."),
				}},
			},
			"blocks": schema.MapAttribute{
				Computed: true, ElementType: types.StringType,
				MarkdownDescription: "`<cluster>/<node>` -> the pod blocks found for the node (comma-separated), which the other clusters route to it.",
			},
			"calico_ippools": schema.MapAttribute{
				Computed: true, ElementType: types.StringType,
				MarkdownDescription: "With `snat_exemption = \"calico\"`: cluster -> the link's Calico IPPools in it, `<name> <cidr>` one per line, as the cluster's API has them.",
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}

func (r *ClusterLinkResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = providerDataFrom(req.ProviderData, &resp.Diagnostics)
}

// Create makes the link's identity and applies every node's share, then the Calico IPPools.
// A node that fails rolls back every node that may have applied it.
func (r *ClusterLinkResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m clusterLinkModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	ctx, cancel := opTimeout(ctx, m.Timeouts.Create, defaultCreateTimeout, &resp.Diagnostics)
	defer cancel()
	id, err := uuid.GenerateUUID()
	if err != nil {
		resp.Diagnostics.AddError("Cannot make the link's id", err.Error())
		return
	}
	m.ID = types.StringValue(id)
	lp := r.plan(ctx, &m, nil, nil, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	res := r.data.Fleet.Apply(ctx, lp.objects(m.owner()), func(string) *pb.Object { return nil })
	if !res.OK() {
		msg := applyFailure("Creating "+m.Name.ValueString(), res, len(lp.mesh.Members))
		if len(res.Uncertain) > 0 {
			// Some nodes may hold part of it: keep it in state (tainted) so that the next
			// apply or destroy reaches them; the others have nothing.
			answers := map[string]*pb.VxlanTunnel{}
			for _, mb := range lp.mesh.Members {
				answers[mb.Key] = &pb.VxlanTunnel{}
			}
			m.setObserved(ctx, lp, answers, mapValue(ctx, nil, &resp.Diagnostics), &resp.Diagnostics)
			members, d := membersOf(ctx, m.Members)
			resp.Diagnostics.Append(d...)
			for _, e := range res.Uncertain {
				members[e.Node] = unreachable(members[e.Node])
			}
			mv, d := membersValue(members)
			resp.Diagnostics.Append(d...)
			m.Members = mv
			resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
			msg += "\n\nThe link is kept in state as tainted, so that the next apply (which replaces it) or destroy reaches them."
		}
		resp.Diagnostics.AddError("Cluster link not created", msg)
		return
	}
	r.applyCalicoPools(ctx, &m, lp, &resp.Diagnostics)
	m.setObserved(ctx, lp, answersOf(res), r.calicoLines(ctx, &m, lp), &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *ClusterLinkResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m clusterLinkModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	members, d := membersOf(ctx, m.Members)
	resp.Diagnostics.Append(d...)
	keys := sortedKeys(members)
	observed, missing, down := readNodeObjects(ctx, r.data.Fleet, objectID(m.Device.ValueString()), m.owner(), keys, &resp.Diagnostics)
	if len(keys) > 0 && len(missing) == len(keys) {
		resp.State.RemoveResource(ctx) // no node has it any more (removed, or taken over)
		return
	}
	for _, k := range missing {
		observed[k] = &pb.Object{}
	}
	in := m.meshDevice()
	for _, k := range keys {
		if o, ok := observed[k]; ok {
			members[k] = observe(members[k], in.Name, in, o.GetVxlanTunnel())
		}
	}
	for _, k := range down {
		members[k] = unreachable(members[k])
	}
	mv, d := membersValue(members)
	resp.Diagnostics.Append(d...)
	m.Members = mv
	m.CalicoIPPools = r.calicoLines(ctx, &m, nil)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// Update applies every node's new share, removes the nodes that left, and brings the Calico
// IPPools to what the clusters now need.
func (r *ClusterLinkResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m, prior clusterLinkModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	if resp.Diagnostics.HasError() || !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	ctx, cancel := opTimeout(ctx, m.Timeouts.Update, defaultUpdateTimeout, &resp.Diagnostics)
	defer cancel()
	m.ID = prior.ID
	priorMembers, d := membersOf(ctx, prior.Members)
	resp.Diagnostics.Append(d...)
	lp := r.plan(ctx, &m, priorOverlay(priorMembers), nil, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	var removed []string
	for k := range priorMembers {
		if _, ok := lp.plan.Members[k]; !ok {
			removed = append(removed, k)
		}
	}
	owner := m.owner()
	res := r.data.Fleet.Apply(ctx, lp.objects(owner), nil)
	if !res.OK() {
		resp.Diagnostics.AddError("Cluster link not fully updated", applyFailure("Updating "+m.Name.ValueString(), res, len(lp.mesh.Members))+
			"\n\nThe state keeps what it had; the next plan reads every node again.")
		return
	}
	var reachable []string
	for _, k := range sortedStrings(removed) {
		if _, ok := r.data.Fleet.Node(k); ok {
			reachable = append(reachable, k)
		} else {
			resp.Diagnostics.AddWarning("Node left the inventory", fmt.Sprintf("%s is no longer in the provider's inventory, so its %s device could not be removed; the other nodes' entries for it are", k, m.Device.ValueString()))
		}
	}
	others, errs := r.data.Fleet.Delete(ctx, objectID(m.Device.ValueString()), owner, reachable)
	warnOthers(&resp.Diagnostics, m.Device.ValueString(), others)
	if len(errs) > 0 {
		resp.Diagnostics.AddError("Nodes that left the link not cleaned", "removing the link from them failed on:\n"+fleet.Join(errs)+"\n\nThe next apply retries.")
		return
	}
	r.applyCalicoPools(ctx, &m, lp, &resp.Diagnostics)
	r.deleteStaleCalicoPools(ctx, &m, lp, &resp.Diagnostics)
	m.setObserved(ctx, lp, answersOf(res), r.calicoLines(ctx, &m, lp), &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// Delete removes every node's share and the link's Calico IPPools.
func (r *ClusterLinkResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m clusterLinkModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	ctx, cancel := opTimeout(ctx, m.Timeouts.Delete, defaultDeleteTimeout, &resp.Diagnostics)
	defer cancel()
	members, d := membersOf(ctx, m.Members)
	resp.Diagnostics.Append(d...)
	others, errs := r.data.Fleet.Delete(ctx, objectID(m.Device.ValueString()), m.owner(), sortedKeys(members))
	warnOthers(&resp.Diagnostics, m.Device.ValueString(), others)
	if len(errs) > 0 {
		resp.Diagnostics.AddError("Cluster link not deleted everywhere",
			fmt.Sprintf("Deleting %s failed on:\n%s\n\nThe other nodes are clean; the next destroy retries.", m.Name.ValueString(), fleet.Join(errs)))
	}
	r.deleteStaleCalicoPools(ctx, &m, nil, &resp.Diagnostics)
}

// applyFailure says what failed, what was rolled back and what may remain.
func applyFailure(what string, res *fleet.ApplyResult, total int) string {
	msg := fmt.Sprintf("%s failed on %d of %d nodes:\n%s", what, len(res.Failed), total, fleet.Join(res.Failed))
	if len(res.RolledBack) > 0 {
		msg += fmt.Sprintf("\n\nRolled back on: %s.", strings.Join(res.RolledBack, ", "))
	}
	if len(res.Uncertain) > 0 {
		msg += fmt.Sprintf("\n\nThese nodes did not answer in time and may hold the change; the next plan reads them:\n%s", fleet.Join(res.Uncertain))
	}
	return msg
}

func answersOf(res *fleet.ApplyResult) map[string]*pb.VxlanTunnel {
	out := map[string]*pb.VxlanTunnel{}
	for k, a := range res.Answers {
		out[k] = a.GetObserved().GetVxlanTunnel()
	}
	return out
}
