package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestServeOptionsCheck(t *testing.T) {
	base := func() serveOptions {
		return serveOptions{cluster: "c", node: "n", stateDir: "/tmp/x", listenFD: -1}
	}
	tlsOn := func(o *serveOptions) { o.tlsCert, o.tlsKey, o.clientCA = "a", "b", "c" }
	for _, tc := range []struct {
		name string
		mod  func(*serveOptions)
		want string // "" = ok
	}{
		{"default TCP without TLS", func(o *serveOptions) {}, "refusing to serve on TCP 127.0.0.1:7707 without mutual TLS"},
		{"TCP without TLS", func(o *serveOptions) { o.listen = "0.0.0.0:7707" }, "refusing to serve on TCP 0.0.0.0:7707 without mutual TLS"},
		{"fd without TLS", func(o *serveOptions) { o.listenFD = 3 }, "refusing to serve on inherited fd 3 without mutual TLS"},
		{"TCP with part of TLS", func(o *serveOptions) { o.tlsCert = "a" }, "--tls-cert, --tls-key and --client-ca are all required"},
		{"unix without TLS or insecure", func(o *serveOptions) { o.listenUnix = "/s" }, "without mutual TLS"},
		{"insecure on TCP", func(o *serveOptions) { o.insecureUnix = true; tlsOn(o) }, "--insecure-unix is only allowed with --listen-unix"},
		{"two listeners", func(o *serveOptions) { o.listen = "x:1"; o.listenUnix = "/s" }, "only one of"},
		{"missing node", func(o *serveOptions) { o.node = ""; tlsOn(o) }, "--node"},
		{"TCP with TLS", tlsOn, ""},
		{"fd with TLS", func(o *serveOptions) { o.listenFD = 3; tlsOn(o) }, ""},
		{"insecure unix", func(o *serveOptions) { o.listenUnix = "/s"; o.insecureUnix = true }, ""},
		{"unix with TLS", func(o *serveOptions) { o.listenUnix = "/s"; tlsOn(o) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base()
			tc.mod(&o)
			err := o.check()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"help"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"serve", "certs", "status", "lab"} {
		if !strings.Contains(out.String(), c) {
			t.Fatalf("help lacks %s:\n%s", c, out.String())
		}
	}
}

func TestCerts(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run([]string{"certs", "--out", dir, "--cluster", "c1", "--nodes", "n1,n2"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	ca1, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	for f, mode := range map[string]os.FileMode{"ca.pem": 0o644, "ca-key.pem": 0o600, "c1_n1.pem": 0o644, "c1_n1-key.pem": 0o600,
		"c1_n2.pem": 0o644, "c1_n2-key.pem": 0o600, "client.pem": 0o644, "client-key.pem": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("%s: %v %v", f, fi, err)
		}
	}
	cert, _ := os.ReadFile(filepath.Join(dir, "c1_n1.pem"))
	if err := checkServerIdentity(cert, "c1", "n1"); err != nil {
		t.Fatal(err)
	}
	if err := checkServerIdentity(cert, "c1", "n2"); err == nil || !strings.Contains(err.Error(), "nodenet://c1/n2") {
		t.Fatalf("wrong identity accepted: %v", err)
	}
	// A second run reuses the CA.
	if err := run([]string{"certs", "--out", dir, "--cluster", "c1", "--nodes", "n3"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if ca2, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); !bytes.Equal(ca1, ca2) {
		t.Fatal("CA was replaced")
	}
}

// built is the agent binary, built once for the tests that run it.
var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// buildAgent builds the binary into a temp dir (once per test process).
func buildAgent(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "nodenet-agent-test-"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "nodenet-agent")
		if out, err := exec.Command("go", "build", "-o", built.bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

func TestServeBinaryRefuses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildAgent(t)
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run([]string{"certs", "--out", dir, "--cluster", "c1", "--nodes", "n1"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"TCP without TLS", []string{"--listen", "127.0.0.1:0"}, "refusing to serve on TCP 127.0.0.1:0 without mutual TLS"},
		{"certificate of another node", []string{"--node", "n2", "--listen", "127.0.0.1:0",
			"--tls-cert", filepath.Join(dir, "c1_n1.pem"), "--tls-key", filepath.Join(dir, "c1_n1-key.pem"), "--client-ca", filepath.Join(dir, "ca.pem")},
			"does not name this agent (nodenet://c1/n2)"},
		// The lab's command line as ps shows it, run by hand: nothing is passed as fd 3.
		{"--listen-fd without an inherited socket", []string{"--listen-fd", "3",
			"--tls-cert", filepath.Join(dir, "c1_n1.pem"), "--tls-key", filepath.Join(dir, "c1_n1-key.pem"), "--client-ca", filepath.Join(dir, "ca.pem")},
			"--listen-fd 3: fd 3 is not a listening socket inherited from the parent process"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--cluster", "c1", "--node", "n1", "--state-dir", t.TempDir()}, tc.args...)
			cmd := exec.Command(bin, args...)
			b, err := cmd.CombinedOutput()
			if err == nil || cmd.ProcessState.ExitCode() == 0 {
				t.Fatalf("serve started: %s", b)
			}
			if !strings.Contains(string(b), tc.want) {
				t.Fatalf("output %q lacks %q", b, tc.want)
			}
		})
	}
}

// TestServeEndToEnd runs the binary on an inherited socket (as the lab does) over a test
// namespace, queries it with `status`, and stops it with SIGTERM.
func TestServeEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	bin := buildAgent(t)
	ns := fmt.Sprintf("nntsv%d-cmd", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	if out, err := exec.Command("ip", "-n", ns, "link", "add", "u0", "type", "veth", "peer", "name", "u1").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}

	dir := t.TempDir()
	var out bytes.Buffer
	if err := run([]string{"certs", "--out", dir, "--cluster", "c1", "--nodes", "n1"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	bootFile := filepath.Join(dir, "boot_id")
	os.WriteFile(bootFile, []byte("boot-e2e\n"), 0o644)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "serve", "--cluster", "c1", "--node", "n1", "--netns", "/run/netns/"+ns, "--listen-fd", "3",
		"--tls-cert", filepath.Join(dir, "c1_n1.pem"), "--tls-key", filepath.Join(dir, "c1_n1-key.pem"),
		"--client-ca", filepath.Join(dir, "ca.pem"), "--allowed-client", "nodenet://terraform",
		"--state-dir", filepath.Join(dir, "state"), "--boot-id-file", bootFile)
	cmd.ExtraFiles = []*os.File{lf}
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})

	statusArgs := []string{"status", "--addr", addr, "--ca", filepath.Join(dir, "ca.pem"), "--cert", filepath.Join(dir, "client.pem"),
		"--key", filepath.Join(dir, "client-key.pem"), "--expect", "nodenet://c1/n1", "--timeout", "20s"}
	out.Reset()
	if err := run(statusArgs, &out, &out); err != nil {
		t.Fatalf("status: %v\nagent log:\n%s", err, logs.String())
	}
	for _, want := range []string{"node:           c1/n1", "boot id:        boot-e2e", "u0", "managed objects: 0"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("status output lacks %q:\n%s", want, out.String())
		}
	}
	// The wrong expected identity is refused with a message naming both.
	statusArgs[len(statusArgs)-3] = "nodenet://c1/n9"
	err = run(statusArgs, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "agent at "+addr+" presented identity nodenet://c1/n1, expected nodenet://c1/n9") {
		t.Fatalf("identity mismatch: %v", err)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("agent exit: %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("agent did not stop on SIGTERM\n%s", logs.String())
	}
	if b, _ := exec.Command("ip", "-n", ns, "link", "show", "u0").CombinedOutput(); !strings.Contains(string(b), "u0") {
		t.Fatal("the namespace's links changed")
	}
	if !strings.Contains(logs.String(), "peer=nodenet://terraform") {
		t.Fatalf("rpc log lacks the peer identity:\n%s", logs.String())
	}
	// The handshake the client broke off (identity mismatch) is logged with its address.
	if !strings.Contains(logs.String(), `msg="refused TLS handshake" peer=127.0.0.1:`) {
		t.Fatalf("agent log lacks the refused handshake:\n%s", logs.String())
	}
}

func TestListenFD(t *testing.T) {
	const hint = "is not a listening socket inherited from the parent process"
	const what = "to listen yourself use --listen ADDR or --listen-unix PATH"
	f, err := os.CreateTemp(t.TempDir(), "file")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sock, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sock)
	closed := 900 // well above what a test process has open
	if _, err := unix.FcntlInt(uintptr(closed), unix.F_GETFD, 0); err == nil {
		t.Fatalf("fd %d is open", closed)
	}
	for _, tc := range []struct {
		name string
		fd   int
		want string
	}{
		{"closed fd", closed, fmt.Sprintf("--listen-fd %d: fd %d %s (bad file descriptor: nothing is open on it)", closed, closed, hint)},
		{"regular file", int(f.Fd()), "(socket operation on non-socket: it is a regular file (" + f.Name() + "))"},
		{"socket not listening", sock, "(it is a socket that does not listen)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := inheritedListener(tc.fd)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), hint) || !strings.Contains(err.Error(), what) {
				t.Fatalf("got %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	t.Run("listening socket", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		lf, err := ln.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Dup(int(lf.Fd())) // inheritedListener owns and closes it
		lf.Close()
		if err != nil {
			t.Fatal(err)
		}
		got, err := inheritedListener(fd)
		if err != nil {
			t.Fatal(err)
		}
		defer got.Close()
		if got.Addr().String() != ln.Addr().String() {
			t.Fatalf("listener on %s, want %s", got.Addr(), ln.Addr())
		}
	})
}
