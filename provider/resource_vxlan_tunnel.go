package provider

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-uuid"
	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
	"github.com/nodenet/terraform-provider-nodenet/provider/mesh"
	"github.com/nodenet/terraform-provider-nodenet/provider/validators"
)

var (
	_ resource.Resource                   = &VxlanTunnelResource{}
	_ resource.ResourceWithConfigure      = &VxlanTunnelResource{}
	_ resource.ResourceWithImportState    = &VxlanTunnelResource{}
	_ resource.ResourceWithModifyPlan     = &VxlanTunnelResource{}
	_ resource.ResourceWithValidateConfig = &VxlanTunnelResource{}
)

// NewVxlanTunnelResource is the nodenet_vxlan_tunnel resource.
func NewVxlanTunnelResource() resource.Resource { return &VxlanTunnelResource{} }

// VxlanTunnelResource joins nodes (of one or several clusters) with a VXLAN overlay. Its
// schema and CRUD are here; the model conversion is in model_vxlan_tunnel.go, the plan in
// plan_vxlan_tunnel.go, import in import_vxlan_tunnel.go.
type VxlanTunnelResource struct {
	data *providerData
}

// privateFailedCreate marks, in a resource's private state, a create that failed but was
// kept (tainted) because some nodes may hold part of it.
const privateFailedCreate = "failed_create"

// Default time limits of a whole operation across all members (each call to one agent is
// also bounded by the provider's timeout).
const (
	defaultCreateTimeout = 10 * time.Minute
	defaultUpdateTimeout = 10 * time.Minute
	defaultDeleteTimeout = 10 * time.Minute
)

func (r *VxlanTunnelResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_vxlan_tunnel"
}

func (r *VxlanTunnelResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = vxlanTunnelSchema()
}

func vxlanTunnelSchema() schema.Schema {
	// The entries are one line each in a string, not a list: a mesh of N nodes holds N*(N-1)
	// of each, and as list elements Terraform and the framework walk every one on every plan
	// (a no-op plan of 50 nodes took 5 s); as lines they still diff line by line in a plan.
	entries := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: desc + " One per line, sorted; `compact(split(\"\\n\", ...))` makes a list."}
	}
	return schema.Schema{
		MarkdownDescription: "A VXLAN overlay across nodes of one or several clusters: on every member a vxlan device " +
			"(VNI, port, local IP from the underlay, learning off, MTU, stable MAC, overlay address), a permanent " +
			"neighbour and an FDB entry for every other member, and routes through the tunnel. What each node really " +
			"has is read back from the kernel, so `terraform plan` shows a missing FDB entry, a changed MAC or a deleted " +
			"device as a change on that member. Replaces the hand-made `ip link add ... type vxlan`, `arp -s`, " +
			"`bridge fdb append` and `route add` of a multi-cluster pod network.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed: true, MarkdownDescription: "The tunnel's identity, a UUID made at create. The agents record `nodenet_vxlan_tunnel:<id>` as the owner of the tunnel's objects: another resource that names the same device on a shared node is refused at plan time, naming this id, and cannot delete it. `terraform import` of an overlay another tunnel manages makes a new id and takes the overlay over.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				Required: true, MarkdownDescription: "Device name on every member, at most 15 bytes, no `/`, `:` or white space. Changing it replaces the tunnel.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators:    []validator.String{validators.IfName()},
			},
			"vni": schema.Int64Attribute{
				Required: true, MarkdownDescription: "VXLAN network identifier, 1 to 16777215. Changing it replaces the tunnel.",
				PlanModifiers: []planmodifier.Int64{int64planmodifier.RequiresReplace()},
				Validators:    []validator.Int64{validators.VNI()},
			},
			"port": schema.Int64Attribute{
				Optional: true, Computed: true, Default: int64default.StaticInt64(pb.DefaultVxlanPort),
				MarkdownDescription: "UDP destination port, 1 to 65535. Default 4789. Changing it replaces the tunnel.",
				PlanModifiers:       []planmodifier.Int64{int64planmodifier.RequiresReplace()},
				Validators:          []validator.Int64{validators.Port()},
			},
			"mtu": schema.Int64Attribute{
				Optional: true, Computed: true,
				MarkdownDescription: "Device MTU on every member. Default: the smallest member underlay MTU minus 50 (the VXLAN overhead); more is an error at plan time. Changed in place.",
				Validators:          []validator.Int64{validators.MTU()},
			},
			"learning": schema.BoolAttribute{
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				MarkdownDescription: "Source-address learning on the devices. Default false (`nolearning`): every member's entries are programmed.",
			},
			"members": schema.MapNestedAttribute{
				Required: true,
				MarkdownDescription: "The nodes of the overlay, keyed `<cluster>/<node>` as named in the provider's `clusters`. " +
					"Adding or removing a member changes the others' entries in place; untouched devices are kept. " +
					"The device is nodenet's: FDB entries, permanent neighbours, addresses and nodenet routes on it that the tunnel does not plan (added by hand) are removed by apply.",
				Validators: []validator.Map{mapvalidator.KeysAre(validators.NodeKey())},
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"underlay": schema.StringAttribute{
						Required: true, MarkdownDescription: "Underlay interface (its primary IPv4 address is the local IP) or an IPv4 address of the node. A change recreates only this member's device.",
						Validators: []validator.String{validators.Underlay()},
					},
					"address": schema.StringAttribute{
						Required: true, MarkdownDescription: "Overlay address with prefix length, like `179.17.1.21/24`; all members in one subnet, each its own address. An address added to the device by hand shows here (all of them, comma-separated) until apply removes it.",
						Validators: []validator.String{validators.InterfaceAddress()},
					},
					"mac": schema.StringAttribute{
						Optional: true, Computed: true,
						MarkdownDescription: "Device MAC, lower case. Default: derived from cluster, node and device name: stable across recreation, locally administered, unicast. A change is made in place; the permanent neighbours the kernel drops with it are set again.",
						Validators:          []validator.String{validators.UnicastMAC()},
					},
					"local_ip":   schema.StringAttribute{Computed: true, MarkdownDescription: "The underlay IPv4 address the device sends from."},
					"mtu":        schema.Int64Attribute{Computed: true, MarkdownDescription: "The device's MTU on this node."},
					"ifindex":    schema.Int64Attribute{Computed: true, MarkdownDescription: "The device's interface index on this node (0 when absent); a new value means the device was recreated."},
					"oper_state": schema.StringAttribute{Computed: true, MarkdownDescription: "`up`, `down`, `absent`, `unreachable` (last known values kept), or `incompatible: ...` when a device of the name has other VXLAN parameters."},
					"fdb":        entries("FDB entries on the device, `<mac> dst <underlay ip>`, one per other member."),
					"neighbors":  entries("Permanent neighbour entries, `<overlay ip> lladdr <mac>`, one per other member."),
					"routes":     entries("Routes through the device on this node, `<cidr> via <overlay ip>`."),
				}},
			},
			"routes": schema.MapNestedAttribute{
				Optional: true,
				MarkdownDescription: "Routes through the tunnel, keyed by destination CIDR (like a remote node's pod block). " +
					"Installed with the onlink flag and nodenet's route protocol (147) on every member outside `via`'s cluster " +
					"(every other member when all members are in one cluster), unless `on` lists the members.",
				Validators: []validator.Map{mapvalidator.KeysAre(validators.CIDR())},
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"via": schema.StringAttribute{
						Required: true, MarkdownDescription: "The member (`<cluster>/<node>`) whose overlay address is the gateway.",
						Validators: []validator.String{validators.NodeKey()},
					},
					"on": schema.SetAttribute{
						Optional: true, ElementType: types.StringType, MarkdownDescription: "Members that get the route. Default: every member outside `via`'s cluster, or every other member when all are in one cluster.",
						Validators: []validator.Set{setvalidator.ValueStringsAre(validators.NodeKey())},
					},
				}},
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(context.Background(), timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}

func (r *VxlanTunnelResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = providerDataFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *VxlanTunnelResource) configured(diags interface{ AddError(string, string) }) bool {
	if r.data == nil {
		diags.AddError("Provider not configured", "nodenet_vxlan_tunnel needs the provider's clusters and tls")
		return false
	}
	return true
}

// Create makes the tunnel's identity and applies every member's share. When a node fails,
// the nodes that may have applied it are rolled back; if some cannot be (their outcome is
// unknown), the resource is kept in state, tainted, so that the next apply or destroy
// reaches them.
func (r *VxlanTunnelResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m vxlanTunnelModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !r.configured(&resp.Diagnostics) {
		return
	}
	limit, d := m.Timeouts.Create(ctx, defaultCreateTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	in, _, d := input(ctx, &m)
	resp.Diagnostics.Append(d...)
	p, _, _ := r.plan(ctx, in, nil, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	id, err := uuid.GenerateUUID()
	if err != nil {
		resp.Diagnostics.AddError("Cannot make the tunnel's id", err.Error())
		return
	}
	m.ID = types.StringValue(id)
	res := r.data.Fleet.Apply(ctx, objects(p, in.Name, vxlanOwner(id), sortedKeys(p.Members)), func(string) *pb.Object { return nil })
	observed := map[string]*pb.VxlanTunnel{}
	for k, a := range res.Answers {
		observed[k] = a.GetObserved().GetVxlanTunnel()
	}
	if res.OK() {
		setObserved(ctx, &m, in, observed, &resp.Diagnostics)
		resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
		return
	}
	msg := fmt.Sprintf("Creating %s failed on %d of %d nodes:\n%s", in.Name, len(res.Failed), len(p.Members), fleet.Join(res.Failed))
	if len(res.RolledBack) > 0 {
		msg += fmt.Sprintf("\n\nRolled back the nodes that had applied it (or may have): %s.", strings.Join(res.RolledBack, ", "))
	}
	if len(res.Uncertain) == 0 {
		resp.Diagnostics.AddError("VXLAN tunnel not created", msg)
		return
	}
	// Some nodes may hold part of the tunnel: keep it in state so that they are reached again.
	var uncertain []string
	for _, e := range res.Uncertain {
		uncertain = append(uncertain, e.Node)
		observed[e.Node] = &pb.VxlanTunnel{}
	}
	for k := range p.Members {
		if _, ok := observed[k]; !ok {
			observed[k] = &pb.VxlanTunnel{} // refused or rolled back: it has nothing
		}
	}
	setObserved(ctx, &m, in, observed, &resp.Diagnostics)
	markUnreachable(ctx, &m, uncertain, &resp.Diagnostics)
	// Terraform plans the replacement of a tainted resource without its state; this mark in
	// its private state lets Read tell the replacement's plan whose objects it takes over.
	resp.Diagnostics.Append(resp.Private.SetKey(ctx, privateFailedCreate, []byte("true"))...)
	resp.Diagnostics.AddError("VXLAN tunnel not created",
		msg+fmt.Sprintf("\n\nThese nodes may hold part of it (their answer did not come in time and the rollback did not reach them):\n%s\n"+
			"The resource is kept in state as tainted, so that the next apply (which replaces it) or destroy reaches them.",
			fleet.Join(res.Uncertain)))
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// markUnreachable marks members as not answering, keeping the values the model has.
func markUnreachable(ctx context.Context, m *vxlanTunnelModel, keys []string, diags *diag.Diagnostics) {
	members, d := membersOf(ctx, m.Members)
	diags.Append(d...)
	for _, k := range keys {
		if mm, ok := members[k]; ok {
			members[k] = unreachable(mm)
		}
	}
	mv, d := membersValue(members)
	diags.Append(d...)
	m.Members = mv
}

func (r *VxlanTunnelResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m vxlanTunnelModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !r.configured(&resp.Diagnostics) {
		return
	}
	in, _, d := input(ctx, &m)
	resp.Diagnostics.Append(d...)
	if failed, _ := req.Private.GetKey(ctx, privateFailedCreate); failed != nil {
		r.data.replacing.note(objectID(in.Name), m.owner())
	}
	var keys []string
	for _, mb := range in.Members {
		keys = append(keys, mb.Key)
	}
	got, errs := r.data.Fleet.Get(ctx, objectID(in.Name), keys)
	observed := map[string]*pb.VxlanTunnel{}
	missing := 0
	for key, o := range got {
		switch {
		case o == nil:
			missing++
			observed[key] = &pb.VxlanTunnel{}
		case o.GetOwner() != "" && o.GetOwner() != m.owner():
			// Taken over by another resource (an import): not this tunnel's any more.
			missing++
			observed[key] = &pb.VxlanTunnel{}
			resp.Diagnostics.AddWarning("Member managed by another resource",
				fmt.Sprintf("%s: %s is now managed by %s; this tunnel plans it as absent there.", key, in.Name, o.GetOwner()))
		default:
			observed[key] = o.GetVxlanTunnel()
		}
	}
	if missing == len(keys) && len(errs) == 0 {
		// No member manages it any more: it was removed out of band.
		resp.State.RemoveResource(ctx)
		return
	}
	var down []string
	for _, e := range errs {
		down = append(down, e.Node)
		resp.Diagnostics.AddWarning("Node agent did not answer",
			fmt.Sprintf("%s: keeping its last known state of %s. Apply fails until it answers.", e.Error(), in.Name))
	}
	setObserved(ctx, &m, in, observed, &resp.Diagnostics)
	markUnreachable(ctx, &m, down, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// Update applies every member's new share and removes the members that left. When a node
// fails, the state records exactly what the nodes have now: their observed state, and for a
// node that does not answer its last known state, so the next plan shows what is left to do.
func (r *VxlanTunnelResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m, prior vxlanTunnelModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	if resp.Diagnostics.HasError() || !r.configured(&resp.Diagnostics) {
		return
	}
	limit, d := m.Timeouts.Update(ctx, defaultUpdateTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	m.ID = prior.ID
	in, _, d := input(ctx, &m)
	resp.Diagnostics.Append(d...)
	p, _, _ := r.plan(ctx, in, nil, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	priorMembers, d := membersOf(ctx, prior.Members)
	resp.Diagnostics.Append(d...)
	var removed []string
	for k := range priorMembers {
		if _, ok := p.Members[k]; !ok {
			removed = append(removed, k)
		}
	}
	sort.Strings(removed)
	owner := m.owner()
	res := r.data.Fleet.Apply(ctx, objects(p, in.Name, owner, sortedKeys(p.Members)), nil)
	errs := res.Failed
	if res.OK() {
		var others map[string]string
		others, errs = r.data.Fleet.Delete(ctx, objectID(in.Name), owner, removed)
		warnOthers(&resp.Diagnostics, in.Name, others)
	}
	if len(errs) == 0 {
		observed := map[string]*pb.VxlanTunnel{}
		for k, a := range res.Answers {
			observed[k] = a.GetObserved().GetVxlanTunnel()
		}
		setObserved(ctx, &m, in, observed, &resp.Diagnostics)
		resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
		return
	}
	r.recordPartial(ctx, &m, in, priorMembers, removed, &resp.Diagnostics)
	resp.Diagnostics.AddError("VXLAN tunnel not fully updated",
		fmt.Sprintf("Updating %s failed on:\n%s\n\nThe state records what every node has now (a node that does not answer: its last known state); the next apply retries.", in.Name, fleet.Join(errs)))
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// recordPartial puts into m what every member has after a partly failed update, read back
// with time of its own (the update may have failed by running out of it). A member that does
// not answer keeps its last known state, marked unreachable (a member it would have added,
// absent); a member to be removed that still has the tunnel stays.
func (r *VxlanTunnelResource) recordPartial(ctx context.Context, m *vxlanTunnelModel, in mesh.Input, priorMembers map[string]memberModel, removed []string, diags *diag.Diagnostics) {
	rdCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.data.Fleet.Timeout())
	defer cancel()
	members, d := membersOf(ctx, m.Members)
	diags.Append(d...)
	got, gerrs := r.data.Fleet.Get(rdCtx, objectID(in.Name), append(sortedKeys(members), removed...))
	for _, k := range removed {
		if o := got[k]; o != nil && o.GetVxlanTunnel().GetDevice() != nil {
			members[k] = priorMembers[k]
		}
	}
	for _, e := range gerrs {
		if pm, ok := priorMembers[e.Node]; ok {
			members[e.Node] = unreachable(pm)
		} else if mm, ok := members[e.Node]; ok {
			members[e.Node] = unreachable(observe(mm, in.Name, in, &pb.VxlanTunnel{}))
		}
		delete(got, e.Node)
	}
	for k, o := range got {
		if mm, ok := members[k]; ok {
			members[k] = observe(mm, in.Name, in, o.GetVxlanTunnel())
		}
	}
	mv, d := membersValue(members)
	diags.Append(d...)
	m.Members = mv
}

func (r *VxlanTunnelResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m vxlanTunnelModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() || !r.configured(&resp.Diagnostics) {
		return
	}
	limit, d := m.Timeouts.Delete(ctx, defaultDeleteTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	members, d := membersOf(ctx, m.Members)
	resp.Diagnostics.Append(d...)
	others, errs := r.data.Fleet.Delete(ctx, objectID(m.Name.ValueString()), m.owner(), sortedKeys(members))
	warnOthers(&resp.Diagnostics, m.Name.ValueString(), others)
	if len(errs) > 0 {
		resp.Diagnostics.AddError("VXLAN tunnel not deleted everywhere",
			fmt.Sprintf("Deleting %s failed on:\n%s\n\nThe other members are clean; the next destroy retries.", m.Name.ValueString(), fleet.Join(errs)))
	}
}

// warnOthers says which members were left alone because another resource manages the
// tunnel's object there now.
func warnOthers(diags *diag.Diagnostics, name string, others map[string]string) {
	for _, k := range sortedKeys(others) {
		diags.AddWarning("Left to another resource",
			fmt.Sprintf("%s: %s is managed by %s now (taken over by an import); it was left in place.", k, name, others[k]))
	}
}
