package ipip

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// netnsPair makes two network namespaces joined by veth0 (192.168.77.1/24 in the first,
// .2/24 in the second), removed when the test ends, and a Dataplane over each.
func netnsPair(t *testing.T, tag string) (names [2]string, dps [2]*dataplane.Dataplane) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	for i := range names {
		ns := fmt.Sprintf("nntip%d%s%c", os.Getpid(), tag, 'a'+i)
		_ = exec.Command("ip", "netns", "del", ns).Run() // left over from a killed run with the same pid
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
			}
		})
		names[i] = ns
	}
	sh(t, "ip", "-n", names[0], "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", names[1])
	for i, ns := range names {
		sh(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("192.168.77.%d/24", i+1), "dev", "veth0")
		sh(t, "ip", "-n", ns, "link", "set", "veth0", "up")
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
		dp, err := dataplane.Open("/run/netns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(dp.Close)
		dps[i] = dp
	}
	return names, dps
}

func hasIpip(t *testing.T) bool {
	t.Helper()
	f, _, err := dataplane.ProbeKernelFeatures()
	if err != nil {
		t.Fatal(err)
	}
	return f["ipip"]
}

// nodeSpec is node i's share (block 10.244.0.<64*i>/26) of a pool of the two nodes.
func nodeSpec(i int) *pb.IpipTunnel {
	j := 1 - i
	return &pb.IpipTunnel{
		Name: "tunl-pool0", LocalIp: fmt.Sprintf("192.168.77.%d", i+1), Address: fmt.Sprintf("10.244.0.%d/32", 64*i), Mtu: 1480,
		Routes: []*pb.Route{{Dst: fmt.Sprintf("10.244.0.%d/26", 64*j), Via: fmt.Sprintf("192.168.77.%d", j+1)}},
	}
}

func local(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("192.168.77.%d", i+1)) }

// TestKernelWithoutIpip: on a kernel that cannot make ipip links (this one has no ipip
// module), the plan fails before any step with an error that names the module, the link
// creation itself fails the same way (had the probe not known), and nothing is left.
func TestKernelWithoutIpip(t *testing.T) {
	ns, dps := netnsPair(t, "nm")
	if hasIpip(t) {
		t.Skip("this kernel has ipip: TestKernelWithIpip covers it")
	}
	h, err := dps[0].Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()

	_, err = TunnelSteps(h, testPool, nodeSpec(0), local(0), nil, nil)
	t.Logf("plan: %v", err)
	if err == nil || !strings.Contains(err.Error(), "ipip device tunl-pool0: this kernel cannot make ipip links: load the ipip kernel module (modprobe ipip)") {
		t.Fatalf("want an error naming the ipip module, got %v", err)
	}

	ref := &dataplane.LinkRef{Name: "tunl-pool0"}
	err = createLink(h, Desired(testPool, nodeSpec(0), local(0)).Link, ref)
	t.Logf("create: %v", err)
	if !errors.Is(err, unix.EOPNOTSUPP) || !strings.Contains(err.Error(), "modprobe ipip") {
		t.Fatalf("want EOPNOTSUPP with the module named, got %v", err)
	}

	if out := sh(t, "ip", "-n", ns[0], "-o", "link", "show"); strings.Contains(out, "tunl") {
		t.Errorf("a link was left:\n%s", out)
	}
	if obs, err := ObserveTunnel(h, testPool, "tunl-pool0", nodeSpec(0), nil); err != nil || obs != nil {
		t.Errorf("observed %v, %v; want nothing", obs, err)
	}
	if steps, err := DeleteTunnelSteps(h, testPool, "tunl-pool0", TunnelClaims(nodeSpec(0))); err != nil || len(steps) != 0 {
		t.Errorf("delete of nothing: %d steps, %v", len(steps), err)
	}
}

// TestKernelWithIpip (on a kernel with ipip; skipped on this one): the two nodes' tunnels,
// a ping across, an observation that reads back the spec, a second plan with no change, and
// a delete that leaves nothing.
func TestKernelWithIpip(t *testing.T) {
	ns, dps := netnsPair(t, "wi")
	if !hasIpip(t) {
		t.Skip("this kernel has no ipip: TestKernelWithoutIpip covers it")
	}
	apply := func(i int) ([]*pb.Change, *pb.IpipTunnel) {
		t.Helper()
		h, err := dps[i].Handle()
		if err != nil {
			t.Fatal(err)
		}
		defer h.Release()
		p, err := TunnelSteps(h, testPool, nodeSpec(i), local(i), TunnelClaims(nodeSpec(i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := dataplane.Run("ipip", p.Steps, nil); err != nil {
			t.Fatal(err)
		}
		obs, err := p.Observe()
		if err != nil {
			t.Fatal(err)
		}
		return dataplane.Changes(p.Steps), obs
	}
	changes, obs := apply(0)
	if len(changes) != 3 || changes[0].GetEntry() != "link" || changes[0].GetDetail() != "ipip remote any local 192.168.77.1 mtu 1480" {
		t.Errorf("changes: %v", changes)
	}
	apply(1)
	sh(t, "ip", "-n", ns[1], "addr", "add", "10.244.0.65/32", "dev", "lo")
	var out []byte
	var err error
	for range 3 {
		if out, err = exec.Command("ip", "netns", "exec", ns[0], "ping", "-c1", "-W1", "10.244.0.65").CombinedOutput(); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("ping across the tunnel: %v\n%s", err, out)
	}
	link := sh(t, "ip", "-n", ns[0], "-d", "link", "show", "tunl-pool0")
	for _, w := range []string{"ipip", "local 192.168.77.1", "alias nodenet:" + testPool, "mtu 1480"} {
		if !strings.Contains(link, w) {
			t.Errorf("ip -d link: missing %q in\n%s", w, link)
		}
	}
	if r := sh(t, "ip", "-n", ns[0], "route"); !strings.Contains(r, "10.244.0.64/26 via 192.168.77.2 dev tunl-pool0 proto 147 onlink") {
		t.Errorf("ip route:\n%s", r)
	}
	want := nodeSpec(0)
	want.Ifindex, want.OperState = obs.GetIfindex(), "up"
	if !proto.Equal(obs, want) {
		t.Errorf("observed:\n got %v\nwant %v", obs, want)
	}
	if changes, _ := apply(0); len(changes) != 0 {
		t.Errorf("second apply: %v", changes)
	}

	h, err := dps[0].Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	steps, err := DeleteTunnelSteps(h, testPool, "tunl-pool0", TunnelClaims(nodeSpec(0)))
	if err != nil {
		t.Fatal(err)
	}
	if err := dataplane.Run("ipip", steps, nil); err != nil {
		t.Fatal(err)
	}
	if out := sh(t, "ip", "-n", ns[0], "-o", "link", "show"); strings.Contains(out, "tunl-pool0") {
		t.Errorf("the device was left:\n%s", out)
	}
	if r := sh(t, "ip", "-n", ns[0], "route"); strings.Contains(r, "10.244.0.64") {
		t.Errorf("a route was left:\n%s", r)
	}
}
