package health

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// protocolICMP is ICMP's IP protocol number, for icmp.ParseMessage.
const protocolICMP = 1

// sendTimeout bounds one send: a full socket buffer must not stall the round.
const sendTimeout = time.Second

// icmpTransport is an ICMP socket and a netlink handle in the prober's namespace. Both were
// made on a thread inside the namespace and keep it; they are used from any thread.
type icmpTransport struct {
	c   *icmp.PacketConn
	p4  *ipv4.PacketConn
	nl  *netlink.Handle
	raw bool
	// id is the echo identifier of the replies: the kernel's for a datagram socket (its
	// local port; it rewrites the one we send), ours for a raw socket.
	id int
	// token is in every request's data and comes back in the reply: a raw socket sees every
	// echo reply of the namespace, and another pinger may use the same identifier.
	token [8]byte
	buf   []byte
	once  sync.Once
}

// openICMP opens the prober's socket in the namespace at nsPath ("" = the current one): an
// unprivileged ICMP datagram socket when net.ipv4.ping_group_range admits the process's
// group, else a raw ICMP socket (CAP_NET_RAW).
func openICMP(nsPath string) (transport, error) {
	t := &icmpTransport{buf: make([]byte, 1500)}
	if _, err := rand.Read(t.token[:]); err != nil {
		return nil, err
	}
	err := inNamespace(nsPath, func() error {
		c, err := icmp.ListenPacket("udp4", "0.0.0.0")
		if err != nil {
			dgramErr := err
			if c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0"); err != nil {
				return fmt.Errorf("no ICMP datagram socket (%v: net.ipv4.ping_group_range does not include the agent's group) and no raw ICMP socket (%w: the agent needs CAP_NET_RAW)",
					dgramErr, err)
			}
			t.raw = true
		}
		t.c, t.p4 = c, c.IPv4PacketConn()
		if t.nl, err = netlink.NewHandle(); err != nil {
			c.Close()
			return fmt.Errorf("netlink handle: %w", err)
		}
		return nil
	})
	if err != nil {
		if t.c != nil {
			t.close()
		}
		return nil, err
	}
	if t.raw {
		t.id = int(binary.BigEndian.Uint16(t.token[:2]))
		// Only echo replies wake the prober, not every ICMP message of the namespace.
		var f ipv4.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv4.ICMPTypeEchoReply)
		if err := t.p4.SetICMPFilter(&f); err != nil {
			t.close()
			return nil, fmt.Errorf("ICMP filter: %w", err)
		}
	} else if a, ok := t.c.LocalAddr().(*net.UDPAddr); ok {
		t.id = a.Port
	}
	return t, nil
}

func (t *icmpTransport) kind() string {
	if t.raw {
		return "raw"
	}
	return "datagram"
}

func (t *icmpTransport) ifindex(dev string) (int, error) {
	l, err := t.nl.LinkByName(dev)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return 0, fmt.Errorf("device %s not found", dev)
		}
		return 0, fmt.Errorf("device %s: %w", dev, err)
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		return 0, fmt.Errorf("device %s is down", dev)
	}
	return l.Attrs().Index, nil
}

// send writes an echo request to ip out of the interface ifindex: IP_PKTINFO sets the
// outgoing interface of this one packet, so one unbound socket serves every device.
func (t *icmpTransport) send(ifindex int, ip netip.Addr, seq uint16) error {
	m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: t.id, Seq: int(seq), Data: t.token[:]}}
	b, err := m.Marshal(nil)
	if err != nil {
		return err
	}
	var dst net.Addr = &net.UDPAddr{IP: ip.AsSlice()}
	if t.raw {
		dst = &net.IPAddr{IP: ip.AsSlice()}
	}
	if err := t.c.SetWriteDeadline(time.Now().Add(sendTimeout)); err != nil {
		return err
	}
	_, err = t.p4.WriteTo(b, &ipv4.ControlMessage{IfIndex: ifindex}, dst)
	return err
}

func (t *icmpTransport) recv(deadline time.Time) (netip.Addr, uint16, error) {
	if err := t.c.SetReadDeadline(deadline); err != nil {
		return netip.Addr{}, 0, err
	}
	for {
		n, from, err := t.c.ReadFrom(t.buf)
		if err != nil {
			return netip.Addr{}, 0, err
		}
		m, err := icmp.ParseMessage(protocolICMP, t.buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		e, ok := m.Body.(*icmp.Echo)
		if !ok || !bytes.Equal(e.Data, t.token[:]) || t.raw && e.ID != t.id {
			continue
		}
		var src netip.Addr
		switch a := from.(type) {
		case *net.UDPAddr:
			src, _ = netip.AddrFromSlice(a.IP)
		case *net.IPAddr:
			src, _ = netip.AddrFromSlice(a.IP)
		}
		return src.Unmap(), uint16(e.Seq), nil
	}
}

func (t *icmpTransport) close() {
	t.once.Do(func() {
		t.c.Close()
		if t.nl != nil {
			t.nl.Close()
		}
	})
}

// inNamespace runs fn on a thread inside the network namespace at nsPath ("" = the current
// one, on the caller's thread). Sockets fn opens belong to that namespace for good. When the
// thread cannot be brought back, it stays locked so that the runtime ends it rather than run
// other goroutines in the wrong namespace.
func inNamespace(nsPath string, fn func() error) error {
	if nsPath == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open network namespace %s: %w", nsPath, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", nsPath, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return from network namespace %s: %w", nsPath, err))
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
