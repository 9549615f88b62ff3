package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/nodenet/terraform-provider-nodenet/provider/validators"
)

var (
	_ resource.Resource                = &RouteReflectorResource{}
	_ resource.ResourceWithConfigure   = &RouteReflectorResource{}
	_ resource.ResourceWithImportState = &RouteReflectorResource{}
	_ resource.ResourceWithModifyPlan  = &RouteReflectorResource{}
)

// NewRouteReflectorResource is nodenet_route_reflector.
func NewRouteReflectorResource() resource.Resource { return &RouteReflectorResource{} }

// RouteReflectorResource makes one node a route reflector for its cluster: the reflector
// gets its cluster id and its clients, every client a peering with it. Several reflectors
// peer with each other (each is the other's client by default). Schema and CRUD here; model
// and plan in model_route_reflector.go.
type RouteReflectorResource struct {
	data *providerData
}

const reflectorTimeout = 5 * time.Minute

func (r *RouteReflectorResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_route_reflector"
}

func (r *RouteReflectorResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A BGP route reflector (RFC 4456), as Calico's `routeReflectorClusterID` node annotation plus a " +
			"BGPPeer selecting it: the reflector node reflects its clients' routes, every client peers with the reflector. " +
			"With the mesh off (`nodenet_bgp_config.node_to_node_mesh = false`) each node then has one session per reflector " +
			"instead of one per node. Several reflectors peer with each other.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true, MarkdownDescription: "`<cluster>/<node>`: the import ID.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"cluster": schema.StringAttribute{
				Required: true, MarkdownDescription: "The cluster.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"node": schema.StringAttribute{
				Required: true, MarkdownDescription: "The reflector node (a node of the cluster that runs a speaker).",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"asn": schema.Int64Attribute{
				Required: true, MarkdownDescription: "The cluster's AS (reflection is within one AS): usually `nodenet_bgp_config.<name>.asn`.",
				Validators: []validator.Int64{validators.ASN()},
			},
			"cluster_id": schema.StringAttribute{
				Optional: true, Computed: true,
				MarkdownDescription: "Route reflector cluster id, in IPv4 form. Default: the reflector node's address. Reflectors that share a cluster id do not reflect each other's reflected routes.",
				Validators:          []validator.String{validators.IPv4()},
			},
			"clients": schema.SetAttribute{
				ElementType: types.StringType, Optional: true, Computed: true,
				MarkdownDescription: "Names of the client nodes. Default: every other node of the cluster (other reflectors included: reflectors peer with each other).",
			},
			"sessions": schema.MapAttribute{
				ElementType: types.StringType, Computed: true,
				MarkdownDescription: "Per node (the reflector and each client), the state of its session(s) with the reflector side, as read at the last apply or refresh.",
			},
			"timeouts": timeouts.Attributes(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}

func (r *RouteReflectorResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = providerDataFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *RouteReflectorResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m reflectorModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	ctx, cancel := opTimeout(ctx, m.Timeouts.Create, reflectorTimeout, &resp.Diagnostics)
	defer cancel()
	m.ID = types.StringValue(m.Cluster.ValueString() + "/" + m.Node.ValueString())
	objs := m.objects(ctx, r.data.Fleet, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	observed := applyNodeObjects(ctx, r.data.Fleet, "Creating reflector "+m.Node.ValueString(), objs, nil, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	m.setObserved(ctx, observed, nil, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *RouteReflectorResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m reflectorModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	keys := m.nodeKeys(ctx, &resp.Diagnostics)
	observed, _, down := readNodeObjects(ctx, r.data.Fleet, m.objectID(), m.owner(), keys, &resp.Diagnostics)
	if _, ok := observed[m.reflectorKey()]; !ok && !contains(down, m.reflectorKey()) {
		resp.State.RemoveResource(ctx) // the reflector itself lost it: recreate
		return
	}
	m.setObserved(ctx, observed, down, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *RouteReflectorResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m, prior reflectorModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	if resp.Diagnostics.HasError() || !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	ctx, cancel := opTimeout(ctx, m.Timeouts.Update, reflectorTimeout, &resp.Diagnostics)
	defer cancel()
	objs := m.objects(ctx, r.data.Fleet, &resp.Diagnostics)
	prev := prior.objects(ctx, r.data.Fleet, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	observed := replaceNodeObjects(ctx, r.data.Fleet, "Changing reflector "+m.Node.ValueString(), objs, prev, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	m.setObserved(ctx, observed, nil, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *RouteReflectorResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	deletePerNode[reflectorModel](ctx, r.data, "Reflector", reflectorTimeout, req, resp)
}
