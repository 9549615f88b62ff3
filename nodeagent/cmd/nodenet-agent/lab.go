package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nodenet/terraform-provider-nodenet/internal/atomicfile"

	"github.com/vishvananda/netns"
	"google.golang.org/grpc"

	"github.com/nodenet/terraform-provider-nodenet/internal/pki"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// labRecord is <dir>/lab.json: what the other lab commands need after `lab up` exited.
type labRecord struct {
	Dir            string       `json:"dir"`
	Prefix         string       `json:"prefix"`
	CAFile         string       `json:"ca_file"`
	ClientCertFile string       `json:"client_cert_file"`
	ClientKeyFile  string       `json:"client_key_file"`
	Hosts          []labHostRec `json:"hosts"`
}

// labHostRec is one host; the paths are what `lab start` needs to run its agent again.
type labHostRec struct {
	Cluster      string `json:"cluster"`
	Name         string `json:"name"`
	NS           string `json:"ns"`
	PodNS        string `json:"pod_ns,omitempty"`
	Underlay     string `json:"underlay_ip"`
	AgentAddr    string `json:"agent_addr"`
	PID          int    `json:"pid"`
	LogFile      string `json:"log_file"`
	NetnsPath    string `json:"netns_path"`
	StateDir     string `json:"state_dir"`
	BootIDFile   string `json:"boot_id_file"`
	CertFile     string `json:"cert_file"`
	KeyFile      string `json:"key_file"`
	ClientCAFile string `json:"client_ca_file"`
	CNIConfDir   string `json:"cni_conf_dir,omitempty"`
	CNIDataDir   string `json:"cni_data_dir,omitempty"`
}

const labFile = "lab.json"

type labCommand struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) error
}

func labCommands() []labCommand {
	return []labCommand{
		{"up", "build the lab and start one agent per node (--scenario multicluster|mesh)", runLabUp},
		{"down", "stop the lab's agents (also ones started by hand) and delete its namespaces", runLabDown},
		{"status", "show each agent's address, PID, whether it runs, and what Info answers", runLabStatus},
		{"stop", "stop one node's agent (--node NAME); the node's kernel state is left as is", runLabStop},
		{"start", "start one node's agent again on its address (--node NAME; --reboot: as after a reboot)", runLabStart},
	}
}

func labUsage(w io.Writer) {
	fmt.Fprintf(w, `Usage: nodenet-agent lab <subcommand> [flags]

A lab on this machine (needs root): one network namespace per node on a shared underlay
bridge, a CA, and one nodenet-agent per node listening on 127.0.0.1. What it made is
recorded in <dir>/lab.json (--dir, default .lab) for the other subcommands.

Subcommands:
`)
	for _, c := range labCommands() {
		fmt.Fprintf(w, "  %-7s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'nodenet-agent lab <subcommand> -h' for its flags.\n")
}

func runLab(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		labUsage(stderr)
		return errUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		labUsage(stdout)
		return nil
	}
	for _, c := range labCommands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "nodenet-agent lab: unknown subcommand %q\n\n", args[0])
	labUsage(stderr)
	return errUsage
}

// writeScenarios describes the nodes of each scenario, taken from the lab's own
// definitions so the help cannot drift from what `lab up` makes.
func writeScenarios(w io.Writer) {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { fmt.Fprintf(tw, "    %s\n", strings.Join(cells, "\t")) }
	host := func(h lab.HostSpec, note ...string) {
		pods := "-"
		if h.PodCIDR.IsValid() {
			pods = h.PodCIDR.String()
		}
		row(append([]string{h.Cluster, h.Name, h.UnderlayIP.String(), pods}, note...)...)
	}
	mc := lab.Multicluster("")
	clusters := map[string]bool{}
	for _, h := range mc.Hosts {
		clusters[h.Cluster] = true
	}
	fmt.Fprintf(tw, "  multicluster (default): %d nodes in %d clusters, each with a pod (address .2 of its pod CIDR)\n", len(mc.Hosts), len(clusters))
	row("CLUSTER", "NODE", "UNDERLAY", "POD CIDR")
	for _, h := range mc.Hosts {
		host(h)
	}
	const shown, big = 3, 300
	mesh, large := lab.Mesh("", shown), lab.Mesh("", big)
	fmt.Fprintf(tw, "  mesh: --nodes N nodes of cluster %s without pods; node i (i = 1..N) is named and addressed\n", mesh.Hosts[0].Cluster)
	fmt.Fprintf(tw, "  as the i-th line of this list:\n")
	for _, h := range mesh.Hosts {
		host(h)
	}
	row("", "...", "", "")
	host(large.Hosts[big-1], fmt.Sprintf("(i = %d)", big))
	tw.Flush()
	for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		fmt.Fprintln(w, strings.TrimRight(line, " ")) // tabwriter pads the empty cells of "..."
	}
}

func runLabUp(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("lab up", stderr)
	dir := fs.String("dir", ".lab", "lab work directory")
	scenario := fs.String("scenario", "multicluster", "multicluster or mesh (see Scenarios)")
	nodes := fs.Int("nodes", 3, "number of nodes (mesh only)")
	prefix := fs.String("prefix", "", "prefix of the lab's namespace names, at least 4 characters (default nnup<pid>-)")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: nodenet-agent lab up [--scenario multicluster|mesh] [--nodes N] [--dir D] [--prefix P]\n\n")
		fmt.Fprintf(w, "Builds the lab (needs root) and starts one agent per node, detached; writes <dir>/lab.json\n")
		fmt.Fprintf(w, "and <dir>/provider.tf (the provider block for the lab). Remove it with `lab down`.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(w, "\nScenarios:\n")
		writeScenarios(w)
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return fmt.Errorf("lab up: --dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(abs, labFile)); err == nil {
		return fmt.Errorf("lab up: %s already exists; run `nodenet-agent lab down --dir %s` first", filepath.Join(abs, labFile), *dir)
	}
	o, err := scenarioOptions(*scenario, *nodes, abs)
	if err != nil {
		return fmt.Errorf("lab up: %w", err)
	}
	if o.Prefix, err = labPrefix(*prefix); err != nil {
		return fmt.Errorf("lab up: %w", err)
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("lab up: finding this binary to run the agents: %w", err)
	}
	agents := &detachedAgents{binary: bin, pids: map[string]int{}}
	o.Start = agents.start
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	l, err := lab.Up(ctx, o)
	if err != nil {
		return fmt.Errorf("lab up: %w", err)
	}
	rec := newLabRecord(l, agents.pids)
	if err := writeLab(l.Dir, rec); err != nil {
		return errors.Join(fmt.Errorf("lab up: %w", err), l.Down())
	}
	if err := atomicfile.Write(filepath.Join(l.Dir, "provider.tf"), []byte(l.ProviderHCL()), 0o644); err != nil {
		return errors.Join(fmt.Errorf("lab up: %w", err), l.Down())
	}
	fmt.Fprintf(stdout, "lab %s up in %s (namespace prefix %s)\n", *scenario, l.Dir, l.Prefix)
	for _, h := range rec.Hosts {
		fmt.Fprintf(stdout, "  %-14s %-24s underlay %-18s ns %-16s agent %s (pid %d)\n", h.Cluster, h.Name, h.Underlay, h.NS, h.AgentAddr, h.PID)
	}
	fmt.Fprintf(stdout, "provider block: %s\nstop with: nodenet-agent lab down --dir %s\n", filepath.Join(l.Dir, "provider.tf"), *dir)
	return nil
}

func scenarioOptions(scenario string, nodes int, dir string) (lab.Options, error) {
	switch scenario {
	case "multicluster":
		return lab.Multicluster(dir), nil
	case "mesh":
		if nodes < 1 {
			return lab.Options{}, errors.New("--nodes must be at least 1")
		}
		return lab.Mesh(dir, nodes), nil
	}
	return lab.Options{}, fmt.Errorf("unknown --scenario %q (want multicluster or mesh)", scenario)
}

// labPrefix picks the namespace prefix. Not lab's default "nnlab<pid>-": lab.CleanupStale
// deletes those once their pid is gone, and this process exits while the lab keeps running.
// A chosen prefix must not match namespaces that exist, since `lab down` deletes by prefix.
func labPrefix(prefix string) (string, error) {
	if prefix == "" {
		return fmt.Sprintf("nnup%d-", os.Getpid()), nil
	}
	if len(prefix) < 4 || strings.ContainsAny(prefix, "/\x00 ") {
		return "", fmt.Errorf("--prefix %q: give at least 4 characters without '/' or spaces", prefix)
	}
	ents, err := os.ReadDir(lab.NetnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("--prefix: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			return "", fmt.Errorf("--prefix %q: namespace %s exists already and `lab down` would delete it; pick another prefix", prefix, e.Name())
		}
	}
	return prefix, nil
}

func newLabRecord(l *lab.Lab, pids map[string]int) *labRecord {
	rec := &labRecord{Dir: l.Dir, Prefix: l.Prefix, CAFile: l.CAFile, ClientCertFile: l.ClientCertFile, ClientKeyFile: l.ClientKeyFile}
	for _, h := range l.Hosts {
		rec.Hosts = append(rec.Hosts, labHostRec{Cluster: h.Cluster, Name: h.Name, NS: h.NS, PodNS: h.PodNS,
			Underlay: h.UnderlayIP.String(), AgentAddr: h.AgentAddr, PID: pids[h.Name], LogFile: h.LogFile,
			NetnsPath: h.NSPath, StateDir: h.StateDir, BootIDFile: h.BootIDFile, CertFile: h.CertFile, KeyFile: h.KeyFile,
			ClientCAFile: l.CAFile, CNIConfDir: h.CNIConfDir, CNIDataDir: h.CNIDataDir})
	}
	return rec
}

// writeLab replaces <dir>/lab.json atomically: other lab commands may read it meanwhile.
func writeLab(dir string, rec *labRecord) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, labFile), append(data, '\n'), 0o644)
}

func readLab(dir string) (*labRecord, error) {
	p := filepath.Join(dir, labFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no lab in %s (%s is missing); start one with `nodenet-agent lab up --dir %s`", dir, p, dir)
	}
	if err != nil {
		return nil, err
	}
	var rec labRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w; remove the lab's namespaces (prefix in the file) by hand", p, err)
	}
	for i := range rec.Hosts {
		rec.Hosts[i].fillLegacy(&rec)
	}
	return &rec, nil
}

// fillLegacy fills the paths an older lab.json lacks (from before `lab start`, or before the
// CNI configuration directory), from the layout labs had then.
func (h *labHostRec) fillLegacy(rec *labRecord) {
	hostDir := filepath.Join(rec.Dir, "hosts", h.Name)
	for _, f := range []struct {
		v   *string
		old string
	}{
		{&h.NetnsPath, filepath.Join(lab.NetnsDir, h.NS)},
		{&h.StateDir, filepath.Join(hostDir, "state")},
		{&h.BootIDFile, filepath.Join(hostDir, "boot_id")},
		{&h.CertFile, filepath.Join(rec.Dir, "pki", h.Name+".pem")},
		{&h.KeyFile, filepath.Join(rec.Dir, "pki", h.Name+"-key.pem")},
		{&h.ClientCAFile, rec.CAFile},
		// Before the CNI configuration directory was recorded: the lab's, never the
		// agent's default (the machine's /etc/cni/net.d).
		{&h.CNIConfDir, filepath.Join(hostDir, "cni", "net.d")},
		{&h.CNIDataDir, filepath.Join(hostDir, "cni", "ipam")},
	} {
		if *f.v == "" {
			*f.v = f.old
		}
	}
}

// host returns the record of node, or an error naming the lab's nodes.
func (rec *labRecord) host(node string) (*labHostRec, error) {
	var names []string
	for i := range rec.Hosts {
		if rec.Hosts[i].Name == node {
			return &rec.Hosts[i], nil
		}
		names = append(names, rec.Hosts[i].Name)
	}
	if node == "" {
		return nil, fmt.Errorf("--node is required; the lab's nodes: %s", strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("the lab in %s has no node %q; its nodes: %s", rec.Dir, node, strings.Join(names, ", "))
}

func runLabDown(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("lab down", stderr)
	dir := fs.String("dir", ".lab", "lab work directory")
	if err := parse(fs, args); err != nil {
		return err
	}
	rec, err := readLab(*dir)
	if err != nil {
		return fmt.Errorf("lab down: %w", err)
	}
	var procs []agentProc
	for _, h := range rec.Hosts {
		if !isAgent(h.PID, h.Name) {
			fmt.Fprintf(stdout, "agent %s (pid %d) is not running\n", h.Name, h.PID)
			continue
		}
		procs = append(procs, agentProc{pid: h.PID, node: h.Name, recorded: true})
	}
	// Agents started by hand (or by an older `lab start`) are ended too: they would keep
	// the namespaces' netlink sockets and the addresses of a lab that is gone.
	procs = append(procs, unrecordedAgents(rec, "")...)
	errs := stopAgents(procs, stdout)
	n, err := deleteNamespaces(rec.Prefix)
	if err != nil {
		errs = append(errs, err)
	}
	fmt.Fprintf(stdout, "deleted %d namespaces with prefix %s\n", n, rec.Prefix)
	if len(errs) > 0 {
		return fmt.Errorf("lab down: %w", errors.Join(errs...))
	}
	if err := os.Remove(filepath.Join(*dir, labFile)); err != nil {
		return fmt.Errorf("lab down: %w", err)
	}
	return nil
}

// deleteNamespaces deletes every named network namespace whose name starts with prefix.
func deleteNamespaces(prefix string) (int, error) {
	if len(prefix) < 4 {
		return 0, fmt.Errorf("refusing to delete namespaces by the short prefix %q; delete them with `ip netns delete`", prefix)
	}
	ents, err := os.ReadDir(lab.NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if err := netns.DeleteNamed(e.Name()); err != nil {
			errs = append(errs, fmt.Errorf("delete namespace %s: %w", e.Name(), err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func runLabStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("lab status", stderr)
	dir := fs.String("dir", ".lab", "lab work directory")
	if err := parse(fs, args); err != nil {
		return err
	}
	rec, err := readLab(*dir)
	if err != nil {
		return fmt.Errorf("lab status: %w", err)
	}
	fmt.Fprintf(stdout, "lab in %s (namespace prefix %s)\n", rec.Dir, rec.Prefix)
	var errs []error
	for _, h := range rec.Hosts {
		line := fmt.Sprintf("  %-14s %-24s ns %-16s agent %s pid %d %s", h.Cluster, h.Name, h.NS, h.AgentAddr, h.PID, runState(rec, h))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		info, err := agentInfo(ctx, rec, &h, false)
		cancel()
		if err != nil {
			line += ", Info failed: " + err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", h.Name, err))
		} else {
			line += fmt.Sprintf(", Info ok (version %s, kernel %s, %d interfaces)", info.GetAgentVersion(), info.GetKernelRelease(), len(info.GetInterfaces()))
		}
		fmt.Fprintln(stdout, line)
	}
	if len(errs) > 0 {
		return fmt.Errorf("lab status: %d of %d agents do not answer; restart one with `nodenet-agent lab start --node NAME --dir %s`", len(errs), len(rec.Hosts), *dir)
	}
	return nil
}

// runState is "running", or "NOT RUNNING" with the agents of the node that run unrecorded.
func runState(rec *labRecord, h labHostRec) string {
	if isAgent(h.PID, h.Name) {
		return "running"
	}
	var others []string
	for _, p := range unrecordedAgents(rec, h.Name) {
		others = append(others, fmt.Sprint(p.pid))
	}
	if len(others) > 0 {
		return fmt.Sprintf("NOT RUNNING (but pid %s runs this node's agent unrecorded)", strings.Join(others, ", "))
	}
	return "NOT RUNNING"
}

// agentInfo calls Info on the agent of h; wait makes it wait for the agent to listen.
func agentInfo(ctx context.Context, rec *labRecord, h *labHostRec, wait bool) (*pb.NodeInfo, error) {
	cc, err := dialAgent(dialOptions{addr: h.AgentAddr, ca: rec.CAFile, cert: rec.ClientCertFile, key: rec.ClientKeyFile,
		expect: pki.NodeURI(h.Cluster, h.Name)})
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	return pb.NewNodeAgentClient(cc).Info(ctx, &pb.InfoRequest{}, grpc.WaitForReady(wait))
}
