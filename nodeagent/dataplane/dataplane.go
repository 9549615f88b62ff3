// Package dataplane is nodenet-agent's netlink layer for one network namespace: handles to
// read and change links, addresses, FDB and neighbour entries and routes, the keys that name
// kernel entries for ownership, a runner of undoable steps, the scan of what carries
// nodenet's marks, and the kernel feature probe. It knows no kind of object: the kinds
// (nodeagent/kinds/...) build on it.
package dataplane

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// RouteProtocol marks routes nodenet adds (not 12 BIRD, 80 Felix, 17 kube-router, 186 BGP).
const RouteProtocol netlink.RouteProtocol = 147

// socketTimeout bounds every netlink request so a wedged kernel call cannot hang the agent.
const socketTimeout = 30 * time.Second

// maxIdle is how many netlink handles the pool keeps between requests.
const maxIdle = 8

// Dataplane hands out netlink handles of one network namespace. A handle's sockets are not
// safe for concurrent use, so every operation borrows its own: operations on independent
// objects run at once, and the server's per-object locks are what serialises one object.
type Dataplane struct {
	nsPath string

	mu     sync.Mutex
	idle   []*netlink.Handle
	closed bool
}

// Open returns a Dataplane for the network namespace at nsPath (e.g. /run/netns/foo), or for
// the current one when nsPath is "". It opens one handle to check that the namespace is there.
func Open(nsPath string) (*Dataplane, error) {
	d := &Dataplane{nsPath: nsPath}
	h, err := d.newHandle()
	if err != nil {
		return nil, err
	}
	d.idle = append(d.idle, h)
	return d, nil
}

func (d *Dataplane) newHandle() (*netlink.Handle, error) {
	var h *netlink.Handle
	var err error
	if d.nsPath == "" {
		h, err = netlink.NewHandle()
	} else {
		ns, nerr := netns.GetFromPath(d.nsPath)
		if nerr != nil {
			return nil, fmt.Errorf("open network namespace %s: %w", d.nsPath, nerr)
		}
		h, err = netlink.NewHandleAt(ns)
		ns.Close() // the handle's sockets keep the namespace
	}
	if err != nil {
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	if err := h.SetSocketTimeout(socketTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink socket timeout: %w", err)
	}
	return h, nil
}

// Handle is a borrowed netlink handle; Release gives it back.
type Handle struct {
	*netlink.Handle
	d *Dataplane
}

// Handle borrows a netlink handle for one operation.
func (d *Dataplane) Handle() (*Handle, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, errors.New("dataplane is closed")
	}
	if n := len(d.idle); n > 0 {
		h := d.idle[n-1]
		d.idle = d.idle[:n-1]
		d.mu.Unlock()
		return &Handle{Handle: h, d: d}, nil
	}
	d.mu.Unlock()
	h, err := d.newHandle()
	if err != nil {
		return nil, err
	}
	return &Handle{Handle: h, d: d}, nil
}

// Release returns the handle to the pool (or closes it when the pool is full or closed).
func (h *Handle) Release() {
	d := h.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || len(d.idle) >= maxIdle {
		h.Handle.Close()
		return
	}
	d.idle = append(d.idle, h.Handle)
}

// Close releases the netlink sockets; kernel state stays as it is.
func (d *Dataplane) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for _, h := range d.idle {
		h.Close()
	}
	d.idle = nil
}

// Interfaces lists every link of the namespace.
func (d *Dataplane) Interfaces() ([]*pb.Interface, error) {
	h, err := d.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Release()
	links, err := Retry(h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out := make([]*pb.Interface, 0, len(links))
	for _, l := range links {
		a := l.Attrs()
		addrs, err := h.IPv4Addrs(l)
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", a.Name, err)
		}
		ifc := &pb.Interface{
			Name:      a.Name,
			Index:     int32(a.Index),
			Mtu:       uint32(a.MTU),
			Mac:       MACString(a.HardwareAddr),
			OperState: OperState(a),
			Kind:      l.Type(),
			Owner:     Owner(a.Alias),
		}
		for _, ad := range addrs {
			ifc.Addresses = append(ifc.Addresses, ad.IPNet.String())
		}
		out = append(out, ifc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, nil
}

// Retry runs a netlink dump again while the kernel reports it was interrupted by a change.
func Retry[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for i := 0; i < 5; i++ {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}

// IsLinkNotFound tells whether err means there is no such link.
func IsLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}
