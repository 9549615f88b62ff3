package nodenetv1

import (
	"strings"
	"testing"
)

func TestValidateBgpObjects(t *testing.T) {
	gr := &BgpGracefulRestart{Enabled: true, RestartTime: 120}
	speaker := func(mod func(*BgpSpeaker)) error {
		s := &BgpSpeaker{Asn: 64512, Address: "10.20.30.30", GracefulRestart: gr,
			Mesh: []*BgpNeighbor{{Node: "node2", Address: "10.20.30.31", Asn: 64512}}}
		mod(s)
		return ValidateBgpSpeaker(s)
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{speaker(func(*BgpSpeaker) {}), ""},
		{speaker(func(s *BgpSpeaker) { s.Asn = 0 }), "bgp_speaker.asn: ASN 0 is out of range"},
		{speaker(func(s *BgpSpeaker) { s.RouterId = "r1" }), "bgp_speaker.router_id"},
		{speaker(func(s *BgpSpeaker) { s.GracefulRestart = &BgpGracefulRestart{Enabled: true, RestartTime: 5000} }), "restart_time: restart time 5000 is out of range"},
		{speaker(func(s *BgpSpeaker) { s.Timers = &BgpTimers{Keepalive: 9, HoldTime: 9} }), "keepalive 9 must be less than the hold time 9"},
		{speaker(func(s *BgpSpeaker) { s.Mesh[0].Address = "10.20.30.30" }), "is this node's own address"},
		{speaker(func(s *BgpSpeaker) {
			s.Mesh = append(s.Mesh, &BgpNeighbor{Node: "node3", Address: "10.20.30.31", Asn: 64512})
		}), "is also the address of node2"},
		{ValidateBgpPeer("10.20.30.1", &BgpPeer{PeerIp: "10.20.30.1", PeerAsn: 64513}), ""},
		{ValidateBgpPeer("10.20.30.2", &BgpPeer{PeerIp: "10.20.30.1", PeerAsn: 64513}), "does not match the id's name"},
		{ValidateBgpPeer("10.20.30.1", &BgpPeer{PeerIp: "10.20.30.1", PeerAsn: 64513, Password: strings.Repeat("x", 81)}), "at most 80"},
		{ValidateBgpPeer("10.20.30.1", &BgpPeer{PeerIp: "10.20.30.1", PeerAsn: 64513, EbgpMultihop: 256}), "ebgp_multihop"},
		{ValidateBgpReflector("m1", &BgpReflector{Reflector: "m1", Address: "10.0.0.1", Asn: 63400, ClusterId: "10.0.0.1",
			Clients: []*BgpNeighbor{{Node: "w1", Address: "10.0.0.2", Asn: 63400}}}), ""},
		{ValidateBgpReflector("m1", &BgpReflector{Reflector: "m1", Address: "10.0.0.1", Asn: 63400, ClusterId: "cluster-1"}), "bgp_reflector.cluster_id"},
		{ValidateBgpReflector("m1", &BgpReflector{Reflector: "m1", Address: "10.0.0.1", Asn: 63400,
			Clients: []*BgpNeighbor{{Node: "w1", Address: "10.0.0.2", Asn: 63400}}}), "a reflector with clients needs a cluster id"},
		{ValidateIpPool("10.244.0.0/16", &IpPool{Cidr: "10.244.0.0/16", Block: "10.244.1.0/26"}), ""},
		{ValidateIpPool("10.244.0.0/16", &IpPool{Cidr: "10.244.0.0/16", Block: "10.245.1.0/26"}), "is not inside the pool"},
		{ValidateIpPool("10.244.0.0/16", &IpPool{Cidr: "10.244.0.0/16", Block: "10.244.0.0/8"}), "has host bits set"},
	} {
		switch {
		case c.want == "" && c.err != nil:
			t.Errorf("unexpected error: %v", c.err)
		case c.want != "" && (c.err == nil || !strings.Contains(c.err.Error(), c.want)):
			t.Errorf("error %v, want one containing %q", c.err, c.want)
		}
	}
}

func TestRedacted(t *testing.T) {
	o := &Object{Id: "bgp_peer/10.20.30.1", Spec: &Object_BgpPeer{BgpPeer: &BgpPeer{PeerIp: "10.20.30.1", Password: "secret"}}}
	if r := Redacted(o); r.GetBgpPeer().GetPassword() != "" || o.GetBgpPeer().GetPassword() != "secret" {
		t.Fatalf("redacted %v, original %v", r, o)
	}
}
