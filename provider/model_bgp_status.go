package provider

import (
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
)

var (
	peerStatusType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"address": types.StringType, "type": types.StringType, "asn": types.Int64Type, "state": types.StringType,
		"since": types.StringType, "received": types.Int64Type, "advertised": types.Int64Type, "node": types.StringType,
	}}
	speakerStatusType = types.ObjectType{AttrTypes: map[string]attr.Type{
		"cluster": types.StringType, "name": types.StringType, "error": types.StringType,
		"configured": types.BoolType, "state": types.StringType, "asn": types.Int64Type, "router_id": types.StringType,
		"routes_installed": types.Int64Type, "conflicts": types.ListType{ElemType: types.StringType},
		"peers": types.ListType{ElemType: peerStatusType},
	}}
)

// speakerStatusValue is one node's entry; s is nil when the node has no speaker or its agent
// did not answer (failure says why).
func speakerStatusValue(n fleet.Node, s *pb.BgpSpeaker, failure string) attr.Value {
	peers := make([]attr.Value, 0, len(s.GetSessions()))
	for _, ss := range s.GetSessions() {
		peers = append(peers, types.ObjectValueMust(peerStatusType.AttrTypes, map[string]attr.Value{
			"address": types.StringValue(ss.GetPeer()), "type": types.StringValue(ss.GetType()),
			"asn": types.Int64Value(int64(ss.GetAsn())), "state": types.StringValue(ss.GetState()),
			"since": types.StringValue(rfc3339(ss.GetSince())), "received": types.Int64Value(int64(ss.GetReceived())),
			"advertised": types.Int64Value(int64(ss.GetAdvertised())), "node": types.StringValue(ss.GetNode()),
		}))
	}
	rid := s.GetRouterId()
	if rid == "" {
		rid = s.GetAddress() // the agent leaves the default out: the node's address
	}
	return types.ObjectValueMust(speakerStatusType.AttrTypes, map[string]attr.Value{
		"cluster": types.StringValue(n.Cluster), "name": types.StringValue(n.Name), "error": types.StringValue(failure),
		"configured": types.BoolValue(s != nil), "state": types.StringValue(s.GetState()),
		"asn": types.Int64Value(int64(s.GetAsn())), "router_id": types.StringValue(rid),
		"routes_installed": types.Int64Value(int64(s.GetRoutesInstalled())), "conflicts": stringsValue(s.GetConflicts()),
		"peers": types.ListValueMust(peerStatusType, peers),
	})
}

// rfc3339 is a session's time in UTC; "" when the speaker has none.
func rfc3339(unix int64) string {
	if unix == 0 {
		return ""
	}
	return time.Unix(unix, 0).UTC().Format(time.RFC3339)
}
