package provider

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
)

// calicoRRLab is the calico-rr reference set-up: master01, work01, work02 (and the extra
// nodes) on 192.168.100.0/24, each with a pod in the /24 block the pool plans for it: the
// lowest free blocks, given in node name order.
func calicoRRLab(t *testing.T, extra ...string) *lab.Lab {
	names := append([]string{"master01", "work01", "work02"}, extra...)
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	var hosts []lab.HostSpec
	for i, n := range names {
		block := slices.Index(sorted, n)
		hosts = append(hosts, lab.HostSpec{Cluster: "calico", Name: n,
			UnderlayIP: mustPrefix(fmt.Sprintf("192.168.100.%d/24", 10+i)), PodCIDR: mustPrefix(fmt.Sprintf("10.244.%d.0/24", block))})
	}
	return newExecLab(t, lab.Options{NoPodRoutes: true, Hosts: hosts})
}

// calicoMeshHCL is the calico cluster before the seed's procedure: the node-to-node mesh.
const calicoMeshHCL = `
resource "nodenet_bgp_config" "calico" {
  cluster = "calico"
  asn     = 63400
}

resource "nodenet_ippool" "pods" {
  cluster    = "calico"
  cidr       = "10.244.0.0/16"
  block_size = 24
  depends_on = [nodenet_bgp_config.calico]
}
`

// established counts the Established sessions of a node's speaker, as its agent reports.
func established(h *lab.Host) int {
	out, err := h.Run("ss", "-Htn", "state", "established", "( sport = :179 or dport = :179 )")
	if err != nil {
		return -1
	}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) != "" {
			n++
		}
	}
	return n
}

// waitSessions waits until each host has the given number of established BGP connections.
func waitSessions(want map[*lab.Host]int) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		var bad []string
		for h, n := range want {
			if got := established(h); got != n {
				bad = append(bad, fmt.Sprintf("%s has %d BGP sessions, want %d", h.Name, got, n))
			}
		}
		if len(bad) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s", strings.Join(bad, "; "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func podPing(from, to *lab.Host) error {
	if out, err := from.RunPod("ping", "-c", "2", "-W", "2", to.PodIP.String()); err != nil {
		return fmt.Errorf("pod ping %s -> %s: %v\n%s", from.Name, to.Name, err, out)
	}
	return nil
}

// routeSampler checks every 50 ms that each host has a route to every other host's block.
type routeSampler struct {
	stop, done chan struct{}
	mu         sync.Mutex
	missing    []string
	samples    int
}

func sampleBlocks(hosts []*lab.Host) *routeSampler {
	s := &routeSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			for _, h := range hosts {
				out, err := h.Run("ip", "route", "show", "proto", "147")
				for _, o := range hosts {
					if o != h && (err != nil || !strings.Contains(out, o.PodCIDR.String()+" via ")) {
						s.mu.Lock()
						s.missing = append(s.missing, fmt.Sprintf("%s %s lacked %s", time.Now().Format("15:04:05.000"), h.Name, o.PodCIDR))
						s.mu.Unlock()
					}
				}
			}
			s.mu.Lock()
			s.samples++
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return s
}

func (s *routeSampler) finish() error {
	close(s.stop)
	<-s.done
	if len(s.missing) > 0 {
		return fmt.Errorf("%d misses in %d samples: %v", len(s.missing), s.samples, s.missing)
	}
	return nil
}

// TestAccCalicoRR: the mesh first, then the seed's procedure in one apply (mesh off, master01
// a reflector) with every node's routes sampled every 50 ms: no pod route missing at any
// moment; then the reflector has 2 sessions and each worker 1, pods on the workers ping,
// the plan is empty, and the reflector imports by ID.
func TestAccCalicoRR(t *testing.T) {
	l := calicoRRLab(t)
	m, w1, w2 := host(t, l, "master01"), host(t, l, "work01"), host(t, l, "work02")
	all := []*lab.Host{m, w1, w2}
	var sampler *routeSampler
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config: l.ProviderHCL() + calicoMeshHCL,
				Check: func(*terraform.State) error {
					if err := waitSessions(map[*lab.Host]int{m: 2, w1: 2, w2: 2}); err != nil {
						return err
					}
					for _, h := range all {
						for _, o := range all {
							if o != h {
								if err := waitRoute(h, o.PodCIDR.String(), fmt.Sprintf("%s via %s dev eth0 proto 147", o.PodCIDR, o.UnderlayIP.Addr())); err != nil {
									return err
								}
							}
						}
					}
					sampler = sampleBlocks(all)
					return nil
				},
			},
			{
				Config: scenario(t, l, "calico-rr"),
				Check: resource.ComposeTestCheckFunc(
					resource.TestCheckResourceAttr("nodenet_route_reflector.master01", "cluster_id", "192.168.100.10"),
					resource.TestCheckResourceAttr("nodenet_route_reflector.master01", "clients.#", "2"),
					func(*terraform.State) error {
						if err := waitSessions(map[*lab.Host]int{m: 2, w1: 1, w2: 1}); err != nil {
							return err
						}
						time.Sleep(time.Second)
						if err := sampler.finish(); err != nil {
							return fmt.Errorf("switching from the mesh to a reflector dropped routes: %w", err)
						}
						return podPing(w1, w2)
					},
				),
			},
			{Config: scenario(t, l, "calico-rr"), PlanOnly: true},
			{ResourceName: "nodenet_route_reflector.master01", ImportState: true, ImportStateId: "calico/master01",
				ImportStateVerify: true, ImportStateVerifyIgnore: []string{"timeouts", "sessions"}},
		},
	})
}

// agentPID finds the pid of h's agent: the process this test's lab started with h's state dir.
func agentPID(t *testing.T, h *lab.Host) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("serve\x00")) || !bytes.Contains(b, []byte("--state-dir\x00"+h.StateDir+"\x00")) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		return pid
	}
	t.Fatalf("no agent process for %s", h.Name)
	return 0
}

// TestAccTwoRR: a second reflector added by apply; the workers then have 2 sessions; the
// first reflector's agent killed with SIGKILL: pod traffic between the workers still flows.
func TestAccTwoRR(t *testing.T) {
	l := calicoRRLab(t, "master02")
	m1, w1, w2 := host(t, l, "master01"), host(t, l, "work01"), host(t, l, "work02")
	m2 := host(t, l, "master02")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{
			{
				Config: scenario(t, l, "calico-rr"),
				Check: func(*terraform.State) error {
					return waitSessions(map[*lab.Host]int{m1: 3, w1: 1, w2: 1, m2: 1})
				},
			},
			{
				Config: scenario(t, l, "two-rr"),
				Check: func(*terraform.State) error {
					if err := waitSessions(map[*lab.Host]int{m1: 3, m2: 3, w1: 2, w2: 2}); err != nil {
						return err
					}
					if err := podPing(w1, w2); err != nil {
						return err
					}
					if err := syscall.Kill(agentPID(t, m1), syscall.SIGKILL); err != nil {
						return err
					}
					_ = l.StopAgent(m1) // it is dead: forget it
					if err := waitSessions(map[*lab.Host]int{w1: 1, w2: 1}); err != nil {
						return err
					}
					if err := podPing(w1, w2); err != nil {
						return fmt.Errorf("after the first reflector was killed: %w", err)
					}
					return l.StartAgent(m1)
				},
			},
		},
	})
}
