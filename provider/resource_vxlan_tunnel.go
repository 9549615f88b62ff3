package provider

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
	"github.com/nodenet/terraform-provider-nodenet/provider/mesh"
)

var (
	_ resource.Resource                   = &VxlanTunnelResource{}
	_ resource.ResourceWithConfigure      = &VxlanTunnelResource{}
	_ resource.ResourceWithImportState    = &VxlanTunnelResource{}
	_ resource.ResourceWithModifyPlan     = &VxlanTunnelResource{}
	_ resource.ResourceWithValidateConfig = &VxlanTunnelResource{}
)

// Oper states a member reports besides the kernel's "up" and "down".
const (
	stateAbsent      = "absent"
	stateUp          = "up"
	stateUnreachable = "unreachable"
)

// NewVxlanTunnelResource is the nodenet_vxlan_tunnel resource.
func NewVxlanTunnelResource() resource.Resource { return &VxlanTunnelResource{} }

// VxlanTunnelResource joins nodes (of one or several clusters) with a VXLAN overlay.
type VxlanTunnelResource struct {
	fleet *fleet.Fleet
}

type vxlanTunnelModel struct {
	ID       types.String   `tfsdk:"id"`
	Name     types.String   `tfsdk:"name"`
	VNI      types.Int64    `tfsdk:"vni"`
	Port     types.Int64    `tfsdk:"port"`
	MTU      types.Int64    `tfsdk:"mtu"`
	Learning types.Bool     `tfsdk:"learning"`
	Members  types.Map      `tfsdk:"members"`
	Routes   types.Map      `tfsdk:"routes"`
	Timeouts timeouts.Value `tfsdk:"timeouts"`
}

// Default time limits of a whole operation across all members (each call to one agent is
// also bounded by the provider's timeout).
const (
	defaultCreateTimeout = 10 * time.Minute
	defaultUpdateTimeout = 10 * time.Minute
	defaultDeleteTimeout = 10 * time.Minute
)

type memberModel struct {
	Underlay  types.String `tfsdk:"underlay"`
	Address   types.String `tfsdk:"address"`
	MAC       types.String `tfsdk:"mac"`
	LocalIP   types.String `tfsdk:"local_ip"`
	MTU       types.Int64  `tfsdk:"mtu"`
	Ifindex   types.Int64  `tfsdk:"ifindex"`
	OperState types.String `tfsdk:"oper_state"`
	FDB       types.String `tfsdk:"fdb"`
	Neighbors types.String `tfsdk:"neighbors"`
	Routes    types.String `tfsdk:"routes"`
}

type routeModel struct {
	Via types.String `tfsdk:"via"`
	On  types.Set    `tfsdk:"on"`
}

var (
	memberAttrTypes = map[string]attr.Type{
		"underlay": types.StringType, "address": types.StringType, "mac": types.StringType,
		"local_ip": types.StringType, "mtu": types.Int64Type, "ifindex": types.Int64Type,
		"oper_state": types.StringType, "fdb": types.StringType, "neighbors": types.StringType, "routes": types.StringType,
	}
	memberType = types.ObjectType{AttrTypes: memberAttrTypes}
	routeType  = types.ObjectType{AttrTypes: map[string]attr.Type{"via": types.StringType, "on": types.SetType{ElemType: types.StringType}}}
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
				Computed: true, MarkdownDescription: "The device name.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				Required: true, MarkdownDescription: "Device name on every member, at most 15 bytes, no `/`, `:` or white space. Changing it replaces the tunnel.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"vni": schema.Int64Attribute{
				Required: true, MarkdownDescription: "VXLAN network identifier, 1 to 16777215. Changing it replaces the tunnel.",
				PlanModifiers: []planmodifier.Int64{int64planmodifier.RequiresReplace()},
			},
			"port": schema.Int64Attribute{
				Optional: true, Computed: true, Default: int64default.StaticInt64(pb.DefaultVxlanPort),
				MarkdownDescription: "UDP destination port, 1 to 65535. Default 4789. Changing it replaces the tunnel.",
				PlanModifiers:       []planmodifier.Int64{int64planmodifier.RequiresReplace()},
			},
			"mtu": schema.Int64Attribute{
				Optional: true, Computed: true,
				MarkdownDescription: "Device MTU on every member. Default: the smallest member underlay MTU minus 50 (the VXLAN overhead); more is an error at plan time. Changed in place.",
			},
			"learning": schema.BoolAttribute{
				Optional: true, Computed: true, Default: booldefault.StaticBool(false),
				MarkdownDescription: "Source-address learning on the devices. Default false (`nolearning`): every member's entries are programmed.",
			},
			"members": schema.MapNestedAttribute{
				Required: true,
				MarkdownDescription: "The nodes of the overlay, keyed `<cluster>/<node>` as named in the provider's `clusters`. " +
					"Adding or removing a member changes the others' entries in place; untouched devices are kept.",
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"underlay": schema.StringAttribute{Required: true, MarkdownDescription: "Underlay interface (its primary IPv4 address is the local IP) or an IPv4 address of the node. A change recreates only this member's device."},
					"address":  schema.StringAttribute{Required: true, MarkdownDescription: "Overlay address with prefix length, like `179.17.1.21/24`; all members in one subnet, each its own address."},
					"mac": schema.StringAttribute{
						Optional: true, Computed: true,
						MarkdownDescription: "Device MAC, lower case. Default: derived from cluster, node and device name: stable across recreation, locally administered, unicast.",
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
				NestedObject: schema.NestedAttributeObject{Attributes: map[string]schema.Attribute{
					"via": schema.StringAttribute{Required: true, MarkdownDescription: "The member (`<cluster>/<node>`) whose overlay address is the gateway."},
					"on":  schema.SetAttribute{Optional: true, ElementType: types.StringType, MarkdownDescription: "Members that get the route. Default: every member outside `via`'s cluster, or every other member when all are in one cluster."},
				}},
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(context.Background(), timeouts.Opts{Create: true, Update: true, Delete: true}),
		},
	}
}

func (r *VxlanTunnelResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.fleet = fleetFrom(req.ProviderData, &resp.Diagnostics)
}

// --- model <-> plan input -------------------------------------------------------------

// input converts the model to the planner's input; known is false when any value it needs is
// not known yet.
func input(ctx context.Context, m *vxlanTunnelModel) (in mesh.Input, known bool, diags diag.Diagnostics) {
	known = true
	if m.Name.IsUnknown() || m.VNI.IsUnknown() || m.Port.IsUnknown() || m.Learning.IsUnknown() || m.Members.IsUnknown() || m.Routes.IsUnknown() {
		known = false
	}
	in.Name, in.VNI, in.Port, in.Learning = m.Name.ValueString(), m.VNI.ValueInt64(), m.Port.ValueInt64(), m.Learning.ValueBool()
	if !m.MTU.IsUnknown() {
		in.MTU = m.MTU.ValueInt64()
	}
	members, d := membersOf(ctx, m.Members)
	diags.Append(d...)
	for _, k := range sortedKeys(members) {
		mm := members[k]
		// An unknown MAC is a computed one (derived); configured MACs that are not known yet
		// are caught from the configuration in ModifyPlan.
		if mm.Underlay.IsUnknown() || mm.Address.IsUnknown() {
			known = false
		}
		in.Members = append(in.Members, mesh.Member{Key: k, Underlay: mm.Underlay.ValueString(), Address: mm.Address.ValueString(), MAC: mm.MAC.ValueString()})
	}
	routes := map[string]routeModel{}
	if !m.Routes.IsNull() && !m.Routes.IsUnknown() {
		diags.Append(m.Routes.ElementsAs(ctx, &routes, false)...)
	}
	for _, dst := range sortedKeys(routes) {
		rm := routes[dst]
		if rm.Via.IsUnknown() || rm.On.IsUnknown() {
			known = false
		}
		rt := mesh.Route{Dst: dst, Via: rm.Via.ValueString()}
		if !rm.On.IsNull() && !rm.On.IsUnknown() {
			var on []string
			diags.Append(rm.On.ElementsAs(ctx, &on, false)...)
			rt.On = on
			if rt.On == nil {
				rt.On = []string{}
			}
		}
		in.Routes = append(in.Routes, rt)
	}
	return in, known, diags
}

func membersOf(ctx context.Context, m types.Map) (map[string]memberModel, diag.Diagnostics) {
	out := map[string]memberModel{}
	if m.IsNull() || m.IsUnknown() {
		return out, nil
	}
	d := m.ElementsAs(ctx, &out, false)
	return out, d
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func errorPath(e *mesh.Error) path.Path {
	p := path.Root(e.Attr)
	if e.Key != "" {
		p = p.AtMapKey(e.Key)
	}
	if e.Sub != "" {
		p = p.AtName(e.Sub)
	}
	return p
}

func addMeshErrors(diags *diag.Diagnostics, summary string, errs []*mesh.Error) {
	for _, e := range errs {
		diags.AddAttributeError(errorPath(e), summary, e.Error())
	}
}

// linesValue renders entries one per line ("" for none), so that a plan shows added and
// removed entries as lines.
func linesValue(ss []string) types.String {
	return types.StringValue(strings.Join(ss, "\n"))
}

func membersValue(members map[string]memberModel) (types.Map, diag.Diagnostics) {
	return types.MapValueFrom(context.Background(), memberType, members)
}

// observe fills a member's computed attributes (and what of its configuration the node shows)
// from what its agent read back from the kernel.
func observe(mm memberModel, name string, want mesh.Input, t *pb.VxlanTunnel) memberModel {
	d := t.GetDevice()
	if d == nil {
		mm.LocalIP, mm.MAC, mm.Address = types.StringValue(""), types.StringValue(""), types.StringValue("")
		mm.MTU, mm.Ifindex = types.Int64Value(0), types.Int64Value(0)
		mm.OperState = types.StringValue(stateAbsent)
		mm.FDB, mm.Neighbors, mm.Routes = linesValue(nil), linesValue(nil), linesValue(nil)
		return mm
	}
	mm.LocalIP = types.StringValue(d.GetLocalIp())
	mm.MAC = types.StringValue(d.GetMac())
	mm.Address = types.StringValue(d.GetAddress())
	mm.MTU = types.Int64Value(int64(d.GetMtu()))
	mm.Ifindex = types.Int64Value(int64(d.GetIfindex()))
	state := d.GetOperState()
	var bad []string
	if int64(d.GetVni()) != want.VNI {
		bad = append(bad, fmt.Sprintf("vni %d", d.GetVni()))
	}
	if int64(d.GetPort()) != want.Port {
		bad = append(bad, fmt.Sprintf("port %d", d.GetPort()))
	}
	if d.GetLearning() != want.Learning {
		bad = append(bad, fmt.Sprintf("learning %t", d.GetLearning()))
	}
	if d.GetOwner() != pb.OwnerAlias(pb.ObjectID(pb.KindVxlanTunnel, name)) {
		bad = append(bad, "not owned by nodenet")
	}
	if len(bad) > 0 {
		state = "incompatible: " + strings.Join(bad, ", ")
	}
	mm.OperState = types.StringValue(state)
	// The underlay as configured (interface or address) unless the device shows another.
	if u := mm.Underlay.ValueString(); u != "" {
		if _, err := netip.ParseAddr(u); err == nil {
			if d.GetLocalIp() != "" && d.GetLocalIp() != u {
				mm.Underlay = types.StringValue(d.GetLocalIp())
			}
		} else if d.GetUnderlay() != "" && d.GetUnderlay() != u {
			mm.Underlay = types.StringValue(d.GetUnderlay())
		}
	}
	mm.FDB = linesValue(mesh.FDBStrings(t))
	mm.Neighbors = linesValue(mesh.NeighborStrings(t))
	mm.Routes = linesValue(mesh.RouteStrings(t))
	return mm
}

// --- agents ---------------------------------------------------------------------------

func objectID(name string) string { return pb.ObjectID(pb.KindVxlanTunnel, name) }

// plan resolves the members on their nodes and plans every member's share. With prior
// (at plan time), a member whose agent does not answer is planned from its last known state
// with a warning, and returned in stale; without prior, that is an error (apply needs it).
func (r *VxlanTunnelResource) plan(ctx context.Context, in mesh.Input, prior map[string]memberModel, diags *diag.Diagnostics) (p *mesh.Plan, stale map[string]bool) {
	var keys []string
	for _, m := range in.Members {
		if _, ok := r.fleet.Node(m.Key); !ok {
			cluster, _, _ := mesh.SplitKey(m.Key)
			msg := fmt.Sprintf("%q names no configured node. Configured nodes: %s.", m.Key, strings.Join(r.fleet.Keys(""), ", "))
			if !contains(r.fleet.Clusters(), cluster) {
				msg = fmt.Sprintf("%q names cluster %q, which the provider does not configure (clusters: %s).", m.Key, cluster, strings.Join(r.fleet.Clusters(), ", "))
			}
			diags.AddAttributeError(path.Root("members").AtMapKey(m.Key), "Unknown node", msg)
			continue
		}
		keys = append(keys, m.Key)
	}
	if diags.HasError() {
		return nil, nil
	}
	infos, errs := r.fleet.Infos(ctx, keys)
	if len(errs) > 0 && ctx.Err() != nil {
		diags.AddError("Time limit reached", fmt.Sprintf("The operation ran out of time before the agents answered (%v). Raise the resource's timeouts block or the provider's timeout.", ctx.Err()))
		return nil, nil
	}
	stale = map[string]bool{}
	for _, e := range errs {
		if pm, ok := prior[e.Node]; ok && e.Unreachable() && pm.LocalIP.ValueString() != "" && pm.MTU.ValueInt64() > 0 {
			infos[e.Node] = lastKnownInfo(pm)
			stale[e.Node] = true
			diags.AddAttributeWarning(path.Root("members").AtMapKey(e.Node), "Node agent did not answer",
				fmt.Sprintf("%s. Planned from its last known state; apply fails until it answers.", e.Error()))
			continue
		}
		diags.AddAttributeError(path.Root("members").AtMapKey(e.Node), nodeErrorSummary(e), e.Error())
	}
	if diags.HasError() {
		return nil, nil
	}
	p, merrs := mesh.Build(in, infos)
	addMeshErrors(diags, "Invalid VXLAN tunnel", merrs)
	return p, stale
}

// lastKnownInfo stands in for the NodeInfo of a member that does not answer: its underlay as
// last seen, with an MTU that does not lower the tunnel's default.
func lastKnownInfo(pm memberModel) *pb.NodeInfo {
	name := pm.Underlay.ValueString()
	if _, err := netip.ParseAddr(name); err == nil {
		name = "underlay"
	}
	return &pb.NodeInfo{Interfaces: []*pb.Interface{{
		Name: name, Mtu: uint32(pm.MTU.ValueInt64() + pb.VxlanOverhead), Addresses: []string{pm.LocalIP.ValueString() + "/32"},
	}}}
}

// nodeErrorSummary names what went wrong with one node, for a diagnostic's summary.
func nodeErrorSummary(e *fleet.NodeError) string {
	switch {
	case fleet.AuthFailed(e.Err):
		return "Node agent failed authentication"
	case e.Unreachable():
		return "Node agent did not answer"
	}
	return "Node agent refused the request"
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// applyAll applies every member's spec (dry run or not) and returns the observed answers.
func (r *VxlanTunnelResource) applyAll(ctx context.Context, name string, p *mesh.Plan, keys []string, dryRun bool) (map[string]*pb.ApplyResponse, []*fleet.NodeError) {
	var mu sync.Mutex
	out := map[string]*pb.ApplyResponse{}
	errs := r.fleet.Each(ctx, keys, func(ctx context.Context, key string, c pb.NodeAgentClient) error {
		resp, err := c.Apply(ctx, &pb.ApplyRequest{DryRun: dryRun, Object: &pb.Object{
			Id: objectID(name), Spec: &pb.Object_VxlanTunnel{VxlanTunnel: p.Members[key].Spec},
		}})
		if err != nil {
			return err
		}
		mu.Lock()
		out[key] = resp
		mu.Unlock()
		return nil
	})
	return out, errs
}

// getAll reads every member's observed object; NotFound is answered as a nil object.
func (r *VxlanTunnelResource) getAll(ctx context.Context, name string, keys []string) (map[string]*pb.VxlanTunnel, map[string]bool, []*fleet.NodeError) {
	var mu sync.Mutex
	out := map[string]*pb.VxlanTunnel{}
	missing := map[string]bool{}
	errs := r.fleet.Each(ctx, keys, func(ctx context.Context, key string, c pb.NodeAgentClient) error {
		resp, err := c.Get(ctx, &pb.GetRequest{Id: objectID(name)})
		mu.Lock()
		defer mu.Unlock()
		if status.Code(err) == codes.NotFound {
			missing[key] = true
			out[key] = &pb.VxlanTunnel{}
			return nil
		}
		if err != nil {
			return err
		}
		out[key] = resp.GetObserved().GetVxlanTunnel()
		return nil
	})
	return out, missing, errs
}

// deleteOn removes the object from the given members; a member that does not manage it is fine.
func (r *VxlanTunnelResource) deleteOn(ctx context.Context, name string, keys []string) []*fleet.NodeError {
	return r.fleet.Each(ctx, keys, func(ctx context.Context, key string, c pb.NodeAgentClient) error {
		_, err := c.Delete(ctx, &pb.DeleteRequest{Id: objectID(name)})
		if status.Code(err) == codes.NotFound {
			return nil
		}
		return err
	})
}

// --- validation and plan --------------------------------------------------------------

func (r *VxlanTunnelResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m vxlanTunnelModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// port and learning are null in config when defaulted.
	if m.Port.IsNull() {
		m.Port = types.Int64Value(pb.DefaultVxlanPort)
	}
	in, known, d := input(ctx, &m)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	if known {
		addMeshErrors(&resp.Diagnostics, "Invalid VXLAN tunnel", mesh.Validate(in))
		return
	}
	// Some values come from other resources: check the top-level values that are known now;
	// members and routes are checked at plan time, once everything is known.
	unknown := map[string]bool{"name": m.Name.IsUnknown(), "vni": m.VNI.IsUnknown(), "port": m.Port.IsUnknown(),
		"mtu": m.MTU.IsUnknown(), "members": true, "routes": true}
	for _, e := range mesh.Validate(in) {
		if !unknown[e.Attr] {
			resp.Diagnostics.AddAttributeError(errorPath(e), "Invalid VXLAN tunnel", e.Error())
		}
	}
}

func (r *VxlanTunnelResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || r.fleet == nil {
		return
	}
	var planned vxlanTunnelModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &planned)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var prior *vxlanTunnelModel
	if !req.State.Raw.IsNull() {
		prior = &vxlanTunnelModel{}
		resp.Diagnostics.Append(req.State.Get(ctx, prior)...)
	}
	in, known, d := input(ctx, &planned)
	resp.Diagnostics.Append(d...)
	if !known || resp.Diagnostics.HasError() || !configKnown(ctx, req, &resp.Diagnostics) {
		return
	}
	priorMembers := map[string]memberModel{}
	if prior != nil {
		priorMembers, d = membersOf(ctx, prior.Members)
		resp.Diagnostics.Append(d...)
	}
	p, stale := r.plan(ctx, in, priorMembers, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	// The agents' dry run: conflicts with unmanaged objects fail here, not half-way through
	// apply, and the per-node changes are named.
	var live []string
	for _, k := range sortedKeys(p.Members) {
		if !stale[k] {
			live = append(live, k)
		}
	}
	answers, errs := r.applyAll(ctx, in.Name, p, live, true)
	for _, e := range errs {
		resp.Diagnostics.AddAttributeError(path.Root("members").AtMapKey(e.Node), nodeErrorSummary(e), e.Error())
	}
	if resp.Diagnostics.HasError() {
		return
	}

	plannedMembers, d := membersOf(ctx, planned.Members)
	resp.Diagnostics.Append(d...)
	var summary []string
	for _, key := range sortedKeys(plannedMembers) {
		mm := plannedMembers[key]
		mp := p.Members[key]
		mm.MAC = types.StringValue(mp.MAC)
		mm.LocalIP = types.StringValue(mp.LocalIP)
		mm.MTU = types.Int64Value(mp.MTU)
		mm.OperState = types.StringValue(stateUp)
		mm.FDB = linesValue(mesh.FDBStrings(mp.Spec))
		mm.Neighbors = linesValue(mesh.NeighborStrings(mp.Spec))
		mm.Routes = linesValue(mesh.RouteStrings(mp.Spec))
		mm.Ifindex = types.Int64Unknown()
		line, recreated := summarize(answers[key].GetChanges())
		if pm, ok := priorMembers[key]; ok && !recreated && !pm.Ifindex.IsNull() && !pm.Ifindex.IsUnknown() && pm.Ifindex.ValueInt64() != 0 {
			mm.Ifindex = pm.Ifindex
		}
		if pm, ok := priorMembers[key]; ok && pm.Underlay.ValueString() != mm.Underlay.ValueString() {
			resp.Diagnostics.AddAttributeWarning(path.Root("members").AtMapKey(key).AtName("underlay"), "Member device is recreated",
				fmt.Sprintf("The underlay of %s changes from %q to %q: its %s device is deleted and created again (traffic through it pauses); other members keep their devices.", key, pm.Underlay.ValueString(), mm.Underlay.ValueString(), in.Name))
		}
		if line != "" {
			summary = append(summary, key+": "+line)
		}
		plannedMembers[key] = mm
	}
	mv, d := membersValue(plannedMembers)
	resp.Diagnostics.Append(d...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("members"), mv)...)
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("mtu"), types.Int64Value(p.MTU))...)
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("id"), types.StringValue(in.Name))...)
	if len(summary) > 0 && prior != nil {
		const max = 20
		if len(summary) > max {
			summary = append(summary[:max], fmt.Sprintf("... and %d more nodes", len(summary)-max))
		}
		resp.Diagnostics.AddWarning("Changes on the nodes",
			fmt.Sprintf("The agents report what applying %s changes in their kernels:\n%s", in.Name, strings.Join(summary, "\n")))
	}
}

// summarize counts an agent's changes by action and entry, in the order they come
// ("+1 link, +1 addr, +5 neigh"), and tells whether the device is (re)created.
func summarize(changes []*pb.Change) (line string, recreated bool) {
	sign := map[pb.Change_Action]string{pb.Change_ADD: "+", pb.Change_UPDATE: "~", pb.Change_DELETE: "-", pb.Change_REPLACE: "-/+"}
	type kind struct{ action, entry string }
	var order []kind
	count := map[kind]int{}
	for _, c := range changes {
		if c.GetEntry() == "link" && (c.GetAction() == pb.Change_ADD || c.GetAction() == pb.Change_REPLACE) {
			recreated = true
		}
		k := kind{sign[c.GetAction()], c.GetEntry()}
		if count[k] == 0 {
			order = append(order, k)
		}
		count[k]++
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%s%d %s", k.action, count[k], k.entry)
	}
	return strings.Join(parts, ", "), recreated
}

// configKnown tells whether the configured MTU and MACs are known: in the plan, a computed
// value left to the provider is unknown too, so the configuration tells them apart.
func configKnown(ctx context.Context, req resource.ModifyPlanRequest, diags *diag.Diagnostics) bool {
	var cfg vxlanTunnelModel
	diags.Append(req.Config.Get(ctx, &cfg)...)
	if diags.HasError() || cfg.MTU.IsUnknown() {
		return false
	}
	members, d := membersOf(ctx, cfg.Members)
	diags.Append(d...)
	for _, m := range members {
		if m.MAC.IsUnknown() {
			return false
		}
	}
	return !cfg.Members.IsUnknown()
}

// --- CRUD -----------------------------------------------------------------------------

func (r *VxlanTunnelResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m vxlanTunnelModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	limit, d := m.Timeouts.Create(ctx, defaultCreateTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	in, _, d := input(ctx, &m)
	resp.Diagnostics.Append(d...)
	p, _ := r.plan(ctx, in, nil, &resp.Diagnostics)
	if resp.Diagnostics.HasError() {
		return
	}
	answers, errs := r.applyAll(ctx, in.Name, p, sortedKeys(p.Members), false)
	if len(errs) > 0 {
		// Roll back the nodes that did apply, so a failed create leaves no untracked change.
		var done []string
		for k := range answers {
			done = append(done, k)
		}
		sort.Strings(done)
		// The rollback gets time of its own: the create may have failed by running out of it.
		rbCtx, rbCancel := context.WithTimeout(context.WithoutCancel(ctx), r.fleet.Timeout())
		defer rbCancel()
		rbErrs := r.deleteOn(rbCtx, in.Name, done)
		msg := fmt.Sprintf("Creating %s failed on %d of %d nodes:\n%s", in.Name, len(errs), len(p.Members), fleet.Join(errs))
		if len(done) > 0 {
			msg += fmt.Sprintf("\n\nRolled back the nodes that had applied it: %s.", strings.Join(done, ", "))
		}
		if len(rbErrs) > 0 {
			msg += "\nRollback failed on:\n" + fleet.Join(rbErrs) + "\nRun terraform import once those nodes answer, or remove the device there by hand."
		}
		resp.Diagnostics.AddError("VXLAN tunnel not created", msg)
		return
	}
	r.setObserved(ctx, &m, in, answersToObserved(answers), nil, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func answersToObserved(a map[string]*pb.ApplyResponse) map[string]*pb.VxlanTunnel {
	out := map[string]*pb.VxlanTunnel{}
	for k, v := range a {
		out[k] = v.GetObserved().GetVxlanTunnel()
	}
	return out
}

// setObserved writes observed member values into the model; members in keep stay as they are.
func (r *VxlanTunnelResource) setObserved(ctx context.Context, m *vxlanTunnelModel, in mesh.Input, observed map[string]*pb.VxlanTunnel, keep map[string]bool, diags *diag.Diagnostics) {
	members, d := membersOf(ctx, m.Members)
	diags.Append(d...)
	for key, mm := range members {
		if keep[key] {
			continue
		}
		t, ok := observed[key]
		if !ok {
			continue
		}
		members[key] = observe(mm, in.Name, in, t)
	}
	mv, d := membersValue(members)
	diags.Append(d...)
	m.Members = mv
	m.ID = types.StringValue(in.Name)
}

func (r *VxlanTunnelResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m vxlanTunnelModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	in, _, d := input(ctx, &m)
	resp.Diagnostics.Append(d...)
	if r.fleet == nil {
		resp.Diagnostics.AddError("Provider not configured", "nodenet_vxlan_tunnel needs the provider's clusters and tls")
		return
	}
	var keys []string
	for _, mb := range in.Members {
		keys = append(keys, mb.Key)
	}
	observed, missing, errs := r.getAll(ctx, in.Name, keys)
	keep := map[string]bool{}
	for _, e := range errs {
		keep[e.Node] = true
		resp.Diagnostics.AddWarning("Node agent did not answer",
			fmt.Sprintf("%s: keeping its last known state of %s. Apply fails until it answers.", e.Error(), in.Name))
	}
	if len(missing) == len(keys) {
		// No member manages it any more: it was removed out of band.
		resp.State.RemoveResource(ctx)
		return
	}
	r.setObserved(ctx, &m, in, observed, keep, &resp.Diagnostics)
	if len(keep) > 0 {
		members, d := membersOf(ctx, m.Members)
		resp.Diagnostics.Append(d...)
		for k := range keep {
			if mm, ok := members[k]; ok {
				mm.OperState = types.StringValue(stateUnreachable)
				members[k] = mm
			}
		}
		mv, d := membersValue(members)
		resp.Diagnostics.Append(d...)
		m.Members = mv
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *VxlanTunnelResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m, prior vxlanTunnelModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	if resp.Diagnostics.HasError() {
		return
	}
	limit, d := m.Timeouts.Update(ctx, defaultUpdateTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	in, _, d := input(ctx, &m)
	resp.Diagnostics.Append(d...)
	p, _ := r.plan(ctx, in, nil, &resp.Diagnostics)
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
	answers, errs := r.applyAll(ctx, in.Name, p, sortedKeys(p.Members), false)
	if len(errs) == 0 {
		errs = r.deleteOn(ctx, in.Name, removed)
	}
	if len(errs) > 0 {
		// Record exactly what the nodes have now: the state must not claim what is not there.
		// (With time of its own: the update may have failed by running out of it.)
		rdCtx, rdCancel := context.WithTimeout(context.WithoutCancel(ctx), r.fleet.Timeout())
		defer rdCancel()
		keys := append(sortedKeys(p.Members), removed...)
		observed, _, gerrs := r.getAll(rdCtx, in.Name, keys)
		keep := map[string]bool{}
		for _, e := range gerrs {
			keep[e.Node] = true
		}
		// Members that were to be removed but still are there stay in state.
		members, _ := membersOf(ctx, m.Members)
		for _, k := range removed {
			if t := observed[k]; t != nil && t.GetDevice() != nil {
				members[k] = priorMembers[k]
			}
		}
		m.Members, _ = membersValue(members)
		r.setObserved(ctx, &m, in, observed, keep, &resp.Diagnostics)
		resp.Diagnostics.AddError("VXLAN tunnel not fully updated",
			fmt.Sprintf("Updating %s failed on:\n%s\n\nThe state records what every node has now; the next apply retries.", in.Name, fleet.Join(errs)))
		resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
		return
	}
	r.setObserved(ctx, &m, in, answersToObserved(answers), nil, &resp.Diagnostics)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *VxlanTunnelResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m vxlanTunnelModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	limit, d := m.Timeouts.Delete(ctx, defaultDeleteTimeout)
	resp.Diagnostics.Append(d...)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	members, d := membersOf(ctx, m.Members)
	resp.Diagnostics.Append(d...)
	if errs := r.deleteOn(ctx, m.Name.ValueString(), sortedKeys(members)); len(errs) > 0 {
		resp.Diagnostics.AddError("VXLAN tunnel not deleted everywhere",
			fmt.Sprintf("Deleting %s failed on:\n%s\n\nThe other members are clean; the next destroy retries.", m.Name.ValueString(), fleet.Join(errs)))
	}
}

// ImportState adopts a tunnel by device name ("vxlan-test") found on any configured node,
// or only in one cluster ("test-cluster1/vxlan-test").
func (r *VxlanTunnelResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if r.fleet == nil {
		resp.Diagnostics.AddError("Provider not configured", "import needs the provider's clusters and tls")
		return
	}
	cluster, name := "", req.ID
	if c, n, ok := strings.Cut(req.ID, "/"); ok {
		cluster, name = c, n
	}
	if err := pb.ValidateIfName("id", name); err != nil {
		resp.Diagnostics.AddError("Invalid import ID",
			fmt.Sprintf("expecting <device name> or <cluster>/<device name>, like vxlan-test or test-cluster1/vxlan-test: %s", err))
		return
	}
	keys := r.fleet.Keys(cluster)
	if len(keys) == 0 {
		resp.Diagnostics.AddError("Invalid import ID", fmt.Sprintf("cluster %q is not configured (clusters: %s)", cluster, strings.Join(r.fleet.Clusters(), ", ")))
		return
	}
	// Look first (dry run) so a conflict on one node adopts nothing anywhere.
	adopt := func(dryRun bool, keys []string) (map[string]*pb.VxlanTunnel, []*fleet.NodeError) {
		var mu sync.Mutex
		found := map[string]*pb.VxlanTunnel{}
		errs := r.fleet.Each(ctx, keys, func(ctx context.Context, key string, c pb.NodeAgentClient) error {
			a, err := c.Adopt(ctx, &pb.AdoptRequest{Id: objectID(name), Name: name, DryRun: dryRun})
			if status.Code(err) == codes.NotFound {
				return nil
			}
			if err != nil {
				return err
			}
			mu.Lock()
			found[key] = a.GetObserved().GetVxlanTunnel()
			mu.Unlock()
			return nil
		})
		return found, errs
	}
	found, errs := adopt(true, keys)
	if len(errs) > 0 {
		resp.Diagnostics.AddError("Cannot import "+name, fleet.Join(errs))
		return
	}
	if len(found) == 0 {
		resp.Diagnostics.AddError("Cannot import "+name, fmt.Sprintf("no node has a device %s (looked on %s)", name, strings.Join(keys, ", ")))
		return
	}
	found, errs = adopt(false, sortedKeys(found))
	if len(errs) > 0 {
		resp.Diagnostics.AddError("Cannot import "+name, fleet.Join(errs))
		return
	}
	in, notes, err := mesh.Reconstruct(found)
	if err != nil {
		resp.Diagnostics.AddError("Cannot import "+name, err.Error())
		return
	}
	for _, n := range notes {
		resp.Diagnostics.AddWarning("Route not imported", n)
	}
	m := vxlanTunnelModel{
		ID: types.StringValue(name), Name: types.StringValue(name), VNI: types.Int64Value(in.VNI),
		Port: types.Int64Value(in.Port), MTU: types.Int64Value(in.MTU), Learning: types.BoolValue(in.Learning),
	}
	members := map[string]memberModel{}
	for _, mb := range in.Members {
		mm := memberModel{Underlay: types.StringValue(mb.Underlay)}
		members[mb.Key] = observe(mm, name, in, found[mb.Key])
	}
	mv, d := membersValue(members)
	resp.Diagnostics.Append(d...)
	m.Members = mv
	m.Timeouts = timeouts.Value{Object: types.ObjectNull(map[string]attr.Type{
		"create": types.StringType, "update": types.StringType, "delete": types.StringType})}
	m.Routes = types.MapNull(routeType)
	if len(in.Routes) > 0 {
		routes := map[string]attr.Value{}
		for _, rt := range in.Routes {
			on := types.SetNull(types.StringType)
			if rt.On != nil {
				on, d = types.SetValueFrom(ctx, types.StringType, rt.On)
				resp.Diagnostics.Append(d...)
			}
			routes[rt.Dst] = types.ObjectValueMust(routeType.AttrTypes, map[string]attr.Value{"via": types.StringValue(rt.Via), "on": on})
		}
		m.Routes = types.MapValueMust(routeType, routes)
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
