package kubetest

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var nadGVR = schema.GroupVersionResource{Group: "k8s.cni.cncf.io", Version: "v1", Resource: "network-attachment-definitions"}

// Three clusters at once, each with its own etcd: an object written to one is not in the
// others, and every CRD is served.
func TestThreeClusters(t *testing.T) {
	Require(t, "etcd", "kube-apiserver")
	clusters := StartN(t, "c1", "c2", "c3")
	ctx := context.Background()
	nad := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
		"metadata": map[string]any{"name": "only-in-c1", "namespace": "default"},
		"spec":     map[string]any{"config": `{"cniVersion":"0.3.1","type":"macvlan"}`},
	}}
	if _, err := clusters[0].Dynamic.Resource(nadGVR).Namespace("default").Create(ctx, nad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, c := range clusters {
		_, err := c.Dynamic.Resource(nadGVR).Namespace("default").Get(ctx, "only-in-c1", metav1.GetOptions{})
		if (err == nil) != (i == 0) {
			t.Errorf("%s: get only-in-c1: %v", c.Name, err)
		}
		for _, r := range []schema.GroupVersionResource{
			{Group: "crd.projectcalico.org", Version: "v1", Resource: "ippools"},
			{Group: "crd.projectcalico.org", Version: "v1", Resource: "blockaffinities"},
		} {
			if _, err := c.Dynamic.Resource(r).List(ctx, metav1.ListOptions{}); err != nil {
				t.Errorf("%s: list %s: %v", c.Name, r.Resource, err)
			}
		}
	}
}
