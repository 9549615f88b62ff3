package provider

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
)

// Discovery needs Kubernetes access; access without a kubeconfig or host is refused, naming
// the cluster. (Working access is tested against a real API server in provider/kube and the
// acceptance tests.)
func TestConfigureKubeRefusals(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBE_CONFIG_PATH", "")
	t.Setenv("KUBE_HOST", "")
	clusters := map[string]clusterModel{
		"a": {NodesFromKubernetes: &nodesFromKubernetesModel{AgentPort: types.Int64Null(), AddressType: types.StringNull()}},
		"b": {Kubernetes: &kubernetesModel{}},
	}
	var fc fleet.Config
	clients, _, diags := configureKube(context.Background(), clusters, &fc)
	if len(clients) != 0 || len(fc.Nodes) != 0 {
		t.Fatalf("clients %v, nodes %v", clients, fc.Nodes)
	}
	var got []string
	for _, d := range diags.Errors() {
		got = append(got, d.Summary()+": "+d.Detail())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{"nodes_from_kubernetes reads the nodes from the cluster's API: set kubernetes too", "cluster b: no Kubernetes API: set host"} {
		if !strings.Contains(all, want) {
			t.Errorf("diagnostics %q lack %q", all, want)
		}
	}
}
