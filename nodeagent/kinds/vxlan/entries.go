package vxlan

import (
	"fmt"
	"net"
	"sort"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

func permNeigh(ref *dataplane.LinkRef, ip net.IP, mac net.HardwareAddr) *netlink.Neigh {
	return &netlink.Neigh{LinkIndex: ref.Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: ip, HardwareAddr: mac}
}

// neighSteps leave exactly the wanted permanent neighbours. After a MAC change the kernel
// has dropped them all, so every wanted one is set again (reported as an update when it was
// there before) and none needs deleting.
func (o *op) neighSteps(w *wanted, ref *dataplane.LinkRef, have []netlink.Neigh, macChange bool) []dataplane.Step {
	byIP := map[string]netlink.Neigh{}
	for _, n := range have {
		byIP[n.IP.String()] = n
	}
	want := map[string]bool{}
	for _, n := range w.neighs {
		want[n.Ip] = true
	}
	var dels, sets []dataplane.Step
	sort.Slice(have, func(i, j int) bool { return dataplane.IPLess(have[i].IP.String(), have[j].IP.String()) })
	for _, n := range have {
		if want[n.IP.String()] || macChange {
			continue
		}
		ip, mac := n.IP, n.HardwareAddr
		dels = append(dels, dataplane.Step{
			Change: change(pb.Change_DELETE, "neigh", ip.String(), "lladdr "+mac.String()),
			Desc:   "neigh " + ip.String() + " lladdr " + mac.String(),
			Do:     func() error { return o.h.NeighDel(permNeigh(ref, ip, nil)) },
			Undo:   func() error { return o.h.NeighSet(permNeigh(ref, ip, mac)) },
		})
	}
	for _, n := range w.neighs {
		ip := net.ParseIP(n.Ip).To4()
		mac, _ := net.ParseMAC(n.Mac)
		old, ok := byIP[n.Ip]
		s := dataplane.Step{
			Desc: "neigh " + n.Ip + " lladdr " + n.Mac,
			Do:   func() error { return o.h.NeighSet(permNeigh(ref, ip, mac)) },
			Undo: func() error { return o.h.NeighDel(permNeigh(ref, ip, nil)) },
		}
		switch {
		case !ok:
			s.Change = change(pb.Change_ADD, "neigh", n.Ip, "lladdr "+n.Mac)
		case macChange && old.HardwareAddr.String() == n.Mac:
			s.Change = change(pb.Change_UPDATE, "neigh", n.Ip, "lladdr "+n.Mac+" (set again: the MAC change drops it)")
		case old.HardwareAddr.String() != n.Mac:
			oldMAC := old.HardwareAddr
			s.Change = change(pb.Change_UPDATE, "neigh", n.Ip, fmt.Sprintf("lladdr %s -> %s", oldMAC, n.Mac))
			if !macChange {
				s.Undo = func() error { return o.h.NeighSet(permNeigh(ref, ip, oldMAC)) }
			}
		default:
			continue
		}
		sets = append(sets, s)
	}
	return append(dels, sets...)
}

func fdbNeigh(ref *dataplane.LinkRef, mac net.HardwareAddr, dst net.IP) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    ref.Index,
		Family:       unix.AF_BRIDGE,
		Flags:        netlink.NTF_SELF,
		State:        netlink.NUD_PERMANENT,
		HardwareAddr: mac,
		IP:           dst,
	}
}

// fdbSteps leave exactly the wanted FDB entries on the device nodenet owns (entries added by
// hand go): the entries of a MAC are its remotes; a wanted MAC keeps exactly the wanted dst.
func (o *op) fdbSteps(w *wanted, ref *dataplane.LinkRef, have []netlink.Neigh) []dataplane.Step {
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
	del := func(mac net.HardwareAddr, dst net.IP) dataplane.Step {
		return dataplane.Step{
			Change: change(pb.Change_DELETE, "fdb", mac.String(), "dst "+dst.String()),
			Desc:   fmt.Sprintf("fdb %s dst %s", mac, dst),
			Do:     func() error { return o.h.NeighDel(fdbNeigh(ref, mac, dst)) },
			Undo:   func() error { return o.h.NeighAppend(fdbNeigh(ref, mac, dst)) },
		}
	}
	var steps []dataplane.Step
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
		set := dataplane.Step{
			Desc: fmt.Sprintf("fdb %s dst %s", e.Mac, e.Dst),
			Do:   func() error { return o.h.NeighSet(fdbNeigh(ref, mac, dst)) },
		}
		switch {
		case len(have) == 0:
			set.Change = change(pb.Change_ADD, "fdb", e.Mac, "dst "+e.Dst)
			set.Undo = func() error { return o.h.NeighDel(fdbNeigh(ref, mac, dst)) }
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
			set.Change = change(pb.Change_UPDATE, "fdb", e.Mac, fmt.Sprintf("dst %s -> %s", old, e.Dst))
			set.Undo = func() error { return o.h.NeighSet(fdbNeigh(ref, mac, old)) }
			steps = append(steps, set)
		}
	}
	return steps
}
