package provider

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
	"github.com/nodenet/terraform-provider-nodenet/provider/mesh"
)

// The nodenet_vxlan_tunnel model and its conversion to and from the contract: the model to
// the planner's input and per-node objects, observed objects back to the model.

// Oper states a member reports besides the kernel's "up" and "down".
const (
	stateAbsent      = "absent"
	stateUp          = "up"
	stateUnreachable = "unreachable"
)

// vxlanOwnerPrefix starts the owner identity of the tunnel's objects on the agents:
// "nodenet_vxlan_tunnel:<id>".
const vxlanOwnerPrefix = "nodenet_vxlan_tunnel:"

// plannedOwner stands for a tunnel's owner in the dry runs of its create plan: its id is made
// at create (a plan is made again at apply time, and an id made in each would differ).
const plannedOwner = vxlanOwnerPrefix + "new"

func vxlanOwner(id string) string { return vxlanOwnerPrefix + id }

func objectID(name string) string { return pb.ObjectID(pb.KindVxlanTunnel, name) }

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

// owner is the identity the agents record for the tunnel's objects.
func (m *vxlanTunnelModel) owner() string {
	if m.ID.IsNull() || m.ID.IsUnknown() || m.ID.ValueString() == "" {
		return plannedOwner
	}
	return vxlanOwner(m.ID.ValueString())
}

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
	memberType   = types.ObjectType{AttrTypes: memberAttrTypes}
	routeType    = types.ObjectType{AttrTypes: map[string]attr.Type{"via": types.StringType, "on": types.SetType{ElemType: types.StringType}}}
	timeoutsType = map[string]attr.Type{"create": types.StringType, "update": types.StringType, "delete": types.StringType}
)

// input converts the model to the planner's input; known is false when any value it needs is
// not known yet.
func input(ctx context.Context, m *vxlanTunnelModel) (in mesh.Input, known bool, diags diag.Diagnostics) {
	known = !(m.Name.IsUnknown() || m.VNI.IsUnknown() || m.Port.IsUnknown() || m.Learning.IsUnknown() || m.Members.IsUnknown() || m.Routes.IsUnknown())
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

func membersValue(members map[string]memberModel) (types.Map, diag.Diagnostics) {
	return types.MapValueFrom(context.Background(), memberType, members)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// linesValue renders entries one per line ("" for none), so that a plan shows added and
// removed entries as lines.
func linesValue(ss []string) types.String {
	return types.StringValue(strings.Join(ss, "\n"))
}

// objects are the tunnel's per-node objects: each member's planned share, one id and owner.
func objects(p *mesh.Plan, name, owner string, keys []string) fleet.Objects {
	objs := fleet.Objects{}
	for _, k := range keys {
		objs[k] = &pb.Object{Id: objectID(name), Owner: owner, Spec: &pb.Object_VxlanTunnel{VxlanTunnel: p.Members[k].Spec}}
	}
	return objs
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
	// Every address the device has: one added by hand shows as a change of address.
	mm.Address = types.StringValue(d.GetAddress())
	if len(d.GetAddresses()) > 1 {
		mm.Address = types.StringValue(strings.Join(d.GetAddresses(), ", "))
	}
	mm.MTU = types.Int64Value(int64(d.GetMtu()))
	mm.Ifindex = types.Int64Value(int64(d.GetIfindex()))
	mm.OperState = types.StringValue(operState(d, name, want))
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

// operState is the kernel's state, or what makes the device not the tunnel's.
func operState(d *pb.VxlanDevice, name string, want mesh.Input) string {
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
	if d.GetOwner() != pb.OwnerAlias(objectID(name)) {
		bad = append(bad, "not owned by nodenet")
	}
	if len(bad) > 0 {
		return "incompatible: " + strings.Join(bad, ", ")
	}
	return d.GetOperState()
}

// setObserved writes the members' observed values into the model; members without an
// observation keep what the model has.
func setObserved(ctx context.Context, m *vxlanTunnelModel, in mesh.Input, observed map[string]*pb.VxlanTunnel, diags *diag.Diagnostics) {
	members, d := membersOf(ctx, m.Members)
	diags.Append(d...)
	for key, mm := range members {
		if t, ok := observed[key]; ok {
			members[key] = observe(mm, in.Name, in, t)
		}
	}
	mv, d := membersValue(members)
	diags.Append(d...)
	m.Members = mv
}

// unreachable is a member whose agent did not answer: its last known state, marked so.
func unreachable(last memberModel) memberModel {
	last.OperState = types.StringValue(stateUnreachable)
	return last
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

// routesValue is the routes attribute of an input (null when there are none).
func routesValue(ctx context.Context, in mesh.Input, diags *diag.Diagnostics) types.Map {
	if len(in.Routes) == 0 {
		return types.MapNull(routeType)
	}
	routes := map[string]attr.Value{}
	for _, rt := range in.Routes {
		on := types.SetNull(types.StringType)
		if rt.On != nil {
			var d diag.Diagnostics
			on, d = types.SetValueFrom(ctx, types.StringType, rt.On)
			diags.Append(d...)
		}
		routes[rt.Dst] = types.ObjectValueMust(routeType.AttrTypes, map[string]attr.Value{"via": types.StringValue(rt.Via), "on": on})
	}
	return types.MapValueMust(routeType, routes)
}
