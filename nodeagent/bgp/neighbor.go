package bgp

import (
	"sort"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Session types, as `nodenet-agent status` and nodenet_bgp_status show them.
const (
	TypeMesh     = "mesh"
	TypeExplicit = "explicit"
	TypeRRClient = "rr-client" // a client of this node, which is a reflector
	TypeRR       = "rr"        // a reflector this node is a client of
)

// rank orders the sources of a neighbour with one address: an explicit peer wins over a
// reflector's client, which wins over a client's reflector, which wins over the mesh. When
// the mesh is turned off and a reflector on in one apply, the address keeps one session
// throughout.
var rank = map[string]int{TypeMesh: 1, TypeRR: 2, TypeRRClient: 3, TypeExplicit: 4}

// Neighbor is one peering as an object asks for it.
type Neighbor struct {
	Address string
	ASN     uint32
	Type    string
	Node    string // the neighbour's node, when it is a nodenet node
	// ObjectID is the object that asks for it.
	ObjectID string
	// ClusterID is the reflector's cluster id (TypeRRClient only).
	ClusterID string
	// Peer holds an explicit peer's options (TypeExplicit only).
	Peer *pb.BgpPeer
}

// sessionKey is what cannot change on a live session: any difference means the neighbour is
// removed and added again.
type sessionKey struct {
	ASN                    uint32
	Type, ClusterID        string
	Password, Source       string
	Multihop, Port         uint32
	Passive, GR            bool
	RestartTime            uint32
	Keepalive, Hold, Retry uint32
	Idle                   uint32
}

func (n *Neighbor) key(g *pb.BgpSpeaker) sessionKey {
	k := sessionKey{ASN: n.ASN, Type: n.Type, ClusterID: n.ClusterID}
	gr, t := g.GetGracefulRestart(), g.GetTimers()
	if p := n.Peer; p != nil {
		k.Password, k.Source, k.Multihop, k.Port, k.Passive = p.GetPassword(), p.GetSourceAddress(), p.GetEbgpMultihop(), p.GetPort(), p.GetPassive()
		if p.GetGracefulRestart() != nil {
			gr = p.GetGracefulRestart()
		}
		if p.GetTimers() != nil {
			t = p.GetTimers()
		}
	}
	k.GR, k.RestartTime = gr.GetEnabled(), gr.GetRestartTime()
	k.Keepalive, k.Hold, k.Retry, k.Idle = t.GetKeepalive(), t.GetHoldTime(), t.GetConnectRetry(), t.GetIdleHold()
	return k
}

// effective picks, per address, the neighbour of the highest rank among every object's.
func effective(sources map[string][]Neighbor) map[string]Neighbor {
	out := map[string]Neighbor{}
	ids := make([]string, 0, len(sources))
	for id := range sources {
		ids = append(ids, id)
	}
	sort.Strings(ids) // equal ranks: the first object id wins, the same on every run
	for _, id := range ids {
		for _, n := range sources[id] {
			if cur, ok := out[n.Address]; !ok || rank[n.Type] > rank[cur.Type] {
				out[n.Address] = n
			}
		}
	}
	return out
}

// Default timers (seconds): sessions come up and fail over in seconds, not GoBGP's
// 120 s connect retry and 30 s idle hold.
const (
	defaultKeepalive    = 3
	defaultHold         = 9
	defaultConnectRetry = 2
	defaultIdleHold     = 1
	defaultPort         = 179
	// deferralTime bounds how long a restarted speaker holds its advertisements back while
	// it waits for End-of-RIB from every peer (RFC 4724's selection deferral).
	deferralTime = 2
)

func orDefault(v, d uint32) uint32 {
	if v == 0 {
		return d
	}
	return v
}

// apiPeer is the GoBGP neighbour configuration of n. restarting marks a neighbour added
// while the speaker restarts: the OPEN carries the restart and forwarding-state bits, so
// peers keep this node's routes as stale until its End-of-RIB.
func (n *Neighbor) apiPeer(g *pb.BgpSpeaker, restarting bool) *api.Peer {
	k := n.key(g)
	local := g.GetAddress()
	if n.Peer != nil && n.Peer.GetSourceAddress() != "" {
		local = n.Peer.GetSourceAddress()
	}
	p := &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: n.Address, PeerAsn: n.ASN, AuthPassword: k.Password, Description: n.Type + " " + n.ObjectID},
		Timers: &api.Timers{Config: &api.TimersConfig{
			KeepaliveInterval:      uint64(orDefault(k.Keepalive, defaultKeepalive)),
			HoldTime:               uint64(orDefault(k.Hold, defaultHold)),
			ConnectRetry:           uint64(orDefault(k.Retry, defaultConnectRetry)),
			IdleHoldTimeAfterReset: uint64(orDefault(k.Idle, defaultIdleHold)),
		}},
		Transport: &api.Transport{
			LocalAddress: local,
			RemotePort:   orDefault(k.Port, orDefault(g.GetListenPort(), defaultPort)),
			PassiveMode:  k.Passive,
		},
		AfiSafis: []*api.AfiSafi{{
			Config:            &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: k.GR}},
		}},
	}
	if n.Type != TypeExplicit && dataplane.IPLess(local, n.Address) {
		// Between two nodes only the one with the higher address connects. GoBGP refuses
		// connections for 5 s after a session ends and then tries once per connect retry;
		// two sides that both connect can stay out of step for good after a restart, each
		// connecting while the other waits. A passive side waits in Active and takes the
		// next attempt.
		p.Transport.PassiveMode = true
	}
	if k.GR {
		p.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: k.RestartTime, DeferralTime: deferralTime, LocalRestarting: restarting}
	}
	if k.Multihop > 0 {
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: k.Multihop}
	}
	if n.Type == TypeRRClient {
		p.RouteReflector = &api.RouteReflector{RouteReflectorClient: true, RouteReflectorClusterId: n.ClusterID}
	}
	return p
}
