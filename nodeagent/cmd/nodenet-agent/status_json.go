package main

import (
	"encoding/json"
	"io"
	"time"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// bgpJSON is `status --json`: the node's speaker with the names and forms of the
// nodenet_bgp_status data source, so a script can move between the two, and the health of
// the tunnels with health checks.
type bgpJSON struct {
	Node string `json:"node"`
	// Configured is false when the node has no speaker (or the agent has no BGP).
	Configured      bool       `json:"configured"`
	State           string     `json:"state"`
	ASN             uint32     `json:"asn"`
	RouterID        string     `json:"router_id"`
	RoutesInstalled uint32     `json:"routes_installed"`
	Conflicts       []string   `json:"conflicts"`
	Peers           []peerJSON `json:"peers"`
	// Tunnels are the vxlan_tunnel objects with health checks; empty when none has them.
	Tunnels []healthJSON `json:"tunnels"`
}

type peerJSON struct {
	Address    string `json:"address"`
	Type       string `json:"type"`
	ASN        uint32 `json:"asn"`
	State      string `json:"state"`
	Since      string `json:"since"`
	Received   uint32 `json:"received"`
	Advertised uint32 `json:"advertised"`
	Node       string `json:"node"`
}

func writeStatusJSON(w io.Writer, info *pb.NodeInfo, b bgpStatus, hs []tunnelHealth) error {
	s := b.Speaker
	out := bgpJSON{Node: info.GetCluster() + "/" + info.GetNode(), Configured: s != nil, State: s.GetState(), ASN: s.GetAsn(),
		RouterID: s.GetRouterId(), RoutesInstalled: s.GetRoutesInstalled(), Conflicts: s.GetConflicts(), Peers: []peerJSON{},
		Tunnels: healthToJSON(hs)}
	if out.RouterID == "" {
		out.RouterID = s.GetAddress() // the default: the node's address
	}
	if out.Conflicts == nil {
		out.Conflicts = []string{}
	}
	for _, ss := range s.GetSessions() {
		out.Peers = append(out.Peers, peerJSON{Address: ss.GetPeer(), Type: ss.GetType(), ASN: ss.GetAsn(), State: ss.GetState(),
			Since: rfc3339(ss.GetSince()), Received: ss.GetReceived(), Advertised: ss.GetAdvertised(), Node: ss.GetNode()})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// rfc3339 is a session's time in UTC (not the reader's zone: JSON is for programs); "" when
// the speaker has none.
func rfc3339(unix int64) string {
	if unix == 0 {
		return ""
	}
	return time.Unix(unix, 0).UTC().Format(time.RFC3339)
}
