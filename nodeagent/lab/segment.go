package lab

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// Segment is a second layer-2 network of the lab, like the seeds' eth1 network that a
// macvlan attachment sits on: a bridge in its own namespace, an interface on some hosts,
// and peers (namespaces with an address) that stand for other machines on it.
type Segment struct {
	NS     string // namespace holding bridge "br0"
	lab    *Lab
	bridge netlink.Link
	ports  int
}

// AddSegment makes a segment named name (the namespace is Prefix+name) and gives each of
// hosts an interface ifname on it, up, without address. Down removes it with the lab.
func (l *Lab) AddSegment(name, ifname string, hosts ...*Host) (*Segment, error) {
	br, err := l.newNS(l.Prefix + name)
	if err != nil {
		return nil, err
	}
	defer br.close()
	if err := br.nl.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}); err != nil {
		return nil, fmt.Errorf("%s: add bridge: %w", br.name, err)
	}
	if err := linkUp(br, "br0"); err != nil {
		return nil, err
	}
	link, err := br.nl.LinkByName("br0")
	if err != nil {
		return nil, err
	}
	s := &Segment{NS: br.name, lab: l, bridge: link}
	for _, h := range hosts {
		if err := s.attach(h.NS, ifname, netip.Prefix{}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// AddPeer makes a namespace Prefix+name on the segment with address addr on its "eth0".
func (s *Segment) AddPeer(name string, addr netip.Prefix) (ns string, err error) {
	n, err := s.lab.newNS(s.lab.Prefix + name)
	if err != nil {
		return "", err
	}
	n.close()
	return s.lab.Prefix + name, s.attach(s.lab.Prefix+name, "eth0", addr)
}

// attach connects namespace ns to the bridge with a veth whose far end is ifname in ns.
func (s *Segment) attach(ns, ifname string, addr netip.Prefix) error {
	br, err := openNS(s.NS)
	if err != nil {
		return err
	}
	defer br.close()
	n, err := openNS(ns)
	if err != nil {
		return err
	}
	defer n.close()
	s.ports++
	port := fmt.Sprintf("p%d", s.ports)
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: port, MasterIndex: s.bridge.Attrs().Index},
		PeerName:  ifname, PeerNamespace: netlink.NsFd(n.fd),
	}
	if err := br.nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("%s: add veth %s/%s: %w", s.NS, port, ifname, err)
	}
	if err := linkUp(br, port); err != nil {
		return err
	}
	if addr.IsValid() {
		link, err := n.nl.LinkByName(ifname)
		if err != nil {
			return err
		}
		if err := n.nl.AddrAdd(link, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
			return fmt.Errorf("%s: address %v: %w", ns, addr, err)
		}
	}
	return linkUp(n, ifname)
}
