package provider

import (
	"strings"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/encap"
)

// A pool's share of a node as plan text: the same rendering for the planned share and for
// what the node reports, so a node in sync plans nothing and drift shows as changed lines.

// plannedNAT is what a node's nodenet table does for a pool: masquerade its traffic to
// destinations outside every pool (nat_outgoing). That traffic to the pool is never
// masqueraded is the table's business as a whole: a node whose table lacks the exemption
// (or holds one no pool explains) reports it as drift, on every pool it has.
func plannedNAT(cidr string, natOutgoing bool) string {
	if natOutgoing {
		return masqueradeLine(cidr)
	}
	return ""
}

// natLines renders what a node reports of its table for the pool, the table's drift after.
func natLines(cidr string, st *pb.NatState) string {
	var lines []string
	if st.GetMasquerade() && st.GetRule() {
		lines = append(lines, masqueradeLine(cidr))
	}
	for _, d := range st.GetDrift() {
		lines = append(lines, "drift: "+d)
	}
	return strings.Join(lines, "\n")
}

func masqueradeLine(cidr string) string {
	return "masquerade " + cidr + " to destinations outside every pool"
}

// tunnelLines renders a node's encapsulation, one kernel entry a line ("" for none).
func tunnelLines(e *pb.PoolEncapsulation) string { return strings.Join(encap.Lines(e), "\n") }
