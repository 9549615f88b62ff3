package provider

import (
	"context"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/mesh"
)

// The model <-> contract conversion, without agents.

func TestObserveFillsMembersFromTheKernel(t *testing.T) {
	want := mesh.Input{Name: "vxlan-test", VNI: 10001, Port: 4899}
	mm := memberModel{Underlay: types.StringValue("eth0"), Address: types.StringValue("179.17.1.21/24")}
	t.Run("device present", func(t *testing.T) {
		got := observe(mm, "vxlan-test", want, &pb.VxlanTunnel{
			Device: &pb.VxlanDevice{Name: "vxlan-test", Vni: 10001, Port: 4899, Underlay: "eth0", LocalIp: "192.168.0.21",
				Mtu: 1450, Mac: "c2:6a:9b:e5:39:8d", Address: "179.17.1.21/24", Ifindex: 7, OperState: "up",
				Owner: "nodenet:vxlan_tunnel/vxlan-test"},
			Fdb:       []*pb.FdbEntry{{Mac: "36:f9:67:c0:70:1c", Dst: "192.168.0.16"}, {Mac: "7a:3a:fe:45:a3:76", Dst: "192.168.0.31"}},
			Neighbors: []*pb.Neighbor{{Ip: "179.17.1.16", Mac: "36:f9:67:c0:70:1c"}},
			Routes:    []*pb.Route{{Dst: "10.235.88.0/24", Via: "179.17.1.16"}},
		})
		check(t, "mac", got.MAC.ValueString(), "c2:6a:9b:e5:39:8d")
		check(t, "local_ip", got.LocalIP.ValueString(), "192.168.0.21")
		check(t, "oper_state", got.OperState.ValueString(), "up")
		check(t, "fdb", got.FDB.ValueString(), "36:f9:67:c0:70:1c dst 192.168.0.16\n7a:3a:fe:45:a3:76 dst 192.168.0.31")
		check(t, "neighbors", got.Neighbors.ValueString(), "179.17.1.16 lladdr 36:f9:67:c0:70:1c")
		check(t, "routes", got.Routes.ValueString(), "10.235.88.0/24 via 179.17.1.16")
		if got.Ifindex.ValueInt64() != 7 || got.MTU.ValueInt64() != 1450 {
			t.Errorf("ifindex %v mtu %v", got.Ifindex, got.MTU)
		}
	})
	t.Run("device deleted by hand", func(t *testing.T) {
		got := observe(mm, "vxlan-test", want, &pb.VxlanTunnel{})
		check(t, "oper_state", got.OperState.ValueString(), "absent")
		check(t, "address", got.Address.ValueString(), "")
		check(t, "fdb", got.FDB.ValueString(), "")
		if got.Ifindex.ValueInt64() != 0 {
			t.Errorf("ifindex %v, want 0", got.Ifindex)
		}
	})
	t.Run("other VNI, other underlay, not owned", func(t *testing.T) {
		got := observe(mm, "vxlan-test", want, &pb.VxlanTunnel{Device: &pb.VxlanDevice{
			Name: "vxlan-test", Vni: 5, Port: 4899, Underlay: "eth1", LocalIp: "10.0.0.1", OperState: "up"}})
		check(t, "oper_state", got.OperState.ValueString(), "incompatible: vni 5, not owned by nodenet")
		check(t, "underlay", got.Underlay.ValueString(), "eth1")
	})
}

func check(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func TestInputFromTheModel(t *testing.T) {
	ctx := context.Background()
	member := func(mac types.String) attr.Value {
		return types.ObjectValueMust(memberAttrTypes, map[string]attr.Value{
			"underlay": types.StringValue("eth0"), "address": types.StringValue("179.17.1.21/24"), "mac": mac,
			"local_ip": types.StringUnknown(), "mtu": types.Int64Unknown(), "ifindex": types.Int64Unknown(),
			"oper_state": types.StringUnknown(), "fdb": types.StringUnknown(), "neighbors": types.StringUnknown(), "routes": types.StringUnknown(),
		})
	}
	m := vxlanTunnelModel{
		Name: types.StringValue("vxlan-test"), VNI: types.Int64Value(10001), Port: types.Int64Value(4899),
		MTU: types.Int64Unknown(), Learning: types.BoolValue(false),
		Members: types.MapValueMust(memberType, map[string]attr.Value{
			"c1/n1": member(types.StringValue("c2:6a:9b:e5:39:8d")),
			"c1/n2": member(types.StringUnknown()), // computed: derived
		}),
		Routes: types.MapValueMust(routeType, map[string]attr.Value{
			"10.1.0.0/24": types.ObjectValueMust(routeType.AttrTypes, map[string]attr.Value{"via": types.StringValue("c1/n1"), "on": types.SetNull(types.StringType)}),
			"10.2.0.0/24": types.ObjectValueMust(routeType.AttrTypes, map[string]attr.Value{"via": types.StringValue("c1/n2"),
				"on": types.SetValueMust(types.StringType, []attr.Value{types.StringValue("c1/n1")})}),
		}),
	}
	in, known, diags := input(ctx, &m)
	if diags.HasError() || !known {
		t.Fatalf("known %v, %v", known, diags)
	}
	if in.MTU != 0 || len(in.Members) != 2 || in.Members[0].MAC != "c2:6a:9b:e5:39:8d" || in.Members[1].MAC != "" {
		t.Errorf("input = %+v", in)
	}
	if len(in.Routes) != 2 || in.Routes[0].On != nil || len(in.Routes[1].On) != 1 {
		t.Errorf("routes = %+v", in.Routes)
	}
	m.Members = types.MapUnknown(memberType)
	if _, known, _ := input(ctx, &m); known {
		t.Error("unknown members reported as known")
	}
}

func TestSummarize(t *testing.T) {
	line, recreated := summarize([]*pb.Change{
		{Action: pb.Change_ADD, Entry: "link"}, {Action: pb.Change_ADD, Entry: "addr"},
		{Action: pb.Change_ADD, Entry: "neigh"}, {Action: pb.Change_ADD, Entry: "neigh"},
		{Action: pb.Change_UPDATE, Entry: "fdb"}, {Action: pb.Change_DELETE, Entry: "route"},
	})
	check(t, "summary", line, "+1 link, +1 addr, +2 neigh, ~1 fdb, -1 route")
	if !recreated {
		t.Error("an added link means the device is (re)created")
	}
	line, recreated = summarize([]*pb.Change{{Action: pb.Change_UPDATE, Entry: "link", Detail: "mtu 1450 -> 1400"}})
	check(t, "summary", line, "~1 link")
	if recreated {
		t.Error("an MTU update does not recreate the device")
	}
	if line, _ := summarize(nil); line != "" {
		t.Errorf("no changes: %q", line)
	}
}
