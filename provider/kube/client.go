package kube

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// FieldManager is the server-side apply field manager of everything nodenet writes.
const FieldManager = "nodenet"

var (
	nadGVR       = schema.GroupVersionResource{Group: "k8s.cni.cncf.io", Version: "v1", Resource: "network-attachment-definitions"}
	nodeGVR      = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	namespaceGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
)

// ErrNotFound is returned (wrapped) when an object does not exist.
var ErrNotFound = errors.New("not found")

// Client reaches one cluster's API server.
type Client struct {
	Host string
	dyn  dynamic.Interface
}

// New builds the client of one cluster; no request is made.
func New(rc *rest.Config) (*Client, error) {
	d, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	return &Client{Host: rc.Host, dyn: d}, nil
}

// NamespaceExists tells whether the namespace exists.
func (c *Client) NamespaceExists(ctx context.Context, ns string) (bool, error) {
	_, err := c.dyn.Resource(namespaceGVR).Get(ctx, ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("namespace %s on %s: %w", ns, c.Host, err)
	}
	return true, nil
}

func notFound(err error, what string) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func apply(ctx context.Context, r dynamic.ResourceInterface, u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	// Force: nodenet is the source of truth for the fields it applies; a field that kubectl
	// took over (an edit shown as drift by plan) is taken back by apply.
	return r.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
}

// list is every object of gvr in the cluster; what names them in the error.
func (c *Client) list(ctx context.Context, gvr schema.GroupVersionResource, what string) ([]unstructured.Unstructured, error) {
	l, err := c.dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list %s on %s: %w", what, c.Host, err)
	}
	return l.Items, nil
}
