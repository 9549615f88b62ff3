package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nodenet/terraform-provider-nodenet/internal/atomicfile"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
)

// agentStopTimeout is how long lab down and lab stop wait for an agent after SIGTERM.
const agentStopTimeout = 15 * time.Second

// agentProc is a running `nodenet-agent serve` process.
type agentProc struct {
	pid      int
	node     string
	stateDir string
	recorded bool // the PID lab.json records for node
}

// readAgentProc reads /proc/<pid>; ok when it is a live (not zombie) `nodenet-agent serve`.
func readAgentProc(pid int) (p agentProc, ok bool) {
	if pid <= 0 {
		return p, false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return p, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return p, false
	}
	argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(argv) < 2 || !strings.Contains(filepath.Base(argv[0]), "nodenet-agent") || argv[1] != "serve" {
		return p, false
	}
	p = agentProc{pid: pid, node: flagValue(argv[2:], "node"), stateDir: flagValue(argv[2:], "state-dir")}
	if p.stateDir != "" && !filepath.IsAbs(p.stateDir) {
		if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err == nil {
			p.stateDir = filepath.Join(cwd, p.stateDir)
		}
	}
	return p, true
}

// flagValue finds flag name in args as Go's flag package accepts it: -name V, --name V,
// -name=V or --name=V.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == "--" || !strings.HasPrefix(a, "-") {
			continue
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// isAgent reports whether pid still runs `nodenet-agent serve` for node (and is no zombie).
func isAgent(pid int, node string) bool {
	p, ok := readAgentProc(pid)
	return ok && p.node == node
}

// within reports whether path is dir or lies below it.
func within(dir, path string) bool {
	if dir == "" || path == "" {
		return false
	}
	rel, err := filepath.Rel(resolve(dir), resolve(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func resolve(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

// unrecordedAgents lists running agents whose --state-dir lies in the lab's directory (for
// node, or for any node when node is "") other than those lab.json records: agents started
// by hand with the lab's flags, which would otherwise outlive the lab.
func unrecordedAgents(rec *labRecord, node string) []agentProc {
	recorded := map[int]bool{}
	for _, h := range rec.Hosts {
		if isAgent(h.PID, h.Name) {
			recorded[h.PID] = true
		}
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []agentProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || recorded[pid] || pid == os.Getpid() {
			continue
		}
		p, ok := readAgentProc(pid)
		if ok && (node == "" || p.node == node) && within(rec.Dir, p.stateDir) {
			out = append(out, p)
		}
	}
	return out
}

// nodeAgents lists every running agent of the node h: the recorded one and any others.
func nodeAgents(rec *labRecord, h *labHostRec) []agentProc {
	var procs []agentProc
	if isAgent(h.PID, h.Name) {
		procs = append(procs, agentProc{pid: h.PID, node: h.Name, recorded: true})
	}
	return append(procs, unrecordedAgents(rec, h.Name)...)
}

// stopAgents sends SIGTERM to each agent and waits for all of them; it reports each one.
func stopAgents(procs []agentProc, stdout io.Writer) []error {
	var errs []error
	var waiting []agentProc
	for _, p := range procs {
		if err := syscall.Kill(p.pid, syscall.SIGTERM); err != nil {
			errs = append(errs, fmt.Errorf("SIGTERM agent %s (pid %d): %w; end it with kill %d", p.node, p.pid, err, p.pid))
			continue
		}
		waiting = append(waiting, p)
	}
	deadline := time.Now().Add(agentStopTimeout)
	for _, p := range waiting {
		for isAgent(p.pid, p.node) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		switch {
		case isAgent(p.pid, p.node):
			errs = append(errs, fmt.Errorf("agent %s (pid %d) still runs %s after SIGTERM; end it with kill -9 %d", p.node, p.pid, agentStopTimeout, p.pid))
		case p.recorded:
			fmt.Fprintf(stdout, "stopped agent %s (pid %d)\n", p.node, p.pid)
		default:
			fmt.Fprintf(stdout, "stopped agent %s (pid %d, started outside the lab: not recorded in %s)\n", p.node, p.pid, labFile)
		}
	}
	return errs
}

// detached is an agent started to outlive this command.
type detached struct {
	pid    int
	exited chan struct{}
}

// startDetached starts the agent of cfg in its own process group without a parent-death
// signal, so that it outlives this command; later commands end it by PID.
func startDetached(binary string, cfg lab.AgentConfig) (*detached, error) {
	cmd, closeFiles, err := lab.AgentCommand(binary, cfg)
	if err != nil {
		return nil, err
	}
	defer closeFiles()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	cfg.Listener.Close() // the agent owns the socket now
	d := &detached{pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(d.exited) }()
	_ = os.WriteFile(filepath.Join(filepath.Dir(cfg.StateDir), "agent.pid"), []byte(strconv.Itoa(d.pid)+"\n"), 0o644)
	return d, nil
}

// stop ends an agent this process started (lab up failing half way).
func (d *detached) stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = syscall.Kill(d.pid, syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-d.pid, syscall.SIGKILL)
		<-d.exited
	}
}

// detachedAgents is the lab.StartAgent of `lab up`: detached agents, PIDs by node name.
type detachedAgents struct {
	binary string
	mu     sync.Mutex
	pids   map[string]int
}

func (a *detachedAgents) start(cfg lab.AgentConfig) (func() error, error) {
	d, err := startDetached(a.binary, cfg)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.pids[cfg.Node] = d.pid
	a.mu.Unlock()
	return func() error { d.stop(); return nil }, nil
}

func runLabStop(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("lab stop", stderr)
	dir := fs.String("dir", ".lab", "lab work directory")
	node := fs.String("node", "", "node whose agent to stop (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	rec, err := readLab(*dir)
	if err != nil {
		return fmt.Errorf("lab stop: %w", err)
	}
	h, err := rec.host(*node)
	if err != nil {
		return fmt.Errorf("lab stop: %w", err)
	}
	procs := nodeAgents(rec, h)
	if len(procs) == 0 {
		fmt.Fprintf(stdout, "agent %s is not running (recorded pid %d)\n", h.Name, h.PID)
		return nil
	}
	if errs := stopAgents(procs, stdout); len(errs) > 0 {
		return fmt.Errorf("lab stop: %w", errors.Join(errs...))
	}
	fmt.Fprintf(stdout, "the kernel state of %s is left as is; start its agent again with: nodenet-agent lab start --node %s --dir %s\n", h.Name, h.Name, *dir)
	return nil
}

func runLabStart(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("lab start", stderr)
	dir := fs.String("dir", ".lab", "lab work directory")
	node := fs.String("node", "", "node whose agent to start (required)")
	reboot := fs.Bool("reboot", false, "write a new boot id first: the agent starts as after a reboot of the node and replays its stored state")
	if err := parse(fs, args); err != nil {
		return err
	}
	rec, err := readLab(*dir)
	if err != nil {
		return fmt.Errorf("lab start: %w", err)
	}
	h, err := rec.host(*node)
	if err != nil {
		return fmt.Errorf("lab start: %w", err)
	}
	if procs := nodeAgents(rec, h); len(procs) > 0 {
		return fmt.Errorf("lab start: the agent of %s already runs (pid %d); stop it first with `nodenet-agent lab stop --node %s --dir %s`",
			h.Name, procs[0].pid, h.Name, *dir)
	}
	if *reboot {
		id := lab.NewBootID()
		if err := atomicfile.Write(h.BootIDFile, []byte(id+"\n"), 0o644); err != nil {
			return fmt.Errorf("lab start: --reboot: %w", err)
		}
		fmt.Fprintf(stdout, "new boot id %s for %s: its agent replays the stored state as after a reboot\n", id, h.Name)
	}
	d, err := startAgain(h)
	if err != nil {
		return fmt.Errorf("lab start: %s: %w", h.Name, err)
	}
	// Record it before waiting: the agent runs whether or not it answers soon.
	if err := setPID(*dir, h.Name, d.pid); err != nil {
		return fmt.Errorf("lab start: agent %s runs as pid %d, but %s was not updated (%w); end it with kill %d", h.Name, d.pid, labFile, err, d.pid)
	}
	if err := waitServing(rec, h, d); err != nil {
		return fmt.Errorf("lab start: %w", err)
	}
	fmt.Fprintf(stdout, "started agent %s (pid %d) on %s; log %s\n", h.Name, d.pid, h.AgentAddr, h.LogFile)
	return nil
}

// startAgain starts the agent of h detached on the address it had, so that the provider
// configuration of the lab stays valid.
func startAgain(h *labHostRec) (*detached, error) {
	if h.AgentAddr == "" {
		return nil, fmt.Errorf("%s records no agent address; recreate the lab (lab down, lab up)", labFile)
	}
	ln, err := listenAgain(h.AgentAddr)
	if err != nil {
		return nil, err
	}
	bin, err := os.Executable()
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("finding this binary to run the agent: %w", err)
	}
	d, err := startDetached(bin, lab.AgentConfig{
		Cluster: h.Cluster, Node: h.Name, NetnsPath: h.NetnsPath, Listener: ln,
		CAFile: h.ClientCAFile, CertFile: h.CertFile, KeyFile: h.KeyFile, ClientCAFile: h.ClientCAFile,
		StateDir: h.StateDir, BootIDFile: h.BootIDFile, LogFile: h.LogFile, CNIConfDir: h.CNIConfDir, CNIDataDir: h.CNIDataDir,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	return d, nil
}

// listenAgain listens on addr, retrying briefly: the stopped agent's socket may linger.
func listenAgain(addr string) (net.Listener, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp4", addr)
		if err == nil {
			return ln, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("listen on %s again: %w; find what holds the port with `ss -ltnp`", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// setPID records the agent PID of node in <dir>/lab.json.
func setPID(dir, node string, pid int) error {
	rec, err := readLab(dir)
	if err != nil {
		return err
	}
	h, err := rec.host(node)
	if err != nil {
		return err
	}
	h.PID = pid
	return writeLab(dir, rec)
}

// waitServing waits until the agent answers Info; it fails early when the agent exits.
func waitServing(rec *labRecord, h *labHostRec, d *detached) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		select {
		case <-d.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	_, err := agentInfo(ctx, rec, h, true)
	if err == nil {
		return nil
	}
	select {
	case <-d.exited:
		return fmt.Errorf("the agent of %s exited right after its start; the end of its log %s:\n%s", h.Name, h.LogFile, logTail(h.LogFile, 10))
	default:
		return fmt.Errorf("the agent of %s (pid %d) does not answer Info: %w; see its log %s", h.Name, d.pid, err, h.LogFile)
	}
}

func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
