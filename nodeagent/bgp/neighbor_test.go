package bgp

import (
	"testing"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// TestEffectiveRanks: one session per address, from the object of the highest rank, so a
// switch from the mesh to a reflector (both asked for at once) keeps one session.
func TestEffectiveRanks(t *testing.T) {
	got := effective(map[string][]Neighbor{
		"bgp_speaker/default":    {{Address: "10.0.0.1", Type: TypeMesh}, {Address: "10.0.0.2", Type: TypeMesh}},
		"bgp_reflector/master01": {{Address: "10.0.0.1", Type: TypeRR}},
		"bgp_reflector/master02": {{Address: "10.0.0.2", Type: TypeRRClient}},
		"bgp_peer/10.0.0.2":      {{Address: "10.0.0.2", Type: TypeExplicit}},
	})
	if got["10.0.0.1"].Type != TypeRR || got["10.0.0.2"].Type != TypeExplicit || len(got) != 2 {
		t.Fatalf("effective %v", got)
	}
}

// TestApiPeer: nodenet's timers, not GoBGP's; only the node with the higher address
// connects; explicit peers connect unless passive; reflector clients carry the cluster id.
func TestApiPeer(t *testing.T) {
	g := &pb.BgpSpeaker{Asn: 64512, Address: "10.0.0.5", GracefulRestart: &pb.BgpGracefulRestart{Enabled: true, RestartTime: 120}}
	low := (&Neighbor{Address: "10.0.0.9", ASN: 64512, Type: TypeMesh}).apiPeer(g, true)
	high := (&Neighbor{Address: "10.0.0.1", ASN: 64512, Type: TypeMesh}).apiPeer(g, false)
	if !low.GetTransport().GetPassiveMode() || high.GetTransport().GetPassiveMode() {
		t.Fatal("the lower address must be the passive side")
	}
	if tm := low.GetTimers().GetConfig(); tm.GetKeepaliveInterval() != 3 || tm.GetHoldTime() != 9 || tm.GetConnectRetry() != 2 || tm.GetIdleHoldTimeAfterReset() != 1 {
		t.Fatalf("timers %v", tm)
	}
	if !low.GetGracefulRestart().GetLocalRestarting() || high.GetGracefulRestart().GetLocalRestarting() {
		t.Fatal("only neighbours added while the speaker restarts carry the restart bit")
	}
	ex := (&Neighbor{Address: "10.0.0.9", ASN: 64513, Type: TypeExplicit, Peer: &pb.BgpPeer{PeerIp: "10.0.0.9", Password: "pw"}}).apiPeer(g, false)
	if ex.GetTransport().GetPassiveMode() || ex.GetConf().GetAuthPassword() != "pw" {
		t.Fatalf("explicit peer %v", ex)
	}
	rc := (&Neighbor{Address: "10.0.0.9", ASN: 64512, Type: TypeRRClient, ClusterID: "10.0.0.5"}).apiPeer(g, false)
	if !rc.GetRouteReflector().GetRouteReflectorClient() || rc.GetRouteReflector().GetRouteReflectorClusterId() != "10.0.0.5" {
		t.Fatalf("reflector client %v", rc)
	}
}
