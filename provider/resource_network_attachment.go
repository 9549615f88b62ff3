package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-jsontypes/jsontypes"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/nodenet/terraform-provider-nodenet/provider/kube"
	"github.com/nodenet/terraform-provider-nodenet/provider/validators"
)

var (
	_ resource.Resource                   = &NetworkAttachmentResource{}
	_ resource.ResourceWithConfigure      = &NetworkAttachmentResource{}
	_ resource.ResourceWithImportState    = &NetworkAttachmentResource{}
	_ resource.ResourceWithModifyPlan     = &NetworkAttachmentResource{}
	_ resource.ResourceWithValidateConfig = &NetworkAttachmentResource{}
)

// NewNetworkAttachmentResource is the nodenet_network_attachment resource.
func NewNetworkAttachmentResource() resource.Resource { return &NetworkAttachmentResource{} }

// NetworkAttachmentResource is a Multus NetworkAttachmentDefinition. Schema and CRUD are
// here; the CNI configuration in model_network_attachment.go, the checks (alone and on
// the nodes) in plan_network_attachment.go, import in import_network_attachment.go.
type NetworkAttachmentResource struct {
	data *providerData
}

func (r *NetworkAttachmentResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_network_attachment"
}

func (r *NetworkAttachmentResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = networkAttachmentSchema()
}

func replaceString(desc string, v ...validator.String) schema.StringAttribute {
	return schema.StringAttribute{Required: true, MarkdownDescription: desc, Validators: v,
		PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}}
}

func networkAttachmentSchema() schema.Schema {
	return schema.Schema{
		MarkdownDescription: "A Multus NetworkAttachmentDefinition (`k8s.cni.cncf.io/v1`) that gives pods a second interface: " +
			"typed (`macvlan`, `ipvlan`, `bridge` or `host_device`, with `ipam`) or a raw CNI configuration (`config`). " +
			"Before anything is written, the plan checks the configuration and the cluster's nodes through their agents: the " +
			"master interface exists on every node, the kernel has the link type, addresses fall inside their ranges. Written by " +
			"server-side apply (field manager `nodenet`) and read back from the API, so an edit with kubectl shows in the plan and " +
			"a NAD deleted by hand is created again.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true, MarkdownDescription: "`<namespace>/<name>`.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"cluster":   replaceString("The provider's cluster (with a `kubernetes` attribute) whose API holds the attachment and whose nodes are checked. Changing it replaces the attachment.", validators.ClusterName()),
			"namespace": replaceString("Namespace, which must exist. Changing it replaces the attachment.", validators.DNSLabel()),
			"name":      replaceString("Name of the NAD, and the CNI network name in a typed configuration. Changing it replaces the attachment.", validators.DNSSubdomain()),
			"cni_version": schema.StringAttribute{
				Optional: true, Computed: true,
				MarkdownDescription: "CNI specification version of a typed configuration: " + cniVersionsMD() + ". Default `" + DefaultCNIVersion + "`. With `config`, the configuration's own `cniVersion` (read only).",
				Validators:          []validator.String{stringvalidator.OneOf(cniVersions...)},
			},
			"resource_name": schema.StringAttribute{
				Optional: true, MarkdownDescription: "The `k8s.v1.cni.cncf.io/resourceName` annotation: the device plugin resource (like `intel.com/sriov_netdevice`) pods using the attachment request.",
			},
			"macvlan":     macvlanSchema(),
			"ipvlan":      ipvlanSchema(),
			"bridge":      bridgeSchema(),
			"host_device": hostDeviceSchema(),
			"ipam":        ipamSchema(),
			"config": schema.StringAttribute{
				Optional: true, CustomType: jsontypes.NormalizedType{},
				MarkdownDescription: "A raw CNI configuration (JSON object with at least `type`), for plugins the typed attributes do not cover (like `ovn-k8s-cni-overlay`). Compared as JSON: formatting and key order make no difference. Conflicts with the typed attributes.",
			},
			"pod_interface": schema.StringAttribute{
				Optional: true, MarkdownDescription: "Interface name in the pod for `pod_annotation`, like `eth1` (not `eth0`, the cluster network's).",
				Validators: []validator.String{validators.IfName(), stringvalidator.NoneOf("eth0")},
			},
			"pod_default_route": schema.ListAttribute{
				Optional: true, ElementType: types.StringType,
				MarkdownDescription: "Gateways for `pod_annotation`'s `default-route`: the pod's default route then goes through this attachment.",
				Validators:          []validator.List{listvalidator.ValueStringsAre(validators.IPv4())},
			},
			"rendered_config": schema.StringAttribute{
				Computed: true, CustomType: jsontypes.NormalizedType{},
				MarkdownDescription: "The CNI configuration in the NAD's `spec.config` as the API server holds it; a plan shows the change when it was edited by hand.",
			},
			"pod_annotation": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The `k8s.v1.cni.cncf.io/networks` annotation value that attaches a pod: `[{\"name\": ..., \"namespace\": ..., \"interface\": ..., \"default-route\": [...]}]`.",
			},
		},
	}
}

func macvlanSchema() schema.SingleNestedAttribute {
	return schema.SingleNestedAttribute{
		Optional: true, MarkdownDescription: "A macvlan interface on `master` in every pod (CNI plugin `macvlan`).",
		Attributes: map[string]schema.Attribute{
			"master": schema.StringAttribute{Required: true, MarkdownDescription: "Host interface the macvlan sits on; it must exist on every node of the cluster.", Validators: []validator.String{validators.IfName()}},
			"mode": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("bridge"),
				MarkdownDescription: "`bridge` (default), `private`, `vepa`, `passthru` or `source`.",
				Validators:          []validator.String{stringvalidator.OneOf(macvlanModes...)}},
			"mtu": schema.Int64Attribute{Optional: true, MarkdownDescription: "MTU of the pod interface; default the master's.", Validators: []validator.Int64{validators.MTU()}},
		},
	}
}

func ipvlanSchema() schema.SingleNestedAttribute {
	return schema.SingleNestedAttribute{
		Optional: true, MarkdownDescription: "An ipvlan interface on `master` in every pod (CNI plugin `ipvlan`). The kernel of every node needs ipvlan.",
		Attributes: map[string]schema.Attribute{
			"master": schema.StringAttribute{Required: true, MarkdownDescription: "Host interface; it must exist on every node of the cluster.", Validators: []validator.String{validators.IfName()}},
			"mode": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("l2"),
				MarkdownDescription: "`l2` (default), `l3` or `l3s`.",
				Validators:          []validator.String{stringvalidator.OneOf(ipvlanModes...)}},
			"mtu": schema.Int64Attribute{Optional: true, MarkdownDescription: "MTU of the pod interface.", Validators: []validator.Int64{validators.MTU()}},
		},
	}
}

func bridgeSchema() schema.SingleNestedAttribute {
	return schema.SingleNestedAttribute{
		Optional: true, MarkdownDescription: "A veth from every pod to a Linux bridge on its node (CNI plugin `bridge`, which creates the bridge).",
		Attributes: map[string]schema.Attribute{
			"name": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("cni0"),
				MarkdownDescription: "Bridge name on the nodes. Default `cni0`.", Validators: []validator.String{validators.IfName()}},
			"is_gateway": schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false), MarkdownDescription: "Give the bridge the gateway address and route pods through it."},
			"ip_masq":    schema.BoolAttribute{Optional: true, Computed: true, Default: booldefault.StaticBool(false), MarkdownDescription: "Masquerade traffic leaving the pods' subnet."},
			"mtu":        schema.Int64Attribute{Optional: true, MarkdownDescription: "MTU of the bridge and veths.", Validators: []validator.Int64{validators.MTU()}},
			"vlan":       schema.Int64Attribute{Optional: true, MarkdownDescription: "VLAN id of the pods' ports, 1 to 4094.", Validators: []validator.Int64{validators.VlanID()}},
		},
	}
}

func hostDeviceSchema() schema.SingleNestedAttribute {
	return schema.SingleNestedAttribute{
		Optional: true, MarkdownDescription: "Move a host interface into the pod (CNI plugin `host-device`).",
		Attributes: map[string]schema.Attribute{
			"device": schema.StringAttribute{Required: true, MarkdownDescription: "Host interface moved into the pod; it must exist on every node.", Validators: []validator.String{validators.IfName()}},
		},
	}
}

func routesSchema() schema.ListNestedAttribute {
	return schema.ListNestedAttribute{
		Optional: true, MarkdownDescription: "Routes added in the pod.",
		NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
			"dst": schema.StringAttribute{Required: true, MarkdownDescription: "Destination CIDR.", Validators: []validator.String{validators.CIDR()}},
			"gw":  schema.StringAttribute{Optional: true, MarkdownDescription: "Gateway; default the IPAM's gateway.", Validators: []validator.String{validators.IPv4()}},
		}},
	}
}

func ipamSchema() schema.SingleNestedAttribute {
	opt := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Optional: true, MarkdownDescription: desc, Validators: []validator.String{validators.IPv4()}}
	}
	return schema.SingleNestedAttribute{
		Optional: true, MarkdownDescription: "Address management of a typed attachment: exactly one of `whereabouts`, `static`, `host_local`. Omitted: no address management (the interface gets no address).",
		Attributes: map[string]schema.Attribute{
			"whereabouts": schema.SingleNestedAttribute{
				Optional: true, MarkdownDescription: "Cluster-wide allocation by whereabouts.",
				Attributes: map[string]schema.Attribute{
					"range":       schema.StringAttribute{Required: true, MarkdownDescription: "CIDR addresses are taken from, like `192.168.60.0/24`.", Validators: []validator.String{validators.CIDR()}},
					"range_start": opt("First address handed out; inside `range`."),
					"range_end":   opt("Last address handed out; inside `range`, not before `range_start`."),
					"gateway":     opt("Gateway of the pods; inside `range`."),
					"exclude": schema.ListAttribute{Optional: true, ElementType: types.StringType, MarkdownDescription: "CIDRs never handed out; each inside `range`.",
						Validators: []validator.List{listvalidator.ValueStringsAre(validators.CIDR())}},
				},
			},
			"static": schema.SingleNestedAttribute{
				Optional: true, MarkdownDescription: "Fixed addresses (CNI IPAM plugin `static`): every pod gets the same, so for one pod per node.",
				Attributes: map[string]schema.Attribute{
					"addresses": schema.ListNestedAttribute{
						Required: true, MarkdownDescription: "Addresses of the pod interface.",
						NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
							"address": schema.StringAttribute{Required: true, MarkdownDescription: "Address with prefix length, like `192.168.60.20/24`.", Validators: []validator.String{validators.InterfaceAddress()}},
							"gateway": opt("Gateway in the address's subnet."),
						}},
					},
					"routes": routesSchema(),
				},
			},
			"host_local": schema.SingleNestedAttribute{
				Optional: true, MarkdownDescription: "Per-node allocation (CNI IPAM plugin `host-local`).",
				Attributes: map[string]schema.Attribute{
					"subnet":      schema.StringAttribute{Required: true, MarkdownDescription: "Subnet, like `192.168.60.0/24`.", Validators: []validator.String{validators.CIDR()}},
					"range_start": opt("First address handed out; inside `subnet`."),
					"range_end":   opt("Last address handed out; inside `subnet`."),
					"gateway":     opt("Gateway; inside `subnet`."),
					"routes":      routesSchema(),
				},
			},
		},
	}
}

func (r *NetworkAttachmentResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = providerDataFrom(req.ProviderData, &resp.Diagnostics)
}

// client is the Kubernetes client of the attachment's cluster.
func (r *NetworkAttachmentResource) client(cluster string) (*kube.Client, error) {
	if r.data == nil {
		return nil, errors.New("the provider is not configured")
	}
	c, ok := r.data.Kube[cluster]
	if !ok {
		return nil, fmt.Errorf("cluster %q has no kubernetes attribute in the provider (clusters with one: %v)", cluster, keysOf(r.data.Kube))
	}
	return c, nil
}

// nad is the object the model describes; the model's rendered_config must be known.
func nadOf(m *networkAttachmentModel) kube.NAD {
	return kube.NAD{Namespace: m.Namespace.ValueString(), Name: m.Name.ValueString(),
		Config: m.RenderedConfig.ValueString(), ResourceName: m.ResourceName.ValueString()}
}

func (r *NetworkAttachmentResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m networkAttachmentModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	c, err := r.client(m.Cluster.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(pathCluster, "Unknown cluster", err.Error())
		return
	}
	// An attachment made by hand is not taken over silently: import adopts it.
	if _, err := c.GetNAD(ctx, m.Namespace.ValueString(), m.Name.ValueString()); err == nil {
		resp.Diagnostics.AddError("NetworkAttachmentDefinition already exists",
			fmt.Sprintf("%s/%s exists in cluster %s and nodenet does not manage it: adopt it with terraform import (ID %s/%s/%s) or choose another name",
				m.Namespace.ValueString(), m.Name.ValueString(), m.Cluster.ValueString(), m.Cluster.ValueString(), m.Namespace.ValueString(), m.Name.ValueString()))
		return
	} else if !errors.Is(err, kube.ErrNotFound) {
		resp.Diagnostics.AddError("Cannot read the NetworkAttachmentDefinition", err.Error())
		return
	}
	r.write(ctx, c, &m, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *NetworkAttachmentResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m networkAttachmentModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	c, err := r.client(m.Cluster.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(pathCluster, "Unknown cluster", err.Error())
		return
	}
	r.write(ctx, c, &m, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// write applies the planned attachment and fills the model from what the API server holds.
func (r *NetworkAttachmentResource) write(ctx context.Context, c *kube.Client, m *networkAttachmentModel, diags interface{ AddError(string, string) }) {
	got, err := c.ApplyNAD(ctx, nadOf(m))
	if err != nil {
		diags.AddError("Cannot write the NetworkAttachmentDefinition", err.Error())
		return
	}
	m.ID = types.StringValue(m.Namespace.ValueString() + "/" + m.Name.ValueString())
	m.fromAPI(got)
}

func (r *NetworkAttachmentResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m networkAttachmentModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	c, err := r.client(m.Cluster.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(pathCluster, "Unknown cluster", err.Error())
		return
	}
	got, err := c.GetNAD(ctx, m.Namespace.ValueString(), m.Name.ValueString())
	if errors.Is(err, kube.ErrNotFound) {
		// Deleted by hand: the next plan creates it again.
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("Cannot read the NetworkAttachmentDefinition", err.Error())
		return
	}
	m.fromAPI(got)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *NetworkAttachmentResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m networkAttachmentModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	c, err := r.client(m.Cluster.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(pathCluster, "Unknown cluster", err.Error())
		return
	}
	if err := c.DeleteNAD(ctx, m.Namespace.ValueString(), m.Name.ValueString()); err != nil {
		resp.Diagnostics.AddError("Cannot delete the NetworkAttachmentDefinition", err.Error())
	}
}

// fromAPI sets the model from the object the API server holds: the rendered configuration
// always; the typed attributes when the configuration is one they express (so an edit shows
// on the attribute it changed), else `config`. The form the state already has is kept: a
// raw config stays raw even when typed attributes could express it.
func (m *networkAttachmentModel) fromAPI(n *kube.NAD) {
	typedForm := m.typed() || m.imported() // an import is typed when the typed attributes can express it
	m.RenderedConfig = jsontypes.NewNormalizedValue(n.Config)
	m.ResourceName = stringOrNull(n.ResourceName)
	if conf, ok := parseConf(n.Config, m.Name.ValueString()); ok && typedForm {
		m.fromConf(conf)
		m.Config = jsontypes.NewNormalizedNull()
	} else if !m.typed() {
		m.Config = jsontypes.NewNormalizedValue(n.Config)
	}
	// else: typed attributes that cannot express what the API holds are kept; rendered_config
	// carries the difference into the plan.
	if r, err := parseRaw(n.Config); err == nil {
		m.CNIVersion = stringOrNull(r.CNIVersion)
	}
	m.PodAnnotation = types.StringValue(podAnnotation(m.Namespace.ValueString(), m.Name.ValueString(), m.PodInterface.ValueString(), stringsOf(m.PodDefaultRoute)))
}

// imported tells whether the model comes from an import: only its identity is set.
func (m *networkAttachmentModel) imported() bool {
	return m.RenderedConfig.IsNull() && m.Config.IsNull() && !m.typed()
}
