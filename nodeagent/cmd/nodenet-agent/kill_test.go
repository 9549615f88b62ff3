package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// servedAgent is an agent binary serving on a listener of its own.
type servedAgent struct {
	cmd    *exec.Cmd
	addr   string
	logs   *bytes.Buffer
	exited chan error
}

// startAgent starts `<prefix...> bin serve` for c1/n1 in the namespace with the state dir.
func startAgent(t *testing.T, bin, ns, dir string, prefix ...string) *servedAgent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	args := append(append([]string(nil), prefix...), bin, "serve", "--cluster", "c1", "--node", "n1", "--netns", "/run/netns/"+ns,
		"--listen-fd", "3", "--tls-cert", filepath.Join(dir, "c1_n1.pem"), "--tls-key", filepath.Join(dir, "c1_n1-key.pem"),
		"--client-ca", filepath.Join(dir, "ca.pem"), "--state-dir", filepath.Join(dir, "state"), "--boot-id-file", filepath.Join(dir, "boot_id"))
	a := &servedAgent{cmd: exec.Command(args[0], args[1:]...), addr: ln.Addr().String(), logs: &bytes.Buffer{}, exited: make(chan error, 1)}
	a.cmd.ExtraFiles = []*os.File{lf}
	a.cmd.Stdout, a.cmd.Stderr = a.logs, a.logs
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	go func() { a.exited <- a.cmd.Wait() }()
	t.Cleanup(func() {
		if a.cmd.ProcessState == nil {
			_ = a.cmd.Process.Kill()
			<-a.exited
		}
	})
	return a
}

func (a *servedAgent) client(t *testing.T, dir string) pb.NodeAgentClient {
	t.Helper()
	cc, err := dialAgent(dialOptions{addr: a.addr, ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "client.pem"),
		key: filepath.Join(dir, "client-key.pem"), expect: "nodenet://c1/n1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return pb.NewNodeAgentClient(cc)
}

// tracedChild is the pid of the process strace (pid) runs.
func tracedChild(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// meshSpec is node 1's share of a 20-member overlay: 19 neighbours, FDB entries and routes.
func meshSpec() *pb.Object {
	t := &pb.VxlanTunnel{Device: &pb.VxlanDevice{Name: "vxm", Vni: 300, Underlay: "u0", Address: "10.99.0.1/24"}}
	for i := 2; i <= 20; i++ {
		mac := fmt.Sprintf("02:00:00:00:01:%02x", i)
		t.Fdb = append(t.Fdb, &pb.FdbEntry{Mac: mac, Dst: fmt.Sprintf("192.168.79.%d", i)})
		t.Neighbors = append(t.Neighbors, &pb.Neighbor{Ip: fmt.Sprintf("10.99.0.%d", i), Mac: mac})
		t.Routes = append(t.Routes, &pb.Route{Dst: fmt.Sprintf("10.240.%d.0/24", i), Via: fmt.Sprintf("10.99.0.%d", i)})
	}
	return &pb.Object{Id: "vxlan_tunnel/vxm", Owner: "nodenet_vxlan_tunnel:kill-test", Spec: &pb.Object_VxlanTunnel{VxlanTunnel: t}}
}

// TestKill9MidApply: `kill -9` of the agent binary part-way through applying a 20-member
// mesh (its netlink requests slowed down by strace so the kill lands mid-way). The restarted
// agent manages the object, reports the apply as interrupted and every kernel entry it made
// as explained, `status` says so, and a Delete removes every entry it made.
func TestKill9MidApply(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace is not installed (hack/deps.sh installs it)")
	}
	bin := buildAgent(t)
	ns := fmt.Sprintf("nntsv%d-kill", os.Getpid())
	ip := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	ip("-n", ns, "link", "add", "u0", "type", "veth", "peer", "name", "u1")
	ip("-n", ns, "addr", "add", "192.168.79.1/24", "dev", "u0")
	ip("-n", ns, "link", "set", "u0", "up")
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run([]string{"certs", "--out", dir, "--cluster", "c1", "--nodes", "n1"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "boot_id"), []byte("boot-kill\n"), 0o644)

	// Every netlink request of the first agent waits 25 ms: the apply's ~60 kernel changes
	// take seconds. strace runs the agent as its child, which is what gets killed.
	slow := startAgent(t, bin, ns, dir, strace, "-f", "-qq", "-o", "/dev/null", "-e", "trace=sendto", "-e", "inject=sendto:delay_enter=25000")
	c := slow.client(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go c.Apply(ctx, &pb.ApplyRequest{Object: meshSpec()}) //nolint:errcheck // the agent dies under it
	routes := func() int { return strings.Count(ip("-n", ns, "route", "show", "proto", "147"), "\n") }
	for end := time.Now().Add(45 * time.Second); routes() < 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the apply did not get to its routes\n%s", slow.logs.String())
		}
	}
	pid := tracedChild(slow.cmd.Process.Pid)
	if pid == 0 {
		t.Fatal("no agent process under strace")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-slow.exited
	made := routes()
	if made >= 19 {
		t.Fatalf("the apply finished (%d routes) before the kill: the test proves nothing", made)
	}
	t.Logf("killed with the device and %d of 19 routes in the kernel", made)

	fresh := startAgent(t, bin, ns, dir)
	statusArgs := []string{"status", "--addr", fresh.addr, "--ca", filepath.Join(dir, "ca.pem"), "--cert", filepath.Join(dir, "client.pem"),
		"--key", filepath.Join(dir, "client-key.pem"), "--expect", "nodenet://c1/n1", "--timeout", "20s"}
	out.Reset()
	if err := run(statusArgs, &out, &out); err != nil {
		t.Fatalf("status: %v\n%s", err, fresh.logs.String())
	}
	for _, want := range []string{"managed objects: 1", "problems: 1", "vxlan_tunnel/vxm: interrupted: the agent stopped during an apply"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status after the restart lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "unexplained") {
		t.Errorf("entries of the interrupted apply reported as unexplained:\n%s", out.String())
	}
	if _, err := fresh.client(t, dir).Delete(ctx, &pb.DeleteRequest{Id: "vxlan_tunnel/vxm", Owner: "nodenet_vxlan_tunnel:kill-test"}); err != nil {
		t.Fatal(err)
	}
	if n := routes(); n != 0 || strings.Contains(ip("-n", ns, "link"), "vxm") {
		t.Fatalf("the delete left %d routes or the device:\n%s", n, ip("-n", ns, "link"))
	}
}
