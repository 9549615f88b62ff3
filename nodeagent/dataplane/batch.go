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

// batchSize bounds the requests of one write: their answers (an skb each, about 1 KiB of
// buffer) must fit the socket's receive buffer, raised to rcvBuf.
const (
	batchSize = 256
	rcvBuf    = 4 << 20
)

// RouteBatcher sends many route changes to the kernel in one write and reads all their
// answers after: two system calls for hundreds of routes instead of two per route. It is
// what a BGP speaker that learns thousands of routes at once needs; one route at a time
// goes through a Handle as everything else. Not safe for concurrent use: one goroutine
// (the speaker's route programmer) owns it.
type RouteBatcher struct {
	mu   sync.Mutex
	sock *nl.NetlinkSocket
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
	tv := unix.NsecToTimeval(socketTimeout.Nanoseconds())
	if err := sock.SetReceiveTimeout(&tv); err != nil {
		sock.Close()
		return nil, err
	}
	return &RouteBatcher{sock: sock}, nil
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
	var buf []byte
	seqs := make(map[uint32]int, len(ops))
	for i, op := range ops {
		req := routeRequest(op)
		seqs[req.Seq] = i
		buf = append(buf, req.Serialize()...)
	}
	if err := unix.Sendto(b.sock.GetFd(), buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	for pending := len(ops); pending > 0; {
		msgs, _, err := b.sock.Receive()
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		for _, m := range msgs {
			i, ok := seqs[m.Header.Seq]
			if !ok || m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
				continue
			}
			if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code != 0 {
				errs[i] = syscall.Errno(-code)
			}
			delete(seqs, m.Header.Seq)
			pending--
		}
	}
	return nil
}

// routeRequest is the netlink request of one change, as `ip route replace|add|del <dst> via
// <gw> proto 147` sends it.
func routeRequest(op RouteOp) *nl.NetlinkRequest {
	kind, flags := unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK
	switch {
	case op.Del:
		kind, flags = unix.RTM_DELROUTE, unix.NLM_F_ACK
	case op.Excl:
		flags = unix.NLM_F_CREATE | unix.NLM_F_EXCL | unix.NLM_F_ACK
	}
	req := nl.NewNetlinkRequest(kind, flags)
	msg := nl.NewRtMsg()
	msg.Family = unix.AF_INET
	msg.Dst_len = uint8(op.Dst.Bits())
	msg.Protocol = uint8(RouteProtocol)
	req.AddData(msg)
	dst := op.Dst.Addr().As4()
	req.AddData(nl.NewRtAttr(unix.RTA_DST, dst[:]))
	if op.Gw.IsValid() {
		gw := op.Gw.As4()
		req.AddData(nl.NewRtAttr(unix.RTA_GATEWAY, gw[:]))
	}
	return req
}
