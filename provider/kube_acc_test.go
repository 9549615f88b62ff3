package provider

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
	"github.com/nodenet/terraform-provider-nodenet/provider/kube"
	"github.com/nodenet/terraform-provider-nodenet/provider/kube/kubetest"
)

// kubeLab is a lab of agents plus a real API server for its cluster.
type kubeLab struct {
	*lab.Lab
	Kube    *kubetest.Cluster
	Segment *lab.Segment // eth1 of the hosts given to newKubeLab
	// byToken: the provider reaches the API with host, token and cluster_ca_certificate
	// instead of the kubeconfig; byCert with host, client_certificate and client_key.
	byToken, byCert bool
}

// newKubeLab: cluster1 with nodes work01 and work02 (pods behind them), a kube-apiserver, and
// eth1 on a second segment (192.168.60.0/24, the seed's macvlan network) on the hosts named in
// eth1 (nil: all). A peer on the segment has 192.168.60.1, the seed's gateway.
func newKubeLab(t *testing.T, eth1 []string) *kubeLab {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1 (needs root and terraform)")
	}
	kubetest.Require(t, "etcd", "kube-apiserver")
	l := newLab(t, lab.Options{Hosts: []lab.HostSpec{
		{Cluster: "cluster1", Name: "work01", UnderlayIP: mustPrefix("192.168.100.11/24"), PodCIDR: mustPrefix("10.244.1.0/24")},
		{Cluster: "cluster1", Name: "work02", UnderlayIP: mustPrefix("192.168.100.12/24"), PodCIDR: mustPrefix("10.244.2.0/24")},
	}})
	var on []*lab.Host
	for _, h := range l.Hosts {
		if eth1 == nil || contains(eth1, h.Name) {
			on = append(on, h)
		}
	}
	seg, err := l.AddSegment("seg60", "eth1", on...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seg.AddPeer("gw60", netip.MustParsePrefix("192.168.60.1/24")); err != nil {
		t.Fatal(err)
	}
	return &kubeLab{Lab: l, Kube: kubetest.Start(t, "cluster1"), Segment: seg}
}

// providerHCL is the lab's provider block with the cluster's kubernetes access; typed lists
// the nodes written in `nodes` (nil: all), extra is added to the cluster's attributes.
func (k *kubeLab) providerHCL(typed []string, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "provider \"nodenet\" {\n  tls = {\n    ca_cert = file(%q)\n    client_cert = file(%q)\n    client_key = file(%q)\n  }\n",
		k.CAFile, k.ClientCertFile, k.ClientKeyFile)
	access := fmt.Sprintf("{ config_path = %q }", k.Kube.Kubeconfig)
	if k.byCert {
		access = fmt.Sprintf("{\n        host = %q\n        cluster_ca_certificate = file(%q)\n        client_certificate = %q\n        client_key = %q\n      }",
			k.Kube.Host, k.Kube.CAFile, k.Kube.ClientCertPEM, k.Kube.ClientKeyPEM)
	}
	if k.byToken {
		access = fmt.Sprintf("{\n        host = %q\n        token = %q\n        cluster_ca_certificate = file(%q)\n      }", k.Kube.Host, kubetest.Token, k.Kube.CAFile)
	}
	fmt.Fprintf(&b, "  clusters = {\n    cluster1 = {\n      kubernetes = %s\n      %s\n      nodes = {\n", access, extra)
	for _, h := range k.Hosts {
		if typed == nil || contains(typed, h.Name) {
			fmt.Fprintf(&b, "        %s = { agent = %q }\n", h.Name, h.AgentAddr)
		}
	}
	b.WriteString("      }\n    }\n  }\n}\n")
	return b.String()
}

// nad reads a NetworkAttachmentDefinition straight from the API server.
func (k *kubeLab) nad(ns, name string) (*unstructured.Unstructured, error) {
	return k.Kube.Dynamic.Resource(kubetest.NADs).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
}

// kubectl runs the kubectl built from k8s.io/kubernetes (hack/kube-bins.sh) against the
// lab's cluster, with extra environment variables.
func (k *kubeLab) kubectl(t *testing.T, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command(kubetest.Binary("kubectl"), append([]string{"--kubeconfig", k.Kube.Kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// editNAD runs `kubectl edit` on an attachment with an "editor" that replaces from by to in
// the YAML kubectl opens (spec.config is a JSON string in it).
func (k *kubeLab) editNAD(t *testing.T, ns, name, from, to string) {
	t.Helper()
	editor := filepath.Join(t.TempDir(), "editor")
	script := fmt.Sprintf("#!/bin/sh\nset -e\ngrep -qF '%s' \"$1\"\nsed -i 's|%s|%s|' \"$1\"\n", from, from, to)
	if err := os.WriteFile(editor, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	k.kubectl(t, []string{"KUBE_EDITOR=" + editor}, "edit", "-n", ns, "network-attachment-definitions", name)
}

// deleteNAD runs `kubectl delete` on an attachment.
func (k *kubeLab) deleteNAD(t *testing.T, ns, name string) {
	t.Helper()
	k.kubectl(t, nil, "delete", "-n", ns, "net-attach-def", name)
}

// nadConfigIs checks that the API server holds the attachment with a CNI configuration equal
// (as JSON) to want, written by field manager nodenet.
func (k *kubeLab) nadConfigIs(ns, name, want string) func(*terraform.State) error {
	return func(*terraform.State) error {
		u, err := k.nad(ns, name)
		if err != nil {
			return err
		}
		got, _, _ := unstructured.NestedString(u.Object, "spec", "config")
		if !sameJSON(got, want) {
			return fmt.Errorf("%s/%s spec.config is\n%s\nwant\n%s", ns, name, got, want)
		}
		for _, mf := range u.GetManagedFields() {
			if mf.Manager == kube.FieldManager && mf.Operation == metav1.ManagedFieldsOperationApply {
				return nil
			}
		}
		return fmt.Errorf("%s/%s: no server-side apply by %s in %v", ns, name, kube.FieldManager, u.GetManagedFields())
	}
}

func (k *kubeLab) nadGone(ns, name string) func(*terraform.State) error {
	return func(*terraform.State) error {
		if _, err := k.nad(ns, name); err == nil {
			return fmt.Errorf("%s/%s still exists", ns, name)
		}
		return nil
	}
}
