package provider

import (
	"context"
	"sync"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
)

// clusterChecks remembers, for one run of the provider, what the attachments' plans ask of
// a cluster: its nodes' Info and the namespaces found. A plan of hundreds of attachments
// then asks every agent once instead of once per attachment. The zero value is ready.
type clusterChecks struct {
	mu         sync.Mutex
	infos      map[string]*infoAnswer
	namespaces map[string]bool // "<cluster>/<namespace>" found to exist
}

type infoAnswer struct {
	once  sync.Once
	infos map[string]*pb.NodeInfo
	errs  []*fleet.NodeError
}

// nodeInfos asks the cluster's nodes for their Info once per run; a failed answer is not
// kept, so the next plan of the run asks again.
func (c *clusterChecks) nodeInfos(ctx context.Context, f *fleet.Fleet, cluster string, keys []string) (map[string]*pb.NodeInfo, []*fleet.NodeError) {
	c.mu.Lock()
	if c.infos == nil {
		c.infos = map[string]*infoAnswer{}
	}
	a, ok := c.infos[cluster]
	if !ok {
		a = &infoAnswer{}
		c.infos[cluster] = a
	}
	c.mu.Unlock()
	a.once.Do(func() { a.infos, a.errs = f.Infos(ctx, keys) })
	if len(a.errs) > 0 {
		c.mu.Lock()
		if c.infos[cluster] == a {
			delete(c.infos, cluster)
		}
		c.mu.Unlock()
	}
	return a.infos, a.errs
}

func (c *clusterChecks) namespaceKnown(cluster, ns string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.namespaces[cluster+"/"+ns]
}

func (c *clusterChecks) namespaceFound(cluster, ns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.namespaces == nil {
		c.namespaces = map[string]bool{}
	}
	c.namespaces[cluster+"/"+ns] = true
}
