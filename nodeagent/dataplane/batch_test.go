package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink/nl"
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
	// Failures are answered unasked: one in the middle of a write, and the last of a write
	// (the one whose answer ends the wait), in a batch of several writes.
	var more []RouteOp
	for i := 0; i < 2*batchSize+10; i++ {
		more = append(more, RouteOp{Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 202, byte(i / 256), byte(i % 256)}), 32), Gw: gw, Excl: true})
	}
	dup := map[int]bool{7: true, batchSize - 1: true, batchSize + 500: true, len(more) - 1: true}
	for i := range dup {
		more[i] = ops[i%len(ops)]
	}
	for i, err := range b.Apply(more) {
		if dup[i] != errors.Is(err, unix.EEXIST) || !dup[i] && err != nil {
			t.Fatalf("op %d (a duplicate: %v): %v", i, dup[i], err)
		}
	}
	for i := range more {
		more[i].Del = true
	}
	for i, err := range b.Apply(more) {
		if err != nil {
			t.Fatalf("delete %d: %v", i, err)
		}
	}
	if n := strings.Count(ip("route", "show", "proto", "147"), "via 10.1.0.2 dev v0"); n != 1000-len(dup)+1 {
		t.Fatalf("%d routes with nodenet's protocol after deleting the second batch, want %d", n, 1000-len(dup)+1)
	}
	for i := range dup {
		if errs := b.Apply([]RouteOp{{Dst: ops[i%len(ops)].Dst, Gw: gw}}); errs[0] != nil {
			t.Fatalf("put back %s: %v", ops[i%len(ops)].Dst, errs[0])
		}
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

// TestRouteRequest: a batched request is what vishvananda/netlink sends for the same change
// (`ip route add|replace|del <dst> via <gw> proto 147`), the acknowledgement asked for only
// when told.
func TestRouteRequest(t *testing.T) {
	for _, op := range []RouteOp{
		{Dst: netip.MustParsePrefix("10.244.1.0/26"), Gw: netip.MustParseAddr("10.20.30.31")},
		{Dst: netip.MustParsePrefix("10.244.1.0/26"), Gw: netip.MustParseAddr("10.20.30.31"), Excl: true},
		{Dst: netip.MustParsePrefix("100.64.3.0/24"), Gw: netip.MustParseAddr("10.99.0.23"), Del: true},
	} {
		for _, ack := range []bool{false, true} {
			kind, flags := unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE
			switch {
			case op.Del:
				kind, flags = unix.RTM_DELROUTE, 0
			case op.Excl:
				flags = unix.NLM_F_CREATE | unix.NLM_F_EXCL
			}
			if ack {
				flags |= unix.NLM_F_ACK
			}
			req := nl.NewNetlinkRequest(kind, flags)
			msg := nl.NewRtMsg()
			msg.Family = unix.AF_INET
			msg.Dst_len = uint8(op.Dst.Bits())
			msg.Protocol = uint8(RouteProtocol)
			req.AddData(msg)
			dst, gw := op.Dst.Addr().As4(), op.Gw.As4()
			req.AddData(nl.NewRtAttr(unix.RTA_DST, dst[:]))
			req.AddData(nl.NewRtAttr(unix.RTA_GATEWAY, gw[:]))
			want := req.Serialize()
			got := appendRouteRequest([]byte{0xee}, op, req.Seq, ack)
			if got[0] != 0xee || !bytes.Equal(got[1:], want) {
				t.Errorf("%+v ack %v:\n got % x\nwant % x", op, ack, got[1:], want)
			}
		}
	}
}
