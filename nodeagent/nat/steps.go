package nat

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Steps returns what setting id's contribution (nil: removing it) changes in the kernel so
// that the table is exactly the union of all contributions, planned against what the kernel
// holds now: hand-made drift is repaired as part of it, touching only what differs. Calling
// Steps changes nothing (it is the dry run).
//
// nftables changes the table in transactions, all or nothing, and that is how the steps make
// it: one step per kernel object or element, each with its Change (what the caller is told
// and what a test's before hook can fail), and a last step without a Change, "nft
// transaction", that makes them all at once. A step failing before the transaction leaves
// the kernel and the record untouched; the kernel refusing the transaction leaves nothing
// of it.
//
// The last step sends the ops planned here when the table's record has not changed since
// (no other object ran its steps in between), so what the caller was told is what is made;
// otherwise, or when the kernel refuses them (an edit by hand in between), it reads the
// table and plans again under the mutex: the transaction must start from what the kernel
// holds then. Then it records id's contribution as applied. Its Undo (a later step of the
// caller failed) sets id's contribution back to what it was before, the same way: read,
// plan the union with the others as they are now (another object may have applied
// meanwhile), one transaction. Drift that the apply repaired stays repaired. When the undo's
// transaction fails, the record keeps what the kernel holds.
func (t *Table) Steps(id string, c *Contribution) ([]dataplane.Step, error) {
	next, err := normalize(c)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	k, err := t.read()
	if err != nil {
		return nil, err
	}
	u, err := unionOf(with(t.applied, id, next))
	if err != nil {
		return nil, err
	}
	ops, err := plan(k, u)
	if err != nil {
		return nil, err
	}
	prev, had := t.applied[id]
	if len(ops) == 0 && had == (next != nil) && (!had || prev.equal(*next)) {
		return nil, nil
	}
	p := &planned{version: t.version, k: k, ops: ops}
	steps := make([]dataplane.Step, 0, len(ops)+1)
	for _, o := range ops {
		// Made by the transaction step below, with the others.
		steps = append(steps, dataplane.Step{Change: o.change, Desc: o.desc, Do: func() error { return nil }})
	}
	var undo *Contribution // id's contribution before the transaction, once it ran
	return append(steps, dataplane.Step{
		Desc: "nft transaction on table ip " + tableName,
		Do: func() error {
			t.mu.Lock()
			defer t.mu.Unlock()
			before := t.record(id)
			if err := t.sync(id, next, p); err != nil {
				return err
			}
			undo = before
			return nil
		},
		Undo: func() error {
			t.mu.Lock()
			defer t.mu.Unlock()
			return t.sync(id, undo, nil)
		},
	}), nil
}

// planned is what Steps planned: against the kernel's table k, with the record at version.
type planned struct {
	version uint64
	k       *content
	ops     []op
}

// sync makes the kernel's table the union with id's contribution set to c, in one
// transaction, and records c once the kernel took it: with the ops of p when the record is
// still the one p was planned with, else (or when the kernel refuses them) with ops planned
// from the table read now. Under t.mu.
func (t *Table) sync(id string, c *Contribution, p *planned) error {
	all := with(t.applied, id, c)
	if p != nil && p.version == t.version {
		if err := t.send(p.k, p.ops); err == nil {
			t.commit(all)
			return nil
		}
	}
	k, err := t.read()
	if err != nil {
		return err
	}
	u, err := unionOf(all)
	if err != nil {
		return err
	}
	ops, err := plan(k, u)
	if err != nil {
		return err
	}
	if err := t.send(k, ops); err != nil {
		return err
	}
	t.commit(all)
	return nil
}

// send makes ops in one transaction (nothing to send: nothing to do).
func (t *Table) send(k *content, ops []op) error {
	if len(ops) == 0 && t.testQueue == nil {
		return nil
	}
	if err := queue(t.conn, k, ops); err != nil {
		t.redial() // drops what was queued
		return fmt.Errorf("nftables table ip %s: %w", tableName, err)
	}
	if t.testQueue != nil {
		t.testQueue(t.conn)
	}
	if err := t.deadline(); err != nil {
		return err
	}
	if err := t.conn.Flush(); err != nil {
		t.redial()
		return fmt.Errorf("nftables table ip %s: a transaction of %d changes refused, none made: %w", tableName, len(ops), err)
	}
	return nil
}

// commit records what the kernel now holds.
func (t *Table) commit(all map[string]Contribution) {
	t.applied = all
	t.version++
}

// record is a copy of id's applied contribution (nil: none).
func (t *Table) record(id string) *Contribution {
	c, ok := t.applied[id]
	if !ok {
		return nil
	}
	return &c
}

// Observe reads the kernel: what the table holds for prefix p (the rule working, p among the
// masqueraded sources, p among the exempt destinations; p is among them when the set's
// ranges cover all of it) and the drift of the whole table against the union of the
// contributions.
func (t *Table) Observe(p netip.Prefix) (*pb.NatState, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k, err := t.read()
	if err != nil {
		return nil, err
	}
	u, err := unionOf(t.applied)
	if err != nil {
		return nil, err
	}
	return state(k, u, p), nil
}

// normalize checks c and copies it with its prefixes masked, so that what is recorded is
// what the kernel is given and the caller may reuse its slices.
func normalize(c *Contribution) (*Contribution, error) {
	if c == nil {
		return nil, nil
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	out := &Contribution{}
	for _, p := range c.Masquerade {
		out.Masquerade = append(out.Masquerade, p.Masked())
	}
	for _, p := range c.Exempt {
		out.Exempt = append(out.Exempt, p.Masked())
	}
	return out, nil
}

func (c Contribution) equal(o Contribution) bool {
	return slices.Equal(c.Masquerade, o.Masquerade) && slices.Equal(c.Exempt, o.Exempt)
}
