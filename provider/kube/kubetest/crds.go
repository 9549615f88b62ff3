package kubetest

import (
	"context"
	"embed"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

//go:embed crds/*.yaml
var crdFiles embed.FS

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// InstallCRDs creates the NetworkAttachmentDefinition, IPPool and BlockAffinity CRDs and
// waits until the API server serves them (condition Established).
func InstallCRDs(ctx context.Context, dc dynamic.Interface) error {
	ents, err := crdFiles.ReadDir("crds")
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		b, err := crdFiles.ReadFile("crds/" + e.Name())
		if err != nil {
			return err
		}
		var obj map[string]any
		if err := yaml.Unmarshal(b, &obj); err != nil {
			return fmt.Errorf("%s: %w", e.Name(), err)
		}
		u := &unstructured.Unstructured{Object: obj}
		if _, err := dc.Resource(crdGVR).Create(ctx, u, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create CRD %s: %w", u.GetName(), err)
		}
		names = append(names, u.GetName())
	}
	for _, n := range names {
		if err := waitEstablished(ctx, dc, n); err != nil {
			return err
		}
	}
	return nil
}

func waitEstablished(ctx context.Context, dc dynamic.Interface, name string) error {
	for {
		u, err := dc.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
		if err == nil && established(u) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s not Established: %v", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func established(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
