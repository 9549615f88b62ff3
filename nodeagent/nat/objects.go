package nat

import (
	"fmt"
	"reflect"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// The kernel objects nodenet makes, one function each.

func tableSpec() *nftables.Table {
	return &nftables.Table{Name: tableName, Family: nftables.TableFamilyIPv4}
}

// chainSpec: a nat base chain at postrouting with srcnat priority (100), where iptables'
// MASQUERADE and Calico's natOutgoing rule run too; policy accept, so traffic no rule
// masquerades passes unchanged.
func chainSpec(t *nftables.Table) *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return &nftables.Chain{
		Name:     chainName,
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
		Policy:   &accept,
	}
}

func chainMatches(c *nftables.Chain) bool {
	want := chainSpec(nil)
	return c.Type == want.Type &&
		c.Hooknum != nil && *c.Hooknum == *want.Hooknum &&
		c.Priority != nil && *c.Priority == *want.Priority &&
		(c.Policy == nil || *c.Policy == *want.Policy)
}

// describeChain is a chain as nft writes it, for a drift line about a chain that differs.
func describeChain(c *nftables.Chain) string {
	if c.Hooknum == nil {
		return "regular chain"
	}
	hooks := map[nftables.ChainHook]string{0: "prerouting", 1: "input", 2: "forward", 3: "output", 4: "postrouting"}
	hook, ok := hooks[*c.Hooknum]
	if !ok {
		hook = fmt.Sprint(*c.Hooknum)
	}
	s := fmt.Sprintf("type %s hook %s priority", c.Type, hook)
	if c.Priority != nil {
		s += fmt.Sprintf(" %d", *c.Priority)
	}
	if c.Policy != nil && *c.Policy == nftables.ChainPolicyDrop {
		s += " policy drop"
	}
	return s
}

// setSpec is the role's set: ipv4_addr keys, interval flag (its elements are ranges), keys
// in network byte order as nft records them, so nft lists it like a set it made. id names the
// set within one transaction, for the elements and the rule added with it (set here rather
// than by the library, whose counter is shared by all connections without a lock).
func setSpec(t *nftables.Table, r role, id uint32) *nftables.Set {
	return &nftables.Set{
		Table:        t,
		ID:           id,
		Name:         r.set(),
		KeyType:      nftables.TypeIPAddr,
		KeyByteOrder: binaryutil.BigEndian,
		Interval:     true,
	}
}

func setMatches(s *nftables.Set) bool {
	return s.KeyType.Name == nftables.TypeIPAddr.Name && s.KeyType.Bytes == nftables.TypeIPAddr.Bytes && s.Interval &&
		!s.IsMap && !s.Constant && !s.HasTimeout && !s.Dynamic && !s.Concatenation
}

func describeSet(s *nftables.Set) string {
	d := "type " + s.KeyType.Name
	if s.IsMap {
		d += " : " + s.DataType.Name
	}
	if !s.Interval {
		d += ", no interval flag"
	}
	if s.Constant || s.HasTimeout || s.Dynamic || s.Concatenation {
		d += ", other flags"
	}
	return d
}

// ruleExprs is `ip saddr @masq_sources ip daddr != @masq_exempt masquerade`, expression for
// expression as nft 1.0 compiles it: the source address (network header offset 12) looked up
// in one set, the destination (offset 16) looked up, inverted, in the other, then masq.
func ruleExprs() []expr.Any {
	return []expr.Any{
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: masqSet},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: exemptSet, Invert: true},
		&expr.Masq{},
	}
}

const ruleText = "ip saddr @" + masqSet + " ip daddr != @" + exemptSet + " masquerade"

func ruleSpec(t *nftables.Table, c *nftables.Chain) *nftables.Rule {
	return &nftables.Rule{Table: t, Chain: c, Exprs: ruleExprs()}
}

// isOurRule compares the expressions as the kernel lists them back (it does not list the set
// ids a rule was made with, and ours are made without).
func isOurRule(r *nftables.Rule) bool {
	want := ruleExprs()
	if len(r.Exprs) != len(want) {
		return false
	}
	for i := range want {
		got := r.Exprs[i]
		if l, ok := got.(*expr.Lookup); ok {
			c := *l
			c.SetID = 0
			got = &c
		}
		if !reflect.DeepEqual(got, want[i]) {
			return false
		}
	}
	return true
}
