package nat

import (
	"fmt"
	"sort"
	"strings"

	"github.com/google/nftables"
	"go4.org/netipx"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	"github.com/nodenet/terraform-provider-nodenet/nodeagent/reconcile"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// opKind is what an op does. The kinds are in the order one transaction makes them: what
// refers to an object goes before it is deleted and after it is added, and elements leave a
// set before the ones that replace them arrive (an interval set refuses overlaps).
type opKind int

const (
	delRule opKind = iota
	delChain
	delElem
	delSet
	delTable
	addTable
	addSet
	addElem
	addChain
	addRule
)

// op is one change of the table: one kernel object, or one element.
type op struct {
	kind   opKind
	role   role           // sets and elements
	rule   *nftables.Rule // delRule
	elem   element        // delElem: the kernel's; addElem: the range to add
	change *pb.Change
	desc   string
}

// plan is the ops that turn the table the kernel holds (k) into the union u, touching only
// what differs: with the table in place and as nodenet makes it, a pool added or removed is
// an element or two, nothing else. An empty union is the table deleted, all of it.
func plan(k *content, u union) ([]op, error) {
	if k.table != nil && len(k.foreign) > 0 {
		return nil, foreignError(k.foreign)
	}
	if u.empty() {
		if k.table == nil {
			return nil, nil
		}
		return []op{tableOp(delTable)}, nil
	}
	var ops []op
	switch {
	case k.table == nil:
		ops = append(ops, tableOp(addTable))
	case k.dormant:
		// Adding the table again sets its flags to none: it runs again.
		o := tableOp(addTable)
		o.change.Action, o.change.Detail = pb.Change_UPDATE, "table ip "+tableName+": flags dormant -> none"
		ops = append(ops, o)
	}

	// Sets: a missing one is added; one that differs from nodenet's is made again, and the
	// rule that looks it up goes first (the kernel refuses to delete a set in use).
	remake := false
	for _, r := range roles {
		sc := k.sets[r]
		switch {
		case sc.set == nil:
			ops = append(ops, setOp(addSet, r, ""))
		case !sc.ok:
			ops = append(ops, setOp(delSet, r, describeSet(sc.set)), setOp(addSet, r, ""))
			remake = true
		}
		ops = append(ops, elemOps(r, sc.elems, u[r])...)
	}

	// The chain: missing, added; not a nat base chain at postrouting/srcnat, made again
	// (deleting a chain deletes its rules).
	chainNew := k.chain == nil
	if k.chain != nil && !k.chainOK {
		ops = append(ops, chainOp(delChain, describeChain(k.chain)))
		chainNew = true
	}
	if chainNew {
		ops = append(ops, chainOp(addChain, ""))
	}
	if !chainNew {
		for _, r := range k.others {
			ops = append(ops, otherRuleOp(r))
		}
	}

	// The rule: added when missing, and again after its chain or a set it looks up was made
	// again.
	switch {
	case k.rule == nil || chainNew:
		ops = append(ops, ruleOp(addRule))
	case remake:
		ops = append(ops, ruleOp(delRule), ruleOp(addRule))
		ops[len(ops)-2].rule = k.rule
	}
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].kind < ops[j].kind })
	return ops, nil
}

// elemOps are the element changes that make the kernel's ranges of a set (have) the union's
// (want): a range in both is left alone, one only in the kernel deleted, one only in the
// union added.
func elemOps(r role, have []element, want []netipx.IPRange) []op {
	wanted := map[netipx.IPRange]bool{}
	for _, w := range want {
		wanted[w] = true
	}
	held := map[netipx.IPRange]bool{}
	var ops []op
	for _, e := range have {
		held[e.r] = true
		if !wanted[e.r] {
			ops = append(ops, elemOp(delElem, r, e))
		}
	}
	for _, w := range want {
		if !held[w] {
			ops = append(ops, elemOp(addElem, r, element{r: w}))
		}
	}
	return ops
}

func action(k opKind) pb.Change_Action {
	if k < addTable {
		return pb.Change_DELETE
	}
	return pb.Change_ADD
}

func tableOp(k opKind) op {
	detail := "table ip " + tableName
	if k == delTable {
		detail += " with its chain, sets and elements: no object asks for NAT"
	}
	return op{kind: k, change: dataplane.NewChange(action(k), tableEntry, "table "+tableName, detail), desc: "table ip " + tableName}
}

func setOp(k opKind, r role, was string) op {
	detail := fmt.Sprintf("set ip %s %s type ipv4_addr flags interval", tableName, r.set())
	if was != "" {
		detail = fmt.Sprintf("set ip %s %s is %s, not ipv4_addr with flags interval", tableName, r.set(), was)
	}
	return op{kind: k, role: r, change: dataplane.NewChange(action(k), tableEntry, "set "+r.name(), detail), desc: "set " + r.set()}
}

func elemOp(k opKind, r role, e element) op {
	s := rangeString(e.r)
	return op{kind: k, role: r, elem: e,
		change: dataplane.NewChange(action(k), tableEntry, "set "+r.name()+" "+s, "element of set ip "+tableName+" "+r.set()),
		desc:   "element " + s + " of set " + r.set()}
}

func chainOp(k opKind, was string) op {
	detail := "chain ip " + tableName + " " + chainName + " type nat hook postrouting priority srcnat policy accept"
	if was != "" {
		detail = "chain ip " + tableName + " " + chainName + " is " + was + ", not type nat hook postrouting priority srcnat"
	}
	return op{kind: k, change: dataplane.NewChange(action(k), tableEntry, "chain "+chainName, detail), desc: "chain " + chainName}
}

func ruleOp(k opKind) op {
	return op{kind: k, change: dataplane.NewChange(action(k), tableEntry, "rule "+ruleName, ruleText), desc: "rule " + ruleName}
}

// otherRuleOp deletes a rule of nodenet's chain that nodenet did not make.
func otherRuleOp(r *nftables.Rule) op {
	return op{kind: delRule, rule: r,
		change: dataplane.NewChange(pb.Change_DELETE, tableEntry, fmt.Sprintf("rule %s handle %d", chainName, r.Handle), "a rule nodenet did not make, in its chain"),
		desc:   fmt.Sprintf("rule handle %d", r.Handle)}
}

// batchElems bounds the elements of one netlink message, so a large union does not make a
// message bigger than the socket's buffers.
const batchElems = 512

// queue adds the ops, in order, to conn's next transaction. Elements of one set go in one
// message per batchElems (one acknowledgement each, not one per element).
func queue(conn *nftables.Conn, k *content, ops []op) error {
	tb := k.table
	if tb == nil {
		tb = tableSpec()
	}
	chain := k.chain
	var sets [2]*nftables.Set
	for _, r := range roles {
		sets[r] = k.sets[r].set
	}
	var pending []nftables.SetElement
	pendingKind, pendingRole := opKind(-1), role(0)
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		var err error
		if pendingKind == addElem {
			err = conn.SetAddElements(sets[pendingRole], pending)
		} else {
			err = conn.SetDeleteElements(sets[pendingRole], pending)
		}
		pending = nil
		return err
	}
	for _, o := range ops {
		if o.kind != pendingKind || o.role != pendingRole || len(pending) >= 2*batchElems {
			if err := flush(); err != nil {
				return err
			}
		}
		pendingKind, pendingRole = o.kind, o.role
		switch o.kind {
		case delRule:
			r := o.rule
			r.Table, r.Chain = tb, chain
			if err := conn.DelRule(r); err != nil {
				return err
			}
		case delChain:
			conn.DelChain(chain)
		case delElem:
			pending = append(pending, o.elem.raw...)
		case delSet:
			conn.DelSet(sets[o.role])
		case delTable:
			conn.DelTable(tb)
		case addTable:
			tb = conn.AddTable(tableSpec())
		case addSet:
			sets[o.role] = setSpec(tb, o.role, uint32(o.role)+1)
			if err := conn.AddSet(sets[o.role], nil); err != nil {
				return err
			}
		case addElem:
			pending = append(pending, encode(o.elem.r)...)
		case addChain:
			chain = conn.AddChain(chainSpec(tb))
		case addRule:
			conn.AddRule(ruleSpec(tb, chain))
		}
	}
	return flush()
}

// foreignError refuses to change a table that holds what nodenet does not make: deleting it
// would delete someone's rules, keeping it would leave nodenet's table not nodenet's alone.
func foreignError(foreign []string) error {
	var cmds []string
	for _, f := range foreign {
		if kind, name, ok := strings.Cut(f, " "); ok && !strings.Contains(name, " ") {
			cmds = append(cmds, fmt.Sprintf("nft delete %s ip %s %s", kind, tableName, name))
		}
	}
	hint := ""
	if len(cmds) > 0 {
		hint = " (" + strings.Join(cmds, "; ") + ")"
	}
	return reconcile.Conflictf("nftables table ip %s holds %s, which nodenet does not make; nodenet changes its table only while the table holds nothing else: move them to a table of their own or delete them%s",
		tableName, strings.Join(foreign, ", "), hint)
}
