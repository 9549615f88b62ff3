package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nodenet/terraform-provider-nodenet/internal/atomicfile"

	"github.com/vishvananda/netns"

	"github.com/nodenet/terraform-provider-nodenet/internal/pki"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// labRecord is <dir>/lab.json: what `lab down` and `lab status` need after `lab up` exited.
type labRecord struct {
	Dir            string       `json:"dir"`
	Prefix         string       `json:"prefix"`
	CAFile         string       `json:"ca_file"`
	ClientCertFile string       `json:"client_cert_file"`
	ClientKeyFile  string       `json:"client_key_file"`
	Hosts          []labHostRec `json:"hosts"`
}

type labHostRec struct {
	Cluster   string `json:"cluster"`
	Name      string `json:"name"`
	NS        string `json:"ns"`
	PodNS     string `json:"pod_ns,omitempty"`
	Underlay  string `json:"underlay_ip"`
	AgentAddr string `json:"agent_addr"`
	PID       int    `json:"pid"`
	LogFile   string `json:"log_file"`
}

const labFile = "lab.json"

func runLab(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "Usage: nodenet-agent lab up|down|status [flags]")
		return errUsage
	}
	switch args[0] {
	case "up":
		return runLabUp(args[1:], stdout, stderr)
	case "down":
		return runLabDown(args[1:], stdout, stderr)
	case "status":
		return runLabStatus(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "nodenet-agent lab: unknown subcommand %q (want up, down or status)\n", args[0])
	return errUsage
}

// detachedAgents is a lab.StartAgent that runs `<binary> serve ...` detached (own process
// group, no parent-death signal) so the agents outlive `lab up`, and remembers their PIDs.
type detachedAgents struct {
	binary string
	mu     sync.Mutex
	pids   map[string]int // by node name
}

func (d *detachedAgents) start(cfg lab.AgentConfig) (func() error, error) {
	// No Pdeathsig: these agents outlive `lab up`; lab down ends them by PID.
	cmd, closeFiles, err := lab.AgentCommand(d.binary, cfg)
	if err != nil {
		return nil, err
	}
	defer closeFiles()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	cfg.Listener.Close() // the agent owns the socket now
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	d.mu.Lock()
	d.pids[cfg.Node] = pid
	d.mu.Unlock()
	_ = os.WriteFile(filepath.Join(filepath.Dir(cfg.StateDir), "agent.pid"), []byte(strconv.Itoa(pid)+"\n"), 0o644)
	return func() error {
		select {
		case <-exited:
			return nil
		default:
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-exited
		}
		return nil
	}, nil
}

func runLabUp(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("lab up", stderr)
	dir := fs.String("dir", ".lab", "lab work directory")
	scenario := fs.String("scenario", "multicluster", "multicluster or mesh")
	nodes := fs.Int("nodes", 3, "number of hosts (mesh)")
	if err := parse(fs, args); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(abs, labFile)); err == nil {
		return fmt.Errorf("lab up: %s already exists; run `nodenet-agent lab down --dir %s` first", filepath.Join(abs, labFile), *dir)
	}
	var o lab.Options
	switch *scenario {
	case "multicluster":
		o = lab.Multicluster(abs)
	case "mesh":
		if *nodes < 1 {
			return errors.New("lab up: --nodes must be at least 1")
		}
		o = lab.Mesh(abs, *nodes)
	default:
		return fmt.Errorf("lab up: unknown --scenario %q (want multicluster or mesh)", *scenario)
	}
	// Not lab's default "nnlab<pid>-": lab.CleanupStale("nnlab") deletes namespaces whose
	// pid is gone, and this process exits while the lab keeps running.
	o.Prefix = fmt.Sprintf("nnup%d-", os.Getpid())
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	agents := &detachedAgents{binary: bin, pids: map[string]int{}}
	o.Start = agents.start
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	l, err := lab.Up(ctx, o)
	if err != nil {
		return fmt.Errorf("lab up: %w", err)
	}
	rec := labRecord{Dir: l.Dir, Prefix: l.Prefix, CAFile: l.CAFile, ClientCertFile: l.ClientCertFile, ClientKeyFile: l.ClientKeyFile}
	for _, h := range l.Hosts {
		rec.Hosts = append(rec.Hosts, labHostRec{Cluster: h.Cluster, Name: h.Name, NS: h.NS, PodNS: h.PodNS,
			Underlay: h.UnderlayIP.String(), AgentAddr: h.AgentAddr, PID: agents.pids[h.Name], LogFile: h.LogFile})
	}
	data, _ := json.MarshalIndent(rec, "", "  ")
	if err := atomicfile.Write(filepath.Join(l.Dir, labFile), append(data, '\n'), 0o644); err != nil {
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

func readLab(dir string) (*labRecord, error) {
	p := filepath.Join(dir, labFile)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var rec labRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &rec, nil
}

// isAgent reports whether pid still runs `nodenet-agent serve` for node (and is no zombie).
func isAgent(pid int, node string) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(argv) < 2 || !strings.Contains(filepath.Base(argv[0]), "nodenet-agent") || argv[1] != "serve" {
		return false
	}
	for i := 2; i+1 < len(argv); i++ {
		if argv[i] == "--node" && argv[i+1] == node {
			return true
		}
	}
	return false
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
	var errs []error
	var waiting []labHostRec
	for _, h := range rec.Hosts {
		if !isAgent(h.PID, h.Name) {
			fmt.Fprintf(stdout, "agent %s (pid %d) is not running\n", h.Name, h.PID)
			continue
		}
		if err := syscall.Kill(h.PID, syscall.SIGTERM); err != nil {
			errs = append(errs, fmt.Errorf("SIGTERM agent %s (pid %d): %w", h.Name, h.PID, err))
			continue
		}
		waiting = append(waiting, h)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, h := range waiting {
		for isAgent(h.PID, h.Name) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if isAgent(h.PID, h.Name) {
			errs = append(errs, fmt.Errorf("agent %s (pid %d) still runs 15s after SIGTERM", h.Name, h.PID))
		} else {
			fmt.Fprintf(stdout, "stopped agent %s (pid %d)\n", h.Name, h.PID)
		}
	}
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
		return 0, fmt.Errorf("refusing to delete namespaces by the short prefix %q", prefix)
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
		state := "running"
		if !isAgent(h.PID, h.Name) {
			state = "NOT RUNNING"
		}
		line := fmt.Sprintf("  %-14s %-24s ns %-16s agent %s pid %d %s", h.Cluster, h.Name, h.NS, h.AgentAddr, h.PID, state)
		cc, err := dialAgent(dialOptions{addr: h.AgentAddr, ca: rec.CAFile, cert: rec.ClientCertFile, key: rec.ClientKeyFile,
			expect: pki.NodeURI(h.Cluster, h.Name)})
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			var info *pb.NodeInfo
			info, err = pb.NewNodeAgentClient(cc).Info(ctx, &pb.InfoRequest{})
			cancel()
			cc.Close()
			if err == nil {
				line += fmt.Sprintf(", Info ok (version %s, kernel %s, %d interfaces)", info.GetAgentVersion(), info.GetKernelRelease(), len(info.GetInterfaces()))
			}
		}
		if err != nil {
			line += ", Info failed: " + err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", h.Name, err))
		}
		fmt.Fprintln(stdout, line)
	}
	if len(errs) > 0 {
		return fmt.Errorf("lab status: %d of %d agents do not answer", len(errs), len(rec.Hosts))
	}
	return nil
}
