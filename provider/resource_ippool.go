package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setplanmodifier"
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
			"speaker (see `nodenet_bgp_config`). NAT and encapsulation come in a later version.",
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
				MarkdownDescription: "A disabled pool keeps the blocks it gave but gives no block to a node that has none.",
			},
			"disable_bgp_export": schema.BoolAttribute{
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				MarkdownDescription: "Do not announce the pool's blocks over BGP (the blackholes stay).",
			},
			"nodes": schema.SetAttribute{
				ElementType: types.StringType, Optional: true, Computed: true,
				MarkdownDescription: "Names of the cluster's nodes that get a block. Default: every node of the cluster.",
				PlanModifiers:       []planmodifier.Set{setplanmodifier.UseStateForUnknown()},
			},
			"allocations": schema.MapAttribute{
				ElementType: types.StringType, Computed: true,
				MarkdownDescription: "Node name -> its block, as planned (and, after apply, as the nodes have them: a blackhole route removed by hand shows as a missing allocation).",
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
	objs := m.objects(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	observed := applyNodeObjects(ctx, r.data.Fleet, "Creating pool "+m.CIDR.ValueString(), objs, nil, &resp.Diagnostics)
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
	objs := m.objects(ctx, &resp.Diagnostics)
	prev := prior.objects(ctx, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	observed := replaceNodeObjects(ctx, r.data.Fleet, "Updating pool "+m.CIDR.ValueString(), objs, prev, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	m.setObserved(ctx, observed, nil, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *IPPoolResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	deletePerNode[ipPoolModel](ctx, r.data, "Pool", ipPoolTimeout, req, resp)
}
