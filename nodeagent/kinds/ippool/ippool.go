// Package ippool is the ip_pool kind: an IP pool's share of one node. That is the node's
// block of the pool with a blackhole route for it (as Calico's BIRD makes: traffic to an
// address of the block that no pod has is dropped here instead of bouncing between nodes)
// and the block announced by the node's BGP speaker; the pool's contribution to the node's
// NAT table (nodeagent/nat: masquerade from NAT pools to outside every pool); the pool's
// encapsulation (a VXLAN device built by the vxlan kind's code, or an IPIP device, with the
// entries to the other nodes' blocks, and direct routes to those in the node's own subnet);
// and the CNI configuration of the block (nodeagent/cnifile).
//
// Every part is planned as undoable steps and run in one dataplane.Run: an apply or a delete
// is all or nothing on the node. The files: apply.go (the plan of every part), observe.go,
// delete.go, adopt.go.
package ippool

import (
	"net/netip"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/bgp"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/cnifile"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/kinds/ippool/ipip"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/kinds/vxlan"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/nat"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Reconciler manages ip_pool objects.
type Reconciler struct {
	dp  *dataplane.Dataplane
	sp  *bgp.Speaker
	nat *nat.Table
	// cniDir is where CNI configurations are written ("" when the agent writes none).
	cniDir string
}

var (
	_ reconcile.Reconciler = (*Reconciler)(nil)
	_ reconcile.Loader     = (*Reconciler)(nil)
)

// New returns the ip_pool reconciler: sp announces the blocks, nt is the node's NAT table,
// cniDir the CNI configuration directory ("" when none is written).
func New(dp *dataplane.Dataplane, sp *bgp.Speaker, nt *nat.Table, cniDir string) *Reconciler {
	return &Reconciler{dp: dp, sp: sp, nat: nt, cniDir: cniDir}
}

// Kind is "ip_pool".
func (r *Reconciler) Kind() string { return pb.KindIpPool }

// ValidateName: the pool's CIDR.
func (r *Reconciler) ValidateName(name string) error {
	_, err := pb.ParseCIDR("id", name)
	return err
}

// Validate runs the contract's rules, and refuses a CNI configuration this agent has no
// directory for.
func (r *Reconciler) Validate(o *pb.Object) error {
	_, name, err := pb.SplitObjectID(o.GetId())
	if err != nil {
		return err
	}
	p := o.GetIpPool()
	if err := pb.ValidateIpPool(name, p); err != nil {
		return err
	}
	if p.GetCniFile() != "" && r.cniDir == "" {
		return &pb.FieldError{Field: "ip_pool.cni_file", Msg: "this agent writes no CNI configuration: start it with --cni-conf-dir"}
	}
	return nil
}

// Restore: the kernel entries come back after a reboot; the announcement is the speaker's,
// which starts from the store at every start.
func (r *Reconciler) Restore() reconcile.RestoreRule { return reconcile.RestoreAfterReboot }

// Claims: the blackhole route of the block, the tunnel's device and routes, the direct
// routes and the CNI file. The NAT table is shared: its elements are no object's alone.
func (r *Reconciler) Claims(o *pb.Object) []string {
	p := o.GetIpPool()
	var keys []string
	if b := p.GetBlock(); b != "" {
		keys = append(keys, dataplane.RouteKey(dataplane.CanonPrefix(b), 0))
	}
	e := p.GetEncapsulation()
	if e.GetVxlan() != nil {
		keys = append(keys, vxlan.TunnelClaims(e.GetVxlan())...)
	}
	if e.GetIpip() != nil {
		keys = append(keys, ipip.TunnelClaims(e.GetIpip())...)
	}
	keys = append(keys, directKeys(e)...)
	if f := p.GetCniFile(); f != "" && r.cniDir != "" {
		if path, err := cnifile.Path(r.cniDir, f); err == nil {
			keys = append(keys, cnifile.FileKey(path))
		}
	}
	return keys
}

// Load takes the stored pools' NAT contributions, so that the table is planned from all of
// them from the first apply of this agent's life on (a replay after a reboot included).
func (r *Reconciler) Load(objs []*pb.Object) {
	all := map[string]nat.Contribution{}
	for _, o := range objs {
		if c := contribution(o.GetIpPool()); c != nil {
			all[o.GetId()] = *c
		}
	}
	r.nat.Load(all)
}

// contribution is a pool's part of the NAT table: its CIDR as an exempt destination, and as
// a source to masquerade with nat_outgoing.
func contribution(p *pb.IpPool) *nat.Contribution {
	pool, err := netip.ParsePrefix(p.GetCidr())
	if err != nil {
		return nil
	}
	c := &nat.Contribution{Exempt: []netip.Prefix{pool.Masked()}}
	if p.GetNatOutgoing() {
		c.Masquerade = []netip.Prefix{pool.Masked()}
	}
	return c
}

func object(id string, p *pb.IpPool) *pb.Object {
	return &pb.Object{Id: id, Spec: &pb.Object_IpPool{IpPool: p}}
}
