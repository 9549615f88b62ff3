package bgp

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// ApplyBlock sets the block object id announces (nil: none) and changes what the running
// speaker originates to match. Without a running speaker it waits for one.
func (s *Speaker) ApplyBlock(ctx context.Context, id string, b *Block, dryRun bool) ([]*pb.Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.blocks[id]
	if b == nil {
		delete(s.blocks, id)
	} else {
		s.blocks[id] = *b
	}
	var changes []*pb.Change
	var err error
	if dryRun {
		changes = s.pathChanges()
	} else {
		changes, err = s.syncPathsLocked(ctx)
	}
	if dryRun || err != nil {
		if had {
			s.blocks[id] = old
		} else {
			delete(s.blocks, id)
		}
	}
	return changes, err
}

// Block returns the block object id has the speaker announce, if any.
func (s *Speaker) Block(id string) (Block, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blocks[id]
	return b, ok
}

// Announced reports whether the running speaker originates prefix.
func (s *Speaker) Announced(prefix netip.Prefix) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.announced[prefix]
	return ok
}

// wantedPaths are the prefixes to originate with their next hop: every exported block.
func (s *Speaker) wantedPaths() map[netip.Prefix]string {
	out := map[netip.Prefix]string{}
	if s.global == nil {
		return out
	}
	for _, b := range s.blocks {
		if b.Export {
			out[b.Prefix] = s.global.GetAddress()
		}
	}
	return out
}

func (s *Speaker) pathChanges() []*pb.Change {
	if s.global == nil {
		return nil
	}
	want := s.wantedPaths()
	var changes []*pb.Change
	for _, p := range sortedPrefixes(s.announced) {
		if nh, ok := want[p]; !ok || nh != s.announced[p] {
			changes = append(changes, dataplane.NewChange(pb.Change_DELETE, entryPath, entryPath+" "+p.String(), "withdrawn"))
		}
	}
	for _, p := range sortedPrefixes(want) {
		if nh, ok := s.announced[p]; !ok || nh != want[p] {
			changes = append(changes, dataplane.NewChange(pb.Change_ADD, entryPath, entryPath+" "+p.String(), "next hop "+want[p]))
		}
	}
	return changes
}

// syncPathsLocked withdraws and announces what differs.
func (s *Speaker) syncPathsLocked(ctx context.Context) ([]*pb.Change, error) {
	changes := s.pathChanges()
	if s.srv == nil {
		return changes, nil
	}
	want := s.wantedPaths()
	for _, p := range sortedPrefixes(s.announced) {
		if nh, ok := want[p]; ok && nh == s.announced[p] {
			continue
		}
		if err := s.srv.DeletePath(ctx, &api.DeletePathRequest{Family: ipv4Unicast, Path: localPath(p, s.announced[p])}); err != nil {
			return changes, fmt.Errorf("withdraw %s: %w", p, err)
		}
		delete(s.announced, p)
	}
	for _, p := range sortedPrefixes(want) {
		if _, ok := s.announced[p]; ok {
			continue
		}
		if _, err := s.srv.AddPath(ctx, &api.AddPathRequest{Path: localPath(p, want[p])}); err != nil {
			return changes, fmt.Errorf("announce %s: %w", p, err)
		}
		s.announced[p] = want[p]
	}
	return changes, nil
}

var ipv4Unicast = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}

// localPath is a path this node originates: origin IGP, next hop the node's address.
func localPath(p netip.Prefix, nextHop string) *api.Path {
	nlri, _ := anypb.New(&api.IPAddressPrefix{Prefix: p.Addr().String(), PrefixLen: uint32(p.Bits())})
	origin, _ := anypb.New(&api.OriginAttribute{Origin: 0})
	nh, _ := anypb.New(&api.NextHopAttribute{NextHop: nextHop})
	return &api.Path{Family: ipv4Unicast, Nlri: nlri, Pattrs: []*anypb.Any{origin, nh}}
}

func sortedPrefixes[V any](m map[netip.Prefix]V) []netip.Prefix {
	return slices.SortedFunc(maps.Keys(m), comparePrefixes)
}

// comparePrefixes orders prefixes as dataplane.PrefixLess does, by network address, then
// length, without formatting and parsing them at every comparison: an apply of a pool
// sorts every announced block, between the blackhole and the announcement.
func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Masked().Addr().Compare(b.Masked().Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
