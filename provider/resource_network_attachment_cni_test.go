package provider

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab/cnipod"
	"github.com/nodenet/terraform-provider-nodenet/provider/kube"
	"github.com/nodenet/terraform-provider-nodenet/provider/kube/kubetest"
)

// TestAccNetworkAttachment_realCNI: the configuration nodenet writes is run by the reference
// CNI macvlan plugin (static IPAM in place of whereabouts, which needs a cluster datastore) on
// the pod namespace behind work01, through libcni as Multus runs it (the plugin in work01's
// namespace, where the master is); the pod then reaches the peer on eth1's segment, which it
// could not before.
func TestAccNetworkAttachment_realCNI(t *testing.T) {
	kubetest.Require(t, "macvlan", "static")
	k := newKubeLab(t, nil)
	k.byCert = true // the provider authenticates with a client certificate
	w1 := host(t, k.Lab, "work01")
	const peer = "192.168.60.1"
	config := k.providerHCL(nil, "") + `
resource "nodenet_network_attachment" "macvlan" {
  cluster   = "cluster1"
  namespace = "default"
  name      = "macvlan-static"
  macvlan   = { master = "eth1", mode = "bridge" }
  ipam = {
    static = { addresses = [{ address = "192.168.60.20/24", gateway = "192.168.60.1" }] }
  }
  pod_interface = "eth1"
  resource_name = "example.com/eth1"
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{{
			PreConfig: func() {
				if out, err := w1.RunPod("ping", "-c", "1", "-W", "1", peer); err == nil {
					t.Fatalf("the pod reaches %s before any attachment:\n%s", peer, out)
				}
			},
			Config: config,
			Check: func(s *terraform.State) error {
				u, err := k.nad("default", "macvlan-static")
				if err != nil {
					return err
				}
				if got := u.GetAnnotations()[kube.ResourceNameAnnotation]; got != "example.com/eth1" {
					return fmt.Errorf("annotation %s = %q, want example.com/eth1", kube.ResourceNameAnnotation, got)
				}
				rendered := s.RootModule().Resources["nodenet_network_attachment.macvlan"].Primary.Attributes["rendered_config"]
				_, detach, err := cnipod.Attach(context.Background(), w1, filepath.Join(lab.NetnsDir, w1.PodNS), "eth1", rendered)
				if err != nil {
					return fmt.Errorf("%w\nconfig: %s", err, rendered)
				}
				defer func() {
					if err := detach(context.Background()); err != nil {
						t.Error(err)
					}
				}()
				if out, err := w1.RunPod("ip", "-4", "addr", "show", "eth1"); err != nil || !bytes.Contains([]byte(out), []byte("192.168.60.20/24")) {
					return fmt.Errorf("the pod's eth1 after CNI ADD: %v\n%s", err, out)
				}
				return ping(w1, peer)
			},
		}},
	})
}
