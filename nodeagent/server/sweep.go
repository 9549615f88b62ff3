package server

import (
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// sweep removes the node's unexplained routes (with dryRun it only lists them): routes with
// nodenet's protocol that no object owns, claims or holds and that go through no managed
// object's device. They are left by a lost state dir or made by hand; nothing nodenet
// manages needs them, and no object's Delete would ever reach them. Claims are taken before
// an apply touches the kernel and runtimes hold what they program before they let go of
// their lock, so an entry being made is never unexplained. An entry that cannot be removed
// is logged and left in the report of Info.
func (s *Server) sweep(dryRun bool) []*pb.Change {
	entries, err := s.unexplained()
	if err != nil {
		s.log.Warn("sweep: reading the kernel's marked entries failed", "err", err)
		return nil
	}
	var out []*pb.Change
	for _, e := range entries {
		if e.GetEntry() != "route" || e.GetObjectId() != "" {
			continue // links and routes that name an object are that object's to take over or remove
		}
		if !dryRun {
			if err := s.cfg.Kernel.RemoveMarkedRoute(e.GetKey()); err != nil {
				s.log.Warn("sweep: an unexplained route could not be removed", "route", e.GetKey(), "err", err)
				continue
			}
			s.log.Info("swept an unexplained route", "route", e.GetKey(), "detail", e.GetDetail())
		}
		out = append(out, dataplane.NewChange(pb.Change_DELETE, "route", e.GetKey(), e.GetDetail()+" (unexplained: no object has it)"))
	}
	return out
}
