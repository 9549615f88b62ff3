package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
)

func TestLabHelp(t *testing.T) {
	for _, args := range [][]string{{"lab", "-h"}, {"lab", "--help"}, {"lab", "help"}, {"lab", "-help"}} {
		var stdout, stderr bytes.Buffer
		if err := run(args, &stdout, &stderr); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		for _, c := range labCommands() {
			if !strings.Contains(stdout.String(), "\n  "+c.name+" ") {
				t.Errorf("%v: usage lacks subcommand %s:\n%s", args, c.name, stdout.String())
			}
		}
	}
	var stdout, stderr bytes.Buffer
	if err := run([]string{"lab"}, &stdout, &stderr); !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), "  stop ") {
		t.Errorf("lab without subcommand: %v\n%s", err, stderr.String())
	}

	stdout.Reset()
	stderr.Reset()
	if err := run([]string{"lab", "up", "-h"}, &stdout, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("lab up -h: %v", err)
	}
	help := stdout.String() + stderr.String()
	rows := map[string]bool{}
	for _, line := range strings.Split(help, "\n") {
		rows[strings.Join(strings.Fields(line), " ")] = true
	}
	hosts := append(lab.Multicluster("").Hosts, lab.Mesh("", 3).Hosts...)
	for _, h := range hosts {
		pods := "-"
		if h.PodCIDR.IsValid() {
			pods = h.PodCIDR.String()
		}
		if want := strings.Join([]string{h.Cluster, h.Name, h.UnderlayIP.String(), pods}, " "); !rows[want] {
			t.Errorf("lab up -h lacks the line %q:\n%s", want, help)
		}
	}
	if !strings.Contains(help, "--nodes N nodes of cluster bench") {
		t.Errorf("lab up -h does not say how mesh nodes are made:\n%s", help)
	}

	if testing.Short() {
		return
	}
	bin := buildAgent(t)
	for _, tc := range []struct {
		args []string
		code int
	}{{[]string{"lab", "-h"}, 0}, {[]string{"lab", "--help"}, 0}, {[]string{"lab", "help"}, 0}, {[]string{"lab", "up", "-h"}, 0}, {[]string{"lab"}, 2}} {
		code, err := 0, exec.Command(bin, tc.args...).Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.code)
		}
	}
}

func TestReadLegacyLab(t *testing.T) {
	dir := t.TempDir()
	legacy := `{"dir": "/srv/lab", "prefix": "nnup1-", "ca_file": "/srv/lab/pki/ca.pem",
	  "hosts": [{"cluster": "bench", "name": "node-001", "ns": "nnup1-h1", "agent_addr": "127.0.0.1:4000", "pid": 7}]}`
	if err := os.WriteFile(filepath.Join(dir, labFile), []byte(legacy), 0o644); err != nil {
		t.Fatal(err)
	}
	rec, err := readLab(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := rec.Hosts[0]
	want := labHostRec{Cluster: "bench", Name: "node-001", NS: "nnup1-h1", AgentAddr: "127.0.0.1:4000", PID: 7,
		NetnsPath: "/run/netns/nnup1-h1", StateDir: "/srv/lab/hosts/node-001/state", BootIDFile: "/srv/lab/hosts/node-001/boot_id",
		CertFile: "/srv/lab/pki/node-001.pem", KeyFile: "/srv/lab/pki/node-001-key.pem", ClientCAFile: "/srv/lab/pki/ca.pem",
		CNIConfDir: "/srv/lab/hosts/node-001/cni/net.d", CNIDataDir: "/srv/lab/hosts/node-001/cni/ipam"}
	if h != want {
		t.Errorf("legacy host\n got %+v\nwant %+v", h, want)
	}
	if _, err := readLab(t.TempDir()); err == nil || !strings.Contains(err.Error(), "lab up --dir") {
		t.Errorf("missing lab.json: %v", err)
	}
}

// labCLI runs the built agent binary as `nodenet-agent lab ...` against one lab directory.
type labCLI struct {
	t        *testing.T
	bin, dir string
	prefix   string
}

func (c *labCLI) run(args ...string) (string, error) {
	c.t.Helper()
	args = append(append([]string{"lab"}, args...), "--dir", c.dir)
	out, err := exec.Command(c.bin, args...).CombinedOutput()
	return string(out), err
}

func (c *labCLI) mustRun(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("lab %v: %v\n%s", args, err, out)
	}
	return out
}

func (c *labCLI) record() *labRecord {
	c.t.Helper()
	rec, err := readLab(c.dir)
	if err != nil {
		c.t.Fatal(err)
	}
	return rec
}

// labNamespaces lists the namespaces with the lab's prefix.
func (c *labCLI) labNamespaces() []string {
	var got []string
	ents, _ := os.ReadDir(lab.NetnsDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), c.prefix) {
			got = append(got, e.Name())
		}
	}
	return got
}

// startLab runs `lab up` for a mesh of n nodes in a temp dir and removes whatever is left of
// it when the test ends: lab down, then any agent of the lab directory and namespace of
// the prefix.
func startLab(t *testing.T, n int) *labCLI {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	c := &labCLI{t: t, bin: buildAgent(t), dir: t.TempDir(),
		prefix: fmt.Sprintf("nnlab%d-%s-", os.Getpid(), strings.ToLower(t.Name()))}
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(c.dir, labFile)); err == nil {
			c.run("down")
		}
		for _, p := range unrecordedAgents(&labRecord{Dir: c.dir}, "") {
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
		deleteNamespaces(c.prefix)
	})
	c.mustRun("up", "--scenario", "mesh", "--nodes", fmt.Sprint(n), "--prefix", c.prefix)
	return c
}

// TestLabStopStart restarts one agent of a lab with `lab stop` and `lab start`.
func TestLabStopStart(t *testing.T) {
	c := startLab(t, 2)
	rec := c.record()
	h := rec.Hosts[1]
	if !isAgent(h.PID, h.Name) {
		t.Fatalf("agent %s (pid %d) not running after lab up", h.Name, h.PID)
	}

	// The lab names the node certificates as `nodenet-agent certs` does.
	certsDir := t.TempDir()
	if out, err := exec.Command(c.bin, "certs", "--out", certsDir, "--cluster", "bench", "--nodes", "node-001,node-002").CombinedOutput(); err != nil {
		t.Fatalf("certs: %v\n%s", err, out)
	}
	if labFiles, certsFiles := dirNames(t, filepath.Join(c.dir, "pki")), dirNames(t, certsDir); !slices.Equal(labFiles, certsFiles) {
		t.Errorf("lab pki files %v, certs files %v", labFiles, certsFiles)
	}

	out := c.mustRun("stop", "--node", h.Name)
	if !strings.Contains(out, fmt.Sprintf("stopped agent %s (pid %d)", h.Name, h.PID)) || isAgent(h.PID, h.Name) {
		t.Fatalf("lab stop: agent still runs or not reported:\n%s", out)
	}
	if conn, err := net.DialTimeout("tcp", h.AgentAddr, time.Second); err == nil {
		conn.Close()
		t.Error("the stopped agent's address still accepts connections")
	}
	out, err := c.run("status")
	if err == nil || !strings.Contains(statusLine(out, h.Name), "NOT RUNNING") || !strings.Contains(statusLine(out, rec.Hosts[0].Name), " running, Info ok") {
		t.Errorf("lab status after stop: %v\n%s", err, out)
	}
	if out, err := exec.Command("ip", "-n", h.NS, "link", "show", "eth0").CombinedOutput(); err != nil {
		t.Errorf("the node's namespace or link went with its agent: %v\n%s", err, out)
	}
	if out := c.mustRun("stop", "--node", h.Name); !strings.Contains(out, "is not running") {
		t.Errorf("second lab stop:\n%s", out)
	}

	bootBefore := agentBootID(t, rec, &h)
	out = c.mustRun("start", "--node", h.Name)
	rec2 := c.record()
	h2 := rec2.Hosts[1]
	if h2.PID == h.PID || !isAgent(h2.PID, h.Name) || !strings.Contains(out, fmt.Sprintf("started agent %s (pid %d) on %s", h.Name, h2.PID, h.AgentAddr)) {
		t.Fatalf("lab start: recorded pid %d (was %d)\n%s", h2.PID, h.PID, out)
	}
	if h2.AgentAddr != h.AgentAddr {
		t.Errorf("agent moved from %s to %s", h.AgentAddr, h2.AgentAddr)
	}
	if got := agentBootID(t, rec2, &h2); got != bootBefore {
		t.Errorf("boot id changed without --reboot: %s -> %s", bootBefore, got)
	}
	out, err = c.run("start", "--node", h.Name)
	if err == nil || !strings.Contains(out, fmt.Sprintf("the agent of %s already runs (pid %d); stop it first", h.Name, h2.PID)) {
		t.Errorf("lab start of a running agent: %v\n%s", err, out)
	}

	c.mustRun("stop", "--node", h.Name)
	if out = c.mustRun("start", "--node", h.Name, "--reboot"); !strings.Contains(out, "new boot id") {
		t.Errorf("lab start --reboot:\n%s", out)
	}
	rec3 := c.record()
	if got := agentBootID(t, rec3, &rec3.Hosts[1]); got == bootBefore {
		t.Errorf("boot id unchanged after --reboot: %s", got)
	}

	out = c.mustRun("down")
	if !strings.Contains(out, "deleted 3 namespaces") {
		t.Errorf("lab down:\n%s", out)
	}
	if left := c.labNamespaces(); len(left) > 0 {
		t.Errorf("namespaces left after lab down: %v", left)
	}
	for _, h := range rec3.Hosts {
		if isAgent(h.PID, h.Name) {
			t.Errorf("agent %s (pid %d) runs after lab down", h.Name, h.PID)
		}
	}
	if left := unrecordedAgents(&labRecord{Dir: c.dir}, ""); len(left) > 0 {
		t.Errorf("agents left after lab down: %+v", left)
	}
}

// TestLabDownStopsHandStartedAgent: an agent started by hand with the lab's flags (as a user
// restarting one would) is found and ended by lab down.
func TestLabDownStopsHandStartedAgent(t *testing.T) {
	c := startLab(t, 1)
	c.mustRun("stop", "--node", "node-001")
	h := c.record().Hosts[0]
	cmd := exec.Command(c.bin, "serve", "--cluster", h.Cluster, "--node", h.Name, "--netns", h.NetnsPath,
		"--listen", h.AgentAddr, "--tls-cert", h.CertFile, "--tls-key", h.KeyFile, "--client-ca", h.ClientCAFile,
		"--state-dir", h.StateDir, "--boot-id-file", h.BootIDFile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			syscall.Kill(pid, syscall.SIGKILL)
			<-exited
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec := c.record()
	if _, err := agentInfo(ctx, rec, &h, true); err != nil {
		t.Fatalf("agent started by hand does not answer: %v", err)
	}
	if out, _ := c.run("status"); !strings.Contains(statusLine(out, h.Name), fmt.Sprintf("but pid %d runs this node's agent", pid)) {
		t.Errorf("lab status does not show the agent started by hand:\n%s", out)
	}
	out := c.mustRun("down")
	if !strings.Contains(out, fmt.Sprintf("stopped agent %s (pid %d, started outside the lab", h.Name, pid)) {
		t.Errorf("lab down does not report the agent started by hand:\n%s", out)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatalf("agent started by hand (pid %d) still runs after lab down:\n%s", pid, out)
	}
	if left := c.labNamespaces(); len(left) > 0 {
		t.Errorf("namespaces left after lab down: %v", left)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// statusLine returns the line of `lab status` output for node.
func statusLine(out, node string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, " "+node+" ") {
			return l
		}
	}
	return ""
}

func agentBootID(t *testing.T, rec *labRecord, h *labHostRec) string {
	t.Helper()
	b, err := os.ReadFile(h.BootIDFile)
	if err != nil {
		t.Fatal(err)
	}
	if !isAgent(h.PID, h.Name) {
		return strings.TrimSpace(string(b))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := agentInfo(ctx, rec, h, true)
	if err != nil {
		t.Fatal(err)
	}
	if info.GetBootId() != strings.TrimSpace(string(b)) {
		t.Fatalf("agent reports boot id %s, file %s holds %s", info.GetBootId(), h.BootIDFile, b)
	}
	return info.GetBootId()
}
