package provider

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/lab"
)

// Acceptance tests run the real terraform binary (TF_ACC_TERRAFORM_PATH) against this
// provider served in-process, and real agents in a lab of network namespaces.

var testProviders = map[string]func() (tfprotov6.ProviderServer, error){
	"nodenet": providerserver.NewProtocol6WithError(New("test")()),
}

func TestMain(m *testing.M) {
	if os.Getenv("TF_ACC") != "" && os.Geteuid() == 0 {
		// Leftovers of a killed earlier run of this package.
		_ = lab.CleanupStale("nnlab")
	}
	code := m.Run()
	if builtAgent.path != "" {
		os.RemoveAll(filepath.Dir(builtAgent.path))
	}
	os.Exit(code)
}

// newLab brings up a lab with in-process agents and removes it when the test ends.
func newLab(t *testing.T, o lab.Options) *lab.Lab {
	t.Helper()
	return newLabWith(t, o, nil)
}

// slowApplies makes the applies (and adoptions) of chosen nodes take longer, after their
// intent is recorded and before the kernel is touched, whatever the caller's deadline: as
// a slow kernel or a stuck node would.
type slowApplies struct {
	mu    sync.Mutex
	delay map[string]time.Duration
}

func (s *slowApplies) set(node string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay[node] = d
}

func (s *slowApplies) hook(node, _ string) {
	s.mu.Lock()
	d := s.delay[node]
	s.mu.Unlock()
	time.Sleep(d)
}

// newSlowLab is newLab whose nodes' applies can be slowed down.
func newSlowLab(t *testing.T, o lab.Options) (*lab.Lab, *slowApplies) {
	t.Helper()
	s := &slowApplies{delay: map[string]time.Duration{}}
	return newLabWith(t, o, s.hook), s
}

func newLabWith(t *testing.T, o lab.Options, afterIntent func(node, id string)) *lab.Lab {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1 (needs root and terraform)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("acceptance tests need root: they build network namespaces")
	}
	o.Dir = t.TempDir()
	if o.Start == nil {
		o.Start = lab.InProcessAgentHooked("acc", afterIntent)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, o)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
		if t.Failed() {
			keepLogs(t, l)
		}
	})
	return l
}

// keepLogs copies the agents' logs of a failed test out of its temporary directory.
func keepLogs(t *testing.T, l *lab.Lab) {
	dir := filepath.Join(os.TempDir(), "nodenet-failed", strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	for _, h := range l.Hosts {
		if b, err := os.ReadFile(h.LogFile); err == nil {
			_ = os.WriteFile(filepath.Join(dir, h.Name+".log"), b, 0o644)
		}
	}
	t.Logf("agent logs kept in %s", dir)
}

// newExecLab brings up a lab whose agents are the built nodenet-agent binary, each inside its
// host's namespace: what BGP needs (its sessions open in the agent's own namespace).
func newExecLab(t *testing.T, o lab.Options) *lab.Lab {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1 (needs root and terraform)")
	}
	o.Start = lab.ExecAgent(agentBinary(t))
	return newLabWith(t, o, nil)
}

var builtAgent struct {
	once sync.Once
	path string
	err  error
}

// agentBinary builds nodenet-agent once per test process.
func agentBinary(t *testing.T) string {
	t.Helper()
	builtAgent.once.Do(func() {
		dir, err := os.MkdirTemp("", "nodenet-acc-agent-")
		if err != nil {
			builtAgent.err = err
			return
		}
		builtAgent.path = filepath.Join(dir, "nodenet-agent")
		if out, err := exec.Command("go", "build", "-o", builtAgent.path, "../nodeagent/cmd/nodenet-agent").CombinedOutput(); err != nil {
			builtAgent.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if builtAgent.err != nil {
		t.Fatal(builtAgent.err)
	}
	return builtAgent.path
}

// scenario is the provider block of the lab plus an example's main.tf.
func scenario(t *testing.T, l *lab.Lab, example string) string {
	t.Helper()
	b, err := os.ReadFile("../examples/scenarios/" + example + "/main.tf")
	if err != nil {
		t.Fatal(err)
	}
	return l.ProviderHCL() + "\n" + string(b)
}

func host(t *testing.T, l *lab.Lab, node string) *lab.Host {
	t.Helper()
	for _, h := range l.Hosts {
		if h.Name == node {
			return h
		}
	}
	t.Fatalf("no lab host %s", node)
	return nil
}

// run runs a command in a host's namespace and fails the test on error.
func run(t *testing.T, h *lab.Host, args ...string) string {
	t.Helper()
	out, err := h.Run(args...)
	if err != nil {
		t.Fatalf("%s: %v", h.Name, err)
	}
	return out
}

// ping sends pings from the pod behind h to ip; a few tries absorb the first ARP exchange
// between a host and its pod.
func ping(h *lab.Host, ip string) error {
	var err error
	for try := 0; try < 3; try++ {
		var out string
		if out, err = h.RunPod("ping", "-c", "1", "-W", "2", ip); err == nil && strings.Contains(out, "1 received") {
			return nil
		}
	}
	return fmt.Errorf("ping from the pod behind %s (%s) to %s failed: %v", h.Name, h.PodIP, ip, err)
}

// pings checks that the pod behind from reaches every address.
func pings(l *lab.Lab, from string, ips ...string) func() error {
	return func() error {
		var h *lab.Host
		for _, x := range l.Hosts {
			if x.Name == from {
				h = x
			}
		}
		for _, ip := range ips {
			if err := ping(h, ip); err != nil {
				return err
			}
		}
		return nil
	}
}

// snapshot is what `ip` and `bridge` print of a host's links, IPv4 routes (all tables),
// permanent neighbours and FDB: destroy must leave it byte-identical. IPv6 multicast FDB
// entries (33:33:...) come and go with the kernel's link-local addresses, so they are left out.
func snapshot(h *lab.Host) (string, error) {
	var b strings.Builder
	for _, cmd := range [][]string{
		{"ip", "-d", "link", "show"},
		{"ip", "-4", "route", "show", "table", "all"},
		{"ip", "neigh", "show", "nud", "permanent"},
		{"bridge", "fdb", "show"},
	} {
		out, err := h.Run(cmd...)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "$ %s\n", strings.Join(cmd, " "))
		for _, line := range strings.SplitAfter(out, "\n") {
			if !strings.HasPrefix(line, "33:33:") {
				b.WriteString(line)
			}
		}
	}
	return b.String(), nil
}

// expectMemberChanges is a plan check: the resource's planned change touches exactly the
// given members (by key), and no other.
type expectMemberChanges struct {
	address string
	members []string
}

func (e expectMemberChanges) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	for _, rc := range req.Plan.ResourceChanges {
		if rc.Address != e.address {
			continue
		}
		before := nested(rc.Change.Before, "members")
		after := nested(rc.Change.After, "members")
		unknown := nested(rc.Change.AfterUnknown, "members")
		keys := map[string]bool{}
		for k := range before {
			keys[k] = true
		}
		for k := range after {
			keys[k] = true
		}
		var changed []string
		for k := range keys {
			if !reflect.DeepEqual(before[k], after[k]) || anyTrue(unknown[k]) {
				changed = append(changed, k)
			}
		}
		sort.Strings(changed)
		want := append([]string(nil), e.members...)
		sort.Strings(want)
		if !reflect.DeepEqual(changed, want) {
			resp.Error = fmt.Errorf("%s: the plan changes members %v, want exactly %v", e.address, changed, want)
		}
		return
	}
	resp.Error = fmt.Errorf("%s: not in the plan", e.address)
}

// anyTrue tells whether an after_unknown structure marks any value unknown.
func anyTrue(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case map[string]any:
		for _, e := range x {
			if anyTrue(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if anyTrue(e) {
				return true
			}
		}
	}
	return false
}

func nested(v any, key string) map[string]any {
	m, _ := v.(map[string]any)
	out, _ := m[key].(map[string]any)
	return out
}

// sourceSeenBy sends a UDP datagram from the pod behind from to the pod behind to and returns
// the source address the receiving pod sees: the sending pod's own address when nothing
// rewrites it on the way (no SNAT).
func sourceSeenBy(from, to *lab.Host) (string, error) {
	return udpSource(from.PodNS, to.PodNS, to.PodIP)
}

// expectBefore is a plan check: the resource's prior value at the attribute path (map keys
// and names) is want (or what a func() any returns when the check runs), as the state
// recorded it before the plan.
type expectBefore struct {
	address string
	path    []string
	want    any
}

func (e expectBefore) CheckPlan(_ context.Context, req plancheck.CheckPlanRequest, resp *plancheck.CheckPlanResponse) {
	for _, rc := range req.Plan.ResourceChanges {
		if rc.Address != e.address {
			continue
		}
		var v any = rc.Change.Before
		for _, p := range e.path {
			m, _ := v.(map[string]any)
			v = m[p]
		}
		want := e.want
		if f, ok := want.(func() any); ok {
			want = f() // a value an earlier step captured
		}
		if fmt.Sprint(v) != fmt.Sprint(want) {
			resp.Error = fmt.Errorf("%s: %s before the plan is %v, want %v", e.address, strings.Join(e.path, "."), v, want)
		}
		return
	}
	resp.Error = fmt.Errorf("%s: not in the plan", e.address)
}

// hosts is a lab of n (up to 3) hosts without pods: c1/n1, c1/n2, c2/n3.
func hosts(n int) lab.Options {
	specs := []lab.HostSpec{
		{Cluster: "c1", Name: "n1", UnderlayIP: mustPrefix("192.168.0.21/24")},
		{Cluster: "c1", Name: "n2", UnderlayIP: mustPrefix("192.168.0.31/24")},
		{Cluster: "c2", Name: "n3", UnderlayIP: mustPrefix("192.168.0.16/24")},
	}
	return lab.Options{Hosts: specs[:n]}
}

// noVxlan fails unless no lab host has a vxlan device.
func noVxlan(l *lab.Lab) error {
	for _, h := range l.Hosts {
		out, err := h.Run("ip", "link", "show", "type", "vxlan")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "" {
			return fmt.Errorf("%s keeps a vxlan device: %s", h.Name, out)
		}
	}
	return nil
}
