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
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/nodenet/terraform-provider-nodenet/provider/validators"
)

var (
	_ resource.Resource                   = &BGPPeerResource{}
	_ resource.ResourceWithConfigure      = &BGPPeerResource{}
	_ resource.ResourceWithImportState    = &BGPPeerResource{}
	_ resource.ResourceWithModifyPlan     = &BGPPeerResource{}
	_ resource.ResourceWithValidateConfig = &BGPPeerResource{}
)

// NewBGPPeerResource is nodenet_bgp_peer.
func NewBGPPeerResource() resource.Resource { return &BGPPeerResource{} }

// BGPPeerResource is an explicit BGP peering of a cluster's nodes, as Calico's BGPPeer: a
// ToR or an external router. Schema and CRUD here; model and plan in model_bgp_peer.go.
type BGPPeerResource struct {
	data *providerData
}

const peerTimeout = 5 * time.Minute

func (r *BGPPeerResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_bgp_peer"
}

func (r *BGPPeerResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "An explicit BGP peering of a cluster's nodes with a router (a ToR, an office or data-centre " +
			"router), as Calico's BGPPeer. The nodes announce their pool blocks to it and program what it announces. The " +
			"TCP MD5 password is write-only (Terraform 1.11): never in state, plans or the agents' answers; the agents keep it " +
			"to restore sessions after a restart, and a password changed on a node shows as drift.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true, MarkdownDescription: "`<cluster>/<peer_ip>`: the import ID.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"cluster": schema.StringAttribute{
				Required: true, MarkdownDescription: "The cluster.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"nodes": schema.SetAttribute{
				ElementType: types.StringType, Optional: true, Computed: true,
				MarkdownDescription: "Names of the nodes that peer. Default: every node of the cluster.",
			},
			"peer_ip": schema.StringAttribute{
				Required: true, MarkdownDescription: "The peer's IPv4 address.",
				Validators:    []validator.String{validators.IPv4()},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"peer_asn": schema.Int64Attribute{
				Required: true, MarkdownDescription: "The peer's AS (the cluster's own AS makes it iBGP).",
				Validators: []validator.Int64{validators.ASN()},
			},
			"password_wo": schema.StringAttribute{
				Optional: true, WriteOnly: true, Sensitive: true,
				MarkdownDescription: "TCP MD5 password (RFC 2385), at most 80 bytes. Write-only: set `password_wo_version` with it and change the version to change the password.",
			},
			"password_wo_version": schema.Int64Attribute{
				Optional:            true,
				MarkdownDescription: "Version of `password_wo`: required with it; a new value sends the password again. A password changed on a node shows as a change of this attribute in the plan.",
			},
			"ebgp_multihop": schema.Int64Attribute{
				Optional: true, MarkdownDescription: "eBGP multihop TTL, 1 to 255 (unset: the peer is directly connected).",
				Validators: []validator.Int64{int64validator.Between(1, 255)},
			},
			"source_address": schema.StringAttribute{
				Optional: true, MarkdownDescription: "Local address of the sessions. Default: each node's address.",
				Validators: []validator.String{validators.IPv4()},
			},
			"passive": schema.BoolAttribute{
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				MarkdownDescription: "Wait for the peer to connect.",
			},
			"keepalive": schema.Int64Attribute{
				Optional: true, Computed: true, Default: int64default.StaticInt64(3),
				MarkdownDescription: "Keepalive interval, seconds. Default 3.", Validators: []validator.Int64{int64validator.Between(1, 21845)},
			},
			"hold_time": schema.Int64Attribute{
				Optional: true, Computed: true, Default: int64default.StaticInt64(9),
				MarkdownDescription: "Hold time, seconds. Default 9.", Validators: []validator.Int64{int64validator.Between(3, 65535)},
			},
			"graceful_restart": schema.SingleNestedAttribute{
				Optional:            true,
				MarkdownDescription: "Graceful restart with this peer (RFC 4724). Default: the cluster's (`nodenet_bgp_config.graceful_restart`).",
				Attributes: map[string]schema.Attribute{
					"enabled":      schema.BoolAttribute{Required: true, MarkdownDescription: "Whether the peer keeps this node's routes while it restarts, and this node the peer's."},
					"restart_time": schema.Int64Attribute{Required: true, MarkdownDescription: "Seconds, 1 to 4095.", Validators: []validator.Int64{int64validator.Between(1, 4095)}},
				},
			},
			"sessions": schema.MapAttribute{
				ElementType: types.StringType, Computed: true,
				MarkdownDescription: "Per node, the session state as read at the last apply or refresh.",
			},
			"timeouts": timeouts.Attributes(ctx, timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}

func (r *BGPPeerResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = providerDataFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *BGPPeerResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m, cfg peerModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() || !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	ctx, cancel := opTimeout(ctx, m.Timeouts.Create, peerTimeout, &resp.Diagnostics)
	defer cancel()
	m.ID = types.StringValue(m.Cluster.ValueString() + "/" + m.PeerIP.ValueString())
	objs := m.objects(ctx, cfg.Password.ValueString(), &resp.Diagnostics)
	observed := applyNodeObjects(ctx, r.data.Fleet, "Creating peer "+m.PeerIP.ValueString(), objs, nil, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	m.setObserved(ctx, observed, nil, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *BGPPeerResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	readPerNode[peerModel](ctx, r.data, req, resp)
}

func (r *BGPPeerResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m, prior, cfg peerModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() || !configuredData(r.data, &resp.Diagnostics) {
		return
	}
	ctx, cancel := opTimeout(ctx, m.Timeouts.Update, peerTimeout, &resp.Diagnostics)
	defer cancel()
	objs := m.objects(ctx, cfg.Password.ValueString(), &resp.Diagnostics)
	// A rollback re-applies the previous settings with the password of this run: the agents
	// never give a password back, and the previous one is not known here.
	prev := prior.objects(ctx, cfg.Password.ValueString(), &resp.Diagnostics)
	observed := replaceNodeObjects(ctx, r.data.Fleet, "Changing peer "+m.PeerIP.ValueString(), objs, prev, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	m.setObserved(ctx, observed, nil, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *BGPPeerResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	deletePerNode[peerModel](ctx, r.data, "Peer", peerTimeout, req, resp)
}
