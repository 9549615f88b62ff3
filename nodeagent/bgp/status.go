package bgp

import (
	"context"
	"net/netip"
	"sort"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Observed is what the running speaker has, read from GoBGP (never echoed from the request).
type Observed struct {
	// Global is nil when no speaker runs; else AS, router id and port as GoBGP has them.
	Global    *pb.BgpSpeaker
	State     string
	Sessions  []*pb.BgpSession
	Installed int
	Conflicts []string
	// Missing are learned routes the kernel lost (deleted by hand).
	Missing []string
	// passwords are the TCP MD5 passwords GoBGP has, by neighbour address.
	passwords map[string]string
}

// Password returns the password GoBGP has for a neighbour.
func (o *Observed) Password(addr string) string { return o.passwords[addr] }

// SessionsOf returns the sessions object id configured.
func (o *Observed) SessionsOf(id string) []*pb.BgpSession {
	var out []*pb.BgpSession
	for _, s := range o.Sessions {
		if s.GetObjectId() == id {
			out = append(out, s)
		}
	}
	return out
}

// Observe reads the speaker's state from GoBGP.
func (s *Speaker) Observe(ctx context.Context) (*Observed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := &Observed{passwords: map[string]string{}}
	o.Installed, o.Conflicts = s.rib.counts()
	missing, err := s.rib.missing()
	if err != nil {
		return nil, err
	}
	for _, p := range sortedPrefixes(toSet(missing)) {
		o.Missing = append(o.Missing, p.String())
	}
	if s.srv == nil {
		o.State = "not running"
		if s.opts.Unavailable != "" {
			o.State = "unavailable: " + s.opts.Unavailable
		}
		return o, nil
	}
	g, err := s.srv.GetBgp(ctx, &api.GetBgpRequest{})
	if err != nil {
		return nil, err
	}
	if g.GetGlobal().GetAsn() == 0 {
		o.State = "stopped"
		return o, nil
	}
	o.State = "running"
	o.Global = &pb.BgpSpeaker{Asn: g.GetGlobal().GetAsn(), RouterId: g.GetGlobal().GetRouterId(), ListenPort: uint32(g.GetGlobal().GetListenPort())}
	err = s.srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		addr := p.GetState().GetNeighborAddress()
		if addr == "" {
			addr = p.GetConf().GetNeighborAddress()
		}
		o.passwords[addr] = p.GetConf().GetAuthPassword()
		o.Sessions = append(o.Sessions, s.session(addr, p))
	})
	sort.Slice(o.Sessions, func(i, j int) bool { return dataplane.IPLess(o.Sessions[i].GetPeer(), o.Sessions[j].GetPeer()) })
	return o, err
}

func (s *Speaker) session(addr string, p *api.Peer) *pb.BgpSession {
	out := &pb.BgpSession{Peer: addr, Asn: p.GetConf().GetPeerAsn(), Type: "unmanaged", State: sessionState(p.GetState().GetSessionState())}
	if a, ok := s.applied[addr]; ok {
		out.Type, out.Node, out.ObjectId = a.Type, a.Node, a.ObjectID
	}
	ts := p.GetTimers().GetState()
	since := ts.GetDowntime()
	if out.State == "Established" {
		since = ts.GetUptime()
	}
	if since != nil {
		out.Since = since.AsTime().Unix()
	}
	out.Received, out.Advertised = routeCounts(p)
	return out
}

// routeCounts is what a peer sent us and what we send it. GoBGP's advertised count is
// what it would send, asked even of a peer that is down, and with graceful restart in
// effect it counts the End-of-RIB marker of every family as a route: an advertised count
// here is the routes an Established peer has from us.
func routeCounts(p *api.Peer) (received, advertised uint32) {
	eor := p.GetGracefulRestart().GetEnabled() && remoteHasGR(p)
	for _, af := range p.GetAfiSafis() {
		received += uint32(af.GetState().GetReceived())
		adv := uint32(af.GetState().GetAdvertised())
		if eor && adv > 0 {
			adv--
		}
		advertised += adv
	}
	if p.GetState().GetSessionState() != api.PeerState_ESTABLISHED {
		advertised = 0
	}
	return received, advertised
}

// remoteHasGR reports whether the peer's OPEN had the graceful restart capability: with our
// own, that is when GoBGP sends End-of-RIB markers.
func remoteHasGR(p *api.Peer) bool {
	for _, c := range p.GetState().GetRemoteCap() {
		if c.MessageIs(&api.GracefulRestartCapability{}) {
			return true
		}
	}
	return false
}

// sessionState renders GoBGP's state the way BIRD and calicoctl do ("Established").
func sessionState(st api.PeerState_SessionState) string {
	name := strings.ToLower(strings.TrimPrefix(st.String(), "SESSION_STATE_"))
	if name == "" || name == "unknown" {
		return "Idle"
	}
	if name == "opensent" {
		return "OpenSent"
	}
	if name == "openconfirm" {
		return "OpenConfirm"
	}
	return strings.ToUpper(name[:1]) + name[1:]
}

// allEOR reports whether every neighbour of srv sent its End-of-RIB for IPv4 unicast.
func allEOR(srv *server.BgpServer) func() bool {
	return func() bool {
		all := true
		_ = srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
			got := false
			for _, af := range p.GetAfiSafis() {
				if af.GetMpGracefulRestart().GetState().GetEndOfRibReceived() {
					got = true
				}
			}
			all = all && got
		})
		return all
	}
}

// restartBound is how long stale routes wait for their peers: the graceful restart time,
// at most two minutes.
func restartBound(g *pb.BgpSpeaker) time.Duration {
	t := time.Duration(g.GetGracefulRestart().GetRestartTime()) * time.Second
	if t <= 0 || t > 2*time.Minute {
		t = 2 * time.Minute
	}
	return t
}

// Asked returns the neighbour addresses object id asks for, whichever object's session
// serves them.
func (s *Speaker) Asked(id string) map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for _, n := range s.sources[id] {
		out[n.Address] = true
	}
	return out
}

// SessionsAt returns the sessions with the given neighbour addresses.
func (o *Observed) SessionsAt(addrs map[string]bool) []*pb.BgpSession {
	var out []*pb.BgpSession
	for _, s := range o.Sessions {
		if addrs[s.GetPeer()] {
			out = append(out, s)
		}
	}
	return out
}

func toSet(ps []netip.Prefix) map[netip.Prefix]bool {
	m := map[netip.Prefix]bool{}
	for _, p := range ps {
		m[p] = true
	}
	return m
}
