package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
	"github.com/nodenet/terraform-provider-nodenet/provider/mesh"
)

// The overlay every way builds: the multicluster-vxlan scenario's device, on a /16 so that
// up to 250*250 nodes fit.
const (
	devName     = "vxlan-test"
	vni         = 10001
	vxlanPort   = 4899
	cluster     = "bench"
	parallelism = 16 // the fan-out client's default
)

// defaultSizes are the mesh sizes of one run; NODENET_BENCH_SIZES (like "20,50") overrides.
var defaultSizes = []int{20, 50}

// node is one lab host with everything the ways need about it.
type node struct {
	h        *lab.Host
	key      string // "bench/node-001"
	underlay string // 10.99.0.1
	overlay  string // 172.30.0.2 (without prefix length)
	mac      string // the MAC the agents derive, so every way programs the same entries
	pods     string // 10.200.1.0/24
}

func overlayAddr(i int) string { return fmt.Sprintf("172.30.%d.%d", i/250, i%250+1) }

func nodesOf(l *lab.Lab) []*node {
	var out []*node
	for _, h := range l.Hosts {
		out = append(out, &node{
			h:        h,
			key:      h.Cluster + "/" + h.Name,
			underlay: h.UnderlayIP.Addr().String(),
			overlay:  overlayAddr(h.Index),
			mac:      pb.DeriveMAC(h.Cluster, h.Name, devName),
			pods:     fmt.Sprintf("10.200.%d.0/24", h.Index),
		})
	}
	return out
}

// result is one size's timings.
type result struct {
	n                      int
	entries, deviceCmds    int
	apply, plan, destroy   time.Duration
	perEntry               time.Duration
	batchSeq, batchPar     time.Duration
	agents                 time.Duration
	agentsInfo, agentsPlan time.Duration
	agentsApply            time.Duration
}

func (r *result) cmds() int { return r.entries + r.deviceCmds }

func secs(d time.Duration) float64 { return d.Seconds() }

func metTag(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func (r *result) table() string {
	var b strings.Builder
	cBest := min(r.batchSeq, r.batchPar)
	ba := secs(r.perEntry) / secs(r.apply)
	dc := secs(r.agents) / secs(cBest)
	fmt.Fprintf(&b, "vxlan mesh of %d nodes (%d entries + %d device commands)\n", r.n, r.entries, r.deviceCmds)
	fmt.Fprintf(&b, "  (a) terraform apply            %6.2f s\n", secs(r.apply))
	fmt.Fprintf(&b, "  (b) one command per entry      %6.2f s   (%.1f ms per command, %d commands)\n",
		secs(r.perEntry), float64(r.perEntry.Microseconds())/1000/float64(r.cmds()), r.cmds())
	fmt.Fprintf(&b, "  (c) ip/bridge -batch           %6.2f s sequential, %.2f s %d at once\n", secs(r.batchSeq), secs(r.batchPar), parallelism)
	fmt.Fprintf(&b, "  (d) agents via fan-out client  %6.2f s   (Info %.2f s, mesh.Build %.3f s, Apply %.2f s)\n",
		secs(r.agents), secs(r.agentsInfo), secs(r.agentsPlan), secs(r.agentsApply))
	fmt.Fprintf(&b, "  (e) no-op terraform plan       %6.2f s\n", secs(r.plan))
	fmt.Fprintf(&b, "      (terraform destroy         %6.2f s)\n", secs(r.destroy))
	fmt.Fprintf(&b, "  ratios: (b)/(a) = %.1fx  [target >= 10x: %s]   (d)/(c best) = %.1fx  [target <= 3x: %s]   (e) = %.2f s [target < 2 s: %s]\n",
		ba, metTag(ba >= 10), dc, metTag(dc <= 3), secs(r.plan), metTag(r.plan < 2*time.Second))
	return b.String()
}

func sizes(b *testing.B) []int {
	s := os.Getenv("NODENET_BENCH_SIZES")
	if s == "" {
		return defaultSizes
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 || n > 250 {
			b.Fatalf("NODENET_BENCH_SIZES=%q: sizes are integers from 2 to 250", s)
		}
		out = append(out, n)
	}
	return out
}

// BenchmarkVxlanMesh compares, for VXLAN meshes of lab nodes (one cluster, every node a
// member with underlay eth0 and a pod-block route on every other member), the ways to set
// the same kernel entries up. One iteration per size whatever b.N says: every way is minutes
// of kernel work at 50 nodes, so run it with -benchtime 1x. Timings are wall clock; targets
// are printed as met / NOT met, never asserted.
func BenchmarkVxlanMesh(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: the lab is made of network namespaces")
	}
	tf, err := exec.LookPath("terraform")
	if err != nil {
		b.Skip("terraform is not on PATH")
	}
	for _, tool := range []string{"ip", "bridge", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s is not on PATH", tool)
		}
	}
	ns := sizes(b)

	// The provider binary, built once per run, used through dev_overrides.
	provDir := b.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(provDir, "terraform-provider-nodenet"), "github.com/nodenet/terraform-provider-nodenet")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build provider: %v\n%s", err, out)
	}
	rc := filepath.Join(provDir, "terraformrc")
	if err := os.WriteFile(rc, []byte(fmt.Sprintf(`provider_installation {
  dev_overrides {
    "registry.terraform.io/nodenet/nodenet" = %q
  }
  direct {}
}
`, provDir)), 0o644); err != nil {
		b.Fatal(err)
	}

	for _, n := range ns {
		var r *result
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			r = runSize(b, n, tf, rc)
		})
		if r == nil {
			continue
		}
		report(b, r.table())
	}
}

// printed holds every table of the run, for NODENET_BENCH_OUT.
var printed strings.Builder

// report prints a table and, with NODENET_BENCH_OUT=file, writes every table of the run so
// far to that file.
func report(b *testing.B, table string) {
	fmt.Print("\n" + table + "\n")
	printed.WriteString(table + "\n")
	if p := os.Getenv("NODENET_BENCH_OUT"); p != "" {
		if err := os.WriteFile(p, []byte(printed.String()), 0o644); err != nil {
			b.Errorf("NODENET_BENCH_OUT: %v", err)
		}
	}
}

// runSize runs every way on a fresh lab of n nodes; nil when the sub-benchmark failed.
func runSize(b *testing.B, n int, tf, rc string) *result {
	ctx := context.Background()
	dir := b.TempDir()
	opts := lab.Mesh(filepath.Join(dir, "lab"), n)
	opts.Start = lab.InProcessAgent("bench")
	t0 := time.Now()
	l, err := lab.Up(ctx, opts)
	if err != nil {
		b.Fatalf("lab up: %v", err)
	}
	b.Cleanup(func() {
		if err := l.Down(); err != nil {
			b.Errorf("lab down: %v", err)
		}
	})
	b.Logf("lab of %d nodes up in %.1f s (%s)", n, time.Since(t0).Seconds(), l.Dir)
	nodes := nodesOf(l)
	samples := []*node{nodes[0], nodes[n/2], nodes[n-1]}
	r := &result{n: n, entries: 3 * n * (n - 1), deviceCmds: 4 * n}

	// (a) terraform apply from empty, then a ping across, (e) the no-op plan, destroy.
	tfDir := filepath.Join(dir, "tf")
	if err := os.MkdirAll(tfDir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tfDir, "main.tf"), []byte(terraformConfig(l, nodes)), 0o644); err != nil {
		b.Fatal(err)
	}
	terraform := func(args ...string) (time.Duration, int, string) {
		cmd := exec.Command(tf, args...)
		cmd.Dir = tfDir
		cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
		if logDir := os.Getenv("NODENET_BENCH_TF_LOG_DIR"); logDir != "" {
			// For finding where terraform's time goes; trace logging slows it down.
			cmd.Env = append(cmd.Env, "TF_LOG=trace", "TF_LOG_PATH="+filepath.Join(logDir, fmt.Sprintf("n%d-%s.log", n, args[0])))
		}
		start := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			b.Fatalf("terraform %s: %v", args[0], err)
		}
		return d, code, string(out)
	}
	expectEmpty(b, "before (a)", samples)
	d, code, out := terraform("apply", "-auto-approve", "-input=false", "-no-color")
	if code != 0 {
		b.Fatalf("(a) terraform apply exited %d:\n%s", code, out)
	}
	r.apply = d
	expectFull(b, "(a) terraform apply", samples, nodes)
	first, last := nodes[0], nodes[n-1]
	if err := ping(first, last.overlay); err != nil {
		b.Fatalf("(a) ping from %s to %s (%s) across the overlay: %v", first.key, last.key, last.overlay, err)
	}
	d, code, out = terraform("plan", "-detailed-exitcode", "-input=false", "-no-color")
	if code != 0 {
		b.Fatalf("(e) terraform plan -detailed-exitcode right after apply exited %d (0: no changes):\n%s", code, out)
	}
	r.plan = d
	d, code, out = terraform("destroy", "-auto-approve", "-input=false", "-no-color")
	if code != 0 {
		b.Fatalf("terraform destroy exited %d:\n%s", code, out)
	}
	r.destroy = d
	expectEmpty(b, "after terraform destroy", nodes)

	// (b) one process per entry, sequentially, as an operator types them.
	cmds := perEntryCommands(nodes)
	if len(cmds) != r.cmds() {
		b.Fatalf("internal: %d commands, expected %d", len(cmds), r.cmds())
	}
	start := time.Now()
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("(b) %s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	r.perEntry = time.Since(start)
	expectFull(b, "(b) one command per entry", samples, nodes)
	removeDevices(b, nodes)

	// (c) one ip batch and one bridge batch per node, sequentially and 16 nodes at once.
	batchDir := filepath.Join(dir, "batch")
	if err := writeBatches(batchDir, nodes); err != nil {
		b.Fatal(err)
	}
	r.batchSeq = runBatches(b, batchDir, nodes, 1)
	expectFull(b, "(c) ip/bridge -batch, sequential", samples, nodes)
	removeDevices(b, nodes)
	r.batchPar = runBatches(b, batchDir, nodes, parallelism)
	expectFull(b, fmt.Sprintf("(c) ip/bridge -batch, %d at once", parallelism), samples, nodes)
	removeDevices(b, nodes)

	// (d) the agents, driven by the provider's fan-out client: what Create does.
	r.agents, r.agentsInfo, r.agentsPlan, r.agentsApply = viaAgents(b, l, nodes)
	expectFull(b, "(d) agents via the fan-out client", samples, nodes)
	deleteViaAgents(b, l, nodes)
	expectEmpty(b, "after Delete through the fleet", nodes)

	b.ReportMetric(secs(r.apply), "s-tf-apply")
	b.ReportMetric(secs(r.perEntry), "s-per-entry-cmds")
	b.ReportMetric(float64(r.perEntry.Microseconds())/1000/float64(r.cmds()), "ms/cmd")
	b.ReportMetric(secs(r.batchSeq), "s-batch-seq")
	b.ReportMetric(secs(r.batchPar), "s-batch-par16")
	b.ReportMetric(secs(r.agents), "s-agents")
	b.ReportMetric(secs(r.plan), "s-tf-noop-plan")
	b.ReportMetric(secs(r.perEntry)/secs(r.apply), "x-b/a")
	b.ReportMetric(secs(r.agents)/secs(min(r.batchSeq, r.batchPar)), "x-d/c")
	return r
}

// terraformConfig is the lab's provider block, the required_providers block and one tunnel
// with every node as a member and every node's pod block routed through it. MACs are left to
// the provider, which derives the same ones the other ways set (pb.DeriveMAC).
func terraformConfig(l *lab.Lab, nodes []*node) string {
	var b strings.Builder
	b.WriteString("terraform {\n  required_providers {\n    nodenet = { source = \"nodenet/nodenet\" }\n  }\n}\n\n")
	b.WriteString(l.ProviderHCL())
	fmt.Fprintf(&b, "\nresource \"nodenet_vxlan_tunnel\" \"bench\" {\n  name = %q\n  vni  = %d\n  port = %d\n\n  members = {\n", devName, vni, vxlanPort)
	for _, nd := range nodes {
		fmt.Fprintf(&b, "    %q = { underlay = %q, address = \"%s/16\" }\n", nd.key, nd.h.Underlay, nd.overlay)
	}
	b.WriteString("  }\n  routes = {\n")
	for _, nd := range nodes {
		fmt.Fprintf(&b, "    %q = { via = %q }\n", nd.pods, nd.key)
	}
	b.WriteString("  }\n}\n")
	return b.String()
}

// deviceCommands are an operator's ip arguments (after "ip -n NS") making a node's device.
func deviceCommands(nd *node) [][]string {
	return [][]string{
		{"link", "add", devName, "type", "vxlan", "id", strconv.Itoa(vni), "dstport", strconv.Itoa(vxlanPort), "local", nd.underlay, "dev", nd.h.Underlay, "nolearning"},
		{"addr", "add", nd.overlay + "/16", "dev", devName},
		{"link", "set", "dev", devName, "address", nd.mac},
		{"link", "set", devName, "up"},
	}
}

func neighArgs(o *node) []string {
	return []string{"neigh", "add", o.overlay, "lladdr", o.mac, "dev", devName, "nud", "permanent"}
}

// fdbArgs is the FDB entry (after "bridge -n NS") to a member's MAC at its underlay address.
func fdbArgs(mac, underlay string) []string {
	return []string{"fdb", "append", mac, "dst", underlay, "dev", devName}
}

// routeArgs is the route (after "ip -n NS") to a block via a member's overlay address.
func routeArgs(block, overlay string) []string {
	return []string{"route", "add", block, "via", overlay, "dev", devName, "onlink"}
}

// perEntryCommands are the (b) commands in the operator's order: a node's device, then its
// entries for every other member.
func perEntryCommands(nodes []*node) [][]string {
	var out [][]string
	for _, nd := range nodes {
		ipc := func(args []string) []string { return append([]string{"ip", "-n", nd.h.NS}, args...) }
		for _, c := range deviceCommands(nd) {
			out = append(out, ipc(c))
		}
		for _, o := range nodes {
			if o == nd {
				continue
			}
			out = append(out, ipc(neighArgs(o)))
			out = append(out, append([]string{"bridge", "-n", nd.h.NS}, fdbArgs(o.mac, o.underlay)...))
			out = append(out, ipc(routeArgs(o.pods, o.overlay)))
		}
	}
	return out
}

func batchFiles(dir string, nd *node) (ipFile, bridgeFile string) {
	return filepath.Join(dir, nd.h.Name+".ip"), filepath.Join(dir, nd.h.Name+".bridge")
}

func writeBatches(dir string, nodes []*node) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, nd := range nodes {
		var ipb, brb strings.Builder
		for _, c := range deviceCommands(nd) {
			ipb.WriteString(strings.Join(c, " ") + "\n")
		}
		for _, o := range nodes {
			if o == nd {
				continue
			}
			ipb.WriteString(strings.Join(neighArgs(o), " ") + "\n")
			ipb.WriteString(strings.Join(routeArgs(o.pods, o.overlay), " ") + "\n")
			brb.WriteString(strings.Join(fdbArgs(o.mac, o.underlay), " ") + "\n")
		}
		ipf, brf := batchFiles(dir, nd)
		if err := os.WriteFile(ipf, []byte(ipb.String()), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(brf, []byte(brb.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// runBatches runs every node's ip batch then bridge batch, par nodes at once.
func runBatches(b *testing.B, dir string, nodes []*node, par int) time.Duration {
	var jobs [][][]string
	for _, nd := range nodes {
		ipf, brf := batchFiles(dir, nd)
		jobs = append(jobs, [][]string{{"ip", "-n", nd.h.NS, "-batch", ipf}, {"bridge", "-n", nd.h.NS, "-batch", brf}})
	}
	return runJobs(b, jobs, par)
}

// runJobs runs every job's commands in order, par jobs at once, and fails on any error.
func runJobs(b *testing.B, jobs [][][]string, par int) time.Duration {
	sem := make(chan struct{}, par)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
	)
	start := time.Now()
	for _, job := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for _, c := range job {
				if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("%s: %v: %s", strings.Join(c, " "), err, out))
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	if len(errs) > 0 {
		b.Fatalf("(c) batches, %d at once:\n%s", par, strings.Join(errs, "\n"))
	}
	return d
}

func newFleet(b *testing.B, l *lab.Lab, nodes []*node) *fleet.Fleet {
	read := func(p string) []byte {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	cfg := fleet.Config{
		CACert: read(l.CAFile), ClientCert: read(l.ClientCertFile), ClientKey: read(l.ClientKeyFile),
		Parallelism: parallelism,
	}
	for _, nd := range nodes {
		cfg.Nodes = append(cfg.Nodes, fleet.Node{Cluster: nd.h.Cluster, Name: nd.h.Name, Agent: nd.h.AgentAddr})
	}
	f, err := fleet.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

func meshInput(nodes []*node) mesh.Input {
	in := mesh.Input{Name: devName, VNI: vni, Port: vxlanPort}
	for _, nd := range nodes {
		in.Members = append(in.Members, mesh.Member{Key: nd.key, Underlay: nd.h.Underlay, Address: nd.overlay + "/16"})
		in.Routes = append(in.Routes, mesh.Route{Dst: nd.pods, Via: nd.key})
	}
	return in
}

// viaAgents is the provider's Create without terraform: Info on every member, mesh.Build,
// The object (d) applies through the provider's fan-out client, and the owner it applies as.
var (
	benchID    = pb.ObjectID(pb.KindVxlanTunnel, devName)
	benchOwner = "bench:fan-out"
)

// Apply on every member, with a new fleet (so the TLS dials are part of it, as in a
// provider process).
func viaAgents(b *testing.B, l *lab.Lab, nodes []*node) (total, info, build, apply time.Duration) {
	ctx := context.Background()
	in := meshInput(nodes)
	keys := make([]string, 0, len(nodes))
	for _, nd := range nodes {
		keys = append(keys, nd.key)
	}
	start := time.Now()
	f := newFleet(b, l, nodes)
	defer f.Close()
	infos, errs := f.Infos(ctx, keys)
	if len(errs) > 0 {
		b.Fatalf("(d) Info: %s", fleet.Join(errs))
	}
	t1 := time.Now()
	plan, merrs := mesh.Build(in, infos)
	if len(merrs) > 0 {
		b.Fatalf("(d) mesh.Build: %v", merrs)
	}
	t2 := time.Now()
	objs := fleet.Objects{}
	for _, key := range keys {
		objs[key] = &pb.Object{Id: benchID, Owner: benchOwner, Spec: &pb.Object_VxlanTunnel{VxlanTunnel: plan.Members[key].Spec}}
	}
	if res := f.Apply(ctx, objs, func(string) *pb.Object { return nil }); !res.OK() {
		b.Fatalf("(d) Apply: %s", fleet.Join(res.Failed))
	}
	end := time.Now()
	return end.Sub(start), t1.Sub(start), t2.Sub(t1), end.Sub(t2)
}

func deleteViaAgents(b *testing.B, l *lab.Lab, nodes []*node) {
	f := newFleet(b, l, nodes)
	defer f.Close()
	var keys []string
	for _, nd := range nodes {
		keys = append(keys, nd.key)
	}
	others, errs := f.Delete(context.Background(), benchID, benchOwner, keys)
	if len(errs) > 0 || len(others) > 0 {
		b.Fatalf("Delete through the fleet: %s %v", fleet.Join(errs), others)
	}
}

// removeDevices deletes the vxlan device on every node; its entries go with it.
func removeDevices(b *testing.B, nodes []*node) {
	for _, nd := range nodes {
		if out, err := exec.Command("ip", "-n", nd.h.NS, "link", "del", devName).CombinedOutput(); err != nil {
			b.Fatalf("ip -n %s link del %s: %v: %s", nd.h.NS, devName, err, out)
		}
	}
	expectEmpty(b, "after removing the devices", nodes)
}

// expectFull fails unless every checked node has exactly the entries the mesh gives it: an
// FDB entry (MAC -> underlay), a permanent neighbour (overlay -> MAC) and a route (pods via
// overlay) for every other node, and none else in those ranges. At up to 10 nodes every node
// is checked (the CI smoke run), above that the sampled ones.
func expectFull(b *testing.B, way string, samples, nodes []*node) {
	b.Helper()
	n := len(nodes)
	check := samples
	if n <= 10 {
		check = nodes
	}
	for _, nd := range check {
		got, ok, err := entriesOf(nd)
		if err != nil {
			b.Fatalf("%s: %s: %v", way, nd.key, err)
		}
		if !ok {
			b.Fatalf("%s: %s has no device %s", way, nd.key, devName)
		}
		if want := wantEntries(nd, nodes); got != want {
			b.Fatalf("%s: %s has other entries than the mesh gives it (%d of each kind wanted):\n--- got\n%s\n--- want\n%s", way, nd.key, n-1, got, want)
		}
	}
}

// wantEntries are nd's FDB, neighbour and route entries in the form entriesOf reads them.
func wantEntries(nd *node, nodes []*node) string {
	var fdb, neigh, routes []string
	for _, o := range nodes {
		if o == nd {
			continue
		}
		fdb = append(fdb, "fdb "+o.mac+" dst "+o.underlay)
		neigh = append(neigh, "neigh "+o.overlay+" lladdr "+o.mac)
		routes = append(routes, "route "+o.pods+" via "+o.overlay)
	}
	return joinSorted(fdb, neigh, routes)
}

// entriesOf reads nd's FDB entries to underlays, permanent neighbours of overlay addresses
// and routes to pod ranges on the device (ok false: no device).
func entriesOf(nd *node) (entries string, ok bool, err error) {
	if exec.Command("ip", "-n", nd.h.NS, "link", "show", "dev", devName).Run() != nil {
		return "", false, nil
	}
	var fdb, neigh, routes []string
	lines, err := outLines("bridge", "-n", nd.h.NS, "fdb", "show", "dev", devName)
	if err != nil {
		return "", true, err
	}
	for _, ln := range lines {
		if f := strings.Fields(ln); len(f) >= 3 && f[1] == "dst" && strings.HasPrefix(f[2], "10.99.") {
			fdb = append(fdb, "fdb "+f[0]+" dst "+f[2])
		}
	}
	if lines, err = outLines("ip", "-n", nd.h.NS, "neigh", "show", "dev", devName, "nud", "permanent"); err != nil {
		return "", true, err
	}
	for _, ln := range lines {
		if f := strings.Fields(ln); len(f) >= 3 && f[1] == "lladdr" && strings.HasPrefix(f[0], "172.30.") {
			neigh = append(neigh, "neigh "+f[0]+" lladdr "+f[2])
		}
	}
	if lines, err = outLines("ip", "-n", nd.h.NS, "route", "show", "dev", devName); err != nil {
		return "", true, err
	}
	for _, ln := range lines {
		if f := strings.Fields(ln); len(f) >= 3 && f[1] == "via" && strings.HasPrefix(f[0], "10.200.") {
			routes = append(routes, "route "+f[0]+" via "+f[2])
		}
	}
	return joinSorted(fdb, neigh, routes), true, nil
}

func joinSorted(parts ...[]string) string {
	var all []string
	for _, p := range parts {
		sort.Strings(p)
		all = append(all, p...)
	}
	return strings.Join(all, "\n")
}

// outLines runs a command and returns its non-empty output lines.
func outLines(args ...string) ([]string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	var lines []string
	for _, ln := range strings.Split(string(bytes.TrimSpace(out)), "\n") {
		if ln = strings.TrimSpace(ln); ln != "" {
			lines = append(lines, ln)
		}
	}
	return lines, nil
}

// expectEmpty fails if any of the nodes still has the device.
func expectEmpty(b *testing.B, when string, nodes []*node) {
	b.Helper()
	for _, nd := range nodes {
		_, ok, err := entriesOf(nd)
		if err != nil {
			b.Fatalf("%s: %s: %v", when, nd.key, err)
		}
		if ok {
			b.Fatalf("%s: %s still has %s", when, nd.key, devName)
		}
	}
}

// ping sends pings from nd's namespace to addr, allowing a couple of lost first packets.
func ping(nd *node, addr string) error {
	var err error
	for try := 0; try < 3; try++ {
		if _, err = nd.h.Run("ping", "-c", "1", "-W", "2", addr); err == nil {
			return nil
		}
	}
	return err
}
