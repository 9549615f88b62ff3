package nat

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

// lab is a node between a pod and the rest of the world, three namespaces joined by veth
// pairs:
//
//	pod 10.244.1.10/24 --- 10.244.1.1/24 node 198.51.100.1/24 --- 198.51.100.2/24 remote
//	                                                                 10.245.0.2/32 (pool b)
//	                                                                 10.246.0.2/32 (pool c)
//
// The node forwards and routes 10.245.0.0/16 and 10.246.0.0/16 to remote; remote answers
// on every address, so one listener there sees what source each datagram arrives with.
type lab struct {
	pod, node, remote string
}

const (
	podAddr    = "10.244.1.10"
	nodeUplink = "198.51.100.1" // what masquerade makes the source
	outside    = "198.51.100.2" // in no pool
	inPoolB    = "10.245.0.2"
	inPoolC    = "10.246.0.2"
	udpPort    = 4789
)

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{pod: newNS(t), node: newNS(t), remote: newNS(t)}
	ip := func(ns string, args ...string) { run(t, append([]string{"ip", "-n", ns}, args...)...) }

	ip(l.node, "link", "add", "pod0", "type", "veth", "peer", "name", "eth0", "netns", l.pod)
	ip(l.node, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", l.remote)

	ip(l.pod, "addr", "add", podAddr+"/24", "dev", "eth0")
	ip(l.pod, "link", "set", "eth0", "up")
	ip(l.pod, "route", "add", "default", "via", "10.244.1.1")

	ip(l.node, "addr", "add", "10.244.1.1/24", "dev", "pod0")
	ip(l.node, "addr", "add", nodeUplink+"/24", "dev", "up0")
	ip(l.node, "link", "set", "pod0", "up")
	ip(l.node, "link", "set", "up0", "up")
	ip(l.node, "route", "add", "10.245.0.0/16", "via", outside)
	ip(l.node, "route", "add", "10.246.0.0/16", "via", outside)
	inNS(t, l.node, func() error { return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644) })

	ip(l.remote, "addr", "add", outside+"/24", "dev", "eth0")
	ip(l.remote, "addr", "add", inPoolB+"/32", "dev", "eth0")
	ip(l.remote, "addr", "add", inPoolC+"/32", "dev", "eth0")
	ip(l.remote, "link", "set", "eth0", "up")
	ip(l.remote, "route", "add", "default", "via", nodeUplink)
	return l
}

// sourceSeen sends one datagram from the pod to dst and returns the source address the
// remote listener receives it from. Every call sends from a new socket (a new source port),
// so each datagram is a new connection that the NAT rules judge afresh.
func (l *lab) sourceSeen(t *testing.T, listener *net.UDPConn, dst string) string {
	t.Helper()
	msg := fmt.Sprintf("to %s at %d", dst, time.Now().UnixNano())
	var c *net.UDPConn
	inNS(t, l.pod, func() error {
		var err error
		c, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(dst), Port: udpPort})
		return err
	})
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("send to %s: %v", dst, err)
	}
	buf := make([]byte, 256)
	for {
		// The deadline only keeps a lost datagram from hanging the test.
		if err := listener.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, from, err := listener.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("datagram to %s never arrived: %v", dst, err)
		}
		if string(buf[:n]) == msg {
			return from.IP.String()
		}
	}
}

func TestMasqueradesOnlyTrafficLeavingEveryPool(t *testing.T) {
	l := newLab(t)
	listener := udpListen(t, l.remote, udpPort)
	tb := openTable(t, l.node)

	if got := l.sourceSeen(t, listener, outside); got != podAddr {
		t.Fatalf("before any pool: remote sees %s, want the pod's own %s (nothing else masquerades here)", got, podAddr)
	}

	apply(t, tb, "ip_pool/10.244.0.0/16", pool("10.244.0.0/16", true))  // the pod's pool
	apply(t, tb, "ip_pool/10.245.0.0/16", pool("10.245.0.0/16", true))  // another NAT pool
	apply(t, tb, "ip_pool/10.246.0.0/16", pool("10.246.0.0/16", false)) // a disabled pool: exempt only

	for _, c := range []struct {
		dst, want, why string
	}{
		{outside, nodeUplink, "outside every pool: masqueraded to the node's address"},
		{inPoolB, podAddr, "another pool: not masqueraded"},
		{inPoolC, podAddr, "a disabled pool, still a pool: not masqueraded"},
	} {
		if got := l.sourceSeen(t, listener, c.dst); got != c.want {
			t.Errorf("to %s (%s): remote sees source %s, want %s", c.dst, c.why, got, c.want)
		}
	}

	// The pod's pool removed: its traffic is no longer masqueraded.
	apply(t, tb, "ip_pool/10.244.0.0/16", nil)
	if got := l.sourceSeen(t, listener, outside); got != podAddr {
		t.Fatalf("after the pod's pool was removed: remote sees %s, want %s", got, podAddr)
	}
}
