package lab

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain doubles as a fake agent binary for ExecAgent: `<test binary> serve ...`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(fakeAgentMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func fakeAgentMain(args []string) int {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cluster := fs.String("cluster", "", "")
	node := fs.String("node", "", "")
	nsPath := fs.String("netns", "", "")
	fd := fs.Int("listen-fd", 0, "")
	cniConfDir := fs.String("cni-conf-dir", "", "")
	fs.String("cni-ipam-data-dir", "", "")
	for _, n := range []string{"tls-cert", "tls-key", "client-ca", "state-dir", "boot-id-file"} {
		fs.String(n, "", "")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, err := os.Stat(*nsPath); err != nil {
		fmt.Fprintln(os.Stderr, "netns:", err)
		return 1
	}
	ln, err := net.FileListener(os.NewFile(uintptr(*fd), "listener"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "listener:", err)
		return 1
	}
	fmt.Println("fake agent serving", *cluster, *node, ln.Addr(), "cni-conf-dir", *cniConfDir)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s/%s\n", *cluster, *node)
			c.Close()
		}
	}()
	<-sig
	fmt.Println("fake agent: SIGTERM")
	return 0
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2")
	}
}

func testPrefix(t *testing.T) string {
	return fmt.Sprintf("nnlab%d-%s-", os.Getpid(), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
}

func nsWithPrefix(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	var got []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			got = append(got, f[0])
		}
	}
	return got
}

func rootRoutes(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "route", "show", "table", "all").CombinedOutput()
	if err != nil {
		t.Fatalf("ip route: %v: %s", err, out)
	}
	return string(out)
}

// fakeStarter records configs and serves each listener with a line "cluster/node".
type fakeStarter struct {
	mu      sync.Mutex
	configs []AgentConfig
	running map[string]bool
	failOn  string // node name whose start fails
}

func (f *fakeStarter) start(cfg AgentConfig) (func() error, error) {
	if cfg.Node == f.failOn {
		return nil, errors.New("deliberate start failure")
	}
	f.mu.Lock()
	f.configs = append(f.configs, cfg)
	if f.running == nil {
		f.running = map[string]bool{}
	}
	f.running[cfg.Node] = true
	f.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := cfg.Listener.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s/%s\n", cfg.Cluster, cfg.Node)
			c.Close()
		}
	}()
	return func() error {
		cfg.Listener.Close()
		<-done
		f.mu.Lock()
		f.running[cfg.Node] = false
		f.mu.Unlock()
		return nil
	}, nil
}

func (f *fakeStarter) nRunning() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.running {
		if r {
			n++
		}
	}
	return n
}

func greet(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	s, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(s), err
}

func threeHosts() []HostSpec {
	return []HostSpec{
		{Cluster: "test-cluster1", Name: "multicluster-test-001", UnderlayIP: netip.MustParsePrefix("192.168.0.21/24"), PodCIDR: netip.MustParsePrefix("10.234.111.0/24")},
		{Cluster: "test-cluster1", Name: "multicluster-test-002", UnderlayIP: netip.MustParsePrefix("192.168.0.31/24"), PodCIDR: netip.MustParsePrefix("10.234.118.0/24"), MTU: 9000},
		{Cluster: "test-cluster2", Name: "multicluster-test-003", UnderlayIP: netip.MustParsePrefix("192.168.0.16/24"), PodCIDR: netip.MustParsePrefix("10.235.88.0/24")},
	}
}

func TestUpTopology(t *testing.T) {
	needRoot(t)
	prefix := testPrefix(t)
	before := rootRoutes(t)
	fs := &fakeStarter{}
	dir := t.TempDir()
	l, err := Up(context.Background(), Options{Prefix: prefix, Hosts: threeHosts(), Dir: dir, Start: fs.start})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Down() })

	if after := rootRoutes(t); after != before {
		t.Errorf("root routes changed by Up:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got := nsWithPrefix(t, prefix); len(got) != 1+3+3 {
		t.Errorf("namespaces %v, want bridge + 3 hosts + 3 pods", got)
	}
	h1 := l.Host("test-cluster1", "multicluster-test-001")
	h2 := l.Host("test-cluster1", "multicluster-test-002")
	h3 := l.Host("test-cluster2", "multicluster-test-003")
	if h1 == nil || h2 == nil || h3 == nil || l.Host("test-cluster2", "multicluster-test-001") != nil {
		t.Fatal("Host lookup")
	}
	if h1.NS != prefix+"h1" || h1.PodNS != prefix+"p1" || h1.PodIP != netip.MustParseAddr("10.234.111.2") || h1.Underlay != "eth0" {
		t.Errorf("host 1: %+v", h1)
	}

	// Underlay: everyone reaches everyone.
	for _, a := range l.Hosts {
		for _, b := range l.Hosts {
			if a != b {
				if out, err := a.Run("ping", "-c1", "-W2", b.UnderlayIP.Addr().String()); err != nil {
					t.Errorf("%s -> %s underlay: %v\n%s", a.Name, b.Name, err, out)
				}
			}
		}
	}
	if out, err := h2.Run("ip", "-o", "link", "show", "eth0"); err != nil || !strings.Contains(out, "mtu 9000") {
		t.Errorf("h2 eth0 MTU: %v %s", err, out)
	}
	for _, kv := range [][2]string{{"net.ipv4.ip_forward", "1"}, {"net.ipv4.conf.all.rp_filter", "2"}, {"net.ipv4.conf.default.rp_filter", "2"}} {
		out, err := h3.Run("sysctl", "-n", kv[0])
		if err != nil || strings.TrimSpace(out) != kv[1] {
			t.Errorf("%s in %s = %q (%v), want %s", kv[0], h3.NS, out, err, kv[1])
		}
	}
	// Pods: same cluster via the static CNI routes, other cluster unreachable.
	if out, err := h1.RunPod("ping", "-c1", "-W2", h2.PodIP.String()); err != nil {
		t.Errorf("pod1 -> pod2 (same cluster): %v\n%s", err, out)
	}
	if out, err := h2.RunPod("ping", "-c1", "-W2", h1.PodIP.String()); err != nil {
		t.Errorf("pod2 -> pod1 (same cluster): %v\n%s", err, out)
	}
	if out, err := h1.RunPod("ping", "-c1", "-W1", h3.PodIP.String()); err == nil {
		t.Errorf("pod1 -> pod3 (other cluster) answered before nodenet made a route:\n%s", out)
	}
	if out, err := h3.RunPod("ping", "-c1", "-W2", h3.UnderlayIP.Addr().String()); err != nil {
		t.Errorf("pod3 -> own host: %v\n%s", err, out)
	}
	out, _ := h1.RunPod("ip", "neigh", "show", "169.254.1.1")
	if !strings.Contains(out, "PERMANENT") {
		t.Errorf("pod neighbour: %q", out)
	}
	if _, err := h1.Run("true"); err != nil {
		t.Error(err)
	}
	if _, err := h1.Run("false"); err == nil {
		t.Error("Run false: no error")
	}

	// Agents.
	if len(fs.configs) != 3 {
		t.Fatalf("configs %d", len(fs.configs))
	}
	for i, c := range fs.configs {
		h := l.Hosts[i]
		if c.Cluster != h.Cluster || c.Node != h.Name || c.NetnsPath != "/run/netns/"+h.NS || c.Listener.Addr().String() != h.AgentAddr {
			t.Errorf("config %d: %+v", i, c)
		}
		if want := filepath.Join(dir, "hosts", h.Name, "cni", "net.d"); c.CNIConfDir != want || h.CNIConfDir != want {
			t.Errorf("CNI configuration directory %q (host %q), want %q", c.CNIConfDir, h.CNIConfDir, want)
		}
		if st, err := os.Stat(c.CNIConfDir); err != nil || !st.IsDir() {
			t.Errorf("CNI configuration directory: %v", err)
		}
		if !strings.HasPrefix(h.AgentAddr, "127.0.0.1:") {
			t.Errorf("agent addr %q", h.AgentAddr)
		}
		if s, err := greet(h.AgentAddr); err != nil || s != h.Cluster+"/"+h.Name {
			t.Errorf("agent %s: %q %v", h.Name, s, err)
		}
		// The names `nodenet-agent certs` gives, so lab files and examples agree.
		if want := filepath.Join(dir, "pki", h.Cluster+"_"+h.Name+".pem"); c.CertFile != want || c.KeyFile != strings.TrimSuffix(want, ".pem")+"-key.pem" {
			t.Errorf("certificate files %s, %s; want %s and its -key.pem", c.CertFile, c.KeyFile, want)
		}
		for _, f := range []string{c.CAFile, c.CertFile, c.KeyFile, c.ClientCAFile, c.BootIDFile} {
			if _, err := os.Stat(f); err != nil {
				t.Error(err)
			}
		}
		if st, err := os.Stat(c.StateDir); err != nil || !st.IsDir() {
			t.Errorf("state dir: %v", err)
		}
		if st, _ := os.Stat(c.KeyFile); st == nil || st.Mode().Perm() != 0o600 {
			t.Errorf("key mode %v", st)
		}
		if b, _ := os.ReadFile(c.BootIDFile); len(strings.TrimSpace(string(b))) != 36 {
			t.Errorf("boot id %q", b)
		}
	}
	hcl := l.ProviderHCL()
	for _, want := range []string{
		`ca_cert     = file("` + filepath.Join(dir, "pki", "ca.pem") + `")`,
		`client_key  = file("` + filepath.Join(dir, "pki", "client-key.pem") + `")`,
		`"test-cluster2" = {`,
		`"multicluster-test-003" = { agent = "` + h3.AgentAddr + `", address = "` + h3.UnderlayIP.Addr().String() + `" }`,
	} {
		if !strings.Contains(hcl, want) {
			t.Errorf("ProviderHCL lacks %q:\n%s", want, hcl)
		}
	}
	t.Logf("\n%s", hcl)

	// Restart one agent: same address.
	addr := h2.AgentAddr
	if err := l.StopAgent(h2); err != nil {
		t.Fatal(err)
	}
	if _, err := greet(addr); err == nil {
		t.Error("stopped agent still answers")
	}
	if err := l.StartAgent(h2); err != nil {
		t.Fatal(err)
	}
	if h2.AgentAddr != addr {
		t.Errorf("restart moved agent %s -> %s", addr, h2.AgentAddr)
	}
	if s, err := greet(addr); err != nil || s != h2.Cluster+"/"+h2.Name {
		t.Errorf("restarted agent: %q %v", s, err)
	}

	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	if got := nsWithPrefix(t, prefix); len(got) != 0 {
		t.Errorf("namespaces left after Down: %v", got)
	}
	if n := fs.nRunning(); n != 0 {
		t.Errorf("%d fake agents still running after Down", n)
	}
	if err := l.Down(); err != nil {
		t.Errorf("second Down: %v", err)
	}
	if after := rootRoutes(t); after != before {
		t.Errorf("root routes changed after Down")
	}
}

func TestFailedUpLeavesNothing(t *testing.T) {
	needRoot(t)
	t.Run("duplicate", func(t *testing.T) {
		prefix := testPrefix(t)
		hosts := threeHosts()
		hosts[2].Name = hosts[0].Name
		l, err := Up(context.Background(), Options{Prefix: prefix, Hosts: hosts, Dir: t.TempDir()})
		t.Cleanup(func() { l.Down() })
		if err == nil || !strings.Contains(err.Error(), "duplicate") {
			t.Fatalf("Up with duplicate name: %v", err)
		}
		if err := l.Down(); err != nil {
			t.Fatal(err)
		}
		if got := nsWithPrefix(t, prefix); len(got) != 0 {
			t.Errorf("left: %v", got)
		}
	})
	t.Run("start-fails", func(t *testing.T) {
		// Fails after every namespace exists and one agent runs.
		prefix := testPrefix(t)
		fs := &fakeStarter{failOn: "multicluster-test-003"}
		l, err := Up(context.Background(), Options{Prefix: prefix, Hosts: threeHosts(), Dir: t.TempDir(), Start: fs.start})
		t.Cleanup(func() { l.Down() })
		if err == nil || !strings.Contains(err.Error(), "deliberate") {
			t.Fatalf("Up: %v", err)
		}
		if got := nsWithPrefix(t, prefix); len(got) != 0 {
			t.Errorf("left: %v", got)
		}
		if len(fs.configs) != 2 || fs.nRunning() != 0 {
			t.Errorf("started %d, running %d", len(fs.configs), fs.nRunning())
		}
		for _, c := range fs.configs {
			if _, err := greet(c.Listener.Addr().String()); err == nil {
				t.Errorf("listener %s still open", c.Listener.Addr())
			}
		}
	})
	t.Run("netns-exists", func(t *testing.T) {
		// Host 2's namespace name is taken: Up fails midway and removes only its own.
		prefix := testPrefix(t)
		if err := createNamedNS(prefix + "h2"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteNamedNS(prefix + "h2") })
		_, err := Up(context.Background(), Options{Prefix: prefix, Hosts: threeHosts(), Dir: t.TempDir()})
		if err == nil {
			t.Fatal("Up succeeded over an existing namespace")
		}
		if got := nsWithPrefix(t, prefix); len(got) != 1 || got[0] != prefix+"h2" {
			t.Errorf("namespaces %v, want only the foreign %sh2", got, prefix)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		prefix := testPrefix(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := Up(ctx, Options{Prefix: prefix, Hosts: threeHosts(), Dir: t.TempDir()}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Up: %v", err)
		}
		if got := nsWithPrefix(t, prefix); len(got) != 0 {
			t.Errorf("left: %v", got)
		}
	})
}

func TestExecAgent(t *testing.T) {
	needRoot(t)
	prefix := testPrefix(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hosts := threeHosts()[:2]
	l, err := Up(context.Background(), Options{Prefix: prefix, Hosts: hosts, Dir: t.TempDir(), Start: ExecAgent(self)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Down() })
	h := l.Hosts[1]
	if s, err := greet(h.AgentAddr); err != nil || s != h.Cluster+"/"+h.Name {
		t.Fatalf("agent: %q %v", s, err)
	}
	addr := h.AgentAddr
	if err := l.StopAgent(h); err != nil {
		t.Fatal(err)
	}
	if _, err := greet(addr); err == nil {
		t.Error("stopped agent still answers")
	}
	if err := l.StartAgent(h); err != nil {
		t.Fatal(err)
	}
	if h.AgentAddr != addr {
		t.Errorf("address moved %s -> %s", addr, h.AgentAddr)
	}
	if s, err := greet(addr); err != nil || s != h.Cluster+"/"+h.Name {
		t.Errorf("restarted agent: %q %v", s, err)
	}
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(h.LogFile)
	if strings.Count(string(log), "fake agent: SIGTERM") != 2 || strings.Count(string(log), "cni-conf-dir "+h.CNIConfDir+"\n") != 2 {
		t.Errorf("log:\n%s", log)
	}
	if _, err := greet(l.Hosts[0].AgentAddr); err == nil {
		t.Error("agent answers after Down")
	}
}

func TestCleanupStale(t *testing.T) {
	needRoot(t)
	base := fmt.Sprintf("nnlabstale%d", os.Getpid())
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	deadNS := fmt.Sprintf("%s%d-h1", base, dead)
	liveNS := fmt.Sprintf("%s%d-h1", base, os.Getpid())
	for _, n := range []string{deadNS, liveNS} {
		if err := createNamedNS(n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteNamedNS(n) })
	}
	if err := CleanupStale(base); err != nil {
		t.Fatal(err)
	}
	got := nsWithPrefix(t, base)
	if len(got) != 1 || got[0] != liveNS {
		t.Errorf("after CleanupStale: %v, want only %s", got, liveNS)
	}
}

func TestMesh(t *testing.T) {
	needRoot(t)
	n := 20
	if testing.Short() {
		n = 5
	}
	if s := os.Getenv("NNLAB_MESH"); s != "" {
		fmt.Sscan(s, &n)
	}
	o := Mesh(t.TempDir(), n) // default prefix
	start := time.Now()
	l, err := Up(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Down() })
	o.Prefix = l.Prefix
	if !strings.HasPrefix(l.Prefix, fmt.Sprintf("nnlab%d-", os.Getpid())) {
		t.Errorf("default prefix %q", l.Prefix)
	}
	if got := nsWithPrefix(t, l.Prefix); len(got) != n+1 {
		t.Errorf("%d namespaces, want %d", len(got), n+1)
	}
	up := time.Since(start)
	first, last := l.Hosts[0], l.Hosts[n-1]
	if out, err := first.Run("ping", "-c1", "-W2", last.UnderlayIP.Addr().String()); err != nil {
		t.Errorf("ping: %v\n%s", err, out)
	}
	start = time.Now()
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Mesh(%d): Up %v, Down %v", n, up, time.Since(start))
	if got := nsWithPrefix(t, o.Prefix); len(got) != 0 {
		t.Errorf("left: %v", got)
	}
}

func TestOptions(t *testing.T) {
	m := Multicluster("/tmp/x")
	if len(m.Hosts) != 6 || m.Hosts[3].Name != "multicluster-test-004" || m.Hosts[3].UnderlayIP.String() != "192.168.0.44/24" ||
		m.Hosts[5].PodCIDR.String() != "10.236.106.0/24" || m.Hosts[4].Cluster != "test-cluster3" {
		t.Errorf("Multicluster: %+v", m.Hosts)
	}
	if err := validate(&m); err != nil {
		t.Error(err)
	}
	ms := Mesh("/tmp/x", 300)
	if ms.Hosts[0].Name != "node-001" || ms.Hosts[0].UnderlayIP.String() != "10.99.0.1/16" || ms.Hosts[299].UnderlayIP.String() != "10.99.1.44/16" {
		t.Errorf("Mesh: %v %v", ms.Hosts[0], ms.Hosts[299])
	}
	if err := validate(&ms); err != nil {
		t.Error(err)
	}
	bad := Multicluster("")
	bad.Hosts[1].PodCIDR = netip.MustParsePrefix("10.234.111.128/25")
	if err := validate(&bad); err == nil {
		t.Error("overlapping pod CIDRs accepted")
	}
	bad = Multicluster("")
	bad.Hosts[1].UnderlayIP = bad.Hosts[0].UnderlayIP
	if err := validate(&bad); err == nil {
		t.Error("shared underlay IP accepted")
	}
	if id := NewBootID(); len(id) != 36 || id == NewBootID() {
		t.Errorf("boot id %q", id)
	}
	if got := hclString(`a"b${x}`); got != `"a\"b$${x}"` {
		t.Errorf("hclString %s", got)
	}
}
