package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// podGateway is the link-local next hop of a Calico-style pod.
var podGateway = net.IPv4(169, 254, 1, 1).To4()

var hostSysctls = [][2]string{
	{"net.ipv4.ip_forward", "1"},
	{"net.ipv4.conf.all.rp_filter", "2"},
	{"net.ipv4.conf.default.rp_filter", "2"},
}

// nsHandle is an open namespace with a netlink handle inside it.
type nsHandle struct {
	name string
	fd   netns.NsHandle
	nl   *netlink.Handle
}

func (n *nsHandle) close() {
	if n == nil {
		return
	}
	if n.nl != nil {
		n.nl.Close()
	}
	n.fd.Close()
}

func openNS(name string) (*nsHandle, error) {
	fd, err := netns.GetFromPath(nsPath(name))
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", name, err)
	}
	h, err := netlink.NewHandleAt(fd)
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("netlink handle in %s: %w", name, err)
	}
	return &nsHandle{name: name, fd: fd, nl: h}, nil
}

// newNS creates, records and opens a namespace and brings its "lo" up.
func (l *Lab) newNS(name string) (*nsHandle, error) {
	if err := createNamedNS(name); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.made = append(l.made, name)
	l.mu.Unlock()
	n, err := openNS(name)
	if err != nil {
		return nil, err
	}
	if err := linkUp(n, "lo"); err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

func linkUp(n *nsHandle, name string) error {
	link, err := n.nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s: link %s: %w", n.name, name, err)
	}
	if err := n.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s: set %s up: %w", n.name, name, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func (l *Lab) buildNetwork(ctx context.Context) error {
	br, err := l.newNS(l.BridgeNS)
	if err != nil {
		return err
	}
	defer br.close()
	bridge := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: l.Bridge}}
	if err := br.nl.LinkAdd(bridge); err != nil {
		return fmt.Errorf("%s: add bridge: %w", br.name, err)
	}
	brLink, err := br.nl.LinkByName(l.Bridge)
	if err != nil {
		return err
	}
	if err := br.nl.LinkSetUp(brLink); err != nil {
		return err
	}

	for _, h := range l.Hosts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.buildHost(br, brLink, h); err != nil {
			return err
		}
	}
	if l.routerSpec != nil {
		if err := l.buildRouter(br, brLink); err != nil {
			return err
		}
	}
	// Same-cluster pod routes: the cluster's own CNI, reduced to static routes (unless the
	// system under test routes the pods, as BGP does).
	for _, h := range l.Hosts {
		if l.noPodRoutes {
			break
		}
		var routes []*Host
		for _, o := range l.Hosts {
			if o != h && o.Cluster == h.Cluster && o.PodCIDR.IsValid() {
				routes = append(routes, o)
			}
		}
		if len(routes) == 0 {
			continue
		}
		if err := func() error {
			n, err := openNS(h.NS)
			if err != nil {
				return err
			}
			defer n.close()
			eth, err := n.nl.LinkByName(h.Underlay)
			if err != nil {
				return err
			}
			for _, o := range routes {
				r := &netlink.Route{
					LinkIndex: eth.Attrs().Index,
					Dst:       ipNet(o.PodCIDR.Masked()),
					Gw:        net.IP(o.UnderlayIP.Addr().AsSlice()),
				}
				if err := n.nl.RouteAdd(r); err != nil {
					return fmt.Errorf("%s: route %v via %v: %w", h.NS, o.PodCIDR, o.UnderlayIP.Addr(), err)
				}
			}
			return nil
		}(); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) buildHost(br *nsHandle, brLink netlink.Link, h *Host) error {
	hn, err := l.newNS(h.NS)
	if err != nil {
		return err
	}
	defer hn.close()
	if err := setSysctls(h.NS, hostSysctls); err != nil {
		return err
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: h.BridgePort, MTU: h.MTU, MasterIndex: brLink.Attrs().Index},
		PeerName:      h.Underlay,
		PeerMTU:       uint32(h.MTU),
		PeerNamespace: netlink.NsFd(hn.fd),
	}
	if err := br.nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("%s: add veth %s/%s: %w", br.name, h.BridgePort, h.Underlay, err)
	}
	if err := linkUp(br, h.BridgePort); err != nil {
		return err
	}
	eth, err := hn.nl.LinkByName(h.Underlay)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", h.NS, h.Underlay, err)
	}
	if err := hn.nl.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(h.UnderlayIP)}); err != nil {
		return fmt.Errorf("%s: address %v: %w", h.NS, h.UnderlayIP, err)
	}
	if err := hn.nl.LinkSetUp(eth); err != nil {
		return err
	}
	if h.PodNS == "" {
		return nil
	}

	pn, err := l.newNS(h.PodNS)
	if err != nil {
		return err
	}
	defer pn.close()
	pv := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: h.PodVeth, MTU: h.MTU},
		PeerName:      "eth0",
		PeerMTU:       uint32(h.MTU),
		PeerNamespace: netlink.NsFd(pn.fd),
	}
	if err := hn.nl.LinkAdd(pv); err != nil {
		return fmt.Errorf("%s: add veth %s: %w", h.NS, h.PodVeth, err)
	}
	cali, err := hn.nl.LinkByName(h.PodVeth)
	if err != nil {
		return err
	}
	if err := hn.nl.LinkSetUp(cali); err != nil {
		return err
	}
	peth, err := pn.nl.LinkByName("eth0")
	if err != nil {
		return err
	}
	podNet := netip.PrefixFrom(h.PodIP, 32)
	if err := pn.nl.AddrAdd(peth, &netlink.Addr{IPNet: ipNet(podNet)}); err != nil {
		return fmt.Errorf("%s: address %v: %w", h.PodNS, podNet, err)
	}
	if err := pn.nl.LinkSetUp(peth); err != nil {
		return err
	}
	idx := peth.Attrs().Index
	gw32 := &net.IPNet{IP: podGateway, Mask: net.CIDRMask(32, 32)}
	if err := pn.nl.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: gw32, Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("%s: route %v: %w", h.PodNS, gw32, err)
	}
	if err := pn.nl.RouteAdd(&netlink.Route{LinkIndex: idx, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Gw: podGateway}); err != nil {
		return fmt.Errorf("%s: default route: %w", h.PodNS, err)
	}
	if err := pn.nl.NeighAdd(&netlink.Neigh{
		LinkIndex:    idx,
		Family:       netlink.FAMILY_V4,
		State:        netlink.NUD_PERMANENT,
		IP:           podGateway,
		HardwareAddr: cali.Attrs().HardwareAddr,
	}); err != nil {
		return fmt.Errorf("%s: neighbour %v: %w", h.PodNS, podGateway, err)
	}
	if err := hn.nl.RouteAdd(&netlink.Route{LinkIndex: cali.Attrs().Index, Dst: ipNet(podNet), Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("%s: route %v: %w", h.NS, podNet, err)
	}
	return nil
}

// routerSysctls: forwarding, and no ICMP redirects. The subnets share one bridge, so with
// the kernel's default shared_media the router would tell a host to reach a host of the
// other subnet directly; a router between two racks has no such shortcut to offer.
var routerSysctls = [][2]string{
	{"net.ipv4.ip_forward", "1"},
	{"net.ipv4.conf.all.send_redirects", "0"},
	{"net.ipv4.conf.default.send_redirects", "0"},
}

// buildRouter makes the router's namespace on the bridge with its addresses, and gives every
// host a route to each other subnet via the router.
func (l *Lab) buildRouter(br *nsHandle, brLink netlink.Link) error {
	r := &Router{NS: l.Prefix + "rt", Addrs: l.routerSpec.Addrs, BridgePort: "vrt"}
	rn, err := l.newNS(r.NS)
	if err != nil {
		return err
	}
	defer rn.close()
	l.Router = r
	if err := setSysctls(r.NS, routerSysctls); err != nil {
		return err
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: r.BridgePort, MasterIndex: brLink.Attrs().Index},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(rn.fd),
	}
	if err := br.nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("%s: add veth %s/eth0: %w", br.name, r.BridgePort, err)
	}
	if err := linkUp(br, r.BridgePort); err != nil {
		return err
	}
	eth, err := rn.nl.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("%s: eth0: %w", r.NS, err)
	}
	for _, a := range r.Addrs {
		if err := rn.nl.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(a)}); err != nil {
			return fmt.Errorf("%s: address %v: %w", r.NS, a, err)
		}
	}
	if err := rn.nl.LinkSetUp(eth); err != nil {
		return err
	}
	if err := setSysctls(r.NS, [][2]string{{"net.ipv4.conf.eth0.send_redirects", "0"}}); err != nil {
		return err
	}
	for _, h := range l.Hosts {
		if err := l.routeViaRouter(h); err != nil {
			return err
		}
	}
	return nil
}

// routeViaRouter adds to h a route to every router subnet but its own, via the router.
func (l *Lab) routeViaRouter(h *Host) error {
	via := l.routerSpec.Via(h.UnderlayIP.Addr())
	n, err := openNS(h.NS)
	if err != nil {
		return err
	}
	defer n.close()
	eth, err := n.nl.LinkByName(h.Underlay)
	if err != nil {
		return err
	}
	for _, a := range l.routerSpec.Addrs {
		if a == via {
			continue
		}
		r := &netlink.Route{LinkIndex: eth.Attrs().Index, Dst: ipNet(a.Masked()), Gw: net.IP(via.Addr().AsSlice())}
		if err := n.nl.RouteAdd(r); err != nil {
			return fmt.Errorf("%s: route %v via %v: %w", h.NS, a.Masked(), via.Addr(), err)
		}
	}
	return nil
}

// delLinks deletes the lab's veths (best effort) before their namespaces go, so that they
// disappear at once even if something still holds a namespace open.
func delLinks(l *Lab, made []string) {
	in := map[string]bool{}
	for _, n := range made {
		in[n] = true
	}
	del := func(ns string, match func(string) bool) {
		if !in[ns] {
			return
		}
		n, err := openNS(ns)
		if err != nil {
			return
		}
		defer n.close()
		links, err := n.nl.LinkList()
		if err != nil {
			return
		}
		for _, lk := range links {
			if match(lk.Attrs().Name) && lk.Type() == "veth" {
				_ = n.nl.LinkDel(lk)
			}
		}
	}
	del(l.BridgeNS, func(s string) bool { return strings.HasPrefix(s, "vh") || s == "vrt" })
	for _, h := range l.Hosts {
		if h.PodNS != "" {
			del(h.NS, func(s string) bool { return s == h.PodVeth })
		}
	}
}

func pidAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Multicluster is the reference set-up: three clusters of two nodes on 192.168.0.0/24.
func Multicluster(dir string) Options {
	h := func(cluster, name, ip, pods string) HostSpec {
		return HostSpec{Cluster: cluster, Name: name, UnderlayIP: netip.MustParsePrefix(ip), PodCIDR: netip.MustParsePrefix(pods)}
	}
	return Options{Dir: dir, Hosts: []HostSpec{
		h("test-cluster1", "multicluster-test-001", "192.168.0.21/24", "10.234.111.0/24"),
		h("test-cluster1", "multicluster-test-002", "192.168.0.31/24", "10.234.118.0/24"),
		h("test-cluster2", "multicluster-test-003", "192.168.0.16/24", "10.235.88.0/24"),
		h("test-cluster2", "multicluster-test-004", "192.168.0.44/24", "10.235.113.0/24"),
		h("test-cluster3", "multicluster-test-005", "192.168.0.15/24", "10.236.115.0/24"),
		h("test-cluster3", "multicluster-test-006", "192.168.0.13/24", "10.236.106.0/24"),
	}}
}

// Mesh is n hosts of cluster "bench" named node-001.. on 10.99.0.0/16 (10.99.0.1, ...),
// without pods.
func Mesh(dir string, n int) Options {
	o := Options{Dir: dir}
	base := netip.MustParseAddr("10.99.0.0").As4()
	for i := 1; i <= n; i++ {
		a := base
		a[2], a[3] = byte(i>>8), byte(i)
		o.Hosts = append(o.Hosts, HostSpec{
			Cluster:    "bench",
			Name:       fmt.Sprintf("node-%03d", i),
			UnderlayIP: netip.PrefixFrom(netip.AddrFrom4(a), 16),
		})
	}
	return o
}
