// Package link plans a nodenet_cluster_link: the pod networks of several clusters joined by
// one VXLAN mesh across all their nodes, as the multi-cluster write-up (seed 002) builds by
// hand. From the clusters (their pod and service CIDRs, their nodes with underlay addresses
// and pod blocks) it derives the mesh's input for provider/mesh (every node a member with an
// overlay address from the link's overlay CIDR, kept stable across plans, and a route to every
// remote node's block through that node), the CIDRs each node must not masquerade (the
// agent's NAT exemption), and the disabled Calico IPPools each cluster gets (Calico's). It is
// pure: the resource, the tests and the benchmark use the same code.
package link

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/nodenet/terraform-provider-nodenet/provider/mesh"
)

// SNAT exemption modes.
const (
	ExemptCalico  = "calico"
	ExemptNodenet = "nodenet"
	ExemptNone    = "none"
)

// Cluster is one linked cluster.
type Cluster struct {
	Name string
	// PodCIDR and ServiceCIDR are the cluster's (given, or discovered from its API); a zero
	// prefix is one that is not known.
	PodCIDR, ServiceCIDR netip.Prefix
	Nodes                []Node
}

// Node is one node of a linked cluster.
type Node struct {
	// Key is "<cluster>/<node>".
	Key string
	// Address is the node's underlay address: the VXLAN local IP, the others' FDB destination.
	Address netip.Addr
	// Blocks are the pod blocks the node holds (none: the node has no pods to route to).
	Blocks []netip.Prefix
}

// Input is a whole link.
type Input struct {
	// Device is the VXLAN device's name on every node.
	Device string
	VNI    int64
	Port   int64
	MTU    int64
	// Overlay is the link's overlay subnet; every node gets an address in it.
	Overlay  netip.Prefix
	Clusters []Cluster
	// Prev are the overlay addresses the nodes had (kept while still in the overlay).
	Prev map[string]netip.Addr
	// SNATExemption is ExemptCalico, ExemptNodenet or ExemptNone.
	SNATExemption string
	// Name is the link's name (in the Calico IPPools' names).
	Name string
}

// Plan is a link planned.
type Plan struct {
	// Mesh is the VXLAN mesh of every node: provider/mesh builds every node's share from it.
	Mesh mesh.Input
	// Overlay is every node's overlay address, with the overlay's prefix length.
	Overlay map[string]netip.Prefix
	// Blocks are every node's blocks.
	Blocks map[string][]netip.Prefix
	// Exempt are, by node, the destinations its NAT must leave alone: the other clusters'
	// pod and service CIDRs (nodenet mode only).
	Exempt map[string][]netip.Prefix
	// CalicoPools are, by cluster, the disabled IPPools with natOutgoing false it gets for the
	// other clusters' CIDRs (calico mode only).
	CalicoPools map[string][]CalicoPool
}

// CalicoPool is a Calico IPPool nodenet keeps in a cluster.
type CalicoPool struct {
	Name string
	CIDR netip.Prefix
}

// Error is a rule broken by the input: Attr the attribute ("clusters", "overlay_cidr", ...),
// Key the cluster (or node) it is about.
type Error struct {
	Attr, Key, Msg string
}

func (e *Error) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("%s[%q]: %s", e.Attr, e.Key, e.Msg)
	}
	return e.Attr + ": " + e.Msg
}

func errf(attr, key, format string, args ...any) *Error {
	return &Error{Attr: attr, Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Build plans the link.
func Build(in Input) (*Plan, []*Error) {
	clusters := sortedClusters(in.Clusters)
	if errs := validate(in, clusters); len(errs) > 0 {
		return nil, errs
	}
	overlay, err := allocate(in.Overlay, clusters, in.Prev)
	if err != nil {
		return nil, []*Error{err}
	}
	p := &Plan{
		Mesh:    mesh.Input{Name: in.Device, VNI: in.VNI, Port: in.Port, MTU: in.MTU},
		Overlay: overlay, Blocks: map[string][]netip.Prefix{}, Exempt: map[string][]netip.Prefix{},
		CalicoPools: map[string][]CalicoPool{},
	}
	for _, c := range clusters {
		for _, n := range c.Nodes {
			p.Mesh.Members = append(p.Mesh.Members, mesh.Member{Key: n.Key, Underlay: n.Address.String(), Address: overlay[n.Key].String()})
			p.Blocks[n.Key] = sortedPrefixes(n.Blocks)
			for _, b := range p.Blocks[n.Key] {
				// Every member outside the node's cluster: mesh's default targets.
				p.Mesh.Routes = append(p.Mesh.Routes, mesh.Route{Dst: b.String(), Via: n.Key})
			}
		}
	}
	for _, c := range clusters {
		remote := remoteCIDRs(c.Name, clusters)
		switch in.SNATExemption {
		case ExemptNodenet:
			for _, n := range c.Nodes {
				p.Exempt[n.Key] = remote
			}
		case ExemptCalico:
			p.CalicoPools[c.Name] = calicoPools(in.Name, c.Name, clusters)
		}
	}
	return p, nil
}

// remoteCIDRs are the pod and service CIDRs of every cluster but self.
func remoteCIDRs(self string, clusters []Cluster) []netip.Prefix {
	var out []netip.Prefix
	for _, o := range clusters {
		if o.Name == self {
			continue
		}
		for _, p := range []netip.Prefix{o.PodCIDR, o.ServiceCIDR} {
			if p.IsValid() {
				out = append(out, p)
			}
		}
	}
	return sortedPrefixes(out)
}

// calicoPools are the IPPools cluster self gets: for every other cluster, one for its pod
// CIDR and one for its service CIDR, named as the write-up names them, after the link.
func calicoPools(link, self string, clusters []Cluster) []CalicoPool {
	var out []CalicoPool
	for _, o := range clusters {
		if o.Name == self {
			continue
		}
		if o.PodCIDR.IsValid() {
			out = append(out, CalicoPool{Name: PoolName(link, "pod", o.Name), CIDR: o.PodCIDR})
		}
		if o.ServiceCIDR.IsValid() {
			out = append(out, CalicoPool{Name: PoolName(link, "svc", o.Name), CIDR: o.ServiceCIDR})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// PoolName is the name of the Calico IPPool of a remote cluster's pod or service CIDR:
// "<link>-pod-<cluster>", as the write-up's "pod-test-cluster2", after the link.
func PoolName(link, what, cluster string) string {
	return strings.ToLower(link + "-" + what + "-" + cluster)
}

func sortedClusters(cs []Cluster) []Cluster {
	out := append([]Cluster(nil), cs...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for i := range out {
		nodes := append([]Node(nil), out[i].Nodes...)
		sort.Slice(nodes, func(a, b int) bool { return nodes[a].Key < nodes[b].Key })
		out[i].Nodes = nodes
	}
	return out
}

func sortedPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := append([]netip.Prefix(nil), ps...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Addr() != out[j].Addr() {
			return out[i].Addr().Less(out[j].Addr())
		}
		return out[i].Bits() < out[j].Bits()
	})
	return out
}
