// Package cnipod makes pods on lab hosts the way a node's container runtime does: a network
// namespace per pod, and the CNI configuration found in the host's CNI configuration
// directory run by libcni, the library the runtimes use (CNI ADD when the pod starts, DEL
// when it goes). The plugins run in the host's namespace with CNI_NETNS naming the pod's, as
// the kubelet's runtime runs them on the node, and find each other in the plugin directory
// (CNI_PATH). A pod's namespace is one of the lab's, so the lab's Down removes it too.
package cnipod

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/nodenet/terraform-provider-nodenet/internal/testbin"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
)

// Plugins are the reference plugins of the configurations nodenet writes (ptp with
// host-local IPAM), which hack/kube-bins.sh installs.
var Plugins = []string{"ptp", "host-local"}

// Require skips the test, saying what to run, when the plugins are missing; with
// NODENET_REQUIRE_KUBE=1 (CI) it fails instead.
func Require(t testing.TB) {
	t.Helper()
	testbin.Require(t, Plugins...)
}

// Options of Add.
type Options struct {
	// Network is the name of the configuration list to use; "" takes the directory's first
	// .conflist file in lexical order, as containerd and CRI-O take its first file.
	Network string
	// IfName is the pod's interface; "" is "eth0".
	IfName string
	// PluginDir holds the plugins (CNI_PATH); "" is the cache of hack/kube-bins.sh.
	PluginDir string
}

// Pod is a pod network namespace that CNI plugins set up.
type Pod struct {
	Name        string
	Host        *lab.Host
	NS, NSPath  string // the lab's namespace Prefix + "h<host index>-<name>"
	ContainerID string // CNI_CONTAINERID: the namespace's name
	IfName      string
	ConfFile    string // the configuration file the pod was made with
	Network     string // its name
	// Addr is the pod's address on IfName as the plugins report it (10.244.0.66/26) and
	// Gateway its gateway.
	Addr    netip.Prefix
	Gateway netip.Addr
	Result  *types100.Result

	lab  *lab.Lab
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList
	rt   *libcni.RuntimeConf

	mu      sync.Mutex
	deleted bool
}

// Add makes pod name on h: a namespace, then CNI ADD of the configuration in h.CNIConfDir.
// A configuration with host-local IPAM must keep its leases in the lab's directory (its
// default, /var/lib/cni/networks, is the machine's). When ADD fails, Add runs DEL and
// removes the namespace, so nothing of the pod stays.
func Add(ctx context.Context, l *lab.Lab, h *lab.Host, name string, o Options) (_ *Pod, err error) {
	if !validName(name) {
		return nil, fmt.Errorf("cnipod: bad pod name %q", name)
	}
	if o.IfName == "" {
		o.IfName = "eth0"
	}
	if o.PluginDir == "" {
		o.PluginDir = testbin.CNIDir()
	}
	file, list, err := load(h.CNIConfDir, o.Network)
	if err != nil {
		return nil, err
	}
	if err := leasesInside(list, l.Dir); err != nil {
		return nil, fmt.Errorf("cnipod: %s: %w", file, err)
	}
	ns, err := l.AddNamespace(fmt.Sprintf("h%d-%s", h.Index, name))
	if err != nil {
		return nil, err
	}
	p := &Pod{
		Name: name, Host: h, NS: ns, NSPath: filepath.Join(lab.NetnsDir, ns), ContainerID: ns, IfName: o.IfName,
		ConfFile: file, Network: list.Name, lab: l, list: list, cni: hostRuntime(h, o.PluginDir),
	}
	p.rt = &libcni.RuntimeConf{ContainerID: p.ContainerID, NetNS: p.NSPath, IfName: p.IfName}
	res, err := p.cni.AddNetworkList(ctx, list, p.rt)
	if err == nil {
		err = p.take(res)
	}
	if err != nil {
		err = fmt.Errorf("cnipod: CNI ADD of %s on %s with %s: %w", name, h.Name, file, err)
		// A runtime runs DEL after a failed ADD: ptp leaves the pod's veth behind and
		// host-local may hold a lease.
		return nil, errors.Join(err, p.Delete(context.WithoutCancel(ctx)))
	}
	return p, nil
}

// hostRuntime is libcni as a runtime on h uses it: plugins from pluginDir run in h's namespace,
// results cached in the host's directory (not the machine's /var/lib/cni).
func hostRuntime(h *lab.Host, pluginDir string) *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir([]string{pluginDir}, h.CNICacheDir,
		&hostExec{ns: h.NS, log: filepath.Join(filepath.Dir(h.CNICacheDir), "plugins.log")})
}

// Attach runs CNI ADD of config, one plugin's configuration or a list as a
// NetworkAttachmentDefinition holds it, for interface ifName of the existing namespace at
// nsPath (CNI_CONTAINERID is its name), with the plugins of the cache running in h's
// namespace: what Multus does for a pod's secondary interface. detach runs CNI DEL; a
// failed ADD runs it at once.
func Attach(ctx context.Context, h *lab.Host, nsPath, ifName, config string) (_ *types100.Result, detach func(context.Context) error, err error) {
	cni := hostRuntime(h, testbin.CNIDir())
	rt := &libcni.RuntimeConf{ContainerID: filepath.Base(nsPath), NetNS: nsPath, IfName: ifName}
	var probe struct {
		Plugins json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(config), &probe); err != nil {
		return nil, nil, fmt.Errorf("cnipod: CNI configuration: %w", err)
	}
	var add func(context.Context) (types.Result, error)
	if probe.Plugins != nil {
		list, err := libcni.NetworkConfFromBytes([]byte(config))
		if err != nil {
			return nil, nil, fmt.Errorf("cnipod: %w", err)
		}
		add = func(ctx context.Context) (types.Result, error) { return cni.AddNetworkList(ctx, list, rt) }
		detach = func(ctx context.Context) error { return cni.DelNetworkList(ctx, list, rt) }
	} else {
		pc, err := libcni.NetworkPluginConfFromBytes([]byte(config))
		if err != nil {
			return nil, nil, fmt.Errorf("cnipod: %w", err)
		}
		add = func(ctx context.Context) (types.Result, error) { return cni.AddNetwork(ctx, pc, rt) }
		detach = func(ctx context.Context) error { return cni.DelNetwork(ctx, pc, rt) }
	}
	res, err := add(ctx)
	var r *types100.Result
	if err == nil {
		r, err = types100.NewResultFromResult(res)
	}
	if err != nil {
		err = fmt.Errorf("cnipod: CNI ADD of %s in %s on %s: %w", ifName, nsPath, h.Name, err)
		return nil, nil, errors.Join(err, detach(context.WithoutCancel(ctx)))
	}
	return r, detach, nil
}

// take reads the pod's address from the plugins' result.
func (p *Pod) take(res types.Result) error {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return err
	}
	p.Result = r
	for _, ipc := range r.IPs {
		if ipc.Interface == nil || *ipc.Interface < 0 || *ipc.Interface >= len(r.Interfaces) {
			continue
		}
		if itf := r.Interfaces[*ipc.Interface]; itf.Name != p.IfName || itf.Sandbox != p.NSPath {
			continue
		}
		addr, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok {
			continue
		}
		ones, _ := ipc.Address.Mask.Size()
		p.Addr = netip.PrefixFrom(addr.Unmap(), ones)
		if gw, ok := netip.AddrFromSlice(ipc.Gateway); ok {
			p.Gateway = gw.Unmap()
		}
		return nil
	}
	b, _ := json.Marshal(r)
	return fmt.Errorf("the result gives %s in %s no address: %s", p.IfName, p.NSPath, b)
}

// Run runs `ip netns exec <pod namespace> args...`.
func (p *Pod) Run(args ...string) (string, error) { return lab.RunIn(p.NS, args...) }

// Delete runs CNI DEL (with the configuration the pod was made with, as the runtime's cache
// holds it) and removes the pod's namespace. A second Delete does nothing.
func (p *Pod) Delete(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.deleted {
		return nil
	}
	p.deleted = true
	var errs []error
	if err := p.cni.DelNetworkList(ctx, p.list, p.rt); err != nil {
		errs = append(errs, fmt.Errorf("cnipod: CNI DEL of %s on %s: %w", p.Name, p.Host.Name, err))
	}
	if err := p.lab.DeleteNamespace(p.NS); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// load finds the configuration: the one named network, or the first file ("" network). It
// reads configuration lists (.conflist), the format nodenet renders: a runtime reads a .conf
// file as a single plugin's configuration, which a list is not.
func load(dir, network string) (string, *libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(dir, []string{".conflist"})
	if err != nil {
		return "", nil, fmt.Errorf("cnipod: %w", err)
	}
	sort.Strings(files)
	for _, f := range files {
		list, err := libcni.NetworkConfFromFile(f)
		if err != nil {
			return "", nil, fmt.Errorf("cnipod: %w", err)
		}
		if network == "" || list.Name == network {
			return f, list, nil
		}
	}
	if network != "" {
		return "", nil, fmt.Errorf("cnipod: no CNI configuration list named %q in %s (files %v)", network, dir, files)
	}
	return "", nil, fmt.Errorf("cnipod: no CNI configuration list (*.conflist) in %s", dir)
}

// leasesInside refuses host-local IPAM whose leases would be kept outside dir.
func leasesInside(list *libcni.NetworkConfigList, dir string) error {
	for _, pc := range list.Plugins {
		var c struct {
			IPAM struct {
				Type    string `json:"type"`
				DataDir string `json:"dataDir"`
			} `json:"ipam"`
		}
		if err := json.Unmarshal(pc.Bytes, &c); err != nil {
			return err
		}
		if c.IPAM.Type != "host-local" {
			continue
		}
		rel, err := filepath.Rel(dir, c.IPAM.DataDir)
		if c.IPAM.DataDir == "" || !filepath.IsAbs(c.IPAM.DataDir) || err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return fmt.Errorf("host-local keeps its leases in %q, outside the lab's directory %s: set its dataDir to the host's CNIDataDir", c.IPAM.DataDir, dir)
		}
	}
	return nil
}

// hostExec runs a plugin as libcni's own RawExec does, from an OS thread inside the host's
// namespace: a forked process starts in the namespace of the thread that forks it.
type hostExec struct {
	ns  string
	log string // the plugins' stderr is appended here
	version.PluginDecoder
}

func (e *hostExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	var err error
	if nerr := lab.InNamespace(e.ns, func() error {
		var out []byte
		out, err = (&invoke.RawExec{Stderr: &stderr}).ExecPlugin(ctx, pluginPath, stdin, environ)
		stdout.Write(out)
		return nil
	}); nerr != nil {
		return nil, nerr
	}
	if stderr.Len() > 0 {
		if f, ferr := os.OpenFile(e.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); ferr == nil {
			fmt.Fprintf(f, "=== %s %s %s\n%s\n", time.Now().Format(time.RFC3339Nano), filepath.Base(pluginPath), commandOf(environ), stderr.Bytes())
			f.Close()
		}
	}
	if err != nil {
		return nil, err
	}
	return stdout.Bytes(), nil
}

func (e *hostExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func commandOf(environ []string) string {
	for _, kv := range environ {
		if c, ok := strings.CutPrefix(kv, "CNI_COMMAND="); ok {
			return c
		}
	}
	return ""
}

func validName(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}
