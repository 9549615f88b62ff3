package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"sort"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/proto"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Entry names of the speaker's changes.
const (
	entrySpeaker  = "bgp speaker"
	entryNeighbor = "bgp neighbor"
	entryPath     = "bgp path"
)

// ApplySpeaker makes the speaker run as g (nil: stops it, with a Cease to every peer, and
// removes the routes it learned from the kernel). A new AS, router id, listen port or graceful
// restart setting restarts it; a change of mesh or timers changes only the neighbours
// concerned. With dryRun it only reports the changes.
func (s *Speaker) ApplySpeaker(ctx context.Context, id string, g *pb.BgpSpeaker, dryRun bool) ([]*pb.Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g != nil && s.opts.Unavailable != "" {
		return nil, fmt.Errorf("this agent cannot run a BGP speaker: %s", s.opts.Unavailable)
	}
	if g == nil && s.srv == nil {
		if !dryRun {
			s.global = nil
			delete(s.sources, id)
		}
		return nil, nil
	}
	s.noticeLiveGlobalLocked(ctx)
	var changes []*pb.Change
	restart := g == nil || s.running == nil || needsRestart(s.running, g)
	if restart {
		changes = append(changes, speakerChange(s.running, g))
	}
	oldGlobal, oldMesh := s.global, s.sources[id]
	s.global = g
	if g == nil {
		delete(s.sources, id)
	} else {
		s.sources[id] = meshNeighbors(id, g)
	}
	if dryRun || !restart {
		var err error
		if g != nil && s.srv != nil && !restart {
			var more []*pb.Change
			more, err = s.repairRoutesLocked(dryRun)
			changes = append(changes, more...)
		}
		if err == nil {
			var more []*pb.Change
			more, err = s.syncNeighborsLocked(ctx, dryRun)
			changes = append(changes, more...)
		}
		if dryRun || err != nil {
			s.global, s.sources[id] = oldGlobal, oldMesh
			if oldGlobal == nil {
				delete(s.sources, id)
			}
			return changes, err
		}
		s.running = proto.Clone(g).(*pb.BgpSpeaker)
		return changes, nil
	}
	if s.running != nil {
		s.stopLocked()
	}
	if g == nil {
		return changes, s.rib.removeAll()
	}
	if err := s.startLocked(ctx); err != nil {
		s.stopLocked()
		s.global, s.sources[id] = oldGlobal, oldMesh
		if oldGlobal != nil {
			if rerr := s.startLocked(ctx); rerr != nil {
				s.log.Error("restarting the previous speaker after a failed change", "err", rerr)
			}
		}
		return nil, err
	}
	return changes, nil
}

// repairRoutesLocked puts back the learned routes deleted from the kernel by hand.
func (s *Speaker) repairRoutesLocked(dryRun bool) ([]*pb.Change, error) {
	missing, err := s.rib.missing()
	if err != nil || len(missing) == 0 {
		return nil, err
	}
	var changes []*pb.Change
	for _, p := range missing {
		changes = append(changes, dataplane.NewChange(pb.Change_ADD, "route", p.String(), "learned route deleted by hand"))
	}
	if dryRun {
		return changes, nil
	}
	return changes, s.rib.repair(missing)
}

// noticeLiveGlobalLocked takes what GoBGP runs with as the running settings: a change made
// through its API socket (by hand, with the gobgp CLI) is drift that the next apply repairs.
func (s *Speaker) noticeLiveGlobalLocked(ctx context.Context) {
	if s.srv == nil {
		return
	}
	g, err := s.srv.GetBgp(ctx, &api.GetBgpRequest{})
	if err != nil {
		return
	}
	live := proto.Clone(s.running).(*pb.BgpSpeaker)
	live.Asn, live.RouterId = g.GetGlobal().GetAsn(), g.GetGlobal().GetRouterId()
	if live.GetRouterId() == s.running.GetAddress() {
		live.RouterId = s.running.GetRouterId()
	}
	s.running = live
}

// noticeLiveNeighborsLocked forgets applied neighbours that GoBGP no longer has, or has with
// another AS or password (changed by hand through its API socket), so that they are
// configured again.
func (s *Speaker) noticeLiveNeighborsLocked(ctx context.Context) {
	if s.srv == nil {
		return
	}
	live := map[string]*api.PeerConf{}
	_ = s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) { live[p.GetConf().GetNeighborAddress()] = p.GetConf() })
	for addr, a := range s.applied {
		c, ok := live[addr]
		if ok && c.GetPeerAsn() == a.ASN && c.GetAuthPassword() == a.key.Password {
			continue
		}
		a.key = sessionKey{} // differs from every wanted key: removed (if there) and added again
		s.applied[addr] = a
		if !ok {
			delete(s.applied, addr)
		}
	}
}

func speakerChange(running, want *pb.BgpSpeaker) *pb.Change {
	switch {
	case want == nil:
		return dataplane.NewChange(pb.Change_DELETE, entrySpeaker, "bgp speaker", fmt.Sprintf("AS %d router id %s (Cease to every peer)", running.GetAsn(), routerID(running)))
	case running == nil:
		return dataplane.NewChange(pb.Change_ADD, entrySpeaker, "bgp speaker", fmt.Sprintf("AS %d router id %s port %d", want.GetAsn(), routerID(want), orDefault(want.GetListenPort(), defaultPort)))
	}
	return dataplane.NewChange(pb.Change_REPLACE, entrySpeaker, "bgp speaker", fmt.Sprintf("AS %d router id %s -> AS %d router id %s (sessions restart)",
		running.GetAsn(), routerID(running), want.GetAsn(), routerID(want)))
}

// ApplyNeighbors sets the neighbours object id asks for (nil: none) and changes the running
// speaker's neighbours to match. Without a running speaker they wait for it.
func (s *Speaker) ApplyNeighbors(ctx context.Context, id string, ns []Neighbor, dryRun bool) ([]*pb.Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.sources[id]
	if ns == nil {
		delete(s.sources, id)
	} else {
		s.sources[id] = ns
	}
	changes, err := s.syncNeighborsLocked(ctx, dryRun)
	if dryRun || err != nil {
		if had {
			s.sources[id] = old
		} else {
			delete(s.sources, id)
		}
	}
	return changes, err
}

// syncNeighborsLocked changes GoBGP's neighbours to the effective set: new ones added,
// changed ones removed and added again, gone ones removed. Routes learned from a neighbour
// removed on purpose stay in the kernel until another path replaces them or a bounded time
// passes, so a switch from mesh to reflectors drops no route.
func (s *Speaker) syncNeighborsLocked(ctx context.Context, dryRun bool) ([]*pb.Change, error) {
	if s.global == nil {
		return nil, nil
	}
	want := effective(s.sources)
	s.noticeLiveNeighborsLocked(ctx)
	var changes []*pb.Change
	for _, addr := range sortedAddrs(s.applied) {
		a := s.applied[addr]
		if n, ok := want[addr]; ok && n.key(s.global) == a.key {
			continue
		}
		changes = append(changes, dataplane.NewChange(pb.Change_DELETE, entryNeighbor, entryNeighbor+" "+addr, a.Type+" AS "+fmt.Sprint(a.ASN)))
		if dryRun {
			continue
		}
		s.rib.linger(addr)
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr}); err != nil {
			return changes, fmt.Errorf("remove neighbour %s: %w", addr, err)
		}
		delete(s.applied, addr)
	}
	for _, addr := range sortedAddrs(want) {
		n := want[addr]
		if a, ok := s.applied[addr]; ok && a.key == n.key(s.global) {
			continue
		}
		changes = append(changes, dataplane.NewChange(pb.Change_ADD, entryNeighbor, entryNeighbor+" "+addr, n.Type+" AS "+fmt.Sprint(n.ASN)))
		if dryRun || s.srv == nil {
			continue
		}
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: n.apiPeer(s.global, s.restarting)}); err != nil {
			return changes, fmt.Errorf("add neighbour %s (%s): %w", addr, n.Type, err)
		}
		s.applied[addr] = appliedNeighbor{Neighbor: n, key: n.key(s.global)}
	}
	return changes, nil
}

func sortedAddrs[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return dataplane.IPLess(out[i], out[j]) })
	return out
}

// meshNeighbors are the node-to-node mesh peers of a speaker object.
func meshNeighbors(id string, g *pb.BgpSpeaker) []Neighbor {
	var out []Neighbor
	for _, m := range g.GetMesh() {
		out = append(out, Neighbor{Address: m.GetAddress(), ASN: m.GetAsn(), Type: TypeMesh, Node: m.GetNode(), ObjectID: id})
	}
	return out
}

// peerNeighbor is the neighbour of an explicit peer object.
func peerNeighbor(id string, p *pb.BgpPeer) Neighbor {
	return Neighbor{Address: p.GetPeerIp(), ASN: p.GetPeerAsn(), Type: TypeExplicit, ObjectID: id, Peer: proto.Clone(p).(*pb.BgpPeer)}
}

// reflectorNeighbors: on the reflector, its clients; on a client, the reflector.
func reflectorNeighbors(id string, r *pb.BgpReflector) []Neighbor {
	if r.GetClusterId() == "" {
		return []Neighbor{{Address: r.GetAddress(), ASN: r.GetAsn(), Type: TypeRR, Node: r.GetReflector(), ObjectID: id}}
	}
	var out []Neighbor
	for _, c := range r.GetClients() {
		out = append(out, Neighbor{Address: c.GetAddress(), ASN: c.GetAsn(), Type: TypeRRClient, Node: c.GetNode(), ObjectID: id, ClusterID: r.GetClusterId()})
	}
	return out
}

// PeerNeighbor and ReflectorNeighbors are the neighbours of those objects, for their kinds.
func PeerNeighbor(id string, p *pb.BgpPeer) Neighbor { return peerNeighbor(id, p) }

// ReflectorNeighbors returns the neighbours a reflector object asks for.
func ReflectorNeighbors(id string, r *pb.BgpReflector) []Neighbor { return reflectorNeighbors(id, r) }

func poolBlock(p *pb.IpPool) (Block, bool) {
	b, err := netip.ParsePrefix(p.GetBlock())
	if err != nil {
		return Block{}, false
	}
	return Block{Prefix: b, Export: !p.GetDisableBgpExport()}, true
}

// PoolBlock is the block an ip_pool object announces; false when it has none.
func PoolBlock(p *pb.IpPool) (Block, bool) { return poolBlock(p) }
