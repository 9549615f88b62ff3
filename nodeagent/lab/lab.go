// Package lab builds a test lab of Linux network namespaces for nodenet: N "hosts" on one
// underlay bridge, optionally in several subnets with a router between them, optional
// Calico-style "pods" behind hosts, a PKI, and one agent per host listening on 127.0.0.1 in
// the root namespace.
//
// Everything is made through netlink handles opened inside the lab's namespaces; the root
// network namespace only gets the agents' 127.0.0.1 listeners. Every namespace name starts
// with the lab's Prefix, so CleanupStale can find leftovers of a killed run.
//
// Files under Options.Dir:
//
//	pki/ca.pem, pki/ca-key.pem                 the CA (also the agents' client CA)
//	pki/client.pem, pki/client-key.pem         client certificate nodenet://terraform
//	pki/<cluster>_<node>.pem, ...-key.pem      server certificate per host (pki.NodeCertFiles)
//	hosts/<node>/state/                        agent state dir
//	hosts/<node>/boot_id                       the host's boot id (rewrite to simulate a reboot)
//	hosts/<node>/agent.log                     agent output
//	hosts/<node>/cni/net.d/                    the node's CNI configuration directory (the agent's --cni-conf-dir)
//	hosts/<node>/cni/ipam/                     host-local's leases, for a configuration that names it as dataDir
//	hosts/<node>/cni/cache/                    the CNI runtime's cache of results (a node's /var/lib/cni)
//	provider-nodenet.hcl                       ProviderHCL() (not *.tf on purpose)
package lab

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodenet/terraform-provider-nodenet/internal/atomicfile"

	"github.com/nodenet/terraform-provider-nodenet/internal/pki"
)

// HostSpec describes one test host.
type HostSpec struct {
	Cluster, Name string       // e.g. "test-cluster1", "multicluster-test-001"; Name is unique in a lab
	UnderlayIP    netip.Prefix // e.g. 192.168.0.21/24
	PodCIDR       netip.Prefix // optional: a pod behind the host with the CIDR's first address + 1
	MTU           int          // underlay MTU, 0 -> 1500
}

// AgentConfig is what an agent for one host needs.
type AgentConfig struct {
	Cluster, Node string
	NetnsPath     string       // /run/netns/<host ns>: the agent does its netlink work there
	Listener      net.Listener // listening on 127.0.0.1:<port> in the root namespace
	CAFile        string       // the lab CA (same file as ClientCAFile)
	CertFile      string
	KeyFile       string
	ClientCAFile  string
	StateDir      string
	BootIDFile    string
	LogFile       string
	// CNIConfDir is the host's CNI configuration directory, where the agent writes the CNI
	// configurations of IP pools (--cni-conf-dir; /etc/cni/net.d on a node).
	CNIConfDir string
	// CNIDataDir is host-local's data dir the configurations name (--cni-ipam-data-dir).
	CNIDataDir string
}

// StartAgent starts one agent; stop must stop it without removing anything from the
// kernel. StartAgent may close cfg.Listener once the agent owns the socket; the lab closes
// it after stop in any case.
type StartAgent func(cfg AgentConfig) (stop func() error, err error)

// Options configure Up.
type Options struct {
	// Prefix of every namespace name. Default "nnlab<pid>-" for the first lab of the
	// process and "nnlab<pid>-<n>-" for later ones, so labs of one process never collide.
	Prefix string
	Hosts  []HostSpec
	// Dir is the work dir; empty: a new temporary directory (kept after Down for its logs).
	Dir   string
	Start StartAgent // nil: no agents
	// NoPodRoutes leaves out the static routes between the pods of a cluster's hosts: the
	// system under test (BGP) routes them.
	NoPodRoutes bool
	// Router, when set, routes between the underlay subnets of the hosts.
	Router *RouterSpec
}

// RouterSpec is a router between underlay subnets: a namespace on the underlay bridge with
// one address in each subnet and IP forwarding on, like the router between two racks. Every
// host's subnet must be one of the router's; each host gets a route to each other subnet via
// the router's address in its own subnet. The subnets share the bridge (one layer-2
// network), but a host only reaches the others' addresses through the router.
type RouterSpec struct {
	Addrs []netip.Prefix // e.g. 192.168.1.1/24 and 192.168.2.1/24
}

// Router is the lab's router.
type Router struct {
	NS         string         // Prefix + "rt"
	Addrs      []netip.Prefix // on its "eth0"
	BridgePort string         // "vrt" in the bridge namespace
}

// Run runs `ip netns exec <NS> args...` in the router's namespace.
func (r *Router) Run(args ...string) (string, error) { return runIn(r.NS, args...) }

// Via is the router's address in the subnet of addr (invalid when it has none there).
func (r *RouterSpec) Via(addr netip.Addr) netip.Prefix {
	for _, a := range r.Addrs {
		if a.Masked().Contains(addr) {
			return a
		}
	}
	return netip.Prefix{}
}

// Lab is a running lab.
type Lab struct {
	Dir, Prefix string
	Hosts       []*Host
	BridgeNS    string  // namespace holding bridge "br0"
	Bridge      string  // "br0"
	Router      *Router // nil without Options.Router

	CA             *pki.CA
	CAFile         string
	CAKeyFile      string
	ClientCertFile string
	ClientKeyFile  string

	start       StartAgent
	noPodRoutes bool
	routerSpec  *RouterSpec

	mu     sync.Mutex
	made   []string // namespaces created, in order
	agents map[*Host]*agentRun
	downed bool
}

type agentRun struct {
	stop func() error
	ln   net.Listener
}

// Host is one lab host.
type Host struct {
	HostSpec
	Index      int    // 1-based
	NS         string // Prefix + "h<i>"
	NSPath     string // /run/netns/<NS>
	Underlay   string // "eth0" inside NS
	BridgePort string // "vh<i>" in the bridge namespace
	AgentAddr  string // "127.0.0.1:port"; "" without agents

	PodNS   string     // "" without PodCIDR
	PodIP   netip.Addr // PodCIDR's first host address + 1
	PodVeth string     // host side of the pod veth, "cali<i>"

	Dir, StateDir, BootIDFile, LogFile string
	CertFile, KeyFile                  string
	// CNIConfDir is the host's CNI configuration directory (the agent's --cni-conf-dir);
	// CNIDataDir is for host-local's leases (a configuration's dataDir: its default is
	// outside the lab); CNICacheDir is where a CNI runtime on the host keeps its results.
	CNIConfDir, CNIDataDir, CNICacheDir string
}

var labSeq atomic.Int32

func defaultPrefix() string {
	n := labSeq.Add(1)
	if n == 1 {
		return fmt.Sprintf("nnlab%d-", os.Getpid())
	}
	return fmt.Sprintf("nnlab%d-%d-", os.Getpid(), n)
}

func validName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 200 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func validate(o *Options) error {
	if len(o.Hosts) == 0 {
		return errors.New("lab: no hosts")
	}
	if strings.ContainsAny(o.Prefix, "/\x00") {
		return fmt.Errorf("lab: bad prefix %q", o.Prefix)
	}
	names := map[string]bool{}
	ips := map[netip.Addr]string{}
	var pods []netip.Prefix
	for i, h := range o.Hosts {
		if !validName(h.Cluster) || !validName(h.Name) {
			return fmt.Errorf("lab: host %d: bad cluster/name %q/%q", i+1, h.Cluster, h.Name)
		}
		if names[h.Name] {
			return fmt.Errorf("lab: duplicate host name %q", h.Name)
		}
		names[h.Name] = true
		if !h.UnderlayIP.IsValid() || !h.UnderlayIP.Addr().Is4() || h.UnderlayIP.Bits() >= 31 {
			return fmt.Errorf("lab: host %s: underlay %v must be an IPv4 address with a prefix length < 31", h.Name, h.UnderlayIP)
		}
		if other, ok := ips[h.UnderlayIP.Addr()]; ok {
			return fmt.Errorf("lab: hosts %s and %s share underlay IP %v", other, h.Name, h.UnderlayIP.Addr())
		}
		ips[h.UnderlayIP.Addr()] = h.Name
		if h.MTU != 0 && (h.MTU < 576 || h.MTU > 65535) {
			return fmt.Errorf("lab: host %s: bad MTU %d", h.Name, h.MTU)
		}
		if h.PodCIDR.IsValid() {
			if !h.PodCIDR.Addr().Is4() || h.PodCIDR.Bits() > 30 {
				return fmt.Errorf("lab: host %s: pod CIDR %v must be IPv4 with a prefix length <= 30", h.Name, h.PodCIDR)
			}
			for _, p := range pods {
				if p.Overlaps(h.PodCIDR) {
					return fmt.Errorf("lab: host %s: pod CIDR %v overlaps %v", h.Name, h.PodCIDR, p)
				}
			}
			pods = append(pods, h.PodCIDR.Masked())
		}
	}
	return validateRouter(o)
}

func validateRouter(o *Options) error {
	r := o.Router
	if r == nil {
		return nil
	}
	if len(r.Addrs) < 2 {
		return errors.New("lab: a router needs addresses in at least two subnets")
	}
	for i, a := range r.Addrs {
		if !a.IsValid() || !a.Addr().Is4() || a.Bits() >= 31 {
			return fmt.Errorf("lab: router address %v must be IPv4 with a prefix length < 31", a)
		}
		for _, b := range r.Addrs[:i] {
			if a.Overlaps(b) {
				return fmt.Errorf("lab: router addresses %v and %v are in overlapping subnets", b, a)
			}
		}
	}
	for _, h := range o.Hosts {
		via := r.Via(h.UnderlayIP.Addr())
		switch {
		case via.Masked() != h.UnderlayIP.Masked():
			return fmt.Errorf("lab: host %s: underlay subnet %v is none of the router's (%v)", h.Name, h.UnderlayIP.Masked(), r.Addrs)
		case via.Addr() == h.UnderlayIP.Addr():
			return fmt.Errorf("lab: host %s has the router's address %v", h.Name, via.Addr())
		}
	}
	if o.NoPodRoutes {
		return nil
	}
	// The static pod routes go straight to the other host, which is no neighbour across
	// subnets, and the router does not know the pods.
	for i, a := range o.Hosts {
		for _, b := range o.Hosts[:i] {
			if a.Cluster == b.Cluster && a.PodCIDR.IsValid() && b.PodCIDR.IsValid() && a.UnderlayIP.Masked() != b.UnderlayIP.Masked() {
				return fmt.Errorf("lab: hosts %s and %s of cluster %s have pods in different underlay subnets: static pod routes cannot cross the router; set NoPodRoutes and route the pods with the system under test", b.Name, a.Name, a.Cluster)
			}
		}
	}
	return nil
}

// Up builds the lab. On any error it tears down what it made and returns the error.
func Up(ctx context.Context, o Options) (_ *Lab, err error) {
	if err := validate(&o); err != nil {
		return nil, err
	}
	if o.Prefix == "" {
		o.Prefix = defaultPrefix()
	}
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "nnlab-")
		if err != nil {
			return nil, err
		}
		o.Dir = d
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	l := &Lab{
		Dir:      dir,
		Prefix:   o.Prefix,
		BridgeNS: o.Prefix + "br",
		Bridge:   "br0",
		start:    o.Start, noPodRoutes: o.NoPodRoutes, routerSpec: o.Router,
		agents: map[*Host]*agentRun{},
	}
	defer func() {
		if err != nil {
			if derr := l.Down(); derr != nil {
				err = errors.Join(err, fmt.Errorf("teardown after failed Up: %w", derr))
			}
		}
	}()
	for i, spec := range o.Hosts {
		idx := i + 1
		h := &Host{
			HostSpec:   spec,
			Index:      idx,
			NS:         fmt.Sprintf("%sh%d", o.Prefix, idx),
			Underlay:   "eth0",
			BridgePort: fmt.Sprintf("vh%d", idx),
			Dir:        filepath.Join(dir, "hosts", spec.Name),
		}
		if h.MTU == 0 {
			h.MTU = 1500
		}
		h.NSPath = nsPath(h.NS)
		h.StateDir = filepath.Join(h.Dir, "state")
		h.BootIDFile = filepath.Join(h.Dir, "boot_id")
		h.LogFile = filepath.Join(h.Dir, "agent.log")
		h.CNIConfDir = filepath.Join(h.Dir, "cni", "net.d")
		h.CNIDataDir = filepath.Join(h.Dir, "cni", "ipam")
		h.CNICacheDir = filepath.Join(h.Dir, "cni", "cache")
		h.CertFile, h.KeyFile = pki.NodeCertFiles(filepath.Join(dir, "pki"), spec.Cluster, spec.Name)
		if spec.PodCIDR.IsValid() {
			h.PodNS = fmt.Sprintf("%sp%d", o.Prefix, idx)
			h.PodIP = spec.PodCIDR.Masked().Addr().Next().Next()
			h.PodVeth = fmt.Sprintf("cali%d", idx)
		}
		l.Hosts = append(l.Hosts, h)
	}

	if err := l.writeFiles(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := l.buildNetwork(ctx); err != nil {
		return nil, err
	}
	if o.Start != nil {
		for _, h := range l.Hosts {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := l.StartAgent(h); err != nil {
				return nil, err
			}
		}
	}
	if err := atomicfile.Write(filepath.Join(dir, "provider-nodenet.hcl"), []byte(l.ProviderHCL()), 0o644); err != nil {
		return nil, err
	}
	return l, nil
}

// NewBootID returns a random UUID-like string (the format of /proc/sys/kernel/random/boot_id).
func NewBootID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// SetBootID rewrites the host's boot id file (a simulated reboot as far as the agent can
// tell from its boot id; kernel state is untouched). Empty id: a new random one.
func (h *Host) SetBootID(id string) error {
	if id == "" {
		id = NewBootID()
	}
	return atomicfile.Write(h.BootIDFile, []byte(id+"\n"), 0o644)
}

func (l *Lab) writeFiles() error {
	pkiDir := filepath.Join(l.Dir, "pki")
	if err := os.MkdirAll(pkiDir, 0o755); err != nil {
		return err
	}
	ca, err := pki.NewCA("nodenet lab CA "+l.Prefix, time.Now().AddDate(1, 0, 0))
	if err != nil {
		return err
	}
	l.CA = ca
	l.CAFile = filepath.Join(pkiDir, "ca.pem")
	l.CAKeyFile = filepath.Join(pkiDir, "ca-key.pem")
	l.ClientCertFile = filepath.Join(pkiDir, "client.pem")
	l.ClientKeyFile = filepath.Join(pkiDir, "client-key.pem")
	caKey, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	write := func(path string, data []byte, mode os.FileMode) {
		if err == nil {
			err = atomicfile.Write(path, data, mode)
		}
	}
	write(l.CAFile, ca.CertPEM, 0o644)
	write(l.CAKeyFile, caKey, 0o600)
	cc, ck, cerr := ca.IssueClient("nodenet://terraform", pki.Options{})
	if cerr != nil {
		return cerr
	}
	write(l.ClientCertFile, cc, 0o644)
	write(l.ClientKeyFile, ck, 0o600)
	for _, h := range l.Hosts {
		sc, sk, serr := ca.IssueServer(h.Cluster, h.Name, []net.IP{net.IPv4(127, 0, 0, 1)}, nil, pki.Options{})
		if serr != nil {
			return serr
		}
		write(h.CertFile, sc, 0o644)
		write(h.KeyFile, sk, 0o600)
		for _, d := range []string{h.StateDir, h.CNIConfDir} {
			if err == nil {
				err = os.MkdirAll(d, 0o755)
			}
		}
		if err == nil {
			err = h.SetBootID("")
		}
	}
	return err
}

// Host returns the host named node in cluster, or nil.
func (l *Lab) Host(cluster, node string) *Host {
	for _, h := range l.Hosts {
		if h.Cluster == cluster && h.Name == node {
			return h
		}
	}
	return nil
}

// Clusters returns the cluster names in the order of their first host.
func (l *Lab) Clusters() []string {
	var out []string
	seen := map[string]bool{}
	for _, h := range l.Hosts {
		if !seen[h.Cluster] {
			seen[h.Cluster] = true
			out = append(out, h.Cluster)
		}
	}
	return out
}

// StartAgent (re)starts the agent of h. The first start listens on 127.0.0.1:0; later
// starts listen again on the host's AgentAddr so the address stays the same.
func (l *Lab) StartAgent(h *Host) error {
	if l.start == nil {
		return errors.New("lab: no StartAgent configured")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.downed {
		return errors.New("lab: is down")
	}
	if _, ok := l.agents[h]; ok {
		return fmt.Errorf("lab: agent of %s/%s already running", h.Cluster, h.Name)
	}
	addr := h.AgentAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for try := 0; ; try++ {
		// The old socket may linger briefly after a stop; SO_REUSEADDR (Go's default)
		// covers TIME_WAIT, retry covers the rest.
		ln, err = net.Listen("tcp4", addr)
		if err == nil || try == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("lab: listen for %s: %w", h.Name, err)
	}
	h.AgentAddr = ln.Addr().String()
	cfg := AgentConfig{
		Cluster:      h.Cluster,
		Node:         h.Name,
		NetnsPath:    h.NSPath,
		Listener:     ln,
		CAFile:       l.CAFile,
		CertFile:     h.CertFile,
		KeyFile:      h.KeyFile,
		ClientCAFile: l.CAFile,
		StateDir:     h.StateDir,
		BootIDFile:   h.BootIDFile,
		LogFile:      h.LogFile,
		CNIConfDir:   h.CNIConfDir,
		CNIDataDir:   h.CNIDataDir,
	}
	stop, err := l.start(cfg)
	if err != nil {
		ln.Close()
		return fmt.Errorf("lab: start agent %s/%s: %w", h.Cluster, h.Name, err)
	}
	l.agents[h] = &agentRun{stop: stop, ln: ln}
	return nil
}

// StopAgent stops the agent of h (a no-op when none runs). Kernel state is left alone.
func (l *Lab) StopAgent(h *Host) error {
	l.mu.Lock()
	a := l.agents[h]
	delete(l.agents, h)
	l.mu.Unlock()
	if a == nil {
		return nil
	}
	var err error
	if a.stop != nil {
		err = a.stop()
	}
	a.ln.Close() // may already be closed by the agent
	if err != nil {
		return fmt.Errorf("lab: stop agent %s/%s: %w", h.Cluster, h.Name, err)
	}
	return nil
}

// Down stops the agents and deletes every namespace the lab made (their links go with
// them). It is idempotent, safe on a nil or partially built lab, and touches nothing in
// the root namespace.
func (l *Lab) Down() error {
	if l == nil {
		return nil
	}
	var errs []error
	l.mu.Lock()
	l.downed = true
	l.mu.Unlock()
	for _, h := range l.Hosts {
		if err := l.StopAgent(h); err != nil {
			errs = append(errs, err)
		}
	}
	l.mu.Lock()
	made := l.made
	l.made = nil
	l.mu.Unlock()
	delLinks(l, made)
	for i := len(made) - 1; i >= 0; i-- {
		if err := deleteNamedNS(made[i]); err != nil {
			errs = append(errs, err)
			l.mu.Lock()
			l.made = append(l.made, made[i]) // retry on the next Down
			l.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// Run runs `ip netns exec <NS> args...` and returns its combined output; on failure the
// error includes the output.
func (h *Host) Run(args ...string) (string, error) { return runIn(h.NS, args...) }

// RunPod is Run in the pod namespace.
func (h *Host) RunPod(args ...string) (string, error) {
	if h.PodNS == "" {
		return "", fmt.Errorf("lab: host %s has no pod", h.Name)
	}
	return runIn(h.PodNS, args...)
}

func runIn(ns string, args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("lab: no command")
	}
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip netns exec %s %s: %w: %s", ns, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ProviderHCL returns a provider "nodenet" block for the lab: the lab's CA and client
// certificate and every host's agent address, grouped by cluster.
func (l *Lab) ProviderHCL() string {
	var b strings.Builder
	b.WriteString("provider \"nodenet\" {\n  tls = {\n")
	fmt.Fprintf(&b, "    ca_cert     = file(%s)\n", hclString(l.CAFile))
	fmt.Fprintf(&b, "    client_cert = file(%s)\n", hclString(l.ClientCertFile))
	fmt.Fprintf(&b, "    client_key  = file(%s)\n", hclString(l.ClientKeyFile))
	b.WriteString("  }\n  clusters = {\n")
	for _, c := range l.Clusters() {
		fmt.Fprintf(&b, "    %s = {\n      nodes = {\n", hclString(c))
		for _, h := range l.Hosts {
			if h.Cluster == c {
				fmt.Fprintf(&b, "        %s = { agent = %s, address = %s }\n", hclString(h.Name), hclString(h.AgentAddr), hclString(h.UnderlayIP.Addr().String()))
			}
		}
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  }\n}\n")
	return b.String()
}

func hclString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "${", "$${", "%{", "%%{")
	return `"` + r.Replace(s) + `"`
}

// CleanupStale deletes namespaces named prefixBase<pid>-* whose pid no longer runs:
// leftovers of a killed test run. Use prefixBase "nnlab" for default prefixes.
func CleanupStale(prefixBase string) error {
	ents, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefixBase)
		if !ok {
			continue
		}
		digits, _, ok := strings.Cut(rest, "-")
		if !ok || digits == "" {
			continue
		}
		pid, err := strconv.Atoi(digits)
		if err != nil || pid <= 0 || pidAlive(pid) {
			continue
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		if err := deleteNamedNS(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
