package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRouteBatcher: a thousand routes in one batch land in the kernel as `ip route` shows
// them, a second add of one is refused alone (EEXIST) while the rest of its batch goes
// through, and a batch of deletes removes them.
func TestRouteBatcher(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ns := fmt.Sprintf("nntdp%dbatch", os.Getpid())
	ip := func(args ...string) string {
		out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", ns).Run() })
	ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
	ip("link", "set", "v0", "up")
	ip("addr", "add", "10.1.0.1/24", "dev", "v0")
	dp, err := Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	b, err := dp.RouteBatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	gw := netip.MustParseAddr("10.1.0.2")
	var ops []RouteOp
	for i := 0; i < 1000; i++ {
		ops = append(ops, RouteOp{Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200, byte(i / 256), byte(i % 256)}), 32), Gw: gw, Excl: true})
	}
	for i, err := range b.Apply(ops) {
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	if n := strings.Count(ip("route", "show", "proto", "147"), "via 10.1.0.2 dev v0"); n != 1000 {
		t.Fatalf("%d routes with nodenet's protocol, want 1000", n)
	}
	errs := b.Apply([]RouteOp{ops[0], {Dst: netip.MustParsePrefix("10.201.0.0/24"), Gw: gw, Excl: true}})
	if !errors.Is(errs[0], unix.EEXIST) || errs[1] != nil {
		t.Fatalf("errors %v, want EEXIST for the duplicate only", errs)
	}
	for i := range ops {
		ops[i].Del = true
	}
	for i, err := range b.Apply(ops) {
		if err != nil {
			t.Fatalf("delete %d: %v", i, err)
		}
	}
	if out := ip("route", "show", "proto", "147"); !strings.HasPrefix(strings.TrimSpace(out), "10.201.0.0/24 via 10.1.0.2 dev v0") || strings.Count(out, "\n") != 1 {
		t.Fatalf("left after the deletes:\n%s", out)
	}
}
