package dataplane

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RouteOp is one change of a main-table route with nodenet's protocol, in a batch.
type RouteOp struct {
	Dst netip.Prefix
	Gw  netip.Addr
	// Del removes the route; otherwise it is added (Excl: only when the kernel has no route
	// to Dst, EEXIST otherwise) or replaced.
	Del, Excl bool
}

// batchSize bounds the requests of one write (44 bytes each). The kernel answers only the
// ones that fail and the last, so the receive buffer (raised to rcvBuf) holds a whole
// batch's answers even when every request fails.
const (
	batchSize = 1024
	rcvBuf    = 4 << 20
)

// RouteBatcher sends many route changes to the kernel in one write and reads the answers
// after: a few system calls for a thousand routes instead of two per route. Only the last
// request of a write asks for an acknowledgement; the kernel handles a write's requests in
// order and answers a failed one even unasked, so once the last one's answer is read, every
// error of the write has been. It is what a BGP speaker that learns thousands of routes at
// once needs; one route at a time goes through a Handle as everything else. Not safe for
// concurrent use: one goroutine (the speaker's route programmer) owns it.
type RouteBatcher struct {
	mu   sync.Mutex
	sock *nl.NetlinkSocket
	seq  uint32
	wbuf []byte
	rbuf []byte
}

// RouteBatcher opens a batcher in the dataplane's namespace.
func (d *Dataplane) RouteBatcher() (*RouteBatcher, error) {
	var sock *nl.NetlinkSocket
	var err error
	if d.nsPath == "" {
		sock, err = nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
	} else {
		ns, nerr := netns.GetFromPath(d.nsPath)
		if nerr != nil {
			return nil, fmt.Errorf("open network namespace %s: %w", d.nsPath, nerr)
		}
		defer ns.Close()
		sock, err = nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	// Room for a whole batch's answers; FORCE needs CAP_NET_ADMIN, which the agent has.
	if err := unix.SetsockoptInt(sock.GetFd(), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf); err != nil {
		_ = unix.SetsockoptInt(sock.GetFd(), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	// Failures are answered with the failed request's header only, not the whole request.
	_ = unix.SetsockoptInt(sock.GetFd(), unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	tv := unix.NsecToTimeval(socketTimeout.Nanoseconds())
	if err := sock.SetReceiveTimeout(&tv); err != nil {
		sock.Close()
		return nil, err
	}
	return &RouteBatcher{sock: sock, rbuf: make([]byte, 64<<10)}, nil
}

// Close closes the socket.
func (b *RouteBatcher) Close() { b.sock.Close() }

// Apply makes the changes and returns each one's error (nil when the kernel took it), in
// order.
func (b *RouteBatcher) Apply(ops []RouteOp) []error {
	b.mu.Lock()
	defer b.mu.Unlock()
	errs := make([]error, len(ops))
	for start := 0; start < len(ops); start += batchSize {
		end := min(start+batchSize, len(ops))
		if err := b.apply(ops[start:end], errs[start:end]); err != nil {
			for i := start; i < end; i++ {
				if errs[i] == nil {
					errs[i] = err
				}
			}
		}
	}
	return errs
}

func (b *RouteBatcher) apply(ops []RouteOp, errs []error) error {
	first := b.seq + 1
	buf := b.wbuf[:0]
	for i, op := range ops {
		b.seq++
		buf = appendRouteRequest(buf, op, b.seq, i == len(ops)-1)
	}
	b.wbuf = buf
	last := b.seq
	if err := unix.Sendto(b.sock.GetFd(), buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	for {
		n, _, err := unix.Recvfrom(b.sock.GetFd(), b.rbuf, 0)
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		for msg := b.rbuf[:n]; len(msg) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(msg[0:4]))
			if l < unix.NLMSG_HDRLEN || l > len(msg) {
				return fmt.Errorf("netlink receive: malformed message of %d bytes", l)
			}
			typ, seq := binary.NativeEndian.Uint16(msg[4:6]), binary.NativeEndian.Uint32(msg[8:12])
			// An answer to another batch (one whose wait timed out) is not this one's.
			if typ == unix.NLMSG_ERROR && l >= unix.NLMSG_HDRLEN+4 && seq >= first && seq <= last {
				if code := int32(binary.NativeEndian.Uint32(msg[unix.NLMSG_HDRLEN:])); code != 0 {
					errs[seq-first] = syscall.Errno(-code)
				}
				if seq == last {
					return nil
				}
			}
			msg = msg[min(nlmsgAlign(l), len(msg)):]
		}
	}
}

func nlmsgAlign(l int) int { return (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// appendRouteRequest appends the netlink request of one change, as `ip route replace|add|del
// <dst> via <gw> proto 147` sends it; ack asks the kernel to answer it even when it succeeds.
func appendRouteRequest(buf []byte, op RouteOp, seq uint32, ack bool) []byte {
	typ, flags := uint16(unix.RTM_NEWROUTE), uint16(unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_REPLACE)
	switch {
	case op.Del:
		typ, flags = unix.RTM_DELROUTE, unix.NLM_F_REQUEST
	case op.Excl:
		flags = unix.NLM_F_REQUEST | unix.NLM_F_CREATE | unix.NLM_F_EXCL
	}
	if ack {
		flags |= unix.NLM_F_ACK
	}
	start := len(buf)
	ne := binary.NativeEndian
	buf = ne.AppendUint32(buf, 0) // length, set below
	buf = ne.AppendUint16(buf, typ)
	buf = ne.AppendUint16(buf, flags)
	buf = ne.AppendUint32(buf, seq)
	buf = ne.AppendUint32(buf, 0) // the kernel's port
	// struct rtmsg: a unicast route of the main table with nodenet's protocol (a delete
	// matches only such a route, never a blackhole or another protocol's).
	buf = append(buf, unix.AF_INET, byte(op.Dst.Bits()), 0, 0, unix.RT_TABLE_MAIN, byte(RouteProtocol), unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST)
	buf = ne.AppendUint32(buf, 0) // rtm_flags
	dst := op.Dst.Addr().As4()
	buf = appendRtAttr(buf, unix.RTA_DST, dst[:])
	if op.Gw.IsValid() {
		gw := op.Gw.As4()
		buf = appendRtAttr(buf, unix.RTA_GATEWAY, gw[:])
	}
	ne.PutUint32(buf[start:], uint32(len(buf)-start))
	return buf
}

// appendRtAttr appends a route attribute with a 4-byte value (no padding needed).
func appendRtAttr(buf []byte, typ uint16, v []byte) []byte {
	buf = binary.NativeEndian.AppendUint16(buf, uint16(unix.SizeofRtAttr+len(v)))
	buf = binary.NativeEndian.AppendUint16(buf, typ)
	return append(buf, v...)
}
