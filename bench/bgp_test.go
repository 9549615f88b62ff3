package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/fleet"
)

// The BGP benchmark of issue 6 (point 8): how fast a new pod block on one node reaches every
// other node's kernel, nodenet's agents against BIRD 2 configured as Calico configures it,
// in the same kind of lab and the same run; and how fast an agent programs 10,000 learned
// routes into its kernel, against `ip -batch` of the same routes and against BIRD 2
// receiving them from the same peer.

const (
	bgpASN     = 64512
	bgpCluster = "bgpbench"
	bgpOwner   = "bench:bgp"
	// warmBlocks are added and checked like the others before the measured ones, and not
	// counted: the first ones pay for cold caches and the first gRPC/birdc calls.
	warmBlocks = 2
	blockWait  = 15 * time.Second // one block everywhere, or the way is broken
	setupWait  = 90 * time.Second // sessions up and every node's first block everywhere
	routesWait = 5 * time.Minute  // every learned route in the kernel
	rssSettle  = 2 * time.Second  // after the routes, before the agent's memory is read again
	// cpuSettle ends a block's CPU window after its last route: the receivers' threads have
	// gone back to sleep, so their CPU time is up to date.
	cpuSettle = 10 * time.Millisecond
)

var (
	// blocksRange holds every block of the convergence runs: each node's first block in
	// 10.251.0.0/16 (10.251.<host>.0/26), the measured ones in 10.250.0.0/16
	// (10.250.<k>.0/26, each in a pool 10.250.<k>.0/24 of its own).
	blocksRange = netip.MustParsePrefix("10.240.0.0/12")
	initialPool = netip.MustParsePrefix("10.251.0.0/16")
	// routesRange holds the learned routes of the programming run, /24s from 100.64.0.0.
	routesRange = netip.MustParsePrefix("100.64.0.0/10")
)

func initialBlock(host int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 251, byte(host), 0}), 26)
}

func measuredPool(k int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 250, byte(k), 0}), 24)
}

func measuredBlock(k int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 250, byte(k), 0}), 26)
}

func learnedRoute(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(64 + i>>8), byte(i), 0}), 24)
}

// bgpSettings are one run's sizes; the defaults are the issue's.
type bgpSettings struct {
	sizes  []int // lab nodes of the convergence runs (NODENET_BGP_BENCH_SIZES, default 2,20)
	blocks int   // measured blocks per run (NODENET_BGP_BENCH_BLOCKS, default 30)
	routes int   // learned routes (NODENET_BGP_BENCH_ROUTES, default 10000)
	peers  int   // sessions of the node learning them (NODENET_BGP_BENCH_PEERS, default 20)
}

func bgpSettingsFromEnv(b *testing.B) bgpSettings {
	s := bgpSettings{sizes: []int{2, 20}}
	if v := os.Getenv("NODENET_BGP_BENCH_SIZES"); v != "" {
		s.sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 2 || n > 250 {
				b.Fatalf("NODENET_BGP_BENCH_SIZES=%q: sizes are integers from 2 to 250", v)
			}
			s.sizes = append(s.sizes, n)
		}
	}
	s.blocks = envInt(b, "NODENET_BGP_BENCH_BLOCKS", 30, 1, 250-warmBlocks)
	s.routes = envInt(b, "NODENET_BGP_BENCH_ROUTES", 10000, 1, 16000)
	s.peers = envInt(b, "NODENET_BGP_BENCH_PEERS", 20, 1, 240)
	return s
}

func envInt(b *testing.B, name string, def, lo, hi int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		b.Fatalf("%s=%q: an integer from %d to %d", name, v, lo, hi)
	}
	return n
}

// BenchmarkBGP measures, in lab namespaces with real kernels:
//
//   - convergence, per size and topology (node-to-node mesh; one route reflector): a new
//     block on one node until its route is in the kernel of every other node, for nodenet
//     (an ip_pool object applied to the node's agent; embedded GoBGP) and for BIRD 2 with
//     Calico's configuration (a static blackhole added to bird.cfg, `birdc configure`);
//   - route programming: 10,000 routes a BIRD peer (a ToR) announces, from the first in the
//     receiver's kernel to 99% of them and to the last, for an agent with 20 sessions and
//     one with only that one, against `ip -batch` adding the same routes to a fresh
//     namespace and against BIRD 2 receiving them from the same ToR; and the agent's
//     resident memory with 20 sessions and those routes.
//
// Every way is checked to have put every route in every kernel; a way that did not fails
// the benchmark. Timings are printed with ratios and the targets as met / NOT met,
// never asserted. One iteration whatever b.N says: run it with -benchtime 1x.
func BenchmarkBGP(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: the lab is made of network namespaces")
	}
	for _, tool := range []string{"ip", "bird", "birdc"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s is not on PATH (make deps installs bird2)", tool)
		}
	}
	s := bgpSettingsFromEnv(b)
	bin := os.Getenv("NODENET_BGP_BENCH_AGENT") // another build, to compare two in one session
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "nodenet-agent")
		build := exec.Command("go", "build", "-o", bin, "github.com/nodenet/terraform-provider-nodenet/nodeagent/cmd/nodenet-agent")
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("go build nodenet-agent: %v\n%s", err, out)
		}
	}
	for _, n := range s.sizes {
		var r *convResult
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			r = runConvergence(b, bin, n, s.blocks)
		})
		if r != nil {
			report(b, r.table())
		}
	}
	var rr *routesResult
	b.Run(fmt.Sprintf("routes=%d", s.routes), func(b *testing.B) {
		rr = runRoutes(b, bin, s)
	})
	if rr != nil {
		report(b, rr.table())
	}
}

// ---- the lab ----

func hostAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 99, byte(i >> 8), byte(i)}) }

// bgpHosts are n nodes node-001... on 10.99.0.0/16, then the named extra hosts.
func bgpHosts(n int, extra ...string) []lab.HostSpec {
	var out []lab.HostSpec
	for i := 1; i <= n+len(extra); i++ {
		name := fmt.Sprintf("node-%03d", i)
		if i > n {
			name = extra[i-n-1]
		}
		out = append(out, lab.HostSpec{Cluster: bgpCluster, Name: name, UnderlayIP: netip.PrefixFrom(hostAddr(i), 16)})
	}
	return out
}

// agentsExcept runs the built agent on every host but the named ones, which get none.
func agentsExcept(bin string, skip ...string) lab.StartAgent {
	start := lab.ExecAgent(bin)
	return func(cfg lab.AgentConfig) (func() error, error) {
		if slices.Contains(skip, cfg.Node) {
			return func() error { return nil }, nil
		}
		return start(cfg)
	}
}

// upLab builds a lab; the returned func takes it down (call it deferred: it runs on
// b.Fatal too).
func upLab(b *testing.B, dir string, hosts []lab.HostSpec, start lab.StartAgent) (*lab.Lab, func()) {
	t0 := time.Now()
	l, err := lab.Up(context.Background(), lab.Options{Hosts: hosts, Dir: dir, Start: start, NoPodRoutes: true})
	if err != nil {
		b.Fatalf("lab up: %v", err)
	}
	b.Logf("lab of %d hosts up in %.1f s (%s)", len(hosts), time.Since(t0).Seconds(), l.Dir)
	return l, func() {
		if err := l.Down(); err != nil {
			b.Errorf("lab down: %v", err)
		}
	}
}

func hostKey(h *lab.Host) string { return h.Cluster + "/" + h.Name }

func neighbor(h *lab.Host) *pb.BgpNeighbor {
	return &pb.BgpNeighbor{Node: h.Name, Address: h.UnderlayIP.Addr().String(), Asn: bgpASN}
}

func speakerObject(h *lab.Host, mesh []*lab.Host) *pb.Object {
	s := &pb.BgpSpeaker{Asn: bgpASN, Address: h.UnderlayIP.Addr().String(), GracefulRestart: &pb.BgpGracefulRestart{Enabled: true, RestartTime: 120}}
	for _, o := range mesh {
		if o != h {
			s.Mesh = append(s.Mesh, neighbor(o))
		}
	}
	return &pb.Object{Id: pb.ObjectID(pb.KindBgpSpeaker, pb.SpeakerName), Owner: bgpOwner, Spec: &pb.Object_BgpSpeaker{BgpSpeaker: s}}
}

func poolObject(pool, block netip.Prefix) *pb.Object {
	return &pb.Object{Id: pb.ObjectID(pb.KindIpPool, pool.String()), Owner: bgpOwner,
		Spec: &pb.Object_IpPool{IpPool: &pb.IpPool{Cidr: pool.String(), Block: block.String()}}}
}

func applyAll(b *testing.B, f *fleet.Fleet, what string, objs fleet.Objects) {
	b.Helper()
	if res := f.Apply(context.Background(), objs, nil); !res.OK() {
		b.Fatalf("apply %s: %s", what, fleet.Join(res.Failed))
	}
}

// sessions summarises the speaker's sessions of each node ("" when all are Established)
// and counts the Established ones.
func sessions(f *fleet.Fleet, keys []string) (established map[string]int, summary string) {
	objs, errs := f.Get(context.Background(), pb.ObjectID(pb.KindBgpSpeaker, pb.SpeakerName), keys)
	established = map[string]int{}
	var sb strings.Builder
	if len(errs) > 0 {
		sb.WriteString(fleet.Join(errs) + "\n")
	}
	for _, k := range keys {
		var bad []string
		for _, s := range objs[k].GetBgpSpeaker().GetSessions() {
			if s.GetState() == "Established" {
				established[k]++
			} else {
				bad = append(bad, s.GetPeer()+" "+s.GetType()+" "+s.GetState())
			}
		}
		if len(bad) > 0 {
			fmt.Fprintf(&sb, "  %s: %d established, not: %s\n", k, established[k], strings.Join(bad, ", "))
		}
	}
	return established, sb.String()
}

// agentPID finds the agent process of a lab host: `ip netns exec` execs the binary, whose
// command line names the host's state dir (unique to the lab), and whose executable is bin.
func agentPID(h *lab.Host, bin string) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	want := []byte("\x00--state-dir\x00" + h.StateDir + "\x00")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, want) {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == bin {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no %s process with --state-dir %s", bin, h.StateDir)
}

// rssKiB is the VmRSS of a process.
func rssKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("pid %d: no VmRSS", pid)
}

// rssAll is the VmRSS of each process.
func rssAll(pids []int) ([]int64, error) {
	out := make([]int64, 0, len(pids))
	for _, pid := range pids {
		kib, err := rssKiB(pid)
		if err != nil {
			return nil, err
		}
		out = append(out, kib)
	}
	return out, nil
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

// ---- convergence ----

type topology string

const (
	meshTopo topology = "mesh"
	rrTopo   topology = "route reflector"
)

// way is one implementation of BGP on the lab nodes.
type way interface {
	label() string
	agents() lab.StartAgent // what runs as the lab's agents (nil: none)
	// start brings a speaker up on every host in the topology (host 0 is the reflector),
	// each announcing its first block, initialBlock(host index).
	start(b *testing.B, l *lab.Lab, topo topology)
	addBlock(origin, k int) error // origin: index in l.Hosts
	diag() string                 // sessions, for a failure message
	pids() ([]int, error)         // the speaker process of each host, in l.Hosts' order
	stop() error
}

type convSample struct {
	fromBlackhole time.Duration // origin's blackhole in its kernel -> route in the last other kernel
	fromTrigger   time.Duration // Apply / birdc configure called -> route in the last other kernel
	trigger       time.Duration // how long the Apply / birdc configure call took
}

type convRun struct {
	way     string
	topo    topology
	samples []convSample
	rss     []int64
	cpu     blockCPU
}

type convResult struct {
	n, blocks int
	runs      []*convRun // nodenet mesh, BIRD mesh, nodenet rr, BIRD rr
}

func runConvergence(b *testing.B, bin string, n, blocks int) *convResult {
	dir := b.TempDir()
	res := &convResult{n: n, blocks: blocks}
	i := 0
	// Interleaved, so that a change of the machine's load during the run hits both ways.
	for _, topo := range []topology{meshTopo, rrTopo} {
		for _, w := range []way{&nodenetWay{bin: bin}, &birdWay{}} {
			i++
			res.runs = append(res.runs, runOne(b, filepath.Join(dir, strconv.Itoa(i)), w, topo, n, blocks))
		}
	}
	for i, run := range res.runs {
		m, _, _ := run.stats(fromBlackhole)
		b.ReportMetric(ms(m), fmt.Sprintf("ms-%c-median", "abcd"[i]))
	}
	return res
}

func runOne(b *testing.B, dir string, w way, topo topology, n, blocks int) *convRun {
	l, down := upLab(b, dir, bgpHosts(n), w.agents())
	defer down()
	defer func() {
		if err := w.stop(); err != nil {
			b.Errorf("%s: stop: %v", w.label(), err)
		}
	}()
	t0 := time.Now()
	w.start(b, l, topo)
	waitInitialBlocks(b, l, w)
	b.Logf("%s, %s, %d nodes: sessions up and first blocks everywhere in %.1f s", w.label(), topo, n, time.Since(t0).Seconds())
	time.Sleep(time.Second) // let End-of-RIBs and the last updates of the set-up pass

	origins := make([]int, 0, n)
	for i := range l.Hosts {
		if topo == rrTopo && i == 0 && n > 1 {
			continue // blocks come from clients: they reach the others through the reflector
		}
		origins = append(origins, i)
	}
	changed := make(chan struct{}, 1)
	watches := make([]*routeWatch, len(l.Hosts))
	for i, h := range l.Hosts {
		wt, err := watchRoutes(h.Name, h.NSPath, blocksRange, changed)
		if err != nil {
			b.Fatal(err)
		}
		defer wt.close()
		watches[i] = wt
	}
	run := &convRun{way: w.label(), topo: topo}
	originOf := map[netip.Prefix]int{}
	pids, err := w.pids()
	if err != nil {
		b.Fatalf("%s: speaker processes: %v", w.label(), err)
	}
	snap := func() cpuSnap {
		s, err := takeCPU(pids)
		if err != nil {
			b.Fatalf("%s: CPU times: %v", w.label(), err)
		}
		return s
	}
	var gapStart cpuSnap
	if dir := os.Getenv("NODENET_BGP_BENCH_PERF_CONV"); dir != "" {
		// For finding where the time of a block's convergence goes: perf record of the whole
		// machine (every speaker, the kernel) while the blocks are added.
		name := fmt.Sprintf("conv-%d-%s-%s.data", n, strings.ReplaceAll(w.label(), " ", ""), strings.ReplaceAll(string(topo), " ", "-"))
		defer perfRecord(b, 0, filepath.Join(dir, name))()
	}
	for k := 0; k < warmBlocks+blocks; k++ {
		o := origins[k%len(origins)]
		blk := measuredBlock(k)
		originOf[blk] = o
		oaddr := l.Hosts[o].UnderlayIP.Addr()
		cpu0 := snap()
		if k > warmBlocks {
			run.cpu.addGap(gapStart, cpu0)
		}
		t0 := time.Now()
		if err := w.addBlock(o, k); err != nil {
			b.Fatalf("%s, %s: add block %s on %s: %v", w.label(), topo, blk, l.Hosts[o].Name, err)
		}
		t1 := time.Now()
		ok, err := waitFor(changed, blockWait, watches, func() bool {
			for _, wt := range watches {
				if _, ok := wt.seen(blk); !ok {
					return false
				}
			}
			return true
		})
		if err != nil {
			b.Fatalf("%s, %s: %v", w.label(), topo, err)
		}
		if !ok {
			var missing []string
			for _, wt := range watches {
				if _, ok := wt.seen(blk); !ok {
					missing = append(missing, wt.name)
				}
			}
			b.Fatalf("%s, %s: block %s of %s not in the kernel of %s after %s\n%s", w.label(), topo, blk, l.Hosts[o].Name,
				strings.Join(missing, ", "), blockWait, w.diag())
		}
		bh, _ := watches[o].seen(blk)
		if bh.typ != unix.RTN_BLACKHOLE {
			b.Fatalf("%s, %s: the first route to %s on its origin %s is of type %d, not a blackhole", w.label(), topo, blk, l.Hosts[o].Name, bh.typ)
		}
		var last time.Time
		for i, wt := range watches {
			if i == o {
				continue
			}
			ev, _ := wt.seen(blk)
			if ev.typ != unix.RTN_UNICAST || ev.gw != oaddr {
				b.Fatalf("%s, %s: %s got %s as type %d via %v (proto %s); want a route via %s", w.label(), topo, wt.name, blk, ev.typ, ev.gw, ev.proto, oaddr)
			}
			if ev.at.After(last) {
				last = ev.at
			}
		}
		time.Sleep(cpuSettle)
		gapStart = snap()
		if k >= warmBlocks {
			run.samples = append(run.samples, convSample{fromBlackhole: last.Sub(bh.at), fromTrigger: last.Sub(t0), trigger: t1.Sub(t0)})
			run.cpu.addWindow(cpu0, gapStart, o)
		}
		// Blocks come one at a time, at irregular intervals (so that none lines up with
		// BIRD's 2 s kernel and device scans).
		time.Sleep(100*time.Millisecond + rand.N(100*time.Millisecond))
	}
	verifyBlocks(b, l, w.label()+", "+string(topo), originOf)
	rss, err := rssAll(pids)
	if err != nil {
		b.Fatalf("%s: resident memory: %v", w.label(), err)
	}
	run.rss = rss
	return run
}

// waitInitialBlocks waits until every host has every other host's first block, by reading
// the kernels (set-up, not measured).
func waitInitialBlocks(b *testing.B, l *lab.Lab, w way) {
	deadline := time.Now().Add(setupWait)
	for {
		missing := missingInitial(l)
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: after %s, first blocks missing:\n%s\n%s", w.label(), setupWait, missing, w.diag())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func missingInitial(l *lab.Lab) string {
	var sb strings.Builder
	for _, h := range l.Hosts {
		routes, err := kernelRoutes(h.NSPath, blocksRange)
		if err != nil {
			return err.Error()
		}
		var miss []string
		for _, o := range l.Hosts {
			rt, ok := routes[initialBlock(o.Index)]
			switch {
			case o == h && (!ok || rt.Type != unix.RTN_BLACKHOLE):
				miss = append(miss, "own blackhole "+initialBlock(o.Index).String())
			case o != h && (!ok || routeGw(rt) != o.UnderlayIP.Addr()):
				miss = append(miss, initialBlock(o.Index).String())
			}
		}
		if len(miss) > 0 {
			fmt.Fprintf(&sb, "  %s: %s\n", h.Name, strings.Join(miss, " "))
		}
	}
	return sb.String()
}

// verifyBlocks reads every kernel after a run: each block a blackhole on its origin and a
// route via the origin's address everywhere else, and no other route in the range.
func verifyBlocks(b *testing.B, l *lab.Lab, what string, originOf map[netip.Prefix]int) {
	want := map[netip.Prefix]*lab.Host{}
	for _, h := range l.Hosts {
		want[initialBlock(h.Index)] = h
	}
	for p, o := range originOf {
		want[p] = l.Hosts[o]
	}
	for _, h := range l.Hosts {
		routes, err := kernelRoutes(h.NSPath, blocksRange)
		if err != nil {
			b.Fatal(err)
		}
		for p, o := range want {
			rt, ok := routes[p]
			if !ok {
				b.Fatalf("%s: after the run %s has no route to %s", what, h.Name, p)
			}
			if o == h && rt.Type != unix.RTN_BLACKHOLE || o != h && (rt.Type != unix.RTN_UNICAST || routeGw(rt) != o.UnderlayIP.Addr()) {
				b.Fatalf("%s: after the run %s has %s for %s (origin %s)", what, h.Name, rt, p, o.Name)
			}
		}
		if len(routes) != len(want) {
			b.Fatalf("%s: after the run %s has %d routes in %s, want %d", what, h.Name, len(routes), blocksRange, len(want))
		}
	}
}

// nodenetWay: every node's agent (the built binary in the node's namespace) runs the
// speaker, configured through its gRPC API as the provider does; a block is an ip_pool
// object applied to one agent.
type nodenetWay struct {
	bin  string
	l    *lab.Lab
	f    *fleet.Fleet
	keys []string
}

func (w *nodenetWay) label() string          { return "nodenet" }
func (w *nodenetWay) agents() lab.StartAgent { return lab.ExecAgent(w.bin) }

func (w *nodenetWay) start(b *testing.B, l *lab.Lab, topo topology) {
	w.l = l
	w.f = newFleet(b, l, nodesOf(l))
	speakers, pools := fleet.Objects{}, fleet.Objects{}
	for _, h := range l.Hosts {
		w.keys = append(w.keys, hostKey(h))
		var meshed []*lab.Host
		if topo == meshTopo {
			meshed = l.Hosts
		}
		speakers[hostKey(h)] = speakerObject(h, meshed)
		pools[hostKey(h)] = poolObject(initialPool, initialBlock(h.Index))
	}
	applyAll(b, w.f, "bgp_speaker", speakers)
	if topo == rrTopo {
		r := l.Hosts[0]
		addr := r.UnderlayIP.Addr().String()
		id := pb.ObjectID(pb.KindBgpReflector, r.Name)
		onReflector := &pb.BgpReflector{Reflector: r.Name, Address: addr, Asn: bgpASN, ClusterId: addr}
		objs := fleet.Objects{}
		for _, h := range l.Hosts[1:] {
			onReflector.Clients = append(onReflector.Clients, neighbor(h))
			objs[hostKey(h)] = &pb.Object{Id: id, Owner: bgpOwner, Spec: &pb.Object_BgpReflector{BgpReflector: &pb.BgpReflector{Reflector: r.Name, Address: addr, Asn: bgpASN}}}
		}
		objs[hostKey(r)] = &pb.Object{Id: id, Owner: bgpOwner, Spec: &pb.Object_BgpReflector{BgpReflector: onReflector}}
		applyAll(b, w.f, "bgp_reflector", objs)
	}
	applyAll(b, w.f, "ip_pool", pools)
}

func (w *nodenetWay) addBlock(origin, k int) error {
	c, err := w.f.Client(w.keys[origin])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.Apply(ctx, &pb.ApplyRequest{Object: poolObject(measuredPool(k), measuredBlock(k))})
	return err
}

func (w *nodenetWay) diag() string {
	if w.f == nil {
		return ""
	}
	_, s := sessions(w.f, w.keys)
	return "sessions not established:\n" + s + "agent logs: " + filepath.Join(w.l.Dir, "hosts", "*", "agent.log")
}

func (w *nodenetWay) pids() ([]int, error) {
	var out []int
	for _, h := range w.l.Hosts {
		pid, err := agentPID(h, w.bin)
		if err != nil {
			return nil, err
		}
		out = append(out, pid)
	}
	return out, nil
}

func (w *nodenetWay) stop() error {
	if w.f != nil {
		w.f.Close()
	}
	return nil // the lab stops the agents
}

// birdWay: BIRD 2 in every node's namespace (no agent there), configured as Calico's confd
// configures it; a block is a static blackhole added to bird.cfg, then `birdc configure`.
type birdWay struct {
	birds []*lab.Bird
	cfgs  []birdNode
}

func (w *birdWay) label() string          { return "BIRD 2" }
func (w *birdWay) agents() lab.StartAgent { return nil }

func (w *birdWay) start(b *testing.B, l *lab.Lab, topo topology) {
	for i, h := range l.Hosts {
		c := birdNode{RouterID: h.UnderlayIP.Addr(), ASN: bgpASN, Pool: blocksRange, Blocks: []netip.Prefix{initialBlock(h.Index)}}
		for j, o := range l.Hosts {
			a := o.UnderlayIP.Addr()
			switch {
			case j == i:
			case topo == meshTopo:
				c.Peers = append(c.Peers, lab.BirdNeighbor{Name: birdPeerName("Mesh", a), IP: a, ASN: bgpASN})
			case i == 0: // the reflector: every other node is its client
				c.ClusterID = h.UnderlayIP.Addr()
				c.Peers = append(c.Peers, lab.BirdNeighbor{Name: birdPeerName("Node", a), IP: a, ASN: bgpASN})
			case j == 0: // a client: its one peer is the reflector
				c.Peers = append(c.Peers, lab.BirdNeighbor{Name: birdPeerName("Node", a), IP: a, ASN: bgpASN})
			}
		}
		text, err := c.render()
		if err != nil {
			b.Fatal(err)
		}
		bd, err := lab.StartBird(h.NS, filepath.Join(h.Dir, "bird"), text)
		if err != nil {
			b.Fatalf("start BIRD on %s: %v", h.Name, err)
		}
		w.birds = append(w.birds, bd)
		w.cfgs = append(w.cfgs, c)
	}
}

func (w *birdWay) addBlock(origin, k int) error {
	c := &w.cfgs[origin]
	c.Blocks = append(c.Blocks, measuredBlock(k))
	text, err := c.render()
	if err != nil {
		return err
	}
	return w.birds[origin].Configure(text)
}

func (w *birdWay) diag() string {
	var sb strings.Builder
	for _, bd := range w.birds {
		ps, err := bd.Protocols()
		if err != nil {
			fmt.Fprintf(&sb, "  %s: %v\n", bd.NS, err)
			continue
		}
		var bad []string
		for _, p := range ps {
			if p.Proto == "BGP" && !strings.HasPrefix(p.Info, "Established") {
				bad = append(bad, p.Name+" "+p.Info)
			}
		}
		if len(bad) > 0 {
			fmt.Fprintf(&sb, "  %s: not established: %s (log %s)\n", bd.NS, strings.Join(bad, ", "), bd.LogFile)
		}
	}
	return "BIRD sessions:\n" + sb.String()
}

func (w *birdWay) pids() ([]int, error) {
	var out []int
	for _, bd := range w.birds {
		out = append(out, bd.PID)
	}
	return out, nil
}

func (w *birdWay) stop() error {
	var errs []error
	for _, bd := range w.birds {
		errs = append(errs, bd.Stop())
	}
	return errors.Join(errs...)
}

// ---- statistics and the table ----

func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// p90 is the nearest-rank 90th percentile.
func p90(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	if len(s) == 0 {
		return 0
	}
	i := (len(s)*9 + 9) / 10 // ceil(0.9 n)
	return s[i-1]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (r *convRun) pick(f func(convSample) time.Duration) []time.Duration {
	out := make([]time.Duration, 0, len(r.samples))
	for _, s := range r.samples {
		out = append(out, f(s))
	}
	return out
}

func (r *convRun) stats(f func(convSample) time.Duration) (med, p, mx time.Duration) {
	ds := r.pick(f)
	return median(ds), p90(ds), slices.Max(ds)
}

func fromBlackhole(s convSample) time.Duration { return s.fromBlackhole }
func fromTrigger(s convSample) time.Duration   { return s.fromTrigger }
func triggerCall(s convSample) time.Duration   { return s.trigger }

func medianKiB(v []int64) int64 {
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

func (r *convResult) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bgp convergence, %d nodes: a new block on one node -> its route in the kernels of the %d others (%d blocks; ms)\n",
		r.n, r.n-1, r.blocks)
	fmt.Fprintf(&b, "                                 from the origin's blackhole     from the call (Apply / birdc configure)\n")
	fmt.Fprintf(&b, "                                 median     p90     max          median     p90   (the call itself)\n")
	letters := "abcd"
	for i, run := range r.runs {
		m, p, x := run.stats(fromBlackhole)
		tm, tp, _ := run.stats(fromTrigger)
		cm := median(run.pick(triggerCall))
		fmt.Fprintf(&b, "  (%c) %-26s %7.1f %7.1f %7.1f         %7.1f %7.1f   (%.1f)\n", letters[i], run.way+", "+string(run.topo), ms(m), ms(p), ms(x), ms(tm), ms(tp), ms(cm))
	}
	b.WriteString("  resident memory per node, median / max MiB:")
	for i, run := range r.runs {
		fmt.Fprintf(&b, " (%c) %.1f / %.1f", letters[i], mib(medianKiB(run.rss)), mib(slices.Max(run.rss)))
		if i < len(r.runs)-1 {
			b.WriteString(",")
		}
	}
	b.WriteString("\n")
	b.WriteString(r.cpuLines())
	ratio := func(i, j int, f func(convSample) time.Duration) float64 {
		mi, _, _ := r.runs[i].stats(f)
		mj, _, _ := r.runs[j].stats(f)
		return secs(mi) / secs(mj)
	}
	for _, from := range []struct {
		name string
		f    func(convSample) time.Duration
	}{{"from the blackhole:", fromBlackhole}, {"from the call:     ", fromTrigger}} {
		am, cm := ratio(0, 1, from.f), ratio(2, 3, from.f)
		fmt.Fprintf(&b, "  ratios of medians, %s (a)/(b) = %.2fx [target < 1x: %s; aim < 0.5x: %s]   (c)/(d) = %.2fx [target < 1x: %s; aim < 0.5x: %s]\n",
			from.name, am, metTag(am < 1), metTag(am < 0.5), cm, metTag(cm < 1), metTag(cm < 0.5))
	}
	return b.String()
}

// cpuLines are the speakers' CPU per block, nodenet against BIRD for each topology.
func (r *convResult) cpuLines() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  CPU per block, ms (each speaker's threads, the call -> %s after the last route, less their rate between blocks):\n", cpuSettle)
	letters := "abcd"
	for i := 0; i+1 < len(r.runs); i += 2 {
		var each [2]time.Duration
		b.WriteString("   ")
		for j, run := range r.runs[i : i+2] {
			o, e, c := run.cpu.perBlock()
			each[j] = e
			all := o + c + time.Duration(r.n-1)*e
			origin := fmt.Sprintf("%.2f", ms(o))
			if c > 0 {
				origin += fmt.Sprintf(" + birdc %.2f", ms(c))
			}
			fmt.Fprintf(&b, " (%c) origin %s, each other node %.3f, all %.1f;", letters[i+j], origin, ms(e), ms(all))
		}
		fmt.Fprintf(&b, "  each other node (%c)/(%c) = %.2fx\n", letters[i], letters[i+1], secs(each[0])/secs(each[1]))
	}
	return b.String()
}

// ---- route programming ----

// programRun is one receiver programming the routes the ToR announces into its kernel.
type programRun struct {
	firstLast time.Duration // first route in the receiver's kernel -> the last
	firstP99  time.Duration // first route -> 99% of them (the peer's last UPDATE left out)
	fromStart time.Duration // the session configured (bgp_peer applied; BIRD started) -> the last
	cpu       time.Duration // the receiver's user+system time meanwhile (BIRD: since its start)
	torCPU    time.Duration // the ToR's meanwhile: it sends the routes
	watchCPU  time.Duration // this process's meanwhile: mostly reading the notifications
}

type routesResult struct {
	routes, peers int
	// (e) node-001's agent, meshed with peers-1 other agents; (e1) an agent with no other
	// session; (g) BIRD 2 as the receiver.
	agent, solo, bird      programRun
	batchFirstLast         time.Duration // (f)
	batchP99               time.Duration
	batchProcess           time.Duration // the ip process, start to exit
	rssBefore, rssAfter    int64
	rssSettled             int64 // rssSettle after rssAfter
	meshPeers, established int
}

func runRoutes(b *testing.B, bin string, s bgpSettings) *routesResult {
	r := &routesResult{routes: s.routes, peers: s.peers, meshPeers: s.peers - 1}
	l, down := upLab(b, filepath.Join(b.TempDir(), "lab"), bgpHosts(s.peers, "solo", "tor", "batch", "birdrx"),
		agentsExcept(bin, "tor", "batch", "birdrx"))
	defer down()
	agentHosts := l.Hosts[:s.peers]
	n1 := l.Hosts[0]
	solo, tor, batch, rx := l.Hosts[s.peers], l.Hosts[s.peers+1], l.Hosts[s.peers+2], l.Hosts[s.peers+3]
	torAddr := tor.UnderlayIP.Addr()
	f := newFleet(b, l, nodesOf(l)[:s.peers+1])
	defer f.Close()

	// node-001 meshes with every other agent (peers-1 sessions); they mesh with it only.
	// solo runs a speaker with no session: its only one will be the ToR.
	objs := fleet.Objects{hostKey(solo): speakerObject(solo, nil)}
	for _, h := range agentHosts {
		if h == n1 {
			objs[hostKey(h)] = speakerObject(h, agentHosts)
		} else {
			objs[hostKey(h)] = speakerObject(h, []*lab.Host{n1})
		}
	}
	applyAll(b, f, "bgp_speaker", objs)
	waitSessions(b, f, hostKey(n1), s.peers-1)
	pid, err := agentPID(n1, bin)
	if err != nil {
		b.Fatal(err)
	}
	soloPID, err := agentPID(solo, bin)
	if err != nil {
		b.Fatal(err)
	}
	if r.rssBefore, err = rssKiB(pid); err != nil {
		b.Fatal(err)
	}

	// The peer: BIRD 2 as a ToR in the same AS (iBGP: a receiver passes the routes to no
	// other node, so only its kernel gets them), originating the routes as static blackholes,
	// with a session configured for each receiver: node-001, solo and the BIRD receiver.
	routes := make([]netip.Prefix, s.routes)
	cfg := lab.TorConfig{RouterID: torAddr, ASN: bgpASN, Neighbors: []lab.BirdNeighbor{
		{Name: "node_001", IP: n1.UnderlayIP.Addr(), ASN: bgpASN},
		{Name: "solo", IP: solo.UnderlayIP.Addr(), ASN: bgpASN},
		{Name: "birdrx", IP: rx.UnderlayIP.Addr(), ASN: bgpASN},
	}}
	for i := range routes {
		routes[i] = learnedRoute(i)
		cfg.Statics = append(cfg.Statics, lab.BirdStatic{Prefix: routes[i]})
	}
	text, err := cfg.Render()
	if err != nil {
		b.Fatal(err)
	}
	bd, err := lab.StartBird(tor.NS, filepath.Join(tor.Dir, "bird"), text)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := bd.Stop(); err != nil {
			b.Errorf("bird: %v", err)
		}
	}()
	waitBirdRoutes(b, bd, s.routes)
	if out := os.Getenv("NODENET_BGP_BENCH_PCAP"); out != "" {
		// For timing the UPDATEs on the wire: the ToR's BGP traffic while (g), (e1) and (e) run.
		stop := tcpdump(b, tor, out)
		defer stop()
	}

	changed := make(chan struct{}, 1)
	// (f) ip -batch of the same routes (via the same next hop, nodenet's protocol) into a
	// namespace that has none.
	file := filepath.Join(b.TempDir(), "routes.batch")
	var sb strings.Builder
	for _, p := range routes {
		fmt.Fprintf(&sb, "route add %s via %s proto %d\n", p, torAddr, dataplane.RouteProtocol)
	}
	if err := os.WriteFile(file, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	wb, err := watchRoutes(batch.Name, batch.NSPath, routesRange, changed)
	if err != nil {
		b.Fatal(err)
	}
	defer wb.close()
	t0 := time.Now()
	if out, err := exec.Command("ip", "-n", batch.NS, "-batch", file).CombinedOutput(); err != nil {
		b.Fatalf("(f) ip -batch: %v: %s", err, out)
	}
	r.batchProcess = time.Since(t0)
	r.batchFirstLast = waitRoutes(b, "(f) ip -batch", changed, wb, s.routes, routesWait)
	r.batchP99 = wb.untilShare(0.99)
	verifyRoutes(b, "(f) ip -batch", batch, routes, torAddr, dataplane.RouteProtocol)
	wb.close()

	// (g) BIRD 2 receiving the same routes from the same ToR: the ToR's config (no statics,
	// the ToR as its one neighbour; kernel protocol with learn off, exporting BGP routes),
	// started now, the routes already there.
	rxText, err := lab.TorConfig{RouterID: rx.UnderlayIP.Addr(), ASN: bgpASN,
		Neighbors: []lab.BirdNeighbor{{Name: "tor", IP: torAddr, ASN: bgpASN}}}.Render()
	if err != nil {
		b.Fatal(err)
	}
	var rbd *lab.Bird
	defer func() { // before the lab goes down
		if rbd != nil {
			if err := rbd.Stop(); err != nil {
				b.Errorf("(g) bird: %v", err)
			}
		}
	}()
	r.bird = timeReceiver(b, "(g) BIRD 2", rx, 0, bd, changed, s.routes, func() (int, error) {
		var err error
		if rbd, err = lab.StartBird(rx.NS, filepath.Join(rx.Dir, "bird"), rxText); err != nil {
			return 0, err
		}
		return rbd.PID, nil
	})
	verifyRoutes(b, "(g) BIRD 2", rx, routes, torAddr, unix.RTPROT_BIRD)

	// (e1), (e) the agents: a session with the peer configured now, every route already there.
	applyPeer := func(h *lab.Host, agent int) func() (int, error) {
		return func() (int, error) {
			c, err := f.Client(hostKey(h))
			if err != nil {
				return 0, err
			}
			peer := &pb.Object{Id: pb.ObjectID(pb.KindBgpPeer, torAddr.String()), Owner: bgpOwner,
				Spec: &pb.Object_BgpPeer{BgpPeer: &pb.BgpPeer{PeerIp: torAddr.String(), PeerAsn: bgpASN}}}
			_, err = c.Apply(context.Background(), &pb.ApplyRequest{Object: peer})
			return agent, err
		}
	}
	time.Sleep(time.Second) // let the BIRD receiver's session settle
	r.solo = timeReceiver(b, "(e1) nodenet-agent, 1 session", solo, soloPID, bd, changed, s.routes, applyPeer(solo, soloPID))
	verifyRoutes(b, "(e1) nodenet-agent, 1 session", solo, routes, torAddr, dataplane.RouteProtocol)
	time.Sleep(time.Second)
	stopPerf := func() {}
	if out := os.Getenv("NODENET_BGP_BENCH_PERF"); out != "" {
		// For finding where the agent's time goes: perf record of node-001's agent while it
		// programs the routes (perf slows it down a little).
		stopPerf = perfRecord(b, pid, out)
	}
	r.agent = timeReceiver(b, fmt.Sprintf("(e) nodenet-agent, %d sessions", s.peers), n1, pid, bd, changed, s.routes, applyPeer(n1, pid))
	stopPerf()
	verifyRoutes(b, "(e) nodenet-agent", n1, routes, torAddr, dataplane.RouteProtocol)
	for _, c := range []struct {
		h    *lab.Host
		want int
	}{{n1, s.peers}, {solo, 1}} {
		est, summary := sessions(f, []string{hostKey(c.h)})
		if est[hostKey(c.h)] != c.want {
			b.Fatalf("%s has %d established sessions, want %d:\n%s", c.h.Name, est[hostKey(c.h)], c.want, summary)
		}
	}
	r.established = s.peers
	if r.rssAfter, err = rssKiB(pid); err != nil {
		b.Fatal(err)
	}
	// Right after a burst the agent holds what it has freed but not yet given back (the
	// queued paths of 10,000 events), until the next GC and the runtime's scavenger.
	time.Sleep(rssSettle)
	if r.rssSettled, err = rssKiB(pid); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(secs(r.agent.firstLast), "s-e-agent")
	b.ReportMetric(secs(r.solo.firstLast), "s-e1-agent-1-session")
	b.ReportMetric(secs(r.batchFirstLast), "s-f-ip-batch")
	b.ReportMetric(secs(r.bird.firstLast), "s-g-bird")
	b.ReportMetric(secs(r.agent.firstLast)/secs(r.batchFirstLast), "x-e/f")
	b.ReportMetric(secs(r.agent.firstLast)/secs(r.bird.firstLast), "x-e/g")
	b.ReportMetric(mib(r.rssAfter), "MiB-agent-rss")
	b.ReportMetric(mib(r.rssSettled), "MiB-agent-rss-settled")
	return r
}

// timeReceiver watches h's kernel, calls start (which configures the receiver's session with
// the ToR and returns the receiver's pid) and waits for every route; the CPU times run from
// before start to the last route. pid is the receiver's when it already runs (an agent), 0
// when start starts it (BIRD: its CPU is then counted from its start). Meanwhile the ToR's
// event loop is woken every torWake (wakeBird), as for every receiver.
func timeReceiver(b *testing.B, what string, h *lab.Host, pid int, tor *lab.Bird, changed chan struct{}, routes int, start func() (int, error)) programRun {
	w, err := watchRoutes(h.Name, h.NSPath, routesRange, changed)
	if err != nil {
		b.Fatal(err)
	}
	defer w.close()
	cpu := func(pid int) time.Duration {
		if pid == 0 {
			return 0
		}
		d, err := cpuTime(pid)
		if err != nil {
			b.Fatalf("%s: %v", what, err)
		}
		return d
	}
	defer wakeBird(b, tor, torWake)()
	tor0, self0 := cpu(tor.PID), cpu(os.Getpid())
	rcv0 := cpu(pid) // an agent's so far; a BIRD that start starts has none (pid 0)
	t0 := time.Now()
	pid, err = start()
	if err != nil {
		b.Fatalf("%s: %v", what, err)
	}
	var run programRun
	run.firstLast = waitRoutes(b, what, changed, w, routes, routesWait)
	run.firstP99 = w.untilShare(0.99)
	run.cpu = cpu(pid) - rcv0
	run.torCPU = cpu(tor.PID) - tor0
	run.watchCPU = cpu(os.Getpid()) - self0
	_, _, last := w.count()
	run.fromStart = last.Sub(t0)
	return run
}

// perfRecord starts `perf record -g` of a process (pid 0: of the whole machine); the returned
// func stops it (SIGINT to the perf process started here) and waits for it to write its file.
func perfRecord(b *testing.B, pid int, out string) func() {
	target := []string{"-a"}
	if pid != 0 {
		target = []string{"-p", strconv.Itoa(pid)}
	}
	cmd := exec.Command("perf", append([]string{"record", "-q", "-g", "-F", "1999", "-o", out}, target...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("perf record: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // attached
	return func() {
		_ = cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			b.Logf("perf record: %v", err)
		}
		b.Logf("perf data (pid %d; 0: every process) in %s", pid, out)
	}
}

// tcpdump captures a lab host's BGP traffic (on its underlay) into out; the returned func
// stops it (SIGINT to the tcpdump started here: `ip netns exec` execs it) and waits for it.
func tcpdump(b *testing.B, h *lab.Host, out string) func() {
	cmd := exec.Command("ip", "netns", "exec", h.NS, "tcpdump", "-q", "-U", "--immediate-mode", "-i", h.Underlay, "-w", out, "tcp port 179")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("tcpdump: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // listening
	return func() {
		_ = cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			b.Logf("tcpdump: %v", err)
		}
		b.Logf("BGP traffic of %s in %s", h.Name, out)
	}
}

// waitSessions waits until the node's speaker has want Established sessions.
func waitSessions(b *testing.B, f *fleet.Fleet, key string, want int) {
	deadline := time.Now().Add(setupWait)
	for {
		est, summary := sessions(f, []string{key})
		if est[key] == want && summary == "" {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: %d established sessions after %s, want %d:\n%s", key, est[key], setupWait, want, summary)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitBirdRoutes waits until BIRD has originated every route (its static protocol).
func waitBirdRoutes(b *testing.B, bd *lab.Bird, want int) {
	deadline := time.Now().Add(setupWait)
	for {
		out, err := bd.Birdc("show", "route", "protocol", "originated", "count")
		if err == nil && strings.HasPrefix(strings.TrimSpace(out), fmt.Sprintf("%d of ", want)) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("BIRD has not originated %d routes after %s: %v %s", want, setupWait, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitRoutes waits until the watch has seen want routes; it returns the time from the
// first to the last.
func waitRoutes(b *testing.B, what string, changed <-chan struct{}, w *routeWatch, want int, timeout time.Duration) time.Duration {
	ok, err := waitFor(changed, timeout, []*routeWatch{w}, func() bool { return w.size() >= want })
	if err != nil {
		b.Fatalf("%s: %v", what, err)
	}
	n, first, last := w.count()
	if !ok {
		b.Fatalf("%s: %d of %d routes in the kernel after %s", what, n, want, timeout)
	}
	return last.Sub(first)
}

// verifyRoutes reads the kernel: every route there via gw with protocol proto, no other.
func verifyRoutes(b *testing.B, what string, h *lab.Host, routes []netip.Prefix, gw netip.Addr, proto netlink.RouteProtocol) {
	got, err := kernelRoutes(h.NSPath, routesRange)
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range routes {
		rt, ok := got[p]
		if !ok || rt.Type != unix.RTN_UNICAST || routeGw(rt) != gw || rt.Protocol != proto {
			b.Fatalf("%s: %s has %v for %s; want a route via %s proto %d", what, h.Name, rt, p, gw, proto)
		}
	}
	if len(got) != len(routes) {
		b.Fatalf("%s: %s has %d routes in %s, want %d", what, h.Name, len(got), routesRange, len(routes))
	}
}

func (r *routesResult) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bgp route programming: %d routes a BIRD 2 ToR announces (iBGP), into one kernel (the ToR's event loop woken every %s)\n", r.routes, torWake)
	const cols = "  %-39s %8s  %8s  %9s   %8s %8s %9s\n"
	fmt.Fprintf(&b, "  %-39s %-18s  %-9s   %s\n", "", "first route ->", "session", "CPU meanwhile:")
	fmt.Fprintf(&b, cols, "", "99%", "all", "up -> all", "receiver", "ToR", "benchmark")
	sec := func(d time.Duration) string { return fmt.Sprintf("%.3f s", secs(d)) }
	row := func(name string, p programRun) {
		fmt.Fprintf(&b, cols, name, sec(p.firstP99), sec(p.firstLast), sec(p.fromStart), sec(p.cpu), sec(p.torCPU), sec(p.watchCPU))
	}
	row(fmt.Sprintf("(e)  nodenet-agent, %d sessions", r.peers), r.agent)
	row("(e1) nodenet-agent, 1 session", r.solo)
	fmt.Fprintf(&b, "  %-39s %8s  %8s  (the ip process: %s)\n", "(f)  ip -batch (fresh namespace)",
		sec(r.batchP99), sec(r.batchFirstLast), sec(r.batchProcess))
	row("(g)  BIRD 2 (kernel export, learn off)", r.bird)
	ratio := func(x, y time.Duration) float64 { return secs(x) / secs(y) }
	ef, e1f := ratio(r.agent.firstLast, r.batchFirstLast), ratio(r.solo.firstLast, r.batchFirstLast)
	fmt.Fprintf(&b, "  all:  (e)/(f) = %5.2fx [target <= 2x: %s]  (e1)/(f) = %5.2fx  (g)/(f) = %5.2fx   (e)/(g) = %5.2fx  (e1)/(g) = %5.2fx\n",
		ef, metTag(ef <= 2), e1f, ratio(r.bird.firstLast, r.batchFirstLast), ratio(r.agent.firstLast, r.bird.firstLast), ratio(r.solo.firstLast, r.bird.firstLast))
	ef, e1f = ratio(r.agent.firstP99, r.batchP99), ratio(r.solo.firstP99, r.batchP99)
	fmt.Fprintf(&b, "  99%%:  (e)/(f) = %5.2fx [target <= 2x: %s]  (e1)/(f) = %5.2fx  (g)/(f) = %5.2fx   (e)/(g) = %5.2fx  (e1)/(g) = %5.2fx\n",
		ef, metTag(ef <= 2), e1f, ratio(r.bird.firstP99, r.batchP99), ratio(r.agent.firstP99, r.bird.firstP99), ratio(r.solo.firstP99, r.bird.firstP99))
	fmt.Fprintf(&b, "  agent resident memory (VmRSS): %d mesh peers, no routes: %.1f MiB; %d peers, %d routes: %.1f MiB (%s later: %.1f MiB)\n",
		r.meshPeers, mib(r.rssBefore), r.established, r.routes, mib(r.rssAfter), rssSettle, mib(r.rssSettled))
	return b.String()
}
