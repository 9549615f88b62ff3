package vxlan

import (
	"fmt"
	"net"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

const zeroMAC = "00:00:00:00:00:00"

// DesiredFromObserved is the spec that reproduces an observed device: the observed-only
// fields cleared. A device that holds what a vxlan_tunnel cannot express (an all-zero flood
// entry, a MAC with several remotes, several addresses) is refused with the commands that
// make it expressible: stored as a spec, it would be refused by the contract when replayed
// after a reboot.
func (r *Reconciler) DesiredFromObserved(observed *pb.Object) (*pb.Object, error) {
	t, _ := proto.Clone(observed.GetVxlanTunnel()).(*pb.VxlanTunnel)
	dev := t.GetDevice()
	if dev == nil {
		return nil, reconcile.Conflictf("object %s has no device to adopt", observed.GetId())
	}
	if problems := inexpressible(t); len(problems) > 0 {
		return nil, reconcile.Conflictf("cannot adopt device %s: it holds what a vxlan_tunnel cannot express (one unicast FDB entry and one permanent neighbour per member, one overlay address):\n- %s\nChange it by hand and import again.",
			dev.GetName(), strings.Join(problems, "\n- "))
	}
	dev.Ifindex, dev.OperState, dev.Owner, dev.Addresses = 0, "", "", nil
	t.Health = nil // measured, never desired; health checks are asked for by the configuration
	o := object(observed.GetId(), t)
	if err := pb.ValidateVxlanTunnelObject(o); err != nil {
		return nil, reconcile.Conflictf("cannot adopt device %s: the spec it would be stored as is invalid: %v", dev.GetName(), err)
	}
	return o, nil
}

// inexpressible lists what the observed device holds that its spec cannot, each with the
// command that removes it.
func inexpressible(t *pb.VxlanTunnel) []string {
	name := t.GetDevice().GetName()
	var out []string
	remotes := map[string][]string{}
	var macs []string
	for _, e := range t.GetFdb() {
		if _, seen := remotes[e.GetMac()]; !seen {
			macs = append(macs, e.GetMac())
		}
		remotes[e.GetMac()] = append(remotes[e.GetMac()], e.GetDst())
	}
	sort.Strings(macs)
	for _, m := range macs {
		dsts := remotes[m]
		switch {
		case m == zeroMAC:
			for _, d := range dsts {
				out = append(out, fmt.Sprintf("an all-zero (flood) FDB entry dst %s: remove it with `bridge fdb del %s dst %s dev %s`", d, zeroMAC, d, name))
			}
		case multicast(m):
			out = append(out, fmt.Sprintf("FDB entries for the multicast MAC %s (dst %s): a vxlan_tunnel programs unicast entries only; remove them with `bridge fdb del %s dst <ip> dev %s`",
				m, strings.Join(dsts, ", "), m, name))
		case len(dsts) > 1:
			out = append(out, fmt.Sprintf("FDB entries for %s to %d remotes (%s): keep one, e.g. `bridge fdb del %s dst %s dev %s`",
				m, len(dsts), strings.Join(dsts, ", "), m, dsts[len(dsts)-1], name))
		}
	}
	if addrs := t.GetDevice().GetAddresses(); len(addrs) > 1 {
		for _, a := range addrs[1:] {
			out = append(out, fmt.Sprintf("a second address %s besides %s: remove it with `ip addr del %s dev %s`", a, addrs[0], a, name))
		}
	}
	return out
}

func multicast(mac string) bool {
	hw, err := net.ParseMAC(mac)
	return err == nil && len(hw) > 0 && hw[0]&1 != 0
}
