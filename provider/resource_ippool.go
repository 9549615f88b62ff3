package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/nodenet/terraform-provider-nodenet/provider/validators"
)

var (
	_ resource.Resource                   = &IPPoolResource{}
	_ resource.ResourceWithConfigure      = &IPPoolResource{}
	_ resource.ResourceWithImportState    = &IPPoolResource{}
	_ resource.ResourceWithModifyPlan     = &IPPoolResource{}
	_ resource.ResourceWithValidateConfig = &IPPoolResource{}
)

// NewIPPoolResource is nodenet_ippool.
func NewIPPoolResource() resource.Resource { return &IPPoolResource{} }

// IPPoolResource is a cluster's IP pool: a block per node, planned by the provider and shown
// in the plan, with a blackhole route for it and its announcement over BGP. Schema and CRUD
// are here; model conversion and the plan in model_ippool.go, import in import_ippool.go.
type IPPoolResource struct {
	data *providerData
}

const ipPoolTimeout = 5 * time.Minute

func (r *IPPoolResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_ippool"
}

func (r *IPPoolResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "An IP pool of a cluster, as Calico's IPPool: every selected node gets a block of it " +
			"(planned here, stable: an existing allocation never moves, a new node takes the lowest free block, a removed " +
			"node frees its block), a blackhole route for the block in its kernel, and the block announced by its BGP " +
			"speaker (see `nodenet_bgp_config`); masquerade of the pool's outgoing traffic (`nat_outgoing`); VXLAN or IPIP encapsulation " +
			"between nodes, always or across subnets only; and each node's CNI configuration for its block.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true, MarkdownDescription: "`<cluster>/<cidr>`: the import ID.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"cluster": schema.StringAttribute{
				Required: true, MarkdownDescription: "The cluster (a key of the provider's `clusters`).",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"cidr": schema.StringAttribute{
				Required: true, MarkdownDescription: "The pool, an IPv4 CIDR like `10.244.0.0/16`.",
				Validators:    []validator.String{validators.CIDR()},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"block_size": schema.Int64Attribute{
				Optional: true, Computed: true, Default: int64default.StaticInt64(26),
				MarkdownDescription: "Prefix length of the nodes' blocks, from the pool's own prefix length to 32. Default 26 (64 addresses), as Calico's.",
				Validators:          []validator.Int64{int64validator.Between(1, 32)},
				PlanModifiers:       []planmodifier.Int64{int64planmodifier.RequiresReplace()},
			},
			"disabled": schema.BoolAttribute{
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				MarkdownDescription: "A disabled pool keeps the blocks it gave but gives no block to a node that has none. It still counts as a pool for `nat_outgoing`: traffic to it is never masqueraded.",
			},
			"disable_bgp_export": schema.BoolAttribute{
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				MarkdownDescription: "Do not announce the pool's blocks over BGP (the blackholes stay).",
			},
			"nodes": schema.SetAttribute{
				ElementType: types.StringType, Optional: true, Computed: true,
				MarkdownDescription: "Names of the cluster's nodes that have the pool: each gets a block (unless the pool is disabled), the pool's NAT and its encapsulation. Default: every node of the cluster.",
				PlanModifiers:       []planmodifier.Set{setplanmodifier.UseStateForUnknown()},
			},
			"nat_outgoing": schema.BoolAttribute{
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				MarkdownDescription: "Masquerade traffic from the pool's addresses to destinations outside every pool the node has (Calico's `natOutgoing`), " +
					"in an nftables table `nodenet` that the agents keep. Every pool, enabled or disabled, is exempt as a destination: a disabled pool " +
					"of another cluster's pod CIDR keeps traffic to it unmasqueraded, as the multi-cluster set-up needs.",
			},
			"encapsulation": schema.StringAttribute{
				Optional: true, Computed: true, Default: stringdefault.StaticString(encapNone),
				MarkdownDescription: "How traffic to the other nodes' blocks travels: `none` (routed as BGP learns it), `vxlan` (a VXLAN device per pool, " +
					"with FDB and neighbour entries for the other nodes and a route to each of their blocks through it) or `ipip` (an IPIP device, " +
					"which needs the `ipip` kernel module on every node). With encapsulation the routes are planned here from the allocations: no BGP is needed. Changes in place.",
				Validators: []validator.String{stringvalidator.OneOf(encapNone, encapVXLAN, encapIPIP)},
			},
			"encapsulation_mode": schema.StringAttribute{
				Optional: true, Computed: true, Default: stringdefault.StaticString(modeAlways),
				MarkdownDescription: "`always`, or `cross_subnet`: only traffic to nodes in another underlay subnet is encapsulated; nodes of one subnet route to each other's blocks directly (Calico's `CrossSubnet`).",
				Validators:          []validator.String{stringvalidator.OneOf(modeAlways, modeCrossSubnet)},
			},
			"vxlan_vni": schema.Int64Attribute{
				Optional: true, Computed: true, Default: int64default.StaticInt64(4096),
				MarkdownDescription: "VNI of the pool's VXLAN device (Calico's default, 4096). Two encapsulated pools on one node need different VNIs or ports.",
				Validators:          []validator.Int64{validators.VNI()},
			},
			"vxlan_port": schema.Int64Attribute{
				Optional: true, Computed: true, Default: int64default.StaticInt64(4789),
				MarkdownDescription: "UDP port of the pool's VXLAN device (default 4789).",
				Validators:          []validator.Int64{validators.Port()},
			},
			"tunnel_device": schema.StringAttribute{
				Optional: true, Computed: true,
				MarkdownDescription: "Name of the pool's tunnel device. Default: `vxlan-<8 hex digits of the pool>` for vxlan, `tunl-<...>` for ipip; empty without encapsulation.",
				Validators:          []validator.String{validators.IfName()},
			},
			"mtu": schema.Int64Attribute{
				Optional:            true,
				MarkdownDescription: "MTU of the tunnel device and of the pods' interfaces. Default: each node's underlay MTU less the encapsulation's overhead (50 for vxlan, 20 for ipip).",
				Validators:          []validator.Int64{validators.MTU()},
			},
			"cni": schema.SingleNestedAttribute{
				Optional: true,
				MarkdownDescription: "Have the agents write each node's CNI configuration (`cni_config`) into their CNI configuration directory " +
					"(`nodenet-agent serve --cni-conf-dir`), so that the node's pods get addresses from its block through the reference `ptp` and `host-local` plugins. " +
					"Leave it out where another CNI (Calico's) owns the directory.",
				Attributes: map[string]schema.Attribute{
					"network": schema.StringAttribute{
						Optional: true, Computed: true, Default: stringdefault.StaticString("k8s-pod-network"),
						MarkdownDescription: "The configuration's network name (default `k8s-pod-network`, Calico's).",
						Validators:          []validator.String{validators.CNINetwork()},
					},
					"file": schema.StringAttribute{
						Optional: true, Computed: true, Default: stringdefault.StaticString("10-nodenet.conflist"),
						MarkdownDescription: "File name in the directory (default `10-nodenet.conflist`): runtimes load the first file in name order.",
						Validators:          []validator.String{validators.CNIFile()},
					},
				},
			},
			"allocations": schema.MapAttribute{
				ElementType: types.StringType, Computed: true,
				MarkdownDescription: "Node name -> its block, as planned (and, after apply, as the nodes have them: a blackhole route removed by hand shows as a missing allocation).",
			},
			"nat": schema.MapAttribute{
				ElementType: types.StringType, Computed: true,
				MarkdownDescription: "Node name -> what the node's `nodenet` nftables table does for the pool (`masquerade <pool> to destinations outside every pool`, or nothing), " +
					"followed by the table's drift, if any, one line each (`drift: + exempt 10.99.0.0/16` for an element no pool explains, `drift: - rule masquerade`, " +
					"`drift: - exempt 10.245.0.0/16`): what apply repairs. The table exists on a node while one of its pools masquerades.",
			},
			"tunnels": schema.MapAttribute{
				ElementType: types.StringType, Computed: true,
				MarkdownDescription: "Node name -> the pool's encapsulation on the node, one line per kernel entry: the device, its FDB and neighbour entries, the routes through it, " +
					"and the direct routes of cross_subnet; empty without encapsulation.",
			},
			"cni_config": schema.MapAttribute{
				ElementType: types.StringType, Computed: true,
				MarkdownDescription: "Node name -> the CNI configuration list of its block (ptp with host-local IPAM over the block; the gateway is the block's first address). " +
					"With `cni`, as the node's file has it.",
			},
			"timeouts": timeouts.Attributes(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}

func (r *IPPoolResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = providerDataFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *IPPoolResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m ipPoolModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	ctx, cancel := opTimeout(ctx, m.Timeouts.Create, ipPoolTimeout, &resp.Diagnostics)
	defer cancel()
	m.ID = types.StringValue(m.Cluster.ValueString() + "/" + m.CIDR.ValueString())
	pp := r.planNodes(ctx, &m, false, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	m.CNIConfig = mapValue(ctx, pp.cni, &resp.Diagnostics) // rendered; observed where written
	observed := applyNodeObjects(ctx, r.data.Fleet, "Creating pool "+m.CIDR.ValueString(), pp.objects, nil, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	m.setObserved(ctx, observed, nil, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *IPPoolResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readPerNode[ipPoolModel](ctx, r.data, req, resp)
}

func (r *IPPoolResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m, prior ipPoolModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	if resp.Diagnostics.HasError() || !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	ctx, cancel := opTimeout(ctx, m.Timeouts.Update, ipPoolTimeout, &resp.Diagnostics)
	defer cancel()
	pp := r.planNodes(ctx, &m, false, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	prev := r.planNodes(ctx, &prior, false, &resp.Diagnostics) // what a failure rolls back to
	if resp.Diagnostics.HasError() {
		return
	}
	m.CNIConfig = mapValue(ctx, pp.cni, &resp.Diagnostics)
	observed := replaceNodeObjects(ctx, r.data.Fleet, "Updating pool "+m.CIDR.ValueString(), pp.objects, prev.objects, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	m.setObserved(ctx, observed, nil, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *IPPoolResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	deletePerNode[ipPoolModel](ctx, r.data, "Pool", ipPoolTimeout, req, resp)
}
