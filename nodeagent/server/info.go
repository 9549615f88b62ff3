package server

import (
	"context"
	"sort"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Info reports the node's identity, capabilities, interfaces and kernel features, the objects
// that need an operator's eye, and the kernel entries with nodenet's marks that no managed
// object explains.
func (s *Server) Info(ctx context.Context, _ *pb.InfoRequest) (*pb.NodeInfo, error) {
	ifs, err := s.cfg.Kernel.Interfaces()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "node %s: listing interfaces: %v", s.node(), err)
	}
	unexplained, err := s.unexplained()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "node %s: %v", s.node(), err)
	}
	feats := make(map[string]bool, len(s.features))
	for k, v := range s.features {
		feats[k] = v
	}
	return &pb.NodeInfo{
		Cluster:        s.cfg.Cluster,
		Node:           s.cfg.Node,
		AgentVersion:   s.cfg.Version,
		Capabilities:   append(s.reg.Kinds(), Features...),
		Interfaces:     ifs,
		KernelFeatures: feats,
		KernelRelease:  s.kernelRelease,
		BootId:         s.cfg.BootID,
		Problems:       s.problems.list(),
		Unexplained:    unexplained,
		CniConfDir:     s.cfg.CNIConfDir,
		CniIpamDataDir: s.cfg.CNIIpamDataDir,
	}, nil
}

// unexplained are the marked kernel entries that no object owns or may hold, and that do not
// name a managed object (a route through a managed object's device is that object's).
func (s *Server) unexplained() ([]*pb.KernelEntry, error) {
	marked, err := s.cfg.Kernel.Marked()
	if err != nil {
		return nil, err
	}
	var out []*pb.KernelEntry
	for _, e := range marked {
		if s.claims.heldBy(e.GetEntry()+" "+e.GetKey()) != "" {
			continue
		}
		if id := e.GetObjectId(); id != "" {
			if rec, err := s.cfg.Store.Get(id); err == nil && rec != nil {
				continue
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func sortProblems(ps []*pb.ObjectProblem) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].GetId() < ps[j].GetId() })
}
