package bgp

import (
	"testing"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/types/known/anypb"
)

// TestRouteCounts: GoBGP's advertised count less its End-of-RIB markers (sent when both
// sides have graceful restart), and nothing advertised to a peer that is down.
func TestRouteCounts(t *testing.T) {
	gr, err := anypb.New(&api.GracefulRestartCapability{})
	if err != nil {
		t.Fatal(err)
	}
	peer := func(ourGR bool, remote []*anypb.Any, state api.PeerState_SessionState, adv ...uint64) *api.Peer {
		p := &api.Peer{GracefulRestart: &api.GracefulRestart{Enabled: ourGR}, State: &api.PeerState{SessionState: state, RemoteCap: remote}}
		for _, a := range adv {
			p.AfiSafis = append(p.AfiSafis, &api.AfiSafi{State: &api.AfiSafiState{Received: 3, Advertised: a}})
		}
		return p
	}
	up := api.PeerState_ESTABLISHED
	for _, c := range []struct {
		name           string
		p              *api.Peer
		received, sent uint32
	}{
		{"both sides GR: one EOR per family", peer(true, []*anypb.Any{gr}, up, 2, 1), 6, 1},
		{"peer without GR", peer(true, nil, up, 2), 3, 2},
		{"GR off here", peer(false, []*anypb.Any{gr}, up, 2), 3, 2},
		{"family not negotiated", peer(true, []*anypb.Any{gr}, up, 0), 3, 0},
		{"down", peer(true, []*anypb.Any{gr}, api.PeerState_ACTIVE, 2), 3, 0},
	} {
		r, a := routeCounts(c.p)
		if r != c.received || a != c.sent {
			t.Errorf("%s: received %d advertised %d, want %d %d", c.name, r, a, c.received, c.sent)
		}
	}
}
