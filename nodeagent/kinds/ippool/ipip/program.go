package ipip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// TunnelPlan is what makes the node match a tunnel spec.
type TunnelPlan struct {
	// Steps make the changes in order; dataplane.Changes(Steps) is what a dry run reports.
	Steps []dataplane.Step
	h     *dataplane.Handle
	own   *dataplane.Ownership
	want  *pb.IpipTunnel
}

// TunnelSteps plans the kernel changes that make the node match t for the object id, with
// local as the tunnel's source address (see Desired). t has passed the contract's rules
// (nothing about the node can make it wrong, so, unlike vxlan.TunnelSteps, no field names
// errors); owned and heldBy are as for vxlan.TunnelSteps: owned less what another part of the object
// still wants, and the plan deletes the routes among them that t no longer has. Nothing
// runs: the caller runs the steps with its others in one dataplane.Run.
//
// Everything in the way is found first: a device of that name that is not the object's, or
// not ipip (ConflictError); another IPIP device with the same local address and no remote,
// which the kernel would refuse (ConflictError); a kernel without ipip when the device must be
// made (an error naming the module); a route another object holds. As with vxlan, run the
// steps before another part's that put a route where a tunnel route was, and release h after
// the plan's Observe.
func TunnelSteps(h *dataplane.Handle, id string, t *pb.IpipTunnel, local netip.Addr, owned []string, heldBy func(string) string) (*TunnelPlan, error) {
	w := Desired(id, t, local)
	own := dataplane.NewOwnership(id, owned, heldBy)
	name := w.Link.Name
	ref := &dataplane.LinkRef{Name: name}
	l, err := h.LinkByName(name)
	if err != nil {
		return nil, err
	}
	var steps []dataplane.Step
	fresh := true // the device is made by this plan: it has no address, routes or state yet
	switch {
	case l == nil:
		if err := canCreate(h, w.Link); err != nil {
			return nil, err
		}
		steps = append(steps, createStep(h, w.Link, ref, dataplane.NewChange(pb.Change_ADD, "link", name, describe(w.Link))))
	case l.Attrs().Alias != w.Link.Alias:
		return nil, conflictForeign(id, name, l.Attrs().Alias)
	default:
		tun, ok := l.(*netlink.Iptun)
		if !ok {
			return nil, reconcile.Conflictf("device %s is a %s link, not ipip; delete it", name, l.Type())
		}
		ref.Index = tun.Index
		if diff := replaceDiff(tun, w.Link); diff != "" {
			if err := canCreate(h, w.Link); err != nil {
				return nil, err
			}
			s, err := replaceSteps(h, tun, w.Link, ref, diff)
			if err != nil {
				return nil, err
			}
			steps = append(steps, s...)
		} else {
			fresh = false
			steps = append(steps, mtuSteps(h, tun, w.Link, ref)...)
		}
	}
	more, err := entrySteps(h, own, w, ref, l, fresh)
	if err != nil {
		return nil, err
	}
	return &TunnelPlan{Steps: append(steps, more...), h: h, own: own, want: t}, nil
}

// entrySteps are the address, up and route steps of the device.
func entrySteps(h *dataplane.Handle, own *dataplane.Ownership, w *Want, ref *dataplane.LinkRef, l netlink.Link, fresh bool) ([]dataplane.Step, error) {
	var addrs []netlink.Addr
	if !fresh {
		var err error
		if addrs, err = h.IPv4Addrs(l); err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", ref.Name, err)
		}
	}
	all, err := h.MainRoutes()
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	routes, conflicts := h.RouteSteps(own, ref, fresh, w.Routes, all)
	if len(conflicts) > 0 {
		return nil, reconcile.Conflictf("%s", strings.Join(conflicts, "; "))
	}
	var want *net.IPNet
	if w.Addr != nil {
		want = w.Addr.IPNet
	}
	steps := h.AddrSteps(ref, want, addrs)
	steps = append(steps, upStep(h, ref, fresh || l.Attrs().Flags&net.FlagUp != 0))
	return append(steps, routes...), nil
}

// describe renders the device the way `ip -d link` does.
func describe(l *netlink.Iptun) string {
	local := "any"
	if l.Local != nil {
		local = l.Local.String()
	}
	s := "ipip remote any local " + local
	if l.MTU != 0 {
		s += fmt.Sprintf(" mtu %d", l.MTU)
	}
	return s
}

// replaceDiff names what differs from the wanted device and only a new device changes: the
// tunnel's addresses and what makes its packets. (The kernel can change some in place, but
// another IPIP device may hold the new combination: a new device finds out before anything
// changes, and undoing brings the old one back as it was.)
func replaceDiff(have, want *netlink.Iptun) string {
	var d []string
	ip := func(a net.IP) string {
		if a == nil || a.IsUnspecified() {
			return "any"
		}
		return a.String()
	}
	if ip(have.Local) != ip(want.Local) {
		d = append(d, fmt.Sprintf("local %s -> %s", ip(have.Local), ip(want.Local)))
	}
	if ip(have.Remote) != ip(want.Remote) {
		d = append(d, fmt.Sprintf("remote %s -> %s", ip(have.Remote), ip(want.Remote)))
	}
	if have.Link != want.Link {
		d = append(d, fmt.Sprintf("link %d -> %d", have.Link, want.Link))
	}
	if have.Ttl != want.Ttl {
		d = append(d, fmt.Sprintf("ttl %d -> %d", have.Ttl, want.Ttl))
	}
	if have.PMtuDisc != want.PMtuDisc {
		d = append(d, fmt.Sprintf("pmtudisc %d -> %d", have.PMtuDisc, want.PMtuDisc))
	}
	if have.FlowBased != want.FlowBased || have.EncapType != want.EncapType {
		d = append(d, "external or encap mode")
	}
	if have.Proto != want.Proto {
		d = append(d, fmt.Sprintf("proto %d -> %d", have.Proto, want.Proto))
	}
	return strings.Join(d, ", ")
}

// canCreate finds what would make the kernel refuse the device: no ipip support, or another
// IPIP device that already is the tunnel of its local address.
func canCreate(h *dataplane.Handle, want *netlink.Iptun) error {
	if f, _, err := dataplane.ProbeKernelFeatures(); err == nil && !f["ipip"] {
		return noModule(want.Name, nil)
	}
	links, err := dataplane.Retry(h.LinkList)
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	if other := sameTunnel(want, links); other != nil {
		return collision(want, other)
	}
	return nil
}

// sameTunnel is another IPIP device that the kernel takes for the same tunnel as want (and
// so refuses want with EEXIST): the same local address, no remote, no underlay device. With
// no local address that is tunl0, the kernel's catch-all device.
func sameTunnel(want *netlink.Iptun, links []netlink.Link) *netlink.Iptun {
	unset := func(ip net.IP) bool { return len(ip) == 0 || ip.IsUnspecified() }
	for _, l := range links {
		t, ok := l.(*netlink.Iptun)
		if !ok || t.Name == want.Name || t.FlowBased || !unset(t.Remote) || t.Link != 0 {
			continue
		}
		if t.Local.Equal(want.Local) || (unset(want.Local) && unset(t.Local)) {
			return t
		}
	}
	return nil
}

func collision(want, other *netlink.Iptun) error {
	if want.Local == nil {
		return reconcile.Conflictf("ipip device %s cannot be made without a local address: %s already is the node's catch-all IPIP tunnel (no local, no remote) and the kernel keeps only one; give the tunnel the node's underlay address as its local address",
			want.Name, other.Name)
	}
	owner := "not managed by nodenet"
	if o, ok := strings.CutPrefix(other.Alias, pb.OwnerPrefix); ok {
		owner = "owned by nodenet object " + o
	}
	return reconcile.Conflictf("ipip device %s cannot be made: %s (%s) already is the IPIP tunnel of local address %s with no remote, and the kernel keeps one per local address; one IPIP pool per node and underlay address",
		want.Name, other.Name, owner, want.Local)
}

// noModule is the error of a kernel that cannot make ipip links.
func noModule(name string, err error) error {
	msg := fmt.Sprintf("ipip device %s: this kernel cannot make ipip links: load the ipip kernel module (modprobe ipip) or use a kernel built with CONFIG_NET_IPIP", name)
	if err != nil {
		return fmt.Errorf("%s (%w)", msg, err)
	}
	return errors.New(msg)
}

// createLink makes the device, marked as its owner's; a kernel without ipip is named as such.
func createLink(h *dataplane.Handle, want *netlink.Iptun, ref *dataplane.LinkRef) error {
	l := *want
	err := h.AddLink(&l, want.Alias, ref)
	if errors.Is(err, unix.EOPNOTSUPP) {
		return noModule(want.Name, err)
	}
	return err
}

func createStep(h *dataplane.Handle, want *netlink.Iptun, ref *dataplane.LinkRef, c *pb.Change) dataplane.Step {
	return dataplane.Step{
		Change: c,
		Desc:   "link " + want.Name,
		Do:     func() error { return createLink(h, want, ref) },
		Undo:   func() error { return h.LinkDel(ref.Link()) },
	}
}

// replaceSteps delete the device and make it again; undoing them brings the old device back
// with its address and routes.
func replaceSteps(h *dataplane.Handle, have, want *netlink.Iptun, ref *dataplane.LinkRef, diff string) ([]dataplane.Step, error) {
	snap, err := h.TakeSnapshot(have)
	if err != nil {
		return nil, err
	}
	del := dataplane.Step{
		Change: dataplane.NewChange(pb.Change_REPLACE, "link", want.Name, diff),
		Desc:   "link " + want.Name + " (delete to replace)",
		Do:     func() error { return h.LinkDel(ref.Link()) },
		Undo:   func() error { return h.Restore(snap, ref) },
	}
	return []dataplane.Step{del, createStep(h, want, ref, nil)}, nil
}

// mtuSteps set the wanted MTU (none when the spec leaves it to the kernel).
func mtuSteps(h *dataplane.Handle, have, want *netlink.Iptun, ref *dataplane.LinkRef) []dataplane.Step {
	old, mtu := have.MTU, want.MTU
	if mtu == 0 || old == mtu {
		return nil
	}
	return []dataplane.Step{{
		Change: dataplane.NewChange(pb.Change_UPDATE, "link", want.Name, fmt.Sprintf("mtu %d -> %d", old, mtu)),
		Desc:   "link " + want.Name + " mtu",
		Do:     func() error { return h.LinkSetMTU(ref.Link(), mtu) },
		Undo:   func() error { return h.LinkSetMTU(ref.Link(), old) },
	}}
}

// upStep sets the device up; one this plan makes is reported by its ADD or REPLACE.
func upStep(h *dataplane.Handle, ref *dataplane.LinkRef, isUp bool) dataplane.Step {
	s := dataplane.Step{
		Desc: "link " + ref.Name + " up",
		Do:   func() error { return h.LinkSetUp(ref.Link()) },
	}
	if !isUp {
		s.Change = dataplane.NewChange(pb.Change_UPDATE, "link", ref.Name, "down -> up")
		s.Undo = func() error { return h.LinkSetDown(ref.Link()) }
	}
	return s
}

// conflictForeign is the error for a link of the wanted name that object id does not own.
func conflictForeign(id, name, alias string) error {
	if other, ok := strings.CutPrefix(alias, pb.OwnerPrefix); ok {
		return reconcile.Conflictf("device %s is owned by nodenet object %s", name, other)
	}
	return reconcile.Conflictf("device %s already exists and is not managed by nodenet (ifalias %q); delete it, or give the tunnel of %s another device name",
		name, alias, id)
}

// Observe reads the tunnel back from the kernel: after the steps ran, or instead of running
// them for a dry run.
func (p *TunnelPlan) Observe() (*pb.IpipTunnel, error) {
	return observe(p.h, p.own, p.want.GetName(), p.want)
}

// ObserveTunnel reads the object id's ipip device called device: nil when there is none, or
// when the device there is not the object's (not ipip, or another owner's). Address is its
// first IPv4 address; routes are the gateway routes through it that carry nodenet's
// protocol, that the object owns or that want asks for.
func ObserveTunnel(h *dataplane.Handle, id, device string, want *pb.IpipTunnel, owned []string) (*pb.IpipTunnel, error) {
	return observe(h, dataplane.NewOwnership(id, owned, nil), device, want)
}

func observe(h *dataplane.Handle, own *dataplane.Ownership, device string, want *pb.IpipTunnel) (*pb.IpipTunnel, error) {
	l, err := h.LinkByName(device)
	if err != nil {
		return nil, err
	}
	tun, ok := l.(*netlink.Iptun)
	if !ok || tun.Alias != pb.OwnerAlias(own.ID) {
		return nil, nil
	}
	out := &pb.IpipTunnel{Name: tun.Name, Mtu: uint32(tun.MTU), Ifindex: int32(tun.Index), OperState: dataplane.OperState(tun.Attrs())}
	if tun.Local != nil && !tun.Local.IsUnspecified() {
		out.LocalIp = tun.Local.String()
	}
	addrs, err := h.IPv4Addrs(tun)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", device, err)
	}
	var as []string
	for _, a := range addrs {
		as = append(as, a.IPNet.String())
	}
	out.Address = strings.Join(as, ",") // a second address made by hand shows as drift
	if out.Routes, err = h.ObserveLinkRoutes(own, tun.Index, want.GetRoutes(), false); err != nil {
		return nil, fmt.Errorf("list routes of %s: %w", device, err)
	}
	return out, nil
}

// DeleteTunnelSteps plans the deletion of the object id's tunnel, as vxlan.DeleteTunnelSteps
// does: the device when it carries the object's ifalias (its address and routes go with it;
// undoing the step makes it again as it was), and the unicast routes among owned with
// nodenet's protocol that go elsewhere (an ip_pool's direct routes), never a blackhole.
// device "" or gone: only the routes; another owner's device: ConflictError.
func DeleteTunnelSteps(h *dataplane.Handle, id, device string, owned []string) ([]dataplane.Step, error) {
	return h.DeleteLinkSteps(id, device, owned, func(alias string) error { return conflictForeign(id, device, alias) })
}
