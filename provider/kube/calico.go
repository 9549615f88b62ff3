package kube

import (
	"context"
	"fmt"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// What a cluster link reads and writes of a cluster: Calico's block affinities (which node
// holds which pod block: what the write-up reads with `kubectl get blockaffinity`), Calico's
// IPPools (the disabled, natOutgoing=false pools that keep Calico from masquerading traffic
// to the other clusters, as the write-up applies them), and the cluster's service CIDRs.

var (
	blockAffinityGVR = schema.GroupVersionResource{Group: "crd.projectcalico.org", Version: "v1", Resource: "blockaffinities"}
	calicoPoolGVR    = schema.GroupVersionResource{Group: "crd.projectcalico.org", Version: "v1", Resource: "ippools"}
	serviceCIDRGVR   = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "servicecidrs"}
)

// LinkLabel marks the Calico IPPools a cluster link keeps, with the link's id as value.
const LinkLabel = "nodenet.io/cluster-link"

// BlockAffinity is a pod block Calico gave a node.
type BlockAffinity struct {
	Node, CIDR, State string
}

// BlockAffinities lists the cluster's confirmed block affinities, sorted by node and CIDR.
func (c *Client) BlockAffinities(ctx context.Context) ([]BlockAffinity, error) {
	items, err := c.list(ctx, blockAffinityGVR, "Calico block affinities")
	if err != nil {
		return nil, err
	}
	var out []BlockAffinity
	for _, u := range items {
		node, _, _ := unstructured.NestedString(u.Object, "spec", "node")
		cidr, _, _ := unstructured.NestedString(u.Object, "spec", "cidr")
		state, _, _ := unstructured.NestedString(u.Object, "spec", "state")
		deleted, _, _ := unstructured.NestedString(u.Object, "spec", "deleted")
		if state != "confirmed" || deleted == "true" {
			continue
		}
		out = append(out, BlockAffinity{Node: node, CIDR: cidr, State: state})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].CIDR < out[j].CIDR
	})
	return out, nil
}

// CalicoPool is a Calico IPPool as a link keeps it.
type CalicoPool struct {
	Name, CIDR            string
	NATOutgoing, Disabled bool
	// Link is the value of its LinkLabel ("" when it has none: not a link's).
	Link string
}

func calicoPoolFrom(u *unstructured.Unstructured) CalicoPool {
	p := CalicoPool{Name: u.GetName(), Link: u.GetLabels()[LinkLabel]}
	p.CIDR, _, _ = unstructured.NestedString(u.Object, "spec", "cidr")
	p.NATOutgoing, _, _ = unstructured.NestedBool(u.Object, "spec", "natOutgoing")
	p.Disabled, _, _ = unstructured.NestedBool(u.Object, "spec", "disabled")
	return p
}

// CalicoPools lists the cluster's Calico IPPools, sorted by name.
func (c *Client) CalicoPools(ctx context.Context) ([]CalicoPool, error) {
	items, err := c.list(ctx, calicoPoolGVR, "Calico IPPools")
	if err != nil {
		return nil, err
	}
	out := make([]CalicoPool, 0, len(items))
	for i := range items {
		out = append(out, calicoPoolFrom(&items[i]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ApplyCalicoPool makes (or puts back) a disabled IPPool with natOutgoing false for cidr,
// labelled as link's, by server-side apply. An IPPool of that name that is not the link's is
// refused, naming it.
func (c *Client) ApplyCalicoPool(ctx context.Context, link, name, cidr string) error {
	r := c.dyn.Resource(calicoPoolGVR)
	if cur, err := r.Get(ctx, name, metav1.GetOptions{}); err == nil {
		if p := calicoPoolFrom(cur); p.Link != link {
			return fmt.Errorf("the Calico IPPool %s on %s exists and is not this link's (cidr %s, label %s=%q); rename or delete it", name, c.Host, p.CIDR, LinkLabel, p.Link)
		}
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("the Calico IPPool %s on %s: %w", name, c.Host, err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
		"metadata": map[string]any{"name": name, "labels": map[string]any{LinkLabel: link, "app.kubernetes.io/managed-by": "nodenet"}},
		"spec":     map[string]any{"cidr": cidr, "natOutgoing": false, "disabled": true},
	}}
	if _, err := apply(ctx, r, u); err != nil {
		return fmt.Errorf("apply Calico IPPool %s on %s: %w", name, c.Host, err)
	}
	return nil
}

// DeleteCalicoPool deletes the link's IPPool (one already gone is fine; one of another link,
// or of nobody, is left alone).
func (c *Client) DeleteCalicoPool(ctx context.Context, link, name string) error {
	r := c.dyn.Resource(calicoPoolGVR)
	cur, err := r.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("the Calico IPPool %s on %s: %w", name, c.Host, err)
	}
	if calicoPoolFrom(cur).Link != link {
		return nil
	}
	if err := r.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Calico IPPool %s on %s: %w", name, c.Host, err)
	}
	return nil
}

// ServiceCIDRs are the cluster's service CIDRs (the ServiceCIDR objects of
// networking.k8s.io/v1; the API server makes "kubernetes" from --service-cluster-ip-range).
func (c *Client) ServiceCIDRs(ctx context.Context) ([]string, error) {
	items, err := c.list(ctx, serviceCIDRGVR, "ServiceCIDRs")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, u := range items {
		cidrs, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "cidrs")
		out = append(out, cidrs...)
	}
	sort.Strings(out)
	return out, nil
}

// RelabelCalicoPool gives a link's IPPool to the link's new id (an import takes a link over
// with an identity of its own).
func (c *Client) RelabelCalicoPool(ctx context.Context, name, oldLink, newLink string) error {
	r := c.dyn.Resource(calicoPoolGVR)
	cur, err := r.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("the Calico IPPool %s on %s: %w", name, c.Host, err)
	}
	labels := cur.GetLabels()
	if labels[LinkLabel] != oldLink {
		return fmt.Errorf("the Calico IPPool %s on %s is not the link's (label %s=%q)", name, c.Host, LinkLabel, labels[LinkLabel])
	}
	labels[LinkLabel] = newLink
	cur.SetLabels(labels)
	if _, err := r.Update(ctx, cur, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		return fmt.Errorf("relabel Calico IPPool %s on %s: %w", name, c.Host, err)
	}
	return nil
}
