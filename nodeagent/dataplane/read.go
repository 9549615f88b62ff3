package dataplane

import (
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// LinkByName returns the link called name, or nil when there is none.
func (h *Handle) LinkByName(name string) (netlink.Link, error) {
	l, err := h.Handle.LinkByName(name)
	if err != nil {
		if IsLinkNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("look up link %s: %w", name, err)
	}
	return l, nil
}

// IPv4Addrs returns the IPv4 addresses of a link, primaries first.
func (h *Handle) IPv4Addrs(l netlink.Link) ([]netlink.Addr, error) {
	addrs, err := Retry(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_V4) })
	if err != nil {
		return nil, err
	}
	sort.SliceStable(addrs, func(i, j int) bool {
		return addrs[i].Flags&unix.IFA_F_SECONDARY == 0 && addrs[j].Flags&unix.IFA_F_SECONDARY != 0
	})
	return addrs, nil
}

// FdbEntries returns the FDB entries of a vxlan device that have a remote (dst) IP, in the
// kernel's order (a MAC's first remote first).
func (h *Handle) FdbEntries(index int) ([]netlink.Neigh, error) {
	all, err := Retry(func() ([]netlink.Neigh, error) { return h.NeighList(index, unix.AF_BRIDGE) })
	if err != nil {
		return nil, err
	}
	var out []netlink.Neigh
	for _, n := range all {
		if n.LinkIndex == index && n.IP != nil && len(n.HardwareAddr) == 6 {
			out = append(out, n)
		}
	}
	return out, nil
}

// PermNeighs returns the permanent IPv4 neighbours of a link.
func (h *Handle) PermNeighs(index int) ([]netlink.Neigh, error) {
	all, err := Retry(func() ([]netlink.Neigh, error) { return h.NeighList(index, unix.AF_INET) })
	if err != nil {
		return nil, err
	}
	var out []netlink.Neigh
	for _, n := range all {
		if n.LinkIndex == index && n.State&netlink.NUD_PERMANENT != 0 && n.IP.To4() != nil && len(n.HardwareAddr) > 0 {
			out = append(out, n)
		}
	}
	return out, nil
}

// LinkRoutes returns the main-table IPv4 routes whose output device is index.
func (h *Handle) LinkRoutes(index int) ([]netlink.Route, error) {
	return Retry(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_V4,
			&netlink.Route{LinkIndex: index, Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	})
}

// MainRoutes returns every main-table IPv4 route.
func (h *Handle) MainRoutes() ([]netlink.Route, error) {
	return Retry(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
}

// DescribeRoute renders a route the way `ip route` does: "route <dst> via <gw> dev <dev> proto <p>".
func (h *Handle) DescribeRoute(r netlink.Route) string {
	s := "route " + RouteDst(r)
	if r.Gw != nil {
		s += " via " + r.Gw.String()
	}
	if r.LinkIndex != 0 {
		dev := fmt.Sprintf("if%d", r.LinkIndex)
		if l, err := h.LinkByIndex(r.LinkIndex); err == nil {
			dev = l.Attrs().Name
		}
		s += " dev " + dev
	}
	return s + " proto " + r.Protocol.String()
}

// OperState is "up" when the link is administratively up and its lower layer is not down.
func OperState(a *netlink.LinkAttrs) string {
	if a.Flags&net.FlagUp != 0 && a.OperState != netlink.OperDown && a.OperState != netlink.OperLowerLayerDown {
		return "up"
	}
	return "down"
}

// Owner is the ifalias when it marks a nodenet owner, else "".
func Owner(alias string) string {
	if strings.HasPrefix(alias, pb.OwnerPrefix) {
		return alias
	}
	return ""
}

// MACString is the MAC in the kernel's notation, "" for none.
func MACString(hw net.HardwareAddr) string {
	if len(hw) == 0 {
		return ""
	}
	return hw.String()
}

// RouteDst is a route's destination prefix (0.0.0.0/0 for the default route).
func RouteDst(r netlink.Route) string {
	if r.Dst == nil {
		return "0.0.0.0/0"
	}
	return r.Dst.String()
}

// CanonPrefix and CanonIP put validated spec strings in the form the kernel reads back.
func CanonPrefix(s string) string {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		return s
	}
	return n.String()
}

// CanonIP is an address in the form the kernel reads back.
func CanonIP(s string) string {
	ip := net.ParseIP(s)
	if ip == nil {
		return s
	}
	return ip.String()
}

func ipKey(s string) []byte {
	ip := net.ParseIP(s).To4()
	if ip == nil {
		return []byte(s)
	}
	return ip
}

// IPLess orders IPv4 addresses numerically.
func IPLess(a, b string) bool { return string(ipKey(a)) < string(ipKey(b)) }

// PrefixLess orders prefixes by address, then length.
func PrefixLess(a, b string) bool {
	_, na, ea := net.ParseCIDR(a)
	_, nb, eb := net.ParseCIDR(b)
	if ea != nil || eb != nil {
		return a < b
	}
	if c := string(na.IP.To4()); c != string(nb.IP.To4()) {
		return c < string(nb.IP.To4())
	}
	la, _ := na.Mask.Size()
	lb, _ := nb.Mask.Size()
	return la < lb
}
