package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// The link every way builds: the multi-cluster write-up's (seed 002) device, VNI, port and
// overlay, across three clusters whose pod CIDRs are the write-up's. devName, vni and
// vxlanPort are bench_test.go's, which are the write-up's too.
const (
	linkClusterCount = 3
	linkOverlay      = "179.17.1.0/24"
	linkName         = "bench"
	// linkMaxNodes per cluster: a node's block is the /24 number 64+i of its cluster's /18.
	linkMaxNodes = 64
)

// linkPodCIDR is cluster c's (1-based) pod CIDR, as the write-up's: 10.234.64.0/18, ...
func linkPodCIDR(c int) string { return fmt.Sprintf("10.%d.64.0/18", 233+c) }

// linkServiceCIDR is cluster c's service CIDR, as the write-up's: 10.234.0.0/18, ...
func linkServiceCIDR(c int) string { return fmt.Sprintf("10.%d.0.0/18", 233+c) }

// linkHosts are the lab hosts of a link of three clusters of n nodes: cluster c's node i is
// "c<c>-node-<iii>" of cluster "test-cluster<c>", underlay 10.99.<c>.<i>/16, with a pod
// behind it in its block 10.<233+c>.<63+i>.0/24 (the pods are what the ping crosses between).
func linkHosts(n int) []lab.HostSpec {
	var out []lab.HostSpec
	for c := 1; c <= linkClusterCount; c++ {
		for i := 1; i <= n; i++ {
			out = append(out, lab.HostSpec{
				Cluster:    fmt.Sprintf("test-cluster%d", c),
				Name:       fmt.Sprintf("c%d-node-%03d", c, i),
				UnderlayIP: netip.MustParsePrefix(fmt.Sprintf("10.99.%d.%d/16", c, i)),
				PodCIDR:    netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", 233+c, 63+i)),
			})
		}
	}
	return out
}

// linkNode is one lab host of the link with everything the ways need about it.
type linkNode struct {
	h        *lab.Host
	key      string // "test-cluster1/c1-node-001"
	cluster  string
	underlay string // 10.99.1.1
	overlay  string // 179.17.1.1 (without prefix length)
	mac      string // the MAC the agents derive, so that every way sets the same one
	block    string // 10.234.64.0/24
}

// linkNodesOf gives every host its overlay address as the link's planner does for a new link:
// the lowest free host address of the overlay, in the order of the "<cluster>/<node>" keys.
// The checks after terraform apply hold the other ways to the same addresses.
func linkNodesOf(l *lab.Lab) []*linkNode {
	var out []*linkNode
	for _, h := range l.Hosts {
		out = append(out, &linkNode{
			h:        h,
			key:      h.Cluster + "/" + h.Name,
			cluster:  h.Cluster,
			underlay: h.UnderlayIP.Addr().String(),
			mac:      pb.DeriveMAC(h.Cluster, h.Name, devName),
			block:    h.PodCIDR.Masked().String(),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	a := netip.MustParsePrefix(linkOverlay).Addr()
	for _, nd := range out {
		a = a.Next()
		nd.overlay = a.String()
	}
	return out
}

// linkResult is one run's timings.
type linkResult struct {
	n, nodes             int
	entries, deviceCmds  int
	apply, plan, destroy time.Duration
	seed                 time.Duration
	batchSeq, batchPar   time.Duration
	labUp, checkAll      time.Duration
	// linkDel is `ip link del` of the device on every node, one after another: the kernel's
	// part of a destroy.
	linkDel time.Duration
	// probing and idle are the CPU time a second of this process (the lab's agents run in it)
	// with the link up (its health checks running), and after destroy.
	probing, idle time.Duration
}

func (r *linkResult) cmds() int { return r.entries + r.deviceCmds }

func (r *linkResult) table() string {
	var b strings.Builder
	cBest := min(r.batchSeq, r.batchPar)
	fmt.Fprintf(&b, "cluster link of %d clusters x %d nodes (%d nodes; %d entries + %d device commands)\n",
		linkClusterCount, r.n, r.nodes, r.entries, r.deviceCmds)
	fmt.Fprintf(&b, "  blocks_from = \"static\" (no API server), snat_exemption = \"none\" (no kubectl step either way)\n")
	fmt.Fprintf(&b, "  (a) terraform apply from empty      %6.2f s\n", secs(r.apply))
	fmt.Fprintf(&b, "  (b) the seed's commands, one each   %6.2f s   (%.1f ms per command, %d commands)\n",
		secs(r.seed), float64(r.seed.Microseconds())/1000/float64(r.cmds()), r.cmds())
	fmt.Fprintf(&b, "  (c) ip/bridge -batch per node       %6.2f s sequential, %.2f s %d at once\n", secs(r.batchSeq), secs(r.batchPar), parallelism)
	fmt.Fprintf(&b, "  (e) no-op terraform plan            %6.2f s\n", secs(r.plan))
	fmt.Fprintf(&b, "      (terraform destroy              %6.2f s;  ip link del on every node: %.2f s)\n", secs(r.destroy), secs(r.linkDel))
	fmt.Fprintf(&b, "      (the %d agents' CPU: %.0f ms a second with the link up and its health checks running, %.0f ms after destroy)\n",
		r.nodes, float64(r.probing.Microseconds())/1000, float64(r.idle.Microseconds())/1000)
	fmt.Fprintf(&b, "  ratios: (b)/(a) = %.1fx   (a)/(c best) = %.1fx   (e)/(a) = %.2f\n",
		secs(r.seed)/secs(r.apply), secs(r.apply)/secs(cBest), secs(r.plan)/secs(r.apply))
	return b.String()
}

// BenchmarkClusterLink is the benchmark of the issue "Multi-cluster pod networks:
// nodenet_cluster_link" (point 6): three clusters of NODENET_LINK_BENCH_NODES nodes (default
// 20) joined by a nodenet_cluster_link, (a) by terraform apply from empty and (e) the no-op
// plan after it, against (b) the seed's commands for the same entries, one process per
// command, as the write-up's operator runs them, and (c) ip/bridge -batch per node, the
// kernel's limit. Every way is checked on every node to have made exactly the link's device
// and entries, and a ping crosses from a pod of cluster 1 to pods of clusters 2 and 3.
//
// The blocks are given (blocks_from = "static"), so no API server runs; the SNAT exemption
// is "none": the write-up's other step, its disabled Calico IPPools, is a kubectl apply in
// each cluster (snat_exemption = "calico"), which would need three API servers on both
// sides, and the agents' "nodenet" exemption adds an nftables table the write-up has no
// command for. With "none" both sides do the same work: the device and its entries.
//
// One iteration whatever b.N says: run it with -benchtime 1x. Timings are wall clock; no
// timing is asserted.
func BenchmarkClusterLink(b *testing.B) {
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
	n := envInt(b, "NODENET_LINK_BENCH_NODES", 20, 2, linkMaxNodes)
	rc := providerRC(b, b.TempDir())
	var r *linkResult
	b.Run(fmt.Sprintf("clusters=%d,nodes=%d", linkClusterCount, n), func(b *testing.B) {
		r = runLink(b, n, tf, rc)
	})
	if r != nil {
		report(b, r.table())
	}
}

// runLink runs every way on a fresh lab of three clusters of n nodes; nil when it failed.
func runLink(b *testing.B, n int, tf, rc string) *linkResult {
	ctx := context.Background()
	dir := b.TempDir()
	start := time.Now()
	l, err := lab.Up(ctx, lab.Options{Dir: filepath.Join(dir, "lab"), Hosts: linkHosts(n), Start: lab.InProcessAgent("bench")})
	if err != nil {
		b.Fatalf("lab up: %v", err)
	}
	b.Cleanup(func() {
		if err := l.Down(); err != nil {
			b.Errorf("lab down: %v", err)
		}
	})
	if err := staticUnderlayNeighbors(l); err != nil {
		b.Fatal(err)
	}
	nodes := linkNodesOf(l)
	r := &linkResult{n: n, nodes: len(nodes), labUp: time.Since(start)}
	b.Logf("lab of %d nodes (and their pods) up in %.1f s (%s)", len(nodes), secs(r.labUp), l.Dir)
	for _, c := range seedCommands(nodes) {
		if c[0] == "bridge" || c[3] == "neigh" || c[3] == "route" {
			r.entries++
		} else {
			r.deviceCmds++
		}
	}
	if want := len(nodes) * (2*(len(nodes)-1) + (len(nodes) - n)); r.entries != want {
		b.Fatalf("internal: %d entries, expected %d", r.entries, want)
	}
	// The pings: from the pod behind cluster 1's first node to the pods behind the last nodes
	// of clusters 2 and 3.
	from := nodes[0]
	to := []*linkNode{nodes[2*n-1], nodes[3*n-1]}
	expectNoLink(b, "before (a)", nodes)

	// (a) terraform apply from empty, the pings, (e) the no-op plan, destroy.
	tfDir := filepath.Join(dir, "tf")
	writeFile(b, filepath.Join(tfDir, "main.tf"), linkTerraformConfig(l, nodes))
	terraform := func(args ...string) (time.Duration, int, string) {
		cmd := exec.Command(tf, args...)
		cmd.Dir = tfDir
		cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
		if logDir := os.Getenv("NODENET_BENCH_TF_LOG_DIR"); logDir != "" {
			// For finding where terraform's time goes; trace logging slows it down.
			cmd.Env = append(cmd.Env, "TF_LOG=trace", "TF_LOG_PATH="+filepath.Join(logDir, fmt.Sprintf("link-%dx%d-%s.log", linkClusterCount, n, args[0])))
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
	d, code, out := terraform("apply", "-auto-approve", "-input=false", "-no-color")
	if code != 0 {
		b.Fatalf("(a) terraform apply exited %d:\n%s", code, out)
	}
	r.apply = d
	start = time.Now()
	expectLink(b, "(a) terraform apply", nodes, n)
	r.checkAll = time.Since(start)
	linkPings(b, "(a) terraform apply", from, to)
	r.probing = cpuPerSecond(b)
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
	expectNoLink(b, "after terraform destroy", nodes)
	r.idle = cpuPerSecond(b)

	// (b) the seed's commands, one process each, sequentially, as the write-up's operator
	// runs them on every node in turn.
	cmds := seedCommands(nodes)
	start = time.Now()
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("(b) %s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	r.seed = time.Since(start)
	expectLink(b, "(b) the seed's commands", nodes, n)
	linkPings(b, "(b) the seed's commands", from, to)
	r.linkDel = removeLinkDevices(b, nodes)

	// (c) one ip batch and one bridge batch per node, sequentially and 16 nodes at once.
	batchDir := filepath.Join(dir, "batch")
	jobs := linkBatches(b, batchDir, nodes)
	r.batchSeq = runJobs(b, jobs, 1)
	expectLink(b, "(c) ip/bridge -batch, sequential", nodes, n)
	removeLinkDevices(b, nodes)
	r.batchPar = runJobs(b, jobs, parallelism)
	expectLink(b, fmt.Sprintf("(c) ip/bridge -batch, %d at once", parallelism), nodes, n)
	linkPings(b, "(c) ip/bridge -batch", from, to)
	removeLinkDevices(b, nodes)
	b.Logf("checking every node's device and entries took %.2f s per way", secs(r.checkAll))

	b.ReportMetric(secs(r.apply), "s-tf-apply")
	b.ReportMetric(secs(r.seed), "s-seed-cmds")
	b.ReportMetric(float64(r.seed.Microseconds())/1000/float64(r.cmds()), "ms/cmd")
	b.ReportMetric(secs(r.batchSeq), "s-batch-seq")
	b.ReportMetric(secs(r.batchPar), "s-batch-par16")
	b.ReportMetric(secs(r.plan), "s-tf-noop-plan")
	b.ReportMetric(secs(r.destroy), "s-tf-destroy")
	b.ReportMetric(float64(r.probing.Microseconds())/1000, "ms-cpu/s-health-checks")
	b.ReportMetric(secs(r.seed)/secs(r.apply), "x-b/a")
	b.ReportMetric(secs(r.apply)/secs(min(r.batchSeq, r.batchPar)), "x-a/c")
	return r
}

// staticUnderlayNeighbors gives every lab host a permanent neighbour entry for every other
// host's underlay address. The lab's hosts share one kernel, whose neighbour table holds at
// most gc_thresh3 (1024 by default, for the whole machine) entries the kernel may collect;
// the link's health checks have every node send to every other node through VXLAN once a
// second, so every node resolves every other node's underlay address: 3,540 entries at 60
// nodes. Past the limit no namespace of the machine gets a new entry (a host's for the pod
// behind it, another test's), and packets that need one are dropped: pods did not reach
// each other after apply. Permanent entries do not count against the limit, and hold what
// each node's own kernel would resolve.
func staticUnderlayNeighbors(l *lab.Lab) error {
	handle := func(h *lab.Host) (*netlink.Handle, error) {
		ns, err := netns.GetFromPath(h.NSPath)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", h.NS, err)
		}
		defer ns.Close()
		return netlink.NewHandleAt(ns)
	}
	underlay := map[*lab.Host]netlink.Link{}
	for _, h := range l.Hosts {
		nh, err := handle(h)
		if err != nil {
			return err
		}
		eth, err := nh.LinkByName(h.Underlay)
		nh.Close()
		if err != nil {
			return fmt.Errorf("%s: %s: %w", h.NS, h.Underlay, err)
		}
		underlay[h] = eth
	}
	for _, h := range l.Hosts {
		nh, err := handle(h)
		if err != nil {
			return err
		}
		for _, o := range l.Hosts {
			if o == h {
				continue
			}
			if err := nh.NeighSet(&netlink.Neigh{
				LinkIndex: underlay[h].Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
				IP: o.UnderlayIP.Addr().AsSlice(), HardwareAddr: underlay[o].Attrs().HardwareAddr,
			}); err != nil {
				nh.Close()
				return fmt.Errorf("%s: neighbour %s: %w", h.NS, o.UnderlayIP.Addr(), err)
			}
		}
		nh.Close()
	}
	return nil
}

// cpuPerSecond is this process's CPU time (user and system) over two seconds, halved.
func cpuPerSecond(b *testing.B) time.Duration {
	before, err := cpuTime(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	after, err := cpuTime(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	return (after - before) / 2
}

// linkTerraformConfig is the lab's provider block (every node with its agent and underlay
// address, by cluster) and one link of the three clusters, each node's block given.
func linkTerraformConfig(l *lab.Lab, nodes []*linkNode) string {
	var b strings.Builder
	b.WriteString("terraform {\n  required_providers {\n    nodenet = { source = \"nodenet/nodenet\" }\n  }\n}\n\n")
	b.WriteString(l.ProviderHCL())
	fmt.Fprintf(&b, "\nresource \"nodenet_cluster_link\" \"bench\" {\n  name = %q\n  clusters = {\n", linkName)
	for c := 1; c <= linkClusterCount; c++ {
		cluster := fmt.Sprintf("test-cluster%d", c)
		fmt.Fprintf(&b, "    %q = {\n      pod_cidr     = %q\n      service_cidr = %q\n      blocks_from  = \"static\"\n      blocks = {\n",
			cluster, linkPodCIDR(c), linkServiceCIDR(c))
		for _, nd := range nodes {
			if nd.cluster == cluster {
				fmt.Fprintf(&b, "        %q = [%q]\n", nd.h.Name, nd.block)
			}
		}
		b.WriteString("      }\n    }\n")
	}
	fmt.Fprintf(&b, "  }\n  device         = %q\n  vni            = %d\n  port           = %d\n  overlay_cidr   = %q\n  snat_exemption = \"none\"\n}\n",
		devName, vni, vxlanPort, linkOverlay)
	return b.String()
}

// The seed's commands, as ip/bridge arguments (after "ip -n NS" or "bridge -n NS"). The
// write-up's `arp -s <ip> <mac>` and `route add -net <block> gw <ip> dev vxlan-test` are
// written in their iproute2 form: arp and route have no option for a namespace, and `ip netns
// exec NS arp ...` would add a mount of sysfs per command, a cost of the lab and not of the
// operator's machine. `neigh replace ... nud permanent` is what `arp -s` does.

// linkDeviceArgs make a node's device, in the write-up's order.
func linkDeviceArgs(nd *linkNode) [][]string {
	return [][]string{
		{"link", "add", devName, "type", "vxlan", "id", fmt.Sprint(vni), "dstport", fmt.Sprint(vxlanPort), "local", nd.underlay, "dev", nd.h.Underlay, "nolearning"},
		{"link", "set", "dev", devName, "address", nd.mac},
		{"addr", "add", nd.overlay + "/24", "dev", devName},
		{"link", "set", devName, "up"},
	}
}

func linkNeighArgs(o *linkNode) []string {
	return []string{"neigh", "replace", o.overlay, "lladdr", o.mac, "dev", devName, "nud", "permanent"}
}

// seedCommands are (b)'s commands in the write-up's order: on each node its device, then an
// ARP entry for every other node, an FDB entry for every other node, and a route to the
// block of every node of the other clusters.
func seedCommands(nodes []*linkNode) [][]string {
	var out [][]string
	for _, nd := range nodes {
		ipc := func(args []string) []string { return append([]string{"ip", "-n", nd.h.NS}, args...) }
		for _, c := range linkDeviceArgs(nd) {
			out = append(out, ipc(c))
		}
		for _, o := range nodes {
			if o != nd {
				out = append(out, ipc(linkNeighArgs(o)))
			}
		}
		for _, o := range nodes {
			if o != nd {
				out = append(out, append([]string{"bridge", "-n", nd.h.NS}, fdbArgs(o.mac, o.underlay)...))
			}
		}
		for _, o := range nodes {
			if o.cluster != nd.cluster {
				out = append(out, ipc(routeArgs(o.block, o.overlay)))
			}
		}
	}
	return out
}

// linkBatches writes every node's ip and bridge batch files and returns each node's two
// commands.
func linkBatches(b *testing.B, dir string, nodes []*linkNode) [][][]string {
	var jobs [][][]string
	for _, nd := range nodes {
		var ipb, brb strings.Builder
		for _, c := range linkDeviceArgs(nd) {
			ipb.WriteString(strings.Join(c, " ") + "\n")
		}
		for _, o := range nodes {
			if o != nd {
				ipb.WriteString(strings.Join(linkNeighArgs(o), " ") + "\n")
				brb.WriteString(strings.Join(fdbArgs(o.mac, o.underlay), " ") + "\n")
			}
			if o.cluster != nd.cluster {
				ipb.WriteString(strings.Join(routeArgs(o.block, o.overlay), " ") + "\n")
			}
		}
		ipf, brf := filepath.Join(dir, nd.h.Name+".ip"), filepath.Join(dir, nd.h.Name+".bridge")
		writeFile(b, ipf, ipb.String())
		writeFile(b, brf, brb.String())
		jobs = append(jobs, [][]string{{"ip", "-n", nd.h.NS, "-batch", ipf}, {"bridge", "-n", nd.h.NS, "-batch", brf}})
	}
	return jobs
}

// expectLink fails unless every node has exactly the link's device (VNI, port, local address,
// lower device, no learning, MAC, MTU, up, overlay address) and entries: an FDB entry and a
// permanent neighbour for every other node, a route to the block of every node of the other
// clusters, and no other FDB entry with a destination, IPv4 neighbour or route on the device.
// Every node is read, at every size: about 5 processes a node, well under a second at 60.
func expectLink(b *testing.B, way string, nodes []*linkNode, n int) {
	b.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
	)
	sem := make(chan struct{}, 4)
	for _, nd := range nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			got, ok, err := linkEntriesOf(nd)
			var msg string
			switch want := wantLinkEntries(nd, nodes); {
			case err != nil:
				msg = fmt.Sprintf("%s: %v", nd.key, err)
			case !ok:
				msg = fmt.Sprintf("%s has no device %s", nd.key, devName)
			case got != want:
				msg = fmt.Sprintf("%s has other than the link's device and entries (%d FDB entries and neighbours, %d routes wanted):\n--- got\n%s\n--- want\n%s",
					nd.key, len(nodes)-1, len(nodes)-n, got, want)
			}
			if msg != "" {
				mu.Lock()
				errs = append(errs, msg)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		sort.Strings(errs)
		if len(errs) > 3 {
			errs = append(errs[:3], fmt.Sprintf("... and %d more nodes", len(errs)-3))
		}
		b.Fatalf("%s:\n%s", way, strings.Join(errs, "\n"))
	}
}

// wantLinkEntries are nd's device and entries in the form linkEntriesOf reads them.
func wantLinkEntries(nd *linkNode, nodes []*linkNode) string {
	dev := []string{
		fmt.Sprintf("device vxlan id %d port %d local %s link %s learning false", vni, vxlanPort, nd.underlay, nd.h.Underlay),
		fmt.Sprintf("device mac %s mtu %d up", nd.mac, nd.h.MTU-50),
		"device addr " + nd.overlay + "/24",
	}
	var fdb, neigh, routes []string
	for _, o := range nodes {
		if o == nd {
			continue
		}
		fdb = append(fdb, "fdb "+o.mac+" dst "+o.underlay)
		neigh = append(neigh, "neigh "+o.overlay+" lladdr "+o.mac+" PERMANENT")
		if o.cluster != nd.cluster {
			routes = append(routes, "route "+o.block+" via "+o.overlay)
		}
	}
	return joinSorted(dev, fdb, neigh, routes)
}

// linkDevice is what expectLink compares of `ip -d -j link show`.
type linkDevice struct {
	Flags    []string `json:"flags"`
	MTU      int      `json:"mtu"`
	Address  string   `json:"address"`
	LinkInfo struct {
		Kind string `json:"info_kind"`
		Data struct {
			ID       int    `json:"id"`
			Local    string `json:"local"`
			Link     string `json:"link"`
			Port     int    `json:"port"`
			Learning bool   `json:"learning"`
		} `json:"info_data"`
	} `json:"linkinfo"`
	AddrInfo []struct {
		Family    string `json:"family"`
		Local     string `json:"local"`
		PrefixLen int    `json:"prefixlen"`
	} `json:"addr_info"`
}

// linkEntriesOf reads nd's device, its FDB entries with a destination, its IPv4 neighbours
// and its routes with a gateway (ok false: no device).
func linkEntriesOf(nd *linkNode) (entries string, ok bool, err error) {
	ns := nd.h.NS
	out, err := exec.Command("ip", "-n", ns, "-d", "-j", "link", "show", "dev", devName).Output()
	if err != nil {
		return "", false, nil
	}
	var links, addrs []linkDevice
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return "", true, fmt.Errorf("ip -d -j link show dev %s: %v: %s", devName, err, out)
	}
	if out, err = exec.Command("ip", "-n", ns, "-j", "addr", "show", "dev", devName).Output(); err != nil {
		return "", true, fmt.Errorf("ip addr show dev %s: %v", devName, err)
	}
	if err := json.Unmarshal(out, &addrs); err != nil || len(addrs) != 1 {
		return "", true, fmt.Errorf("ip -j addr show dev %s: %v: %s", devName, err, out)
	}
	l, vx := links[0], links[0].LinkInfo.Data
	up := "down"
	for _, f := range l.Flags {
		if f == "UP" {
			up = "up"
		}
	}
	dev := []string{
		fmt.Sprintf("device %s id %d port %d local %s link %s learning %t", l.LinkInfo.Kind, vx.ID, vx.Port, vx.Local, vx.Link, vx.Learning),
		fmt.Sprintf("device mac %s mtu %d %s", l.Address, l.MTU, up),
	}
	for _, a := range addrs[0].AddrInfo {
		if a.Family == "inet" {
			dev = append(dev, fmt.Sprintf("device addr %s/%d", a.Local, a.PrefixLen))
		}
	}
	var fdb, neigh, routes []string
	lines, err := outLines("bridge", "-n", ns, "fdb", "show", "dev", devName)
	if err != nil {
		return "", true, err
	}
	for _, ln := range lines {
		if f := strings.Fields(ln); len(f) >= 3 && f[1] == "dst" {
			fdb = append(fdb, "fdb "+f[0]+" dst "+f[2])
		}
	}
	if lines, err = outLines("ip", "-n", ns, "-4", "neigh", "show", "dev", devName); err != nil {
		return "", true, err
	}
	for _, ln := range lines {
		f := strings.Fields(ln)
		if len(f) >= 4 && f[1] == "lladdr" {
			neigh = append(neigh, "neigh "+f[0]+" lladdr "+f[2]+" "+f[len(f)-1])
		} else {
			neigh = append(neigh, "neigh "+ln)
		}
	}
	if lines, err = outLines("ip", "-n", ns, "route", "show", "dev", devName); err != nil {
		return "", true, err
	}
	for _, ln := range lines {
		if f := strings.Fields(ln); len(f) >= 3 && f[1] == "via" {
			routes = append(routes, "route "+f[0]+" via "+f[2])
		}
	}
	return joinSorted(dev, fdb, neigh, routes), true, nil
}

// expectNoLink fails if any node has the device.
func expectNoLink(b *testing.B, when string, nodes []*linkNode) {
	b.Helper()
	for _, nd := range nodes {
		if err := exec.Command("ip", "-n", nd.h.NS, "link", "show", "dev", devName).Run(); err == nil {
			b.Fatalf("%s: %s still has %s", when, nd.key, devName)
		}
	}
}

// removeLinkDevices deletes the device on every node, one after another (its entries go with
// it), and returns how long that took.
func removeLinkDevices(b *testing.B, nodes []*linkNode) time.Duration {
	start := time.Now()
	for _, nd := range nodes {
		if out, err := exec.Command("ip", "-n", nd.h.NS, "link", "del", devName).CombinedOutput(); err != nil {
			b.Fatalf("ip -n %s link del %s: %v: %s", nd.h.NS, devName, err, out)
		}
	}
	d := time.Since(start)
	expectNoLink(b, "after removing the devices", nodes)
	return d
}

// linkPings pings from the pod behind from to the pods behind the others, across the link
// (a couple of lost first packets allowed).
func linkPings(b *testing.B, way string, from *linkNode, to []*linkNode) {
	b.Helper()
	for _, o := range to {
		var err error
		for try := 0; try < 3; try++ {
			var out string
			if out, err = from.h.RunPod("ping", "-c", "1", "-W", "2", o.h.PodIP.String()); err == nil && strings.Contains(out, "1 received") {
				break
			} else if err == nil {
				err = fmt.Errorf("no answer: %s", out)
			}
		}
		if err != nil {
			b.Fatalf("%s: ping from the pod behind %s (%s) to the pod behind %s (%s): %v", way, from.key, from.h.PodIP, o.key, o.h.PodIP, err)
		}
	}
}
