package dataplane

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// step is one kernel change of an Apply: do makes it, undo reverts it (nil: nothing to
// revert). change is what the caller is told (nil for a step that is part of another's).
type step struct {
	change *pb.Change
	desc   string // names the entry in errors: "fdb <mac> dst <ip>"
	do     func() error
	undo   func() error
}

// linkRef is the device the steps work on; its index changes when a step (re)creates it.
type linkRef struct {
	name  string
	index int
}

func (r *linkRef) link() netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: r.name, Index: r.index}}
}

// wanted is a validated spec with the node's defaults filled in.
type wanted struct {
	name     string
	alias    string
	vni      int
	port     int
	local    net.IP
	vtep     netlink.Link
	learning bool
	mtu      int
	mac      net.HardwareAddr // nil: keep the kernel's
	addr     *net.IPNet       // nil: none
	fdb      []*pb.FdbEntry   // canonical, sorted by MAC
	neighs   []*pb.Neighbor   // canonical, sorted by IP
	routes   []*pb.Route      // canonical, sorted by dst
}

func fieldError(field, format string, args ...any) error {
	return &pb.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// checkID checks that id names a vxlan_tunnel; with name != "", that it is that device's.
func checkID(id, name string) error {
	_, n, err := pb.SplitObjectID(id)
	if err != nil {
		return err
	}
	if name != "" && n != name {
		return fieldError("vxlan_tunnel.device.name", "device %q does not match the id %q", name, id)
	}
	return nil
}

// ApplyVxlan makes the kernel match spec for the object id and returns what it reads back
// and the changes made (with dryRun: the current state and the changes it would make).
// When a change fails, the ones already made are undone.
func (d *Dataplane) ApplyVxlan(id string, spec *pb.VxlanTunnel, dryRun bool) (*pb.VxlanTunnel, []*pb.Change, error) {
	if err := pb.ValidateVxlanTunnel(spec); err != nil {
		return nil, nil, err
	}
	name := spec.GetDevice().GetName()
	if err := checkID(id, name); err != nil {
		return nil, nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()

	steps, err := d.plan(id, spec)
	if err != nil {
		return nil, nil, err
	}
	changes := []*pb.Change{}
	for _, s := range steps {
		if s.change != nil {
			changes = append(changes, s.change)
		}
	}
	if !dryRun {
		if err := d.run(name, steps); err != nil {
			return nil, nil, err
		}
	}
	obs, err := d.observe(name, spec)
	if err != nil {
		return nil, nil, err
	}
	return obs, changes, nil
}

// run makes the steps in order; when one fails it undoes the ones made, last first.
func (d *Dataplane) run(name string, steps []step) error {
	for i, s := range steps {
		var err error
		if d.beforeStep != nil && s.change != nil {
			err = d.beforeStep(s.change)
		}
		if err == nil {
			err = s.do()
		}
		if err == nil {
			continue
		}
		err = fmt.Errorf("vxlan %s: %s: %w", name, s.desc, err)
		var rb []error
		for j := i - 1; j >= 0; j-- {
			if steps[j].undo == nil {
				continue
			}
			if uerr := steps[j].undo(); uerr != nil {
				rb = append(rb, fmt.Errorf("undo %s: %w", steps[j].desc, uerr))
			}
		}
		if len(rb) > 0 {
			return fmt.Errorf("%w (rollback incomplete: %v)", err, errors.Join(rb...))
		}
		return err
	}
	return nil
}

// resolve fills in the node's defaults: port, local IP, vtep device and MTU.
func (d *Dataplane) resolve(id string, spec *pb.VxlanTunnel) (*wanted, error) {
	const p = "vxlan_tunnel.device."
	dev := spec.GetDevice()
	w := &wanted{
		name:     dev.GetName(),
		alias:    pb.OwnerAlias(id),
		vni:      int(dev.GetVni()),
		port:     int(dev.GetPort()),
		learning: dev.GetLearning(),
	}
	if w.port == 0 {
		w.port = pb.DefaultVxlanPort
	}
	if dev.GetUnderlay() != "" {
		l, err := d.linkByName(dev.GetUnderlay())
		if err != nil {
			return nil, err
		}
		if l == nil {
			return nil, fieldError(p+"underlay", "no interface %s on this node", dev.GetUnderlay())
		}
		w.vtep = l
	}
	if dev.GetLocalIp() != "" {
		w.local = net.ParseIP(dev.GetLocalIp()).To4()
	} else {
		addrs, err := d.ipv4Addrs(w.vtep)
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", dev.GetUnderlay(), err)
		}
		if len(addrs) == 0 {
			return nil, fieldError(p+"underlay", "interface %s has no IPv4 address to use as the local IP", dev.GetUnderlay())
		}
		w.local = addrs[0].IP.To4()
	}
	if w.vtep == nil {
		all, err := retry(func() ([]netlink.Addr, error) { return d.h.AddrList(nil, netlink.FAMILY_V4) })
		if err != nil {
			return nil, fmt.Errorf("list addresses: %w", err)
		}
		for _, a := range all {
			if a.IP.Equal(w.local) {
				l, err := d.h.LinkByIndex(a.LinkIndex)
				if err != nil {
					return nil, fmt.Errorf("look up link %d: %w", a.LinkIndex, err)
				}
				w.vtep = l
				break
			}
		}
		if w.vtep == nil {
			return nil, fieldError(p+"local_ip", "no interface on this node has the address %s; give the underlay interface", w.local)
		}
	}
	umtu := w.vtep.Attrs().MTU
	maxMTU := umtu - pb.VxlanOverhead
	w.mtu = int(dev.GetMtu())
	if w.mtu == 0 {
		w.mtu = maxMTU
	}
	if w.mtu > maxMTU {
		return nil, fieldError(p+"mtu", "MTU %d is above the maximum %d: underlay %s has MTU %d and VXLAN adds %d",
			w.mtu, maxMTU, w.vtep.Attrs().Name, umtu, pb.VxlanOverhead)
	}
	if dev.GetMac() != "" {
		w.mac, _ = net.ParseMAC(dev.GetMac())
	}
	if dev.GetAddress() != "" {
		ip, n, _ := net.ParseCIDR(dev.GetAddress())
		w.addr = &net.IPNet{IP: ip.To4(), Mask: n.Mask}
	}
	for _, e := range spec.GetFdb() {
		hw, _ := net.ParseMAC(e.GetMac())
		w.fdb = append(w.fdb, &pb.FdbEntry{Mac: hw.String(), Dst: canonIP(e.GetDst())})
	}
	sort.Slice(w.fdb, func(i, j int) bool { return w.fdb[i].Mac < w.fdb[j].Mac })
	for _, n := range spec.GetNeighbors() {
		hw, _ := net.ParseMAC(n.GetMac())
		w.neighs = append(w.neighs, &pb.Neighbor{Ip: canonIP(n.GetIp()), Mac: hw.String()})
	}
	sort.Slice(w.neighs, func(i, j int) bool { return ipLess(w.neighs[i].Ip, w.neighs[j].Ip) })
	for _, r := range spec.GetRoutes() {
		w.routes = append(w.routes, &pb.Route{Dst: canonPrefix(r.GetDst()), Via: canonIP(r.GetVia())})
	}
	sort.Slice(w.routes, func(i, j int) bool { return prefixLess(w.routes[i].Dst, w.routes[j].Dst) })
	return w, nil
}

func change(action pb.Change_Action, entry, key, detail string) *pb.Change {
	return &pb.Change{Action: action, Entry: entry, Key: key, Detail: detail}
}

// conflictForeign is the error for a link of the wanted name that id does not own.
func conflictForeign(id, name, alias string) error {
	if strings.HasPrefix(alias, pb.OwnerPrefix) {
		return &ConflictError{Msg: fmt.Sprintf("device %s is owned by nodenet object %s", name, strings.TrimPrefix(alias, pb.OwnerPrefix))}
	}
	// The agent does not know the resource's address in the configuration: <address> stands for it.
	return &ConflictError{Msg: fmt.Sprintf("device %s already exists and is not managed by nodenet (ifalias %q); adopt it with: terraform import <address of the nodenet_vxlan_tunnel> %s, or delete it",
		name, alias, name)}
}

// plan computes the steps that bring the kernel to spec, checking every conflict first.
func (d *Dataplane) plan(id string, spec *pb.VxlanTunnel) ([]step, error) {
	w, err := d.resolve(id, spec)
	if err != nil {
		return nil, err
	}
	l, err := d.linkByName(w.name)
	if err != nil {
		return nil, err
	}
	ref := &linkRef{name: w.name}
	var steps []step
	fresh := true // the device is created by this plan: it has no entries yet
	if l != nil {
		a := l.Attrs()
		if a.Alias != w.alias {
			return nil, conflictForeign(id, w.name, a.Alias)
		}
		vx, ok := l.(*netlink.Vxlan)
		if !ok {
			return nil, &ConflictError{Msg: fmt.Sprintf("device %s is a %s link, not vxlan; delete it", w.name, l.Type())}
		}
		ref.index = a.Index
		if diff := replaceDiff(vx, w); diff != "" {
			s, err := d.replaceSteps(vx, w, ref, diff)
			if err != nil {
				return nil, err
			}
			steps = append(steps, s...)
		} else {
			fresh = false
			steps = append(steps, d.linkUpdateSteps(vx, w, ref)...)
		}
	} else {
		steps = append(steps, d.createStep(w, ref, change(pb.Change_ADD, "link", w.name, describe(w))))
	}

	// Entries of an existing device.
	var addrs []netlink.Addr
	var fdb, neighs []netlink.Neigh
	var devRoutes []netlink.Route
	if !fresh {
		if addrs, err = d.ipv4Addrs(l); err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", w.name, err)
		}
		if fdb, err = d.fdbEntries(ref.index); err != nil {
			return nil, fmt.Errorf("list fdb of %s: %w", w.name, err)
		}
		if neighs, err = d.permNeighs(ref.index); err != nil {
			return nil, fmt.Errorf("list neighbours of %s: %w", w.name, err)
		}
	}
	all, err := d.mainRoutes()
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	if !fresh {
		for _, r := range all {
			if r.LinkIndex == ref.index {
				devRoutes = append(devRoutes, r)
			}
		}
	}
	routeSteps, err := d.routeSteps(w, ref, fresh, all, devRoutes)
	if err != nil {
		return nil, err
	}

	steps = append(steps, d.addrSteps(w, ref, addrs)...)
	steps = append(steps, d.upStep(w, ref, fresh || l.Attrs().Flags&net.FlagUp != 0))
	steps = append(steps, d.neighSteps(w, ref, neighs)...)
	steps = append(steps, d.fdbSteps(w, ref, fdb)...)
	steps = append(steps, routeSteps...)
	return steps, nil
}

func describe(w *wanted) string {
	s := fmt.Sprintf("vxlan id %d dstport %d local %s dev %s", w.vni, w.port, w.local, w.vtep.Attrs().Name)
	if !w.learning {
		s += " nolearning"
	}
	s += fmt.Sprintf(" mtu %d", w.mtu)
	if w.mac != nil {
		s += " address " + w.mac.String()
	}
	return s
}

// replaceDiff names the attributes that differ and that only a new device can change.
func replaceDiff(vx *netlink.Vxlan, w *wanted) string {
	var d []string
	if vx.VxlanId != w.vni {
		d = append(d, fmt.Sprintf("vni %d -> %d", vx.VxlanId, w.vni))
	}
	if vx.Port != w.port {
		d = append(d, fmt.Sprintf("port %d -> %d", vx.Port, w.port))
	}
	if !vx.SrcAddr.Equal(w.local) {
		old := "none"
		if vx.SrcAddr != nil {
			old = vx.SrcAddr.String()
		}
		d = append(d, fmt.Sprintf("local %s -> %s", old, w.local))
	}
	if vx.VtepDevIndex != w.vtep.Attrs().Index {
		d = append(d, fmt.Sprintf("underlay ifindex %d -> %d (%s)", vx.VtepDevIndex, w.vtep.Attrs().Index, w.vtep.Attrs().Name))
	}
	if vx.Learning != w.learning {
		d = append(d, fmt.Sprintf("learning %t -> %t", vx.Learning, w.learning))
	}
	return strings.Join(d, ", ")
}

// newVxlan is the link LinkAdd creates for w.
func newVxlan(w *wanted) *netlink.Vxlan {
	la := netlink.NewLinkAttrs()
	la.Name = w.name
	la.MTU = w.mtu
	la.HardwareAddr = w.mac
	return &netlink.Vxlan{
		LinkAttrs:    la,
		VxlanId:      w.vni,
		Port:         w.port,
		SrcAddr:      w.local,
		VtepDevIndex: w.vtep.Attrs().Index,
		Learning:     w.learning,
	}
}

// addLink creates l, marks it with alias and records its index in ref; a link it created
// but could not mark is deleted again.
func (d *Dataplane) addLink(l netlink.Link, alias string, ref *linkRef) error {
	if err := d.h.LinkAdd(l); err != nil {
		return err
	}
	nl, err := d.h.LinkByName(l.Attrs().Name)
	if err != nil {
		_ = d.h.LinkDel(l)
		return err
	}
	ref.index = nl.Attrs().Index
	if err := d.h.LinkSetAlias(nl, alias); err != nil {
		_ = d.h.LinkDel(nl)
		return fmt.Errorf("set ifalias: %w", err)
	}
	return nil
}

func (d *Dataplane) createStep(w *wanted, ref *linkRef, c *pb.Change) step {
	return step{
		change: c,
		desc:   "link " + w.name,
		do:     func() error { return d.addLink(newVxlan(w), w.alias, ref) },
		undo:   func() error { return d.h.LinkDel(ref.link()) },
	}
}

// replaceSteps delete the device and create it again; undoing them brings the old device
// back with its addresses, entries and routes.
func (d *Dataplane) replaceSteps(vx *netlink.Vxlan, w *wanted, ref *linkRef, diff string) ([]step, error) {
	snap, err := d.snapshot(vx)
	if err != nil {
		return nil, err
	}
	del := step{
		change: change(pb.Change_REPLACE, "link", w.name, diff),
		desc:   "link " + w.name + " (delete to replace)",
		do:     func() error { return d.h.LinkDel(ref.link()) },
		undo:   func() error { return d.restore(snap, ref) },
	}
	return []step{del, d.createStep(w, ref, nil)}, nil
}

func (d *Dataplane) linkUpdateSteps(vx *netlink.Vxlan, w *wanted, ref *linkRef) []step {
	var steps []step
	a := vx.Attrs()
	if a.MTU != w.mtu {
		old, want := a.MTU, w.mtu
		steps = append(steps, step{
			change: change(pb.Change_UPDATE, "link", w.name, fmt.Sprintf("mtu %d -> %d", old, want)),
			desc:   "link " + w.name + " mtu",
			do:     func() error { return d.h.LinkSetMTU(ref.link(), want) },
			undo:   func() error { return d.h.LinkSetMTU(ref.link(), old) },
		})
	}
	if w.mac != nil && a.HardwareAddr.String() != w.mac.String() {
		old, want := a.HardwareAddr, w.mac
		steps = append(steps, step{
			change: change(pb.Change_UPDATE, "link", w.name, fmt.Sprintf("mac %s -> %s", macString(old), want)),
			desc:   "link " + w.name + " mac",
			do:     func() error { return d.h.LinkSetHardwareAddr(ref.link(), want) },
			undo:   func() error { return d.h.LinkSetHardwareAddr(ref.link(), old) },
		})
	}
	return steps
}

// upStep sets the device up and then makes sure it kept the wanted MAC.
func (d *Dataplane) upStep(w *wanted, ref *linkRef, isUp bool) step {
	s := step{
		desc: "link " + w.name + " up",
		do: func() error {
			if err := d.h.LinkSetUp(ref.link()); err != nil {
				return err
			}
			if w.mac == nil {
				return nil
			}
			l, err := d.h.LinkByIndex(ref.index)
			if err != nil {
				return err
			}
			if l.Attrs().HardwareAddr.String() != w.mac.String() {
				return d.h.LinkSetHardwareAddr(ref.link(), w.mac)
			}
			return nil
		},
	}
	if isUp {
		// Already up (or created by this plan, which its ADD or REPLACE reports): no change
		// to report, but the MAC check still runs.
		return s
	}
	s.change = change(pb.Change_UPDATE, "link", w.name, "down -> up")
	s.undo = func() error { return d.h.LinkSetDown(ref.link()) }
	return s
}

func (d *Dataplane) addrSteps(w *wanted, ref *linkRef, have []netlink.Addr) []step {
	var steps []step
	present := false
	// Delete in reverse: secondaries before the primary that would take them along.
	for i := len(have) - 1; i >= 0; i-- {
		a := have[i]
		if w.addr != nil && a.IPNet.String() == w.addr.String() {
			present = true
			continue
		}
		ipn := *a.IPNet
		steps = append(steps, step{
			change: change(pb.Change_DELETE, "addr", ipn.String(), ""),
			desc:   "addr " + ipn.String(),
			do: func() error {
				err := d.h.AddrDel(ref.link(), &netlink.Addr{IPNet: &ipn})
				if errors.Is(err, unix.EADDRNOTAVAIL) {
					return nil // went with its primary
				}
				return err
			},
			undo: func() error { return d.h.AddrAdd(ref.link(), &netlink.Addr{IPNet: &ipn}) },
		})
	}
	if w.addr != nil && !present {
		ipn := *w.addr
		steps = append(steps, step{
			change: change(pb.Change_ADD, "addr", ipn.String(), ""),
			desc:   "addr " + ipn.String(),
			do:     func() error { return d.h.AddrAdd(ref.link(), &netlink.Addr{IPNet: &ipn}) },
			undo:   func() error { return d.h.AddrDel(ref.link(), &netlink.Addr{IPNet: &ipn}) },
		})
	}
	return steps
}

func permNeigh(ref *linkRef, ip net.IP, mac net.HardwareAddr) *netlink.Neigh {
	return &netlink.Neigh{LinkIndex: ref.index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: ip, HardwareAddr: mac}
}

func (d *Dataplane) neighSteps(w *wanted, ref *linkRef, have []netlink.Neigh) []step {
	byIP := map[string]netlink.Neigh{}
	for _, n := range have {
		byIP[n.IP.String()] = n
	}
	want := map[string]bool{}
	for _, n := range w.neighs {
		want[n.Ip] = true
	}
	var dels, sets []step
	sort.Slice(have, func(i, j int) bool { return ipLess(have[i].IP.String(), have[j].IP.String()) })
	for _, n := range have {
		if want[n.IP.String()] {
			continue
		}
		ip, mac := n.IP, n.HardwareAddr
		dels = append(dels, step{
			change: change(pb.Change_DELETE, "neigh", ip.String(), "lladdr "+mac.String()),
			desc:   "neigh " + ip.String() + " lladdr " + mac.String(),
			do:     func() error { return d.h.NeighDel(permNeigh(ref, ip, nil)) },
			undo:   func() error { return d.h.NeighSet(permNeigh(ref, ip, mac)) },
		})
	}
	for _, n := range w.neighs {
		ip := net.ParseIP(n.Ip).To4()
		mac, _ := net.ParseMAC(n.Mac)
		old, ok := byIP[n.Ip]
		s := step{
			desc: "neigh " + n.Ip + " lladdr " + n.Mac,
			do:   func() error { return d.h.NeighSet(permNeigh(ref, ip, mac)) },
		}
		switch {
		case !ok:
			s.change = change(pb.Change_ADD, "neigh", n.Ip, "lladdr "+n.Mac)
			s.undo = func() error { return d.h.NeighDel(permNeigh(ref, ip, nil)) }
		case old.HardwareAddr.String() != n.Mac:
			oldMAC := old.HardwareAddr
			s.change = change(pb.Change_UPDATE, "neigh", n.Ip, fmt.Sprintf("lladdr %s -> %s", oldMAC, n.Mac))
			s.undo = func() error { return d.h.NeighSet(permNeigh(ref, ip, oldMAC)) }
		default:
			continue
		}
		sets = append(sets, s)
	}
	return append(dels, sets...)
}

func fdbNeigh(ref *linkRef, mac net.HardwareAddr, dst net.IP) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    ref.index,
		Family:       unix.AF_BRIDGE,
		Flags:        netlink.NTF_SELF,
		State:        netlink.NUD_PERMANENT,
		HardwareAddr: mac,
		IP:           dst,
	}
}

// fdbSteps: the entries of a MAC are its remotes; a wanted MAC keeps exactly the wanted dst.
func (d *Dataplane) fdbSteps(w *wanted, ref *linkRef, have []netlink.Neigh) []step {
	remotes := map[string][]net.IP{} // in kernel order: the first is the one NeighSet replaces
	var macs []string
	for _, n := range have {
		m := n.HardwareAddr.String()
		if _, ok := remotes[m]; !ok {
			macs = append(macs, m)
		}
		remotes[m] = append(remotes[m], n.IP)
	}
	want := map[string]string{}
	for _, e := range w.fdb {
		want[e.Mac] = e.Dst
	}
	del := func(mac net.HardwareAddr, dst net.IP) step {
		return step{
			change: change(pb.Change_DELETE, "fdb", mac.String(), "dst "+dst.String()),
			desc:   fmt.Sprintf("fdb %s dst %s", mac, dst),
			do:     func() error { return d.h.NeighDel(fdbNeigh(ref, mac, dst)) },
			undo:   func() error { return d.h.NeighAppend(fdbNeigh(ref, mac, dst)) },
		}
	}
	var steps []step
	sort.Strings(macs)
	for _, m := range macs {
		if _, ok := want[m]; ok {
			continue
		}
		mac, _ := net.ParseMAC(m)
		for _, dst := range remotes[m] {
			steps = append(steps, del(mac, dst))
		}
	}
	for _, e := range w.fdb {
		mac, _ := net.ParseMAC(e.Mac)
		dst := net.ParseIP(e.Dst).To4()
		have := remotes[e.Mac]
		found := false
		for _, r := range have {
			if r.Equal(dst) {
				found = true
			}
		}
		set := step{
			desc: fmt.Sprintf("fdb %s dst %s", e.Mac, e.Dst),
			do:   func() error { return d.h.NeighSet(fdbNeigh(ref, mac, dst)) },
		}
		switch {
		case len(have) == 0:
			set.change = change(pb.Change_ADD, "fdb", e.Mac, "dst "+e.Dst)
			set.undo = func() error { return d.h.NeighDel(fdbNeigh(ref, mac, dst)) }
			steps = append(steps, set)
		case found:
			for _, r := range have {
				if !r.Equal(dst) {
					steps = append(steps, del(mac, r))
				}
			}
		default:
			for _, r := range have[1:] {
				steps = append(steps, del(mac, r))
			}
			old := have[0]
			set.change = change(pb.Change_UPDATE, "fdb", e.Mac, fmt.Sprintf("dst %s -> %s", old, e.Dst))
			set.undo = func() error { return d.h.NeighSet(fdbNeigh(ref, mac, old)) }
			steps = append(steps, set)
		}
	}
	return steps
}

func ourRoute(ref *linkRef, dst *net.IPNet, gw net.IP) *netlink.Route {
	return &netlink.Route{
		LinkIndex: ref.index,
		Dst:       dst,
		Gw:        gw,
		Flags:     int(netlink.FLAG_ONLINK),
		Protocol:  RouteProtocol,
		Scope:     netlink.SCOPE_UNIVERSE,
		Table:     unix.RT_TABLE_MAIN,
	}
}

func (d *Dataplane) describeRoute(r netlink.Route) string {
	s := "route " + routeDst(r)
	if r.Gw != nil {
		s += " via " + r.Gw.String()
	}
	if r.LinkIndex != 0 {
		dev := fmt.Sprintf("if%d", r.LinkIndex)
		if l, err := d.h.LinkByIndex(r.LinkIndex); err == nil {
			dev = l.Attrs().Name
		}
		s += " dev " + dev
	}
	return s + " proto " + r.Protocol.String()
}

// routeSteps checks the wanted routes against every main-table route: one with the same
// dst, gateway and device is there already; one with the dst but another gateway or device
// is replaced when it is nodenet's and a conflict when it is not. nodenet's routes through
// the device that the spec no longer has are deleted.
func (d *Dataplane) routeSteps(w *wanted, ref *linkRef, fresh bool, all, devRoutes []netlink.Route) ([]step, error) {
	wantDst := map[string]bool{}
	var conflicts []string
	var sets []step
	for _, wr := range w.routes {
		wantDst[wr.Dst] = true
		_, dst, _ := net.ParseCIDR(wr.Dst)
		gw := net.ParseIP(wr.Via).To4()
		present := false
		var ours []netlink.Route
		var foreign []netlink.Route
		for _, r := range all {
			if routeDst(r) != wr.Dst {
				continue
			}
			onDev := ref.index != 0 && r.LinkIndex == ref.index
			if onDev && !fresh && r.Gw.Equal(gw) {
				present = true
				continue
			}
			if onDev && fresh {
				continue // goes with the device this plan replaces
			}
			if r.Protocol == RouteProtocol {
				ours = append(ours, r)
			} else {
				foreign = append(foreign, r)
			}
		}
		if present {
			continue
		}
		for _, r := range foreign {
			conflicts = append(conflicts, d.describeRoute(r)+" exists and is not nodenet's")
		}
		s := step{
			desc: fmt.Sprintf("route %s via %s", wr.Dst, wr.Via),
			do:   func() error { return d.h.RouteReplace(ourRoute(ref, dst, gw)) },
		}
		if len(ours) > 0 {
			old := ours[0]
			s.change = change(pb.Change_UPDATE, "route", wr.Dst, fmt.Sprintf("%s -> via %s dev %s", strings.TrimPrefix(d.describeRoute(old), "route "+wr.Dst+" "), wr.Via, w.name))
			s.undo = func() error {
				if err := d.h.RouteDel(ourRoute(ref, dst, gw)); err != nil && !errors.Is(err, unix.ESRCH) {
					return err
				}
				return d.h.RouteReplace(&old)
			}
		} else {
			s.change = change(pb.Change_ADD, "route", wr.Dst, "via "+wr.Via)
			s.undo = func() error { return d.h.RouteDel(ourRoute(ref, dst, gw)) }
		}
		sets = append(sets, s)
	}
	if len(conflicts) > 0 {
		return nil, &ConflictError{Msg: strings.Join(conflicts, "; ")}
	}
	var dels []step
	sort.SliceStable(devRoutes, func(i, j int) bool { return prefixLess(routeDst(devRoutes[i]), routeDst(devRoutes[j])) })
	for _, r := range devRoutes {
		if r.Protocol != RouteProtocol || wantDst[routeDst(r)] {
			continue
		}
		old := r
		via := ""
		if r.Gw != nil {
			via = "via " + r.Gw.String()
		}
		dels = append(dels, step{
			change: change(pb.Change_DELETE, "route", routeDst(r), via),
			desc:   d.describeRoute(r),
			do:     func() error { return d.h.RouteDel(&old) },
			undo:   func() error { return d.h.RouteReplace(&old) },
		})
	}
	return append(dels, sets...), nil
}

// snapshot is what a device had, to bring it back when its replacement fails.
type snapshot struct {
	link   *netlink.Vxlan
	up     bool
	addrs  []netlink.Addr
	fdb    []netlink.Neigh
	neighs []netlink.Neigh
	routes []netlink.Route
}

func (d *Dataplane) snapshot(vx *netlink.Vxlan) (*snapshot, error) {
	s := &snapshot{link: vx, up: vx.Attrs().Flags&net.FlagUp != 0}
	idx := vx.Attrs().Index
	var err error
	if s.addrs, err = d.ipv4Addrs(vx); err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", vx.Name, err)
	}
	if s.fdb, err = d.fdbEntries(idx); err != nil {
		return nil, fmt.Errorf("list fdb of %s: %w", vx.Name, err)
	}
	if s.neighs, err = d.permNeighs(idx); err != nil {
		return nil, fmt.Errorf("list neighbours of %s: %w", vx.Name, err)
	}
	routes, err := d.linkRoutes(idx)
	if err != nil {
		return nil, fmt.Errorf("list routes of %s: %w", vx.Name, err)
	}
	for _, r := range routes {
		if r.Protocol != unix.RTPROT_KERNEL {
			s.routes = append(s.routes, r)
		}
	}
	return s, nil
}

// restore deletes whatever now has the device's name and creates the snapshot's device.
func (d *Dataplane) restore(s *snapshot, ref *linkRef) error {
	if l, err := d.linkByName(ref.name); err == nil && l != nil {
		if err := d.h.LinkDel(l); err != nil {
			return err
		}
	}
	vx := *s.link
	la := netlink.NewLinkAttrs()
	la.Name = s.link.Name
	la.MTU = s.link.MTU
	la.HardwareAddr = s.link.HardwareAddr
	la.TxQLen = s.link.TxQLen
	vx.LinkAttrs = la
	if err := d.addLink(&vx, s.link.Alias, ref); err != nil {
		return err
	}
	var errs []error
	for _, a := range s.addrs {
		if err := d.h.AddrAdd(ref.link(), &netlink.Addr{IPNet: a.IPNet}); err != nil {
			errs = append(errs, err)
		}
	}
	if s.up {
		if err := d.h.LinkSetUp(ref.link()); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range s.neighs {
		if err := d.h.NeighSet(permNeigh(ref, n.IP, n.HardwareAddr)); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range s.fdb {
		if err := d.h.NeighAppend(fdbNeigh(ref, n.HardwareAddr, n.IP)); err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range s.routes {
		r.LinkIndex = ref.index
		if err := d.h.RouteReplace(&r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
