package encap

import (
	"net/netip"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/mesh"
)

// validate checks what the plan needs, every error naming its field and node. Nodes without
// a block are only checked for their key: nothing is planned from the rest of them.
func validate(in Input, nodes []Node) []*Error {
	var errs []*Error
	add := func(e *Error) { errs = append(errs, e) }
	if !in.Pool.IsValid() || !in.Pool.Addr().Is4() || in.Pool.Masked() != in.Pool {
		add(errf("pool", "", "%s is not an IPv4 CIDR with its host bits zero", in.Pool))
	}
	typ := typeOf(in)
	switch typ {
	case TypeNone, TypeVxlan, TypeIpip:
	default:
		add(errf("type", "", "%q is not an encapsulation; one of %s, %s, %s", in.Type, TypeNone, TypeVxlan, TypeIpip))
	}
	switch modeOf(in) {
	case ModeAlways, ModeCrossSubnet:
	default:
		add(errf("mode", "", "%q is not an encapsulation mode; one of %s, %s", in.Mode, ModeAlways, ModeCrossSubnet))
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		if _, _, ok := mesh.SplitKey(n.Key); !ok {
			add(errf("nodes", n.Key, "node keys are \"<cluster>/<node>\", got %q", n.Key))
		}
		if seen[n.Key] {
			add(errf("nodes", n.Key, "appears twice"))
		}
		seen[n.Key] = true
	}
	if typ == TypeNone || len(errs) > 0 {
		return errs
	}

	if err := pb.ValidateIfName("device", in.Device); err != nil {
		add(errf("device", "", "%s", fieldMsg(err)))
	}
	if typ == TypeVxlan {
		if err := pb.ValidateVNI("vni", int64(in.VNI)); err != nil {
			add(errf("vni", "", "%s", fieldMsg(err)))
		}
		if in.Port != 0 {
			if err := pb.ValidatePort("port", int64(in.Port)); err != nil {
				add(errf("port", "", "%s", fieldMsg(err)))
			}
		}
	}
	if in.MTU != 0 {
		if err := pb.ValidateMTU("mtu", int64(in.MTU)); err != nil {
			add(errf("mtu", "", "%s", fieldMsg(err)))
		}
	}
	for _, e := range validateMembers(in, nodes) {
		add(e)
	}
	return errs
}

// validateMembers checks the nodes with a block: blocks in the pool and apart, underlay
// addresses distinct and in their subnets, what the tunnel on each node needs.
func validateMembers(in Input, nodes []Node) []*Error {
	var errs []*Error
	add := func(e *Error) { errs = append(errs, e) }
	typ := typeOf(in)
	type keyed struct {
		key   string
		block netip.Prefix
	}
	var blocks []keyed
	underlayOf := map[netip.Addr]string{}
	for _, n := range nodes {
		if !n.Block.IsValid() {
			continue
		}
		switch b := n.Block; {
		case !b.Addr().Is4() || b.Masked() != b:
			add(errf("nodes", n.Key, "block %s is not an IPv4 CIDR with its host bits zero", b))
		case !in.Pool.Contains(b.Addr()) || b.Bits() < in.Pool.Bits():
			add(errf("nodes", n.Key, "block %s is not inside the pool %s", b, in.Pool))
		default:
			for _, o := range blocks {
				if o.block.Overlaps(b) {
					add(errf("nodes", n.Key, "block %s overlaps node %s's block %s", b, o.key, o.block))
				}
			}
			blocks = append(blocks, keyed{n.Key, b})
		}
		if !n.Underlay.IsValid() || !n.Underlay.Is4() {
			add(errf("nodes", n.Key, "no IPv4 underlay address"))
		} else if other, dup := underlayOf[n.Underlay]; dup {
			add(errf("nodes", n.Key, "underlay address %s is also node %s's; every node needs its own", n.Underlay, other))
		} else {
			underlayOf[n.Underlay] = n.Key
		}
		switch {
		case n.Subnet.IsValid() && n.Underlay.IsValid() && !n.Subnet.Contains(n.Underlay):
			add(errf("nodes", n.Key, "underlay address %s is not in its subnet %s", n.Underlay, n.Subnet))
		case !n.Subnet.IsValid() && modeOf(in) == ModeCrossSubnet:
			add(errf("nodes", n.Key, "the subnet of its underlay interface is unknown; cross_subnet needs it"))
		}
		if typ == TypeVxlan {
			if err := pb.ValidateIfName("underlay", n.Interface); err != nil {
				add(errf("nodes", n.Key, "underlay interface: %s", fieldMsg(err)))
			}
		}
		max := n.MTU - overhead(typ)
		switch {
		case in.MTU == 0 && n.MTU == 0:
			add(errf("nodes", n.Key, "the MTU of its underlay interface is unknown; give the tunnel's MTU"))
		case in.MTU == 0:
			if err := pb.ValidateMTU("mtu", int64(max)); err != nil {
				add(errf("nodes", n.Key, "the tunnel's MTU would be %d (underlay %s MTU %d less %d for %s): %s; give the tunnel's MTU",
					max, n.Interface, n.MTU, overhead(typ), typ, fieldMsg(err)))
			}
		case n.MTU != 0 && in.MTU > max:
			add(errf("mtu", n.Key, "%d is more than node %s's underlay allows: %s has MTU %d, so at most %d (%s adds %d bytes)",
				in.MTU, n.Key, n.Interface, n.MTU, max, typ, overhead(typ)))
		}
	}
	return errs
}
