package kube

import (
	"context"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Node is what nodenet takes from a Kubernetes Node.
type Node struct {
	Name string
	// Addresses by type (InternalIP, ExternalIP, Hostname, ...): the first of each type.
	Addresses map[string]string
	PodCIDRs  []string
	Labels    map[string]string
}

// Nodes lists the cluster's nodes, sorted by name.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	items, err := c.list(ctx, nodeGVR, "nodes")
	if err != nil {
		return nil, err
	}
	out := make([]Node, 0, len(items))
	for i := range items {
		out = append(out, nodeFrom(&items[i]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func nodeFrom(u *unstructured.Unstructured) Node {
	n := Node{Name: u.GetName(), Addresses: map[string]string{}, Labels: u.GetLabels()}
	addrs, _, _ := unstructured.NestedSlice(u.Object, "status", "addresses")
	for _, a := range addrs {
		m, _ := a.(map[string]any)
		t, _ := m["type"].(string)
		v, _ := m["address"].(string)
		if _, seen := n.Addresses[t]; !seen && t != "" && v != "" {
			n.Addresses[t] = v
		}
	}
	n.PodCIDRs, _, _ = unstructured.NestedStringSlice(u.Object, "spec", "podCIDRs")
	if len(n.PodCIDRs) == 0 {
		if one, ok, _ := unstructured.NestedString(u.Object, "spec", "podCIDR"); ok && one != "" {
			n.PodCIDRs = []string{one}
		}
	}
	return n
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
