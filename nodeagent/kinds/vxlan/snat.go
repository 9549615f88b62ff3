package vxlan

import (
	"fmt"
	"net/netip"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/nat"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// A tunnel's NAT exemption: the destinations reached through it (a cluster link's remote pod
// and service CIDRs) that the node's NAT must leave alone. The tunnel contributes them to the
// node's nftables table as every pool contributes its CIDR; the table holds them while one of
// the node's pools masquerades.

// exemption is a tunnel's contribution to the NAT table (nil: none).
func exemption(t *pb.VxlanTunnel) *nat.Contribution {
	var c nat.Contribution
	for _, s := range t.GetSnatExempt() {
		if p, err := netip.ParsePrefix(s); err == nil {
			c.Exempt = append(c.Exempt, p.Masked())
		}
	}
	if len(c.Exempt) == 0 {
		return nil
	}
	return &c
}

// natSteps make the node's NAT table hold the object's exemption (t nil: none any more).
func (r *Reconciler) natSteps(id string, t *pb.VxlanTunnel) ([]dataplane.Step, error) {
	if r.NAT == nil {
		if exemption(t) != nil {
			return nil, fmt.Errorf("this agent keeps no NAT table, so it cannot exempt %v from NAT", t.GetSnatExempt())
		}
		return nil, nil
	}
	c := exemption(t)
	if c == nil && !r.NAT.Contributes(id) {
		return nil, nil // nothing to add or take away: the table is not read
	}
	steps, err := r.NAT.Steps(id, c)
	if err != nil {
		return nil, fmt.Errorf("NAT table: %w", err)
	}
	return steps, nil
}

// loadExemptions takes the stored tunnels' exemptions, so the NAT table is planned from every
// object's share from the first apply of the agent's life on.
func (r *Reconciler) loadExemptions(objs []*pb.Object) {
	if r.NAT == nil {
		return
	}
	all := map[string]nat.Contribution{}
	for _, o := range objs {
		if c := exemption(o.GetVxlanTunnel()); c != nil {
			all[o.GetId()] = *c
		}
	}
	r.NAT.Load(all)
}

// observeExempt reads back which of the wanted exemptions the table holds (all of them when
// no pool masquerades: the table does not exist, and nothing is masqueraded).
func (r *Reconciler) observeExempt(want *pb.VxlanTunnel) ([]string, error) {
	var out []string
	if r.NAT == nil {
		return nil, nil
	}
	for _, s := range want.GetSnatExempt() {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			continue
		}
		st, err := r.NAT.Observe(p.Masked())
		if err != nil {
			return nil, fmt.Errorf("NAT table: %w", err)
		}
		if st.GetExempt() || !st.GetRule() {
			out = append(out, s)
		}
	}
	return out, nil
}
