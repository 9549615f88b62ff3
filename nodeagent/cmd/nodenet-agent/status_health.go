package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// tunnelHealth is a vxlan_tunnel with health checks: what the node measures of each member.
type tunnelHealth struct {
	ID, Device string
	Peers      []*pb.PeerHealth
}

// fetchHealth reads the health of the managed tunnels that ask for health checks (the
// objects List returns; an agent older than health checks has none).
func fetchHealth(ctx context.Context, c pb.NodeAgentClient, list *pb.ListResponse) ([]tunnelHealth, error) {
	var out []tunnelHealth
	for _, o := range list.GetObjects() {
		t := o.GetVxlanTunnel()
		if !t.GetHealthCheck() {
			continue
		}
		resp, err := c.Get(ctx, &pb.GetRequest{Id: o.GetId()})
		if status.Code(err) == codes.NotFound {
			continue // deleted since the List
		}
		if err != nil {
			return nil, fmt.Errorf("status: Get %s: %w", o.GetId(), err)
		}
		out = append(out, tunnelHealth{ID: o.GetId(), Device: t.GetDevice().GetName(), Peers: resp.GetObserved().GetVxlanTunnel().GetHealth()})
	}
	return out, nil
}

// renderHealth prints one table per tunnel, in the style of the BGP tables: a line that
// says how many members answer, then one row per member. now gives the time zone and the
// day LAST OK is relative to.
func renderHealth(w io.Writer, ts []tunnelHealth, now time.Time) {
	for i, t := range ts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		up := 0
		for _, p := range t.Peers {
			if p.GetReachable() {
				up++
			}
		}
		fmt.Fprintf(w, "Overlay health of %s (device %s): %d of %d peers reachable\n", t.ID, t.Device, up, len(t.Peers))
		if len(t.Peers) == 0 {
			fmt.Fprintln(w, "No peers to probe.")
			continue
		}
		var rows [][]string
		for _, p := range t.Peers {
			rows = append(rows, []string{p.GetNode(), p.GetIp(), yesNo(p.GetReachable()), rttText(p), lossText(p), lastOKText(p.GetLastOk(), now), p.GetError()})
		}
		writeTable(w, []string{"Node", "Overlay IP", "Reachable", "Last RTT (ms)", "Loss", "Last OK", "Info"}, rows)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// rttText is the last answered probe's round trip in milliseconds; "" before any.
func rttText(p *pb.PeerHealth) string {
	if p.GetLastOk() == 0 {
		return ""
	}
	return fmt.Sprintf("%.3f", p.GetRttMs())
}

// lossText is the share of the window's probes that got no answer, with the counts.
func lossText(p *pb.PeerHealth) string {
	sent := p.GetSent()
	if sent == 0 {
		return ""
	}
	lost := sent - p.GetReceived()
	return fmt.Sprintf("%d%% (%d/%d)", lost*100/sent, lost, sent)
}

func lastOKText(unix int64, now time.Time) string {
	if unix == 0 {
		return "never"
	}
	return sinceText(unix, now)
}

// healthJSON is a tunnel in `status --json`, its members with the contract's names.
type healthJSON struct {
	ID     string           `json:"id"`
	Device string           `json:"device"`
	Peers  []peerHealthJSON `json:"peers"`
}

type peerHealthJSON struct {
	Node      string  `json:"node"`
	IP        string  `json:"ip"`
	Reachable bool    `json:"reachable"`
	RTTms     float64 `json:"rtt_ms"`
	Sent      uint32  `json:"sent"`
	Received  uint32  `json:"received"`
	// LastOK is RFC 3339 in UTC; "" when no probe was answered.
	LastOK string `json:"last_ok"`
	Error  string `json:"error"`
}

func healthToJSON(ts []tunnelHealth) []healthJSON {
	out := []healthJSON{}
	for _, t := range ts {
		h := healthJSON{ID: t.ID, Device: t.Device, Peers: []peerHealthJSON{}}
		for _, p := range t.Peers {
			h.Peers = append(h.Peers, peerHealthJSON{Node: p.GetNode(), IP: p.GetIp(), Reachable: p.GetReachable(), RTTms: p.GetRttMs(),
				Sent: p.GetSent(), Received: p.GetReceived(), LastOK: rfc3339(p.GetLastOk()), Error: p.GetError()})
		}
		out = append(out, h)
	}
	return out
}
