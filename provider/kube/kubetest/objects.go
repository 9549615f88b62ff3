package kubetest

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// NADs is the NetworkAttachmentDefinition resource, for tests that edit or delete
// attachments behind nodenet's back, as kubectl would.
var NADs = schema.GroupVersionResource{Group: "k8s.cni.cncf.io", Version: "v1", Resource: "network-attachment-definitions"}

// AddNode registers a Node as a kubelet would: with its InternalIP and pod CIDR in place
// (no kubelet runs; the node stays NotReady, which nodenet does not look at).
func (c *Cluster) AddNode(ctx context.Context, name, internalIP, podCIDR string, labels map[string]string) error {
	lbl := map[string]any{"kubernetes.io/hostname": name}
	for k, v := range labels {
		lbl[k] = v
	}
	spec := map[string]any{}
	if podCIDR != "" {
		spec["podCIDR"], spec["podCIDRs"] = podCIDR, []any{podCIDR}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Node",
		"metadata": map[string]any{"name": name, "labels": lbl},
		"spec":     spec,
		"status": map[string]any{"addresses": []any{
			map[string]any{"type": "InternalIP", "address": internalIP},
			map[string]any{"type": "Hostname", "address": name},
		}},
	}}
	nodes := c.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "nodes"})
	made, err := nodes.Create(ctx, u, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create node %s: %w", name, err)
	}
	if addrs, _, _ := unstructured.NestedSlice(made.Object, "status", "addresses"); len(addrs) == 0 {
		// The API server dropped the status on create: set it through the subresource.
		made.Object["status"] = u.Object["status"]
		if _, err := nodes.UpdateStatus(ctx, made, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("node %s status: %w", name, err)
		}
	}
	return nil
}

// CreateNamespace creates a namespace.
func (c *Cluster) CreateNamespace(ctx context.Context, name string) error {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name},
	}}
	_, err := c.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Create(ctx, u, metav1.CreateOptions{})
	return err
}

// CalicoPools is Calico's IPPool resource.
var CalicoPools = schema.GroupVersionResource{Group: "crd.projectcalico.org", Version: "v1", Resource: "ippools"}

// AddCalicoPool creates a Calico IPPool as Calico's installer makes the cluster's own.
func (c *Cluster) AddCalicoPool(ctx context.Context, name, cidr string, natOutgoing bool) error {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool", "metadata": map[string]any{"name": name},
		"spec": map[string]any{"cidr": cidr, "natOutgoing": natOutgoing, "blockSize": int64(26)},
	}}
	_, err := c.Dynamic.Resource(CalicoPools).Create(ctx, u, metav1.CreateOptions{})
	return err
}

// DeleteNode deletes a Node (a node leaving the cluster).
func (c *Cluster) DeleteNode(ctx context.Context, name string) error {
	return c.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "nodes"}).Delete(ctx, name, metav1.DeleteOptions{})
}

// BlockAffinities is Calico's BlockAffinity resource.
var BlockAffinities = schema.GroupVersionResource{Group: "crd.projectcalico.org", Version: "v1", Resource: "blockaffinities"}

// AddBlockAffinity records that Calico gave node the block cidr (confirmed), as Calico's IPAM
// does; name is the object's name.
func (c *Cluster) AddBlockAffinity(ctx context.Context, name, node, cidr string) error {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "crd.projectcalico.org/v1", "kind": "BlockAffinity", "metadata": map[string]any{"name": name},
		"spec": map[string]any{"node": node, "cidr": cidr, "state": "confirmed", "deleted": "false"},
	}}
	_, err := c.Dynamic.Resource(BlockAffinities).Create(ctx, u, metav1.CreateOptions{})
	return err
}

// DeleteBlockAffinity deletes a BlockAffinity (Calico released the block).
func (c *Cluster) DeleteBlockAffinity(ctx context.Context, name string) error {
	return c.Dynamic.Resource(BlockAffinities).Delete(ctx, name, metav1.DeleteOptions{})
}
