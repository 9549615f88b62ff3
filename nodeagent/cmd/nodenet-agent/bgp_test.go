package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// bgpDemoHosts is the seed's bgp-demo: two nodes, each with one pod in its block.
func bgpDemoHosts() []lab.HostSpec {
	return []lab.HostSpec{
		{Cluster: "demo", Name: "node1", UnderlayIP: netip.MustParsePrefix("10.20.30.30/24"), PodCIDR: netip.MustParsePrefix("10.244.166.128/26")},
		{Cluster: "demo", Name: "node2", UnderlayIP: netip.MustParsePrefix("10.20.30.31/24"), PodCIDR: netip.MustParsePrefix("10.244.104.0/26")},
	}
}

// execLab is a lab whose agents are the built binary, each running inside its host's
// network namespace (as BGP needs).
func execLab(t *testing.T, hosts []lab.HostSpec) (*lab.Lab, map[string]pb.NodeAgentClient) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	bin := buildAgent(t)
	l, err := lab.Up(context.Background(), lab.Options{Hosts: hosts, Dir: t.TempDir(), Start: lab.ExecAgent(bin), NoPodRoutes: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Error(err)
		}
	})
	clients := map[string]pb.NodeAgentClient{}
	for _, h := range l.Hosts {
		cc, err := dialAgent(dialOptions{addr: h.AgentAddr, ca: l.CAFile, cert: l.ClientCertFile, key: l.ClientKeyFile,
			expect: fmt.Sprintf("nodenet://%s/%s", h.Cluster, h.Name)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		clients[h.Name] = pb.NewNodeAgentClient(cc)
	}
	return l, clients
}

func applyObj(t *testing.T, c pb.NodeAgentClient, o *pb.Object) *pb.ApplyResponse {
	t.Helper()
	o.Owner = "test:bgp"
	resp, err := c.Apply(t.Context(), &pb.ApplyRequest{Object: o})
	if err != nil {
		t.Fatalf("apply %s: %v", o.GetId(), err)
	}
	return resp
}

func speakerObj(self *lab.Host, others ...*lab.Host) *pb.Object {
	s := &pb.BgpSpeaker{Asn: 64512, Address: self.UnderlayIP.Addr().String(), GracefulRestart: &pb.BgpGracefulRestart{Enabled: true, RestartTime: 120}}
	for _, o := range others {
		s.Mesh = append(s.Mesh, &pb.BgpNeighbor{Node: o.Name, Address: o.UnderlayIP.Addr().String(), Asn: 64512})
	}
	return &pb.Object{Id: "bgp_speaker/default", Spec: &pb.Object_BgpSpeaker{BgpSpeaker: s}}
}

func poolObj(block netip.Prefix) *pb.Object {
	return &pb.Object{Id: "ip_pool/10.244.0.0/16", Spec: &pb.Object_IpPool{IpPool: &pb.IpPool{Cidr: "10.244.0.0/16", Block: block.String()}}}
}

// waitFor polls cond until it returns "" or the timeout passes; the last reason fails the test.
func waitFor(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func routeLine(t *testing.T, h *lab.Host, dst string) string {
	out, err := h.Run("ip", "route", "show", "exact", dst)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// TestBGPDemo: the seed's two-node mesh. Each node's block has a blackhole, each learns the
// other's block via its address (nodenet's protocol), the pods ping, and an agent restart
// (SIGTERM, start) keeps every route while the sessions come back.
func TestBGPDemo(t *testing.T) {
	l, c := execLab(t, bgpDemoHosts())
	n1, n2 := l.Hosts[0], l.Hosts[1]
	for _, p := range [][2]*lab.Host{{n1, n2}, {n2, n1}} {
		applyObj(t, c[p[0].Name], speakerObj(p[0], p[1]))
		applyObj(t, c[p[0].Name], poolObj(p[0].PodCIDR))
	}
	for _, p := range [][2]*lab.Host{{n1, n2}, {n2, n1}} {
		self, other := p[0], p[1]
		want := fmt.Sprintf("%s via %s dev eth0 proto 147", other.PodCIDR, other.UnderlayIP.Addr())
		waitFor(t, 15*time.Second, func() string {
			if got := routeLine(t, self, other.PodCIDR.String()); got != want {
				all, _ := self.Run("ip", "-d", "route")
				logb, _ := os.ReadFile(self.LogFile)
				all += "\nlog:\n" + string(logb)
				return fmt.Sprintf("%s: route %q, want %q; all routes:\n%s", self.Name, got, want, all)
			}
			return ""
		})
		if got := routeLine(t, self, self.PodCIDR.String()); got != "blackhole "+self.PodCIDR.String()+" proto 147" {
			t.Fatalf("%s: own block %q, want a blackhole", self.Name, got)
		}
	}
	if out, err := n1.RunPod("ping", "-c", "2", "-W", "2", n2.PodIP.String()); err != nil {
		t.Fatalf("pod ping: %v\n%s", err, out)
	}
	resp, err := c[n1.Name].Get(t.Context(), &pb.GetRequest{Id: "bgp_speaker/default"})
	if err != nil {
		t.Fatal(err)
	}
	if ss := resp.GetObserved().GetBgpSpeaker().GetSessions(); len(ss) != 1 || ss[0].GetState() != "Established" {
		t.Fatalf("sessions %v, want one Established", ss)
	}
}

// TestBGPFailedPoolApply: a block is announced as soon as its blackhole is in, before the
// pool's other parts; an apply that fails after that (a direct route the kernel refuses)
// takes the announcement back with the blackhole: the peer does not keep a route to it.
func TestBGPFailedPoolApply(t *testing.T) {
	l, c := execLab(t, bgpDemoHosts())
	n1, n2 := l.Hosts[0], l.Hosts[1]
	for _, p := range [][2]*lab.Host{{n1, n2}, {n2, n1}} {
		applyObj(t, c[p[0].Name], speakerObj(p[0], p[1]))
		applyObj(t, c[p[0].Name], poolObj(p[0].PodCIDR))
	}
	waitFor(t, 15*time.Second, func() string {
		if !strings.Contains(routeLine(t, n1, n2.PodCIDR.String()), "proto 147") {
			return "node1 has not learned node2's block"
		}
		return ""
	})
	const block = "10.246.0.0/26"
	bad := &pb.Object{Id: "ip_pool/10.246.0.0/16", Owner: "test:bgp", Spec: &pb.Object_IpPool{IpPool: &pb.IpPool{
		Cidr: "10.246.0.0/16", Block: block,
		// 192.0.2.1 is on no network of the node: the kernel refuses the direct route, the
		// last step.
		Encapsulation: &pb.PoolEncapsulation{
			Vxlan:  &pb.VxlanTunnel{Device: &pb.VxlanDevice{Name: "vxlan.p246", Vni: 4246, Underlay: "eth0", Address: "10.246.0.0/32"}},
			Direct: []*pb.Route{{Dst: "10.246.1.0/26", Via: "192.0.2.1"}},
		},
	}}}
	_, err := c[n2.Name].Apply(t.Context(), &pb.ApplyRequest{Object: bad})
	if err == nil || !strings.Contains(err.Error(), "10.246.1.0/26") {
		t.Fatalf("apply with an unreachable direct route: %v, want its failure", err)
	}
	if got := routeLine(t, n2, block); got != "" {
		t.Fatalf("node2 kept %q after the failed apply", got)
	}
	waitFor(t, 5*time.Second, func() string {
		if got := routeLine(t, n1, block); got != "" {
			return fmt.Sprintf("node1 has %q for the block of a failed apply", got)
		}
		return ""
	})
	time.Sleep(time.Second) // a withdrawal's linger or a late UPDATE would show by now
	if got := routeLine(t, n1, block); got != "" {
		t.Fatalf("node1 has %q for the block of a failed apply", got)
	}
	if !strings.Contains(routeLine(t, n1, n2.PodCIDR.String()), "proto 147") {
		t.Fatal("node1 lost node2's first block")
	}
}

// sampler checks, every 50 ms until stopped, that each host has a route to each prefix it
// should have, and counts the samples where one was missing.
type sampler struct {
	stop    chan struct{}
	done    chan struct{}
	missing []string
	samples int
}

func sampleRoutes(t *testing.T, want map[*lab.Host][]netip.Prefix) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			for h, prefixes := range want {
				out, err := h.Run("ip", "route", "show")
				for _, p := range prefixes {
					if err != nil || !strings.Contains(out, p.String()+" via ") {
						s.missing = append(s.missing, fmt.Sprintf("%s %s: %s", time.Now().Format("15:04:05.000"), h.Name, p))
					}
				}
			}
			s.samples++
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *sampler) finish(t *testing.T) {
	t.Helper()
	close(s.stop)
	<-s.done
	if len(s.missing) > 0 {
		t.Fatalf("%d of %d samples missed a route: %v", len(s.missing), s.samples, s.missing)
	}
	t.Logf("%d samples, no route missing", s.samples)
}

// TestBGPAgentRestart: SIGTERM of an agent sends no Cease: the peer keeps its routes as
// stale, the restarted agent keeps the routes it learned, sessions come back, and a block
// added right after the restart reaches the peer within 5 s.
func TestBGPAgentRestart(t *testing.T) {
	l, c := execLab(t, bgpDemoHosts())
	n1, n2 := l.Hosts[0], l.Hosts[1]
	for _, p := range [][2]*lab.Host{{n1, n2}, {n2, n1}} {
		applyObj(t, c[p[0].Name], speakerObj(p[0], p[1]))
		applyObj(t, c[p[0].Name], poolObj(p[0].PodCIDR))
	}
	want := map[*lab.Host][]netip.Prefix{n1: {n2.PodCIDR}, n2: {n1.PodCIDR}}
	waitFor(t, 15*time.Second, func() string {
		for h, ps := range want {
			if got := routeLine(t, h, ps[0].String()); !strings.Contains(got, "proto 147") {
				return h.Name + " has no learned route to " + ps[0].String()
			}
		}
		return ""
	})
	s := sampleRoutes(t, want)
	if err := l.StopAgent(n1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // longer than the hold timer's keepalives: peers notice the end
	if err := l.StartAgent(n1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, func() string {
		resp, err := c[n2.Name].Get(t.Context(), &pb.GetRequest{Id: "bgp_speaker/default"})
		if err != nil {
			return err.Error()
		}
		if ss := resp.GetObserved().GetBgpSpeaker().GetSessions(); len(ss) != 1 || ss[0].GetState() != "Established" {
			return fmt.Sprintf("node2 sessions %v\nnode1 log:\n%s\nnode2 log:\n%s", ss, mustRead(t, n1.LogFile), mustRead(t, n2.LogFile))
		}
		return ""
	})
	time.Sleep(time.Second)
	s.finish(t)
	// The peer saw the session end without a notification: graceful restart, not a Cease.
	if !strings.Contains(mustRead(t, n2.LogFile), "Reason=graceful-restart") {
		t.Error("node2 did not log a graceful restart of node1's session")
	}
	// A new block right after the restart reaches the peer within 5 s.
	extra := netip.MustParsePrefix("10.245.0.0/26")
	start := time.Now()
	applyObj(t, c[n1.Name], &pb.Object{Id: "ip_pool/10.245.0.0/16", Spec: &pb.Object_IpPool{IpPool: &pb.IpPool{Cidr: "10.245.0.0/16", Block: extra.String()}}})
	waitFor(t, 5*time.Second, func() string {
		if got := routeLine(t, n2, extra.String()); !strings.Contains(got, "proto 147") {
			return "node2 has no route to the new block " + extra.String()
		}
		return ""
	})
	t.Logf("new block after the restart reached the peer's kernel in %s", time.Since(start).Round(time.Millisecond))
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBGPStaleSweep: a block withdrawn while an agent is stopped leaves that agent's learned
// route stale in the kernel; after the restart, once the peer's End-of-RIB came without the
// block, the stale route is swept, and the others stay.
func TestBGPStaleSweep(t *testing.T) {
	l, c := execLab(t, bgpDemoHosts())
	n1, n2 := l.Hosts[0], l.Hosts[1]
	for _, p := range [][2]*lab.Host{{n1, n2}, {n2, n1}} {
		applyObj(t, c[p[0].Name], speakerObj(p[0], p[1]))
		applyObj(t, c[p[0].Name], poolObj(p[0].PodCIDR))
	}
	extra := &pb.Object{Id: "ip_pool/10.245.0.0/16", Spec: &pb.Object_IpPool{IpPool: &pb.IpPool{Cidr: "10.245.0.0/16", Block: "10.245.0.0/26"}}}
	applyObj(t, c[n2.Name], extra)
	learned := func(dst string) bool { return strings.Contains(routeLine(t, n1, dst), "proto 147") }
	waitFor(t, 15*time.Second, func() string {
		if !learned(n2.PodCIDR.String()) || !learned("10.245.0.0/26") {
			return "node1 has not learned node2's blocks"
		}
		return ""
	})
	if err := l.StopAgent(n1); err != nil {
		t.Fatal(err)
	}
	if _, err := c[n2.Name].Delete(t.Context(), &pb.DeleteRequest{Id: extra.GetId(), Owner: "test:bgp"}); err != nil {
		t.Fatal(err)
	}
	if !learned("10.245.0.0/26") {
		t.Fatal("node1 lost the route while its agent was stopped: nothing should touch its kernel then")
	}
	if err := l.StartAgent(n1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, func() string {
		if learned("10.245.0.0/26") {
			return "node1 still has the stale route to 10.245.0.0/26"
		}
		return ""
	})
	if !learned(n2.PodCIDR.String()) {
		t.Fatal("the sweep removed a route node2 still announces")
	}
	if !strings.Contains(mustRead(t, n1.LogFile), "every neighbour sent End-of-RIB") {
		t.Error("the sweep was not triggered by End-of-RIB")
	}
}
