package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/bgp"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

var speakerID = pb.ObjectID(pb.KindBgpSpeaker, pb.SpeakerName)

// bgpStatus is what `status` knows of a node's BGP speaker.
type bgpStatus struct {
	// Supported is false when the agent has no bgp_speaker kind (an older agent).
	Supported bool
	// Speaker is the observed speaker; nil when the node has none.
	Speaker *pb.BgpSpeaker
}

// fetchBGP reads the node's speaker. A node without one is not an error: most of
// `status` is about other things, and "not configured" is an answer.
func fetchBGP(ctx context.Context, c pb.NodeAgentClient, info *pb.NodeInfo) (bgpStatus, error) {
	if !slices.Contains(info.GetCapabilities(), pb.KindBgpSpeaker) {
		return bgpStatus{}, nil
	}
	resp, err := c.Get(ctx, &pb.GetRequest{Id: speakerID})
	if status.Code(err) == codes.NotFound {
		return bgpStatus{Supported: true}, nil
	}
	if err != nil {
		return bgpStatus{}, fmt.Errorf("status: Get %s: %w", speakerID, err)
	}
	return bgpStatus{Supported: true, Speaker: resp.GetObserved().GetBgpSpeaker()}, nil
}

// renderBGP prints the speaker in `calicoctl node status`'s layout, so what operators (and
// their scripts) read off Calico nodes reads the same here; a second table per family adds
// what calicoctl lacks (the peer's node and AS, routes received and advertised) without
// widening the first. now gives the time zone and the day SINCE is relative to.
func renderBGP(w io.Writer, b bgpStatus, now time.Time) {
	s := b.Speaker
	switch {
	case !b.Supported:
		fmt.Fprintln(w, "nodenet-agent BGP speaker is not available: this agent has no bgp_speaker kind.")
		return
	case s == nil:
		fmt.Fprintln(w, "nodenet-agent BGP speaker is not configured on this node.")
		return
	case s.GetState() != "running":
		fmt.Fprintf(w, "nodenet-agent BGP speaker is not running: %s.\n", s.GetState())
		return
	}
	fmt.Fprintln(w, "nodenet-agent BGP speaker is running.")
	var v4, v6 []*pb.BgpSession
	for _, ss := range s.GetSessions() {
		if a, err := netip.ParseAddr(ss.GetPeer()); err == nil && a.Unmap().Is6() {
			v6 = append(v6, ss)
		} else {
			v4 = append(v4, ss)
		}
	}
	renderFamily(w, "4", v4, now)
	renderFamily(w, "6", v6, now)
	if cs := s.GetConflicts(); len(cs) > 0 {
		fmt.Fprintf(w, "\nLearned routes left out of the kernel (a route nodenet does not own is there): %d\n", len(cs))
		for _, c := range cs {
			fmt.Fprintf(w, "  %s\n", c)
		}
	}
}

func renderFamily(w io.Writer, ipv string, ss []*pb.BgpSession, now time.Time) {
	fmt.Fprintf(w, "\nIPv%s BGP status\n", ipv)
	if len(ss) == 0 {
		fmt.Fprintf(w, "No IPv%s peers found.\n", ipv)
		return
	}
	var peers, routes [][]string
	for _, s := range ss {
		peers = append(peers, []string{s.GetPeer(), peerType(s.GetType()), birdState(s.GetState()), sinceText(s.GetSince(), now), s.GetState()})
		routes = append(routes, []string{s.GetPeer(), s.GetNode(), fmt.Sprint(s.GetAsn()), fmt.Sprint(s.GetReceived()), fmt.Sprint(s.GetAdvertised())})
	}
	writeTable(w, []string{"Peer address", "Peer type", "State", "Since", "Info"}, peers)
	fmt.Fprintf(w, "\nIPv%s BGP routes\n", ipv)
	writeTable(w, []string{"Peer address", "Node", "AS", "Received", "Advertised"}, routes)
}

// peerType names a session's type as calicoctl does where Calico has the same thing;
// explicit peers are "explicit" since the agent cannot tell calicoctl's "global" from
// "node specific" (which nodes a nodenet_bgp_peer names is the provider's business).
func peerType(t string) string {
	switch t {
	case bgp.TypeMesh:
		return "node-to-node mesh"
	case bgp.TypeRRClient:
		return "rr client"
	case bgp.TypeRR:
		return "route reflector"
	}
	return t
}

// birdState is the STATE column: BIRD's protocol state, which calicoctl shows ("up" once
// Established, "start" while it tries).
func birdState(state string) string {
	if state == "Established" {
		return "up"
	}
	return "start"
}

// sinceText is BIRD's protocol time as calicoctl shows it: the time of day within the last
// day, the date before that. "" when the speaker has no time for the session.
func sinceText(unix int64, now time.Time) string {
	if unix == 0 {
		return ""
	}
	t := time.Unix(unix, 0).In(now.Location())
	if now.Sub(t) < 24*time.Hour {
		return t.Format(time.TimeOnly)
	}
	return t.Format(time.DateOnly)
}
