// Package dataplane is nodenet-agent's netlink layer: it reads and changes the kernel
// objects (links, addresses, FDB and neighbour entries, routes) of one network namespace.
package dataplane

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
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

// ConflictError is a kernel object in the way that nodenet does not own (gRPC FailedPrecondition).
type ConflictError struct{ Msg string }

func (e *ConflictError) Error() string { return e.Msg }

// NotFoundError is a missing kernel object the request needs (gRPC NotFound).
type NotFoundError struct{ Msg string }

func (e *NotFoundError) Error() string { return e.Msg }

// Dataplane does all netlink work of one network namespace. It is safe for concurrent use:
// requests are serialized, since a netlink.Handle's sockets are not.
type Dataplane struct {
	mu sync.Mutex
	h  *netlink.Handle

	// beforeStep, when set (by tests), runs before each step of ApplyVxlan; an error fails
	// the step as if the kernel had refused it.
	beforeStep func(c *pb.Change) error
}

// Open returns a Dataplane for the network namespace at netnsPath (e.g. /run/netns/foo), or
// for the current one when netnsPath is "".
func Open(netnsPath string) (*Dataplane, error) {
	var h *netlink.Handle
	var err error
	if netnsPath == "" {
		h, err = netlink.NewHandle()
	} else {
		ns, nerr := netns.GetFromPath(netnsPath)
		if nerr != nil {
			return nil, fmt.Errorf("open network namespace %s: %w", netnsPath, nerr)
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
	return &Dataplane{h: h}, nil
}

// Close releases the netlink sockets.
func (d *Dataplane) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h != nil {
		d.h.Close()
		d.h = nil
	}
}

// Interfaces lists every link of the namespace.
func (d *Dataplane) Interfaces() ([]*pb.Interface, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	links, err := retry(d.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	out := make([]*pb.Interface, 0, len(links))
	for _, l := range links {
		a := l.Attrs()
		addrs, err := d.ipv4Addrs(l)
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", a.Name, err)
		}
		ifc := &pb.Interface{
			Name:      a.Name,
			Index:     int32(a.Index),
			Mtu:       uint32(a.MTU),
			Mac:       macString(a.HardwareAddr),
			OperState: operState(a),
			Kind:      l.Type(),
			Owner:     owner(a.Alias),
		}
		for _, ad := range addrs {
			ifc.Addresses = append(ifc.Addresses, ad.IPNet.String())
		}
		out = append(out, ifc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, nil
}

// retry runs a netlink dump again while the kernel reports it was interrupted by a change.
func retry[T any](f func() (T, error)) (T, error) {
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

// ipv4Addrs returns the IPv4 addresses of a link, primaries first.
func (d *Dataplane) ipv4Addrs(l netlink.Link) ([]netlink.Addr, error) {
	addrs, err := retry(func() ([]netlink.Addr, error) { return d.h.AddrList(l, netlink.FAMILY_V4) })
	if err != nil {
		return nil, err
	}
	sort.SliceStable(addrs, func(i, j int) bool {
		return addrs[i].Flags&unix.IFA_F_SECONDARY == 0 && addrs[j].Flags&unix.IFA_F_SECONDARY != 0
	})
	return addrs, nil
}

// operState is "up" when the link is administratively up and its lower layer is not down.
func operState(a *netlink.LinkAttrs) string {
	if a.Flags&net.FlagUp != 0 && a.OperState != netlink.OperDown && a.OperState != netlink.OperLowerLayerDown {
		return "up"
	}
	return "down"
}

// owner is the ifalias when it marks a nodenet owner, else "".
func owner(alias string) string {
	if strings.HasPrefix(alias, pb.OwnerPrefix) {
		return alias
	}
	return ""
}

func macString(hw net.HardwareAddr) string {
	if len(hw) == 0 {
		return ""
	}
	return hw.String()
}

func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}
