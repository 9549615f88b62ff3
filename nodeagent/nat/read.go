package nat

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// content is table ip nodenet as the kernel holds it, read under Table.mu.
type content struct {
	table *nftables.Table // nil: there is no table
	// dormant: the table is there with flag dormant, so none of it runs.
	dormant bool
	chain   *nftables.Chain // nil: there is no chain postrouting
	// chainOK: the chain is the nat base chain nodenet makes (chainSpec).
	chainOK bool
	rule    *nftables.Rule   // nodenet's rule; nil: it is not in the chain
	others  []*nftables.Rule // the chain's other rules (made by hand)
	sets    [2]setContent    // by role
	// foreign is what nodenet does not make: "chain forward", "set blocked", "2 other objects".
	foreign []string
}

type setContent struct {
	set *nftables.Set // nil: missing
	// ok: the set is as nodenet makes it (ipv4_addr, interval, nothing else).
	ok    bool
	elems []element // ok sets only
}

// working tells whether the kernel masquerades as the rule says: table, base chain, rule and
// the sets it looks up are there and as nodenet makes them.
func (k *content) working() bool {
	return k.table != nil && !k.dormant && k.chain != nil && k.chainOK && k.rule != nil && k.sets[masquerade].ok && k.sets[exempt].ok
}

// read reads table ip nodenet: its chains, sets with their elements, and the rules of chain
// postrouting. Other tables are not read beyond their names.
func (t *Table) read() (*content, error) {
	k, err := t.readTable()
	if err != nil {
		t.redial()
	}
	return k, err
}

func (t *Table) readTable() (*content, error) {
	if err := t.deadline(); err != nil {
		return nil, err
	}
	k := &content{}
	tables, err := t.conn.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("nftables: list tables: %w", err)
	}
	for _, tb := range tables {
		if tb.Name == tableName {
			k.table = tb
		}
	}
	if k.table == nil {
		return k, nil
	}
	k.dormant = hostOrder(k.table.Flags)&unix.NFT_TABLE_F_DORMANT != 0
	sets, err := t.conn.GetSets(k.table)
	if err != nil {
		return nil, fmt.Errorf("nftables: list sets of table %s: %w", tableName, err)
	}
	named := 0
	for _, s := range sets {
		if !s.Anonymous {
			named++
		}
		switch {
		case s.Anonymous:
			// A hand-made rule's anonymous set ({ 1.2.3.4 }) goes with its rule (and the
			// kernel does not count it in the table's use).
		case s.Name == masqSet:
			k.sets[masquerade].set = s
		case s.Name == exemptSet:
			k.sets[exempt].set = s
		default:
			k.foreign = append(k.foreign, "set "+s.Name)
		}
	}
	// The kernel counts the table's chains, sets, stateful objects and flowtables in its use.
	// What is not a set is, as nodenet makes the table, its one chain: asked for by name, so
	// that the chains of other tables (kube-proxy has one per service) are not read. Anything
	// more, or another chain than nodenet's, is listed.
	rest := int(hostOrder(k.table.Use)) - named
	if rest == 1 {
		if c, err := t.conn.ListChain(k.table, chainName); err == nil {
			k.chain, k.chainOK, rest = c, chainMatches(c), 0
		}
	}
	if rest > 0 {
		if err := t.readOthers(k, rest); err != nil {
			return nil, err
		}
	}
	sort.Strings(k.foreign)
	for _, r := range roles {
		sc := &k.sets[r]
		if sc.set == nil || !setMatches(sc.set) {
			continue
		}
		sc.ok = true
		elems, err := t.conn.GetSetElements(sc.set)
		if err != nil {
			return nil, fmt.Errorf("nftables: list elements of set %s: %w", sc.set.Name, err)
		}
		sc.elems = decode(elems)
	}
	if k.chain != nil {
		rules, err := t.conn.GetRules(k.table, k.chain)
		if err != nil {
			return nil, fmt.Errorf("nftables: list rules of chain %s: %w", chainName, err)
		}
		for _, r := range rules {
			if k.rule == nil && isOurRule(r) {
				k.rule = r
				continue
			}
			k.others = append(k.others, r)
		}
	}
	return k, nil
}

// hostOrder is a table attribute as the kernel sent it: github.com/google/nftables v0.3.0
// decodes the table's use count and flags in host byte order, the kernel sends them in
// network byte order.
func hostOrder(v uint32) uint32 {
	return binary.BigEndian.Uint32(binary.NativeEndian.AppendUint32(nil, v))
}

// readOthers lists the table's chains, nodenet's and any other, and names what else the use
// count holds (rest: the count less the sets).
func (t *Table) readOthers(k *content, rest int) error {
	chains, err := t.conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return fmt.Errorf("nftables: list chains: %w", err)
	}
	for _, c := range chains {
		if c.Table == nil || c.Table.Name != tableName {
			continue
		}
		rest--
		if c.Name == chainName {
			k.chain, k.chainOK = c, chainMatches(c)
			continue
		}
		k.foreign = append(k.foreign, "chain "+c.Name)
	}
	if rest > 0 {
		k.foreign = append(k.foreign, t.otherObjects(k.table, rest)...)
	}
	return nil
}

// otherObjects names the table's stateful objects and flowtables, n of them by its use count
// (counted when the library cannot read them).
func (t *Table) otherObjects(tb *nftables.Table, n int) []string {
	var out []string
	if objs, err := t.conn.GetNamedObjects(tb); err == nil {
		for _, o := range objs {
			if no, ok := o.(*nftables.NamedObj); ok {
				out = append(out, fmt.Sprintf("%s %s", objTypeName(no.Type), no.Name))
			}
		}
	}
	if fts, err := t.conn.ListFlowtables(tb); err == nil {
		for _, f := range fts {
			out = append(out, "flowtable "+f.Name)
		}
	}
	if rest := n - len(out); rest == 1 {
		out = append(out, "1 other object")
	} else if rest > 1 {
		out = append(out, fmt.Sprintf("%d other objects", rest))
	}
	return out
}

func objTypeName(t nftables.ObjType) string {
	switch t {
	case nftables.ObjTypeCounter:
		return "counter"
	case nftables.ObjTypeQuota:
		return "quota"
	case nftables.ObjTypeLimit:
		return "limit"
	case nftables.ObjTypeConnLimit:
		return "connlimit"
	}
	return fmt.Sprintf("object (type %d)", t)
}
