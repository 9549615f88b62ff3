package kube_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/nodenet/terraform-provider-nodenet/provider/kube"
	"github.com/nodenet/terraform-provider-nodenet/provider/kube/kubetest"
)

func client(t *testing.T, cfg kube.Config) *kube.Client {
	t.Helper()
	rc, err := cfg.REST()
	if err != nil {
		t.Fatal(err)
	}
	c, err := kube.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Every way of configuring the client reaches the API server: kubeconfig, kubeconfig from
// the environment, host and token, client certificate; a set attribute wins over the
// kubeconfig's value, and a wrong one fails.
func TestConfigurations(t *testing.T) {
	kc := kubetest.Start(t, "cfg")
	ctx := context.Background()
	for name, cfg := range map[string]kube.Config{
		"kubeconfig":  {ConfigPath: kc.Kubeconfig},
		"context":     {ConfigPath: kc.Kubeconfig, ConfigContext: "cfg"},
		"host+token":  {Host: kc.Host, Token: kubetest.Token, ClusterCACertificate: string(kc.CAPEM)},
		"client cert": {Host: kc.Host, ClusterCACertificate: string(kc.CAPEM), ClientCertificate: string(kc.ClientCertPEM), ClientKey: string(kc.ClientKeyPEM)},
		"insecure":    {Host: kc.Host, Token: kubetest.Token, Insecure: ptr(true)},
	} {
		if ok, err := client(t, cfg).NamespaceExists(ctx, "default"); err != nil || !ok {
			t.Errorf("%s: namespace default: %v %v", name, ok, err)
		}
	}
	t.Setenv("KUBECONFIG", kc.Kubeconfig)
	if ok, err := client(t, kube.Config{}.WithEnv()).NamespaceExists(ctx, "default"); err != nil || !ok {
		t.Errorf("KUBECONFIG: %v %v", ok, err)
	}
	// token overrides the kubeconfig's: a wrong one is refused.
	if _, err := client(t, kube.Config{ConfigPath: kc.Kubeconfig, Token: "wrong"}).NamespaceExists(ctx, "default"); err == nil {
		t.Error("a wrong token over the kubeconfig's was accepted: the attribute did not take precedence")
	}
	if _, err := (kube.Config{ConfigPath: kc.Kubeconfig, ConfigContext: "nope"}).REST(); err == nil {
		t.Error("an unknown context was accepted")
	}
	if _, err := (kube.Config{}).REST(); err == nil {
		t.Error("no host and no kubeconfig: want an error")
	}
	if _, err := (kube.Config{ConfigPath: filepath.Join(t.TempDir(), "missing")}).REST(); err == nil {
		t.Error("a missing kubeconfig: want an error")
	}
}

func ptr[T any](v T) *T { return &v }

// A NAD is written by server-side apply as field manager nodenet, read back, its annotation
// removed when left out, and deleted; nodes come with their addresses and pod CIDRs.
func TestNADAndNodes(t *testing.T) {
	kc := kubetest.Start(t, "nad")
	ctx := context.Background()
	c := client(t, kube.Config{ConfigPath: kc.Kubeconfig})
	want := kube.NAD{Namespace: "default", Name: "m1", Config: `{"cniVersion":"0.3.1","type":"macvlan"}`, ResourceName: "intel.com/sriov"}
	got, err := c.ApplyNAD(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if got.Config != want.Config || got.ResourceName != want.ResourceName || got.UID == "" {
		t.Fatalf("applied %+v, got %+v", want, got)
	}
	u, err := kc.Dynamic.Resource(kubetest.NADs).Namespace("default").Get(ctx, "m1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if mf := u.GetManagedFields(); len(mf) != 1 || mf[0].Manager != kube.FieldManager || mf[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Errorf("managed fields %+v: want one Apply entry by %s", mf, kube.FieldManager)
	}
	want.ResourceName = ""
	if got, err = c.ApplyNAD(ctx, want); err != nil || got.ResourceName != "" {
		t.Fatalf("annotation left out: got %+v, %v", got, err)
	}
	// An edit by someone else is read back, and the next apply takes the field back.
	if u, err = kc.Dynamic.Resource(kubetest.NADs).Namespace("default").Get(ctx, "m1", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedField(u.Object, `{"edited":true}`, "spec", "config")
	u.SetManagedFields(nil)
	if _, err := kc.Dynamic.Resource(kubetest.NADs).Namespace("default").Update(ctx, u, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.GetNAD(ctx, "default", "m1"); got == nil || got.Config != `{"edited":true}` {
		t.Fatalf("edit not read back: %+v", got)
	}
	if got, err = c.ApplyNAD(ctx, want); err != nil || got.Config != want.Config {
		t.Fatalf("apply over an edit: %+v, %v", got, err)
	}
	if err := c.DeleteNAD(ctx, "default", "m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetNAD(ctx, "default", "m1"); !errors.Is(err, kube.ErrNotFound) {
		t.Fatalf("get after delete: %v, want ErrNotFound", err)
	}
	if err := c.DeleteNAD(ctx, "default", "m1"); err != nil {
		t.Errorf("delete of a gone NAD: %v", err)
	}

	if err := kc.AddNode(ctx, "w1", "192.168.100.11", "10.244.1.0/24", map[string]string{"role": "worker"}); err != nil {
		t.Fatal(err)
	}
	nodes, err := c.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].Addresses["InternalIP"] != "192.168.100.11" || len(nodes[0].PodCIDRs) != 1 || nodes[0].PodCIDRs[0] != "10.244.1.0/24" || nodes[0].Labels["role"] != "worker" {
		t.Fatalf("nodes: %+v", nodes)
	}
	if ok, _ := c.NamespaceExists(ctx, "nope"); ok {
		t.Error("namespace nope exists?")
	}
}
