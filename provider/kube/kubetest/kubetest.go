// Package kubetest starts a real Kubernetes API server for tests: Debian's etcd and a
// kube-apiserver built from k8s.io/kubernetes by hack/kube-bins.sh, on loopback ports, with
// the NetworkAttachmentDefinition CRD and Calico's IPPool and BlockAffinity CRDs installed.
// Several clusters can run at once; each is removed when its test ends.
package kubetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/nodenet/terraform-provider-nodenet/internal/testbin"
)

// Versions of the cached programs (hack/kube-bins.sh builds them).
const (
	KubeVersion = testbin.KubeVersion
	CNIVersion  = testbin.CNIVersion
)

// Token is the bearer token of the cluster's only user, a member of system:masters.
const Token = "nodenet-test-token"

// Cluster is a running API server.
type Cluster struct {
	Name       string
	Dir        string
	Host       string // https://127.0.0.1:<port>
	CAFile     string // the CA of the serving certificate (and of client certificates)
	CAPEM      []byte
	Kubeconfig string // a kubeconfig with one context, Name, using Token
	// ClientCertPEM and ClientKeyPEM authenticate as user "nodenet-test" by certificate.
	ClientCertPEM, ClientKeyPEM []byte
	Config                      *rest.Config
	Dynamic                     *dynamic.DynamicClient

	serviceCIDR string

	mu       sync.Mutex
	stops    []func()
	exited   chan struct{} // closed when one of the programs exits
	exitOnce sync.Once
}

// CacheDir is where hack/kube-bins.sh puts the programs: $NODENET_CACHE or /var/cache/nodenet.
func CacheDir() string { return testbin.CacheDir() }

// Binary is the path of a cached program: "kube-apiserver", "kubectl" (built from
// k8s.io/kubernetes) or a CNI plugin ("macvlan", "static", "ptp", "host-local").
func Binary(name string) string { return testbin.Path(name) }

// Require skips the test, saying why, when the programs are missing; with
// NODENET_REQUIRE_KUBE=1 (CI) it fails instead, so CI cannot skip silently.
func Require(t testing.TB, programs ...string) {
	t.Helper()
	testbin.Require(t, programs...)
}

// Start runs etcd and kube-apiserver for the test and waits until the CRDs are Established.
func Start(t testing.TB, name string) *Cluster {
	t.Helper()
	return StartN(t, name)[0]
}

// StartN starts one cluster per name, all at once.
func StartN(t testing.TB, names ...string) []*Cluster {
	t.Helper()
	specs := make([]Spec, len(names))
	for i, n := range names {
		specs[i] = Spec{Name: n}
	}
	return StartSpecs(t, specs...)
}

// Spec is a cluster to start: its name, and its service CIDR (default 10.96.0.0/16; linked
// clusters need ranges of their own).
type Spec struct {
	Name, ServiceCIDR string
}

// StartSpecs starts the clusters at once, as StartN does.
func StartSpecs(t testing.TB, specs ...Spec) []*Cluster {
	t.Helper()
	Require(t, "etcd", "kube-apiserver")
	out := make([]*Cluster, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = start(t, spec)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// start starts a cluster, again on other ports when a program exits before the API server is
// ready (a port taken between choosing it and binding it, by a test running next to this one).
func start(t testing.TB, spec Spec) (*Cluster, error) {
	var err error
	for try := 0; try < 3; try++ {
		var c *Cluster
		if c, err = startOnce(t, spec); err == nil {
			return c, nil
		}
		if !errors.Is(err, errExited) {
			return nil, err
		}
	}
	return nil, err
}

var errExited = errors.New("exited before the API server was ready")

func startOnce(t testing.TB, spec Spec) (*Cluster, error) {
	name := spec.Name
	c := &Cluster{Name: name, Dir: t.TempDir(), exited: make(chan struct{}), serviceCIDR: spec.ServiceCIDR}
	if c.serviceCIDR == "" {
		c.serviceCIDR = "10.96.0.0/16"
	}
	t.Cleanup(c.stop)
	if err := c.writeFiles(); err != nil {
		return nil, fmt.Errorf("kubetest %s: %w", name, err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	etcd := c.command("etcd", "etcd",
		"--name", "default", "--data-dir", filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL)
	if err := c.start(etcd); err != nil {
		return nil, err
	}
	c.Host = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	if err := c.writeKubeconfig(c.Kubeconfig); err != nil {
		return nil, err
	}
	api := c.command("kube-apiserver", Binary("kube-apiserver"), c.apiserverArgs(etcdURL, ports[2])...)
	if err := c.start(api); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.connect(ctx); err != nil {
		c.stop()
		return nil, fmt.Errorf("kubetest %s: %w\n%s%s", name, err, c.logTail("etcd"), c.logTail("kube-apiserver"))
	}
	if err := InstallCRDs(ctx, c.Dynamic); err != nil {
		return nil, fmt.Errorf("kubetest %s: %w", name, err)
	}
	return c, nil
}

func (c *Cluster) apiserverArgs(etcdURL string, port int) []string {
	f := func(n string) string { return filepath.Join(c.Dir, n) }
	return []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port),
		"--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
		"--tls-cert-file=" + f("apiserver.pem"), "--tls-private-key-file=" + f("apiserver-key.pem"),
		"--client-ca-file=" + c.CAFile,
		"--token-auth-file=" + f("tokens.csv"),
		"--authorization-mode=AlwaysAllow",
		"--service-account-key-file=" + f("sa.pub"),
		"--service-account-signing-key-file=" + f("sa-key.pem"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=" + c.serviceCIDR,
		"--enable-priority-and-fairness=false",
	}
}

// command is a child that dies with the test process, its output in <Dir>/<name>.log.
func (c *Cluster) command(name, path string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if f, err := os.Create(filepath.Join(c.Dir, name+".log")); err == nil {
		cmd.Stdout, cmd.Stderr = f, f
	}
	return cmd
}

// start starts cmd; stop ends it (SIGTERM, then SIGKILL after 10 s), the API server before
// its etcd. The child also gets SIGKILL if the test process dies (Pdeathsig). The kernel sends
// that signal when the *thread* that started the child ends, and Go ends threads whose
// goroutine exits while locked to them (the lab does that after namespace switches): so the
// child is started from a thread locked for its whole life.
func (c *Cluster) start(cmd *exec.Cmd) error {
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends after the child
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(done)
		c.exitOnce.Do(func() { close(c.exited) })
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("kubetest %s: start %s: %w", c.Name, cmd.Path, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stops = append(c.stops, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return nil
}

// stop ends the cluster's programs, last started first; it can be called more than once.
func (c *Cluster) stop() {
	c.mu.Lock()
	stops := c.stops
	c.stops = nil
	c.mu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
}

// connect waits until /readyz answers ok, then builds the clients.
func (c *Cluster) connect(ctx context.Context) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	c.Config = cfg
	if c.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return err
	}
	rc, err := rest.UnversionedRESTClientFor(withCodec(cfg))
	if err != nil {
		return err
	}
	var last error
	for ctx.Err() == nil {
		select {
		case <-c.exited:
			return fmt.Errorf("etcd or kube-apiserver %w", errExited)
		default:
		}
		var body []byte
		body, last = rc.Get().AbsPath("/readyz").DoRaw(ctx)
		if last == nil && string(body) == "ok" {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("API server %s not ready: %v", c.Host, last)
}

// writeKubeconfig writes a kubeconfig for the cluster to path: one cluster, user and context,
// all named name, authenticating with Token.
func (c *Cluster) writeKubeconfig(path string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[c.Name] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAPEM}
	cfg.AuthInfos[c.Name] = &clientcmdapi.AuthInfo{Token: Token}
	cfg.Contexts[c.Name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: c.Name, Namespace: "default"}
	cfg.CurrentContext = c.Name
	return clientcmd.WriteToFile(*cfg, path)
}

// logTail is the end of a program's log, for an error message (the test's temporary
// directory, and the log with it, is removed when the test ends).
func (c *Cluster) logTail(name string) string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, name+".log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "--- " + name + ".log (end)\n" + strings.Join(lines, "\n") + "\n"
}

// freePorts returns n loopback TCP ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
