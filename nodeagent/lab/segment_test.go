package lab

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

// A segment gives the chosen hosts an eth1 on a second bridge, a peer on it answers, and the
// lab's Down removes its namespaces too.
func TestSegment(t *testing.T) {
	needRoot(t)
	prefix := testPrefix(t)
	l, err := Up(context.Background(), Options{Prefix: prefix, Dir: t.TempDir(), Hosts: threeHosts()[:2]})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Down() }() // a second Down is a no-op
	seg, err := l.AddSegment("seg", "eth1", l.Hosts[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seg.AddPeer("peer", netip.MustParsePrefix("192.168.60.1/24")); err != nil {
		t.Fatal(err)
	}
	h1, h2 := l.Hosts[0], l.Hosts[1]
	if _, err := h2.Run("ip", "link", "show", "eth1"); err == nil {
		t.Error("eth1 on a host that was not given one")
	}
	if _, err := h1.Run("ip", "addr", "add", "192.168.60.20/24", "dev", "eth1"); err != nil {
		t.Fatal(err)
	}
	if out, err := h1.Run("ping", "-c", "1", "-W", "2", "192.168.60.1"); err != nil || !strings.Contains(out, "1 received") {
		t.Fatalf("ping the peer over eth1: %v\n%s", err, out)
	}
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	if left := nsWithPrefix(t, prefix); len(left) != 0 {
		t.Errorf("namespaces left after Down: %v", left)
	}
}
