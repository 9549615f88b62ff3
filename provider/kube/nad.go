package kube

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ResourceNameAnnotation asks a device plugin resource for the pods of an attachment
// (SR-IOV and the like), as Multus reads it.
const ResourceNameAnnotation = "k8s.v1.cni.cncf.io/resourceName"

// NAD is a NetworkAttachmentDefinition as nodenet manages it.
type NAD struct {
	Namespace, Name string
	// Config is spec.config, the CNI configuration JSON.
	Config string
	// ResourceName is the resourceName annotation; "" when absent.
	ResourceName string
	UID          string
}

func (n NAD) what() string { return "NetworkAttachmentDefinition " + n.Namespace + "/" + n.Name }

func (n NAD) unstructured() *unstructured.Unstructured {
	meta := map[string]any{"name": n.Name, "namespace": n.Namespace}
	if n.ResourceName != "" {
		meta["annotations"] = map[string]any{ResourceNameAnnotation: n.ResourceName}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
		"metadata": meta, "spec": map[string]any{"config": n.Config},
	}}
}

func nadFrom(u *unstructured.Unstructured) *NAD {
	cfg, _, _ := unstructured.NestedString(u.Object, "spec", "config")
	return &NAD{
		Namespace: u.GetNamespace(), Name: u.GetName(), Config: cfg,
		ResourceName: u.GetAnnotations()[ResourceNameAnnotation], UID: string(u.GetUID()),
	}
}

// ApplyNAD writes the attachment by server-side apply and returns what the API server holds
// afterwards. Fields nodenet applied before and leaves out now (the annotation) are removed.
func (c *Client) ApplyNAD(ctx context.Context, n NAD) (*NAD, error) {
	u, err := apply(ctx, c.dyn.Resource(nadGVR).Namespace(n.Namespace), n.unstructured())
	if err != nil {
		return nil, fmt.Errorf("apply %s on %s: %w", n.what(), c.Host, err)
	}
	return nadFrom(u), nil
}

// GetNAD reads an attachment; the error wraps ErrNotFound when it does not exist.
func (c *Client) GetNAD(ctx context.Context, ns, name string) (*NAD, error) {
	u, err := c.dyn.Resource(nadGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, notFound(err, NAD{Namespace: ns, Name: name}.what()+" on "+c.Host)
	}
	return nadFrom(u), nil
}

// DeleteNAD deletes an attachment; one already gone is not an error.
func (c *Client) DeleteNAD(ctx context.Context, ns, name string) error {
	err := c.dyn.Resource(nadGVR).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s on %s: %w", NAD{Namespace: ns, Name: name}.what(), c.Host, err)
	}
	return nil
}
