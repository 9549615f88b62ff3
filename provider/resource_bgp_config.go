package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/nodenet/terraform-provider-nodenet/provider/validators"
)

var (
	_ resource.Resource                = &BGPConfigResource{}
	_ resource.ResourceWithConfigure   = &BGPConfigResource{}
	_ resource.ResourceWithImportState = &BGPConfigResource{}
	_ resource.ResourceWithModifyPlan  = &BGPConfigResource{}
)

// NewBGPConfigResource is nodenet_bgp_config.
func NewBGPConfigResource() resource.Resource { return &BGPConfigResource{} }

// BGPConfigResource is a cluster's BGP configuration, as Calico's BGPConfiguration: a speaker
// on every node (embedded GoBGP in nodenet-agent) and, unless turned off, the node-to-node
// mesh. Schema and CRUD are here; model conversion and the plan in model_bgp_config.go.
type BGPConfigResource struct {
	data *providerData
}

const bgpConfigTimeout = 5 * time.Minute

var gracefulRestartTypes = map[string]attr.Type{"enabled": types.BoolType, "restart_time": types.Int64Type}

func (r *BGPConfigResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_bgp_config"
}

func (r *BGPConfigResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A cluster's BGP configuration: a BGP speaker on every selected node (AS, router id = the node's " +
			"address, listen port, graceful restart, timers in seconds) and the node-to-node mesh. Pool blocks " +
			"(`nodenet_ippool`) are announced by it; `nodenet_route_reflector` and `nodenet_bgp_peer` add peerings. " +
			"An agent restart sends no Cease: peers keep the node's routes while it is away.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true, MarkdownDescription: "The cluster: the import ID.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"cluster": schema.StringAttribute{
				Required: true, MarkdownDescription: "The cluster (a key of the provider's `clusters`).",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"asn": schema.Int64Attribute{
				Required: true, MarkdownDescription: "The cluster's AS number (1 to 4294967294; private: 64512-65534, 4200000000-4294967294).",
				Validators: []validator.Int64{validators.ASN()},
			},
			"node_to_node_mesh": schema.BoolAttribute{
				Optional: true, Computed: true, Default: booldefault.StaticBool(true),
				MarkdownDescription: "Every node peers with every other node. Turn it off when route reflectors serve the cluster; turning it off and a reflector on in one apply keeps every pod route.",
			},
			"listen_port": schema.Int64Attribute{
				Optional: true, Computed: true, Default: int64default.StaticInt64(179),
				MarkdownDescription: "TCP port the speakers listen on and connect to. Default 179.",
				Validators:          []validator.Int64{int64validator.Between(1, 65535)},
			},
			"graceful_restart": schema.SingleNestedAttribute{
				Optional: true, Computed: true,
				Default: objectdefault.StaticValue(types.ObjectValueMust(gracefulRestartTypes, map[string]attr.Value{
					"enabled": types.BoolValue(true), "restart_time": types.Int64Value(120)})),
				MarkdownDescription: "Graceful restart (RFC 4724): peers keep a restarting node's routes for `restart_time` seconds.",
				Attributes: map[string]schema.Attribute{
					"enabled":      schema.BoolAttribute{Required: true, MarkdownDescription: "Whether peers keep this node's routes while it restarts."},
					"restart_time": schema.Int64Attribute{Required: true, MarkdownDescription: "Seconds, 1 to 4095.", Validators: []validator.Int64{int64validator.Between(1, 4095)}},
				},
			},
			"keepalive": schema.Int64Attribute{
				Optional: true, Computed: true, Default: int64default.StaticInt64(3),
				MarkdownDescription: "Keepalive interval, seconds. Default 3 (GoBGP's own default is 30).",
				Validators:          []validator.Int64{int64validator.Between(1, 21845)},
			},
			"hold_time": schema.Int64Attribute{
				Optional: true, Computed: true, Default: int64default.StaticInt64(9),
				MarkdownDescription: "Hold time, seconds (3 to 65535, more than the keepalive). Default 9.",
				Validators:          []validator.Int64{int64validator.Between(3, 65535)},
			},
			"nodes": schema.SetAttribute{
				ElementType: types.StringType, Optional: true, Computed: true,
				MarkdownDescription: "Names of the cluster's nodes that run a speaker. Default: every node of the cluster.",
			},
			"router_ids": schema.MapAttribute{
				ElementType: types.StringType, Optional: true,
				MarkdownDescription: "Router ids by node name, IPv4 form, for nodes whose address should not be their router id (a changed router id restarts that node's speaker). Default: each node's address.",
				Validators:          []validator.Map{mapvalidator.ValueStringsAre(validators.IPv4())},
			},
			"speakers": schema.MapNestedAttribute{
				Computed: true, MarkdownDescription: "Per node, its speaker as the node reports it. The plan expects every speaker `running`: any other state read back (a speaker that lost learned routes deleted by hand, say) is a change the next apply repairs. Sessions are in the `nodenet_bgp_status` data source.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"router_id": schema.StringAttribute{Computed: true, MarkdownDescription: "Router id (the node's address)."},
					"state":     schema.StringAttribute{Computed: true, MarkdownDescription: "`running`, or what is wrong."},
				}},
			},
			"timeouts": timeouts.Attributes(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}

func (r *BGPConfigResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = providerDataFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *BGPConfigResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m bgpConfigModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	ctx, cancel := opTimeout(ctx, m.Timeouts.Create, bgpConfigTimeout, &resp.Diagnostics)
	defer cancel()
	m.ID = m.Cluster
	objs := m.objects(ctx, r.data.Fleet, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	observed := applyNodeObjects(ctx, r.data.Fleet, "Starting the BGP speakers of "+m.Cluster.ValueString(), objs, nil, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	m.setObserved(ctx, observed, nil, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *BGPConfigResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readPerNode[bgpConfigModel](ctx, r.data, req, resp)
}

func (r *BGPConfigResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m, prior bgpConfigModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	if resp.Diagnostics.HasError() || !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	ctx, cancel := opTimeout(ctx, m.Timeouts.Update, bgpConfigTimeout, &resp.Diagnostics)
	defer cancel()
	objs := m.objects(ctx, r.data.Fleet, &resp.Diagnostics)
	prev := prior.objects(ctx, r.data.Fleet, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	observed := replaceNodeObjects(ctx, r.data.Fleet, "Changing the BGP speakers of "+m.Cluster.ValueString(), objs, prev, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	m.setObserved(ctx, observed, nil, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *BGPConfigResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	deletePerNode[bgpConfigModel](ctx, r.data, "BGP speakers", bgpConfigTimeout, req, resp)
}
