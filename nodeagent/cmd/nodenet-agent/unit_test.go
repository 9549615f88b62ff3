package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/nodenet/terraform-provider-nodenet/internal/pki"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

const unitFile = "../../../examples/agent/nodenet-agent.service"

// unitCaps returns the capabilities of a `Key=CAP_A CAP_B` line of the shipped unit.
func unitCaps(t *testing.T, key string) []string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), key+"="); ok {
			return strings.Fields(v)
		}
	}
	t.Fatalf("%s has no %s line", unitFile, key)
	return nil
}

// setprivCaps turns CAP_NET_ADMIN CAP_SYS_ADMIN into setpriv's -all,+net_admin,+sys_admin.
func setprivCaps(caps []string) string {
	s := "-all"
	for _, c := range caps {
		s += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	return s
}

// confinedAgent is `serve` run under setpriv with bounding, inheritable and ambient sets
// as systemd applies them for the unit (which runs as root, with no new privileges).
type confinedAgent struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	exited chan struct{}
}

func startConfined(t *testing.T, bin string, bounding, ambient []string, serveArgs ...string) *confinedAgent {
	t.Helper()
	args := []string{"--bounding-set", setprivCaps(bounding), "--inh-caps", setprivCaps(ambient),
		"--ambient-caps", setprivCaps(ambient), "--no-new-privs", "--", bin, "serve"}
	a := &confinedAgent{cmd: exec.Command("setpriv", append(args, serveArgs...)...), exited: make(chan struct{})}
	a.cmd.Stdout, a.cmd.Stderr = &a.out, &a.out
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.cmd.Wait(); close(a.exited) }()
	pid := a.cmd.Process.Pid // setpriv execs the agent: the same process
	t.Cleanup(func() {
		select {
		case <-a.exited:
			return
		default:
		}
		syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-a.exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(pid, syscall.SIGKILL)
			<-a.exited
		}
	})
	return a
}

// waitExit waits for the agent to exit and returns its exit code and output.
func (a *confinedAgent) waitExit(t *testing.T, d time.Duration) (int, string) {
	t.Helper()
	select {
	case <-a.exited:
		return a.cmd.ProcessState.ExitCode(), a.out.String()
	case <-time.After(d):
		t.Fatalf("agent still runs after %s", d)
		return 0, ""
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestUnitCapabilities runs the agent with the capabilities of the shipped systemd unit:
// it must serve and report the kernel features; with CAP_NET_ADMIN alone it must refuse to
// start and say that CAP_SYS_ADMIN is missing.
func TestUnitCapabilities(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	bounding, ambient := unitCaps(t, "CapabilityBoundingSet"), unitCaps(t, "AmbientCapabilities")
	bin := buildAgent(t)
	ns := fmt.Sprintf("nntsv%d-caps", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run([]string{"certs", "--out", dir, "--cluster", "c1", "--nodes", "n1"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	bootFile := filepath.Join(dir, "boot_id")
	if err := os.WriteFile(bootFile, []byte("boot-caps\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cert, key := pki.NodeCertFiles(dir, "c1", "n1")
	serveArgs := func(addr string) []string {
		return []string{"--cluster", "c1", "--node", "n1", "--netns", "/run/netns/" + ns, "--listen", addr,
			"--tls-cert", cert, "--tls-key", key, "--client-ca", filepath.Join(dir, "ca.pem"),
			"--allowed-client", "nodenet://terraform", "--state-dir", t.TempDir(), "--boot-id-file", bootFile}
	}
	// serving starts a confined agent and returns a client once it answers Info.
	serving := func(t *testing.T, bounding, ambient []string) (pb.NodeAgentClient, *pb.NodeInfo, *confinedAgent) {
		t.Helper()
		addr := freeAddr(t)
		a := startConfined(t, bin, bounding, ambient, serveArgs(addr)...)
		cc, err := dialAgent(dialOptions{addr: addr, ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "client.pem"),
			key: filepath.Join(dir, "client-key.pem"), expect: pki.NodeURI("c1", "n1")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		go func() {
			select {
			case <-a.exited: // no point waiting for an agent that is gone
				cancel()
			case <-ctx.Done():
			}
		}()
		c := pb.NewNodeAgentClient(cc)
		info, err := c.Info(ctx, &pb.InfoRequest{}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("Info with %v: %v\nagent output:\n%s", bounding, err, a.out.String())
		}
		return c, info, a
	}

	t.Run("as shipped", func(t *testing.T) {
		_, info, _ := serving(t, bounding, ambient)
		if !info.GetKernelFeatures()["vxlan"] {
			t.Fatalf("kernel features %v lack vxlan", info.GetKernelFeatures())
		}
	})
	// Health checks: the namespace's ping_group_range is the kernel's default (1 0), so the
	// agent needs a raw ICMP socket. With the unit's capabilities the probes go out (nobody
	// has the neighbour's address: they are lost, not refused); without CAP_NET_RAW the
	// tunnel says what is missing.
	if out, err := exec.Command("ip", "-n", ns, "link", "add", "u0", "type", "veth", "peer", "name", "u1").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, args := range [][]string{{"addr", "add", "192.168.79.1/24", "dev", "u0"}, {"link", "set", "u0", "up"}, {"link", "set", "u1", "up"}} {
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	probed := func(t *testing.T, c pb.NodeAgentClient, a *confinedAgent, wantErr string) {
		t.Helper()
		o := &pb.Object{Id: "vxlan_tunnel/vxcap", Owner: "test:caps", Spec: &pb.Object_VxlanTunnel{VxlanTunnel: &pb.VxlanTunnel{
			Device:      &pb.VxlanDevice{Name: "vxcap", Vni: 77, Underlay: "u0", Address: "10.97.0.1/24"},
			Fdb:         []*pb.FdbEntry{{Mac: "02:00:00:00:00:02", Dst: "192.168.79.2"}},
			Neighbors:   []*pb.Neighbor{{Ip: "10.97.0.2", Mac: "02:00:00:00:00:02", Node: "c1/n2"}},
			HealthCheck: true,
		}}}
		if _, err := c.Apply(t.Context(), &pb.ApplyRequest{Object: o}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Delete(context.Background(), &pb.DeleteRequest{Id: o.GetId(), Owner: o.GetOwner()}) })
		waitFor(t, 10*time.Second, func() string {
			got, err := c.Get(t.Context(), &pb.GetRequest{Id: o.GetId()})
			if err != nil {
				return err.Error()
			}
			hs := got.GetObserved().GetVxlanTunnel().GetHealth()
			if len(hs) != 1 || hs[0].GetSent() < 3 || !strings.Contains(hs[0].GetError(), wantErr) {
				return fmt.Sprintf("health %v, want an error with %q; agent output:\n%s", hs, wantErr, a.out.String())
			}
			return ""
		})
	}
	t.Run("health checks as shipped", func(t *testing.T) {
		c, _, a := serving(t, bounding, ambient)
		probed(t, c, a, "no reply to the last 3 probes")
	})
	t.Run("health checks without CAP_NET_RAW", func(t *testing.T) {
		var less []string
		for _, c := range bounding {
			if c != "CAP_NET_RAW" {
				less = append(less, c)
			}
		}
		c, _, a := serving(t, less, less)
		probed(t, c, a, "the agent needs CAP_NET_RAW")
	})
	t.Run("CAP_NET_ADMIN only", func(t *testing.T) {
		only := []string{"CAP_NET_ADMIN"}
		a := startConfined(t, bin, only, only, serveArgs(freeAddr(t))...)
		code, output := a.waitExit(t, 20*time.Second)
		if code == 0 || !strings.Contains(output, "needs CAP_SYS_ADMIN besides CAP_NET_ADMIN") ||
			!strings.Contains(output, "examples/agent/nodenet-agent.service") {
			t.Fatalf("exit %d, output:\n%s", code, output)
		}
	})
}
