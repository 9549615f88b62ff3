package provider

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
)

const torPassword = "s3cret-md5"

// torLab is bgp-demo plus a ToR router (BIRD 2) on the same segment, with an office network
// 192.168.1.0/24 behind it (the lab's pod of the tor host: 192.168.1.1).
func torLab(t *testing.T) (*lab.Lab, *lab.Bird) {
	l := newExecLab(t, lab.Options{NoPodRoutes: true, Hosts: []lab.HostSpec{
		{Cluster: "demo", Name: "node1", UnderlayIP: mustPrefix("10.20.30.30/24"), PodCIDR: mustPrefix("10.244.0.0/26")},
		{Cluster: "demo", Name: "node2", UnderlayIP: mustPrefix("10.20.30.31/24"), PodCIDR: mustPrefix("10.244.0.64/26")},
		{Cluster: "office", Name: "tor", UnderlayIP: mustPrefix("10.20.30.1/24"), PodCIDR: mustPrefix("192.168.1.0/24")},
	}})
	tor := host(t, l, "tor")
	cfg, err := lab.TorConfig{
		RouterID: tor.UnderlayIP.Addr(), ASN: 64513,
		Neighbors: []lab.BirdNeighbor{
			{Name: "node1", IP: host(t, l, "node1").UnderlayIP.Addr(), ASN: 64512, Password: torPassword},
			{Name: "node2", IP: host(t, l, "node2").UnderlayIP.Addr(), ASN: 64512, Password: torPassword},
		},
		Statics: []lab.BirdStatic{{Prefix: mustPrefix("192.168.1.0/24"), Via: tor.PodVeth}},
	}.Render()
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.StartBird(tor.NS, filepath.Join(l.Dir, "bird"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop() })
	return l, b
}

// waitRouteVia waits until h has a route to dst with the marker, through one of the gateways.
func waitRouteVia(h *lab.Host, dst, marker string, gateways ...string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _ := h.Run("ip", "route", "show", "exact", dst)
		for _, gw := range gateways {
			if strings.Contains(out, "via "+gw+" ") && strings.Contains(out, marker) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: route to %s is %q, want one %s via one of %v", h.Name, dst, strings.TrimSpace(out), marker, gateways)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// gobgpByHand runs fn against a node's speaker through its GoBGP API socket, as an operator
// with the gobgp CLI would.
func gobgpByHand(h *lab.Host, fn func(ctx context.Context, c api.GobgpApiClient) error) error {
	conn, err := grpc.NewClient("unix://"+filepath.Join(h.StateDir, "gobgp.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return fn(ctx, api.NewGobgpApiClient(conn))
}

// setPasswordByHand changes a node's password for a peer.
func setPasswordByHand(h *lab.Host, peer, password string) error {
	return gobgpByHand(h, func(ctx context.Context, c api.GobgpApiClient) error {
		stream, err := c.ListPeer(ctx, &api.ListPeerRequest{Address: peer})
		if err != nil {
			return err
		}
		p, err := stream.Recv()
		if err != nil {
			return err
		}
		cur := p.GetPeer()
		cur.Conf.AuthPassword = password
		cur.State = nil
		_, err = c.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: cur})
		return err
	})
}

// setASNByHand restarts a node's speaker with another AS.
func setASNByHand(h *lab.Host, asn uint32) error {
	return gobgpByHand(h, func(ctx context.Context, c api.GobgpApiClient) error {
		if _, err := c.StopBgp(ctx, &api.StopBgpRequest{}); err != nil {
			return err
		}
		_, err := c.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: asn, RouterId: h.UnderlayIP.Addr().String(), ListenPort: 179}})
		return err
	})
}

// TestAccTorPeer: the nodes peer with a ToR router that nobody here wrote (BIRD 2), with a
// TCP MD5 password on both sides: the ToR learns every block, announces the office network,
// which reaches every node's kernel, and a host in the office pings the pods. A password
// changed by hand on a node shows in the plan and apply sets it back.
func TestAccTorPeer(t *testing.T) {
	l, bird := torLab(t)
	n1, n2, tor := host(t, l, "node1"), host(t, l, "node2"), host(t, l, "tor")
	hcl := scenario(t, l, "tor-peer")
	vars := config.Variables{"tor_password": config.StringVariable(torPassword)}
	officeReachesPods := func(*terraform.State) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := bird.WaitEstablished(ctx, "node1", "node2"); err != nil {
			return err
		}
		for _, h := range []*lab.Host{n1, n2} {
			if err := waitRoute(h, "192.168.1.0/24", "192.168.1.0/24 via 10.20.30.1 dev eth0 proto 147"); err != nil {
				return err
			}
			// Both nodes announce both blocks (a node passes on what it learned over the
			// mesh, next hop itself, as Calico's export filter does): either is a way in.
			if err := waitRouteVia(tor, h.PodCIDR.String(), "proto bird", n1.UnderlayIP.Addr().String(), n2.UnderlayIP.Addr().String()); err != nil {
				return err
			}
			if out, err := tor.RunPod("ping", "-c", "2", "-W", "2", h.PodIP.String()); err != nil {
				return fmt.Errorf("office -> pod on %s: %v\n%s", h.Name, err, out)
			}
		}
		return nil
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config: hcl, ConfigVariables: vars,
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckNoResourceAttr("nodenet_bgp_peer.tor", "password_wo"),
					officeReachesPods,
				),
			},
			{Config: hcl, ConfigVariables: vars, PlanOnly: true},
			{
				PreConfig: func() {
					if err := setPasswordByHand(n1, "10.20.30.1", "changed-by-hand"); err != nil {
						t.Fatal(err)
					}
				},
				Config: hcl, ConfigVariables: vars, PlanOnly: true, ExpectNonEmptyPlan: true,
			},
			{Config: hcl, ConfigVariables: vars, Check: officeReachesPods},
			{Config: hcl, ConfigVariables: vars, PlanOnly: true},
			{ConfigVariables: vars, ResourceName: "nodenet_bgp_peer.tor", ImportState: true, ImportStateId: "demo/10.20.30.1", ImportStateVerify: true,
				ImportStateVerifyIgnore: []string{"timeouts", "sessions", "password_wo", "password_wo_version"}},
		},
		CheckDestroy: func(*terraform.State) error {
			out := run(t, n1, "ip", "route")
			if strings.Contains(out, "192.168.1.0/24") {
				return fmt.Errorf("node1 still has the office route:\n%s", out)
			}
			return nil
		},
	})
}

// TestAccCalicoBirdNeighbour: node1 runs Calico's BIRD with the seed 004 configuration, node2
// runs nodenet; they exchange blocks and the pods ping. This is how a cluster moves from
// Calico's BGP to nodenet one node at a time.
func TestAccCalicoBirdNeighbour(t *testing.T) {
	l := newExecLab(t, lab.Options{NoPodRoutes: true, Hosts: []lab.HostSpec{
		{Cluster: "demo", Name: "node1", UnderlayIP: mustPrefix("10.20.30.30/24"), PodCIDR: mustPrefix("10.244.166.128/26")},
		{Cluster: "demo", Name: "node2", UnderlayIP: mustPrefix("10.20.30.31/24"), PodCIDR: mustPrefix("10.244.0.0/26")},
	}})
	n1, n2 := host(t, l, "node1"), host(t, l, "node2")
	cfg, err := lab.CalicoSeedConfig{NodeIP: n1.UnderlayIP.Addr(), ASN: 64512, Block: n1.PodCIDR, Pool: mustPrefix("10.244.0.0/16"),
		Neighbors: []lab.BirdNeighbor{{IP: n2.UnderlayIP.Addr()}}}.Render()
	if err != nil {
		t.Fatal(err)
	}
	bird, err := lab.StartBird(n1.NS, filepath.Join(l.Dir, "bird"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bird.Stop() })
	config := l.ProviderHCL() + `
resource "nodenet_bgp_config" "demo" {
  cluster = "demo"
  asn     = 64512
  nodes   = ["node2"]
}

resource "nodenet_bgp_peer" "calico_node1" {
  cluster    = "demo"
  nodes      = ["node2"]
  peer_ip    = "10.20.30.30"
  peer_asn   = 64512
  depends_on = [nodenet_bgp_config.demo]
}

resource "nodenet_ippool" "pods" {
  cluster    = "demo"
  cidr       = "10.244.0.0/16"
  nodes      = ["node2"]
  depends_on = [nodenet_bgp_config.demo]
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{{
			Config: config,
			Check: resource.ComposeTestCheckFunc(
				resource.TestCheckResourceAttr("nodenet_ippool.pods", "allocations.node2", "10.244.0.0/26"),
				func(*terraform.State) error {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					if err := bird.WaitEstablished(ctx, "Mesh_10_20_30_31"); err != nil {
						return err
					}
					if err := waitRoute(n2, n1.PodCIDR.String(), n1.PodCIDR.String()+" via 10.20.30.30 dev eth0 proto 147"); err != nil {
						return err
					}
					// The seed's BIRD config sets the kernel metric to 0: its routes look as in the seed.
					if err := waitRouteVia(n1, n2.PodCIDR.String(), "proto bird", "10.20.30.31"); err != nil {
						return err
					}
					if err := podPing(n1, n2); err != nil {
						return err
					}
					return podPing(n2, n1)
				},
			),
		}},
	})
}
