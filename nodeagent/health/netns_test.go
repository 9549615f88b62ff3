package health

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// tunnelPair is two throwaway network namespaces joined by a veth pair, each with a VXLAN
// device vxh, its FDB entry and permanent neighbour for the other. a's overlay address is a
// /32 and a's only route off the underlay subnet is a blackhole default: a probe from a
// reaches b's overlay address only if it leaves by vxh. It returns a's namespace path.
func tunnelPair(t *testing.T, tag string) (a, b string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	a, b = fmt.Sprintf("nnth%d%sa", os.Getpid(), tag), fmt.Sprintf("nnth%d%sb", os.Getpid(), tag)
	for _, ns := range []string{a, b} {
		_ = exec.Command("ip", "netns", "del", ns).Run() // left over from a killed run with the same pid
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
			}
		})
	}
	sh(t, "ip", "-n", a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", b)
	for ns, c := range map[string]struct{ ul, peerUL, mac, peerMAC, ov, peerOV string }{
		a: {"192.168.78.1", "192.168.78.2", "02:00:00:00:00:01", "02:00:00:00:00:02", "172.31.0.1/32", "172.31.0.2"},
		b: {"192.168.78.2", "192.168.78.1", "02:00:00:00:00:02", "02:00:00:00:00:01", "172.31.0.2/24", "172.31.0.1"},
	} {
		sh(t, "ip", "-n", ns, "addr", "add", c.ul+"/24", "dev", "veth0")
		sh(t, "ip", "-n", ns, "link", "set", "veth0", "up")
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
		sh(t, "ip", "-n", ns, "link", "add", "vxh", "address", c.mac, "type", "vxlan", "id", "42", "dstport", "4790",
			"local", c.ul, "dev", "veth0", "nolearning")
		sh(t, "ip", "-n", ns, "addr", "add", c.ov, "dev", "vxh")
		sh(t, "ip", "-n", ns, "link", "set", "vxh", "up")
		sh(t, "bridge", "-n", ns, "fdb", "add", c.peerMAC, "dev", "vxh", "dst", c.peerUL)
		sh(t, "ip", "-n", ns, "neigh", "add", c.peerOV, "lladdr", c.peerMAC, "dev", "vxh", "nud", "permanent")
	}
	sh(t, "ip", "-n", a, "route", "add", "blackhole", "default")
	return a, b
}

// TestProbeThroughTheTunnel: in a real namespace, the prober opens an ICMP datagram socket
// when ping_group_range admits root's group and a raw socket when it does not; either way
// the peer's overlay IP answers through the tunnel although a has no route to it (its
// default is a blackhole, which a probe that did not leave by vxh would hit), and an address
// nobody has is unreachable.
func TestProbeThroughTheTunnel(t *testing.T) {
	for _, c := range []struct{ socket, groups string }{{"datagram", "0 2147483647"}, {"raw", "1 0"}} {
		t.Run(c.socket, func(t *testing.T) {
			a, _ := tunnelPair(t, c.socket[:1])
			sh(t, "ip", "netns", "exec", a, "sysctl", "-q", "-w", "net.ipv4.ping_group_range="+c.groups)
			p, err := New("/run/netns/"+a, 100*time.Millisecond, slog.New(slog.NewTextHandler(os.Stderr, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			p.Set(obj, []Target{{IP: mustAddr("172.31.0.2"), Node: "c/b", Device: "vxh"}, {IP: mustAddr("172.31.0.9"), Device: "vxh"}})
			eventually(t, 5*time.Second, func() string {
				m := byIP(p.Results(obj))
				if b, x := m["172.31.0.2"], m["172.31.0.9"]; !b.GetReachable() || b.GetRttMs() <= 0 || b.GetNode() != "c/b" ||
					x.GetReachable() || x.GetError() != "no reply to the last 3 probes" {
					return fmt.Sprintf("want .2 reachable with an RTT and .9 not: %v", p.Results(obj))
				}
				return ""
			})
			p.mu.Lock()
			kind := p.tr.kind()
			p.mu.Unlock()
			if kind != c.socket {
				t.Errorf("socket %s, want %s", kind, c.socket)
			}
			// A device that is not there is said so.
			p.Set(obj, []Target{{IP: mustAddr("172.31.0.2"), Device: "vxgone"}})
			eventually(t, 5*time.Second, func() string {
				if h := byIP(p.Results(obj))["172.31.0.2"]; h.GetReachable() || h.GetError() != "device vxgone not found" {
					return fmt.Sprintf("want the missing device: %v", h)
				}
				return ""
			})
		})
	}
}
