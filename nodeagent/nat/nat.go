// Package nat is nodenet's nftables NAT table on a node: table ip nodenet, which masquerades
// traffic whose source is in a NAT pool and whose destination is in no pool (Calico's IPPool
// natOutgoing). Several managed objects contribute to the one table (every IP pool, later
// the cluster links' remote CIDRs); the table is always the union of their contributions.
//
// The table, all of it nodenet's, made through netlink (github.com/google/nftables, never an
// nft process):
//
//	table ip nodenet {
//		set masq_sources { type ipv4_addr; flags interval; elements = { <pools with NAT> } }
//		set masq_exempt { type ipv4_addr; flags interval; elements = { <every pool, remote CIDRs> } }
//		chain postrouting {
//			type nat hook postrouting priority srcnat; policy accept;
//			ip saddr @masq_sources ip daddr != @masq_exempt masquerade
//		}
//	}
//
// The CIDRs live in the sets, never in rules, so a pool added or removed changes set
// elements only. An interval set refuses overlapping elements, so a prefix inside another
// one is left out of a set (the wider one covers it); adjacent prefixes stay elements of
// their own, which the kernel takes, so that one pool is one element. Every change is
// planned against what the kernel holds and made in one nftables transaction. The sets are
// not called "masquerade" and "exempt" because masquerade is a keyword of nft's grammar: an
// operator could not name the set in an nft command. Drift lines and changes still say
// masquerade and exempt.
//
// The agent never touches another table. Table nodenet is nodenet's by its name, and so are
// the three objects above and every rule or element inside them: a sync repairs them. A
// chain, set or other object in table nodenet that nodenet does not make is someone else's:
// Steps refuses to change the table until it is gone, rather than delete it or build around it.
package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/vishvananda/netns"
)

// Names in the kernel.
const (
	tableName  = "nodenet"
	chainName  = "postrouting"
	masqSet    = "masq_sources"
	exemptSet  = "masq_exempt"
	ruleName   = "masquerade" // how changes and drift lines name the one rule
	tableEntry = "nft"        // the Change entry of everything in the table
)

// requestTimeout bounds every exchange with the kernel, as the dataplane's netlink handles do.
const requestTimeout = 30 * time.Second

// Contribution is what one managed object asks of the NAT table.
type Contribution struct {
	Masquerade []netip.Prefix // sources to masquerade (a pool with nat_outgoing)
	Exempt     []netip.Prefix // destinations never masqueraded (every pool; later remote clusters' CIDRs)
}

// Table is nodenet's table in one network namespace. Its mutex serialises every read and
// change of the table through it: planning and running NAT changes is short, and the table
// is one kernel object that all contributions share.
type Table struct {
	nsPath string

	mu   sync.Mutex
	conn *nftables.Conn // one netlink socket in the namespace, used under mu only
	sock *netlink.Conn  // conn's socket, for the deadline of each exchange
	// applied is what the kernel was last made to hold, per object id; version counts its
	// changes, so that steps know whether the record they were planned with still holds.
	applied map[string]Contribution
	version uint64

	// testQueue, set by tests, adds to a transaction before it is sent (to make the kernel
	// refuse it).
	testQueue func(*nftables.Conn)
}

// Open returns the table of the network namespace at nsPath (e.g. /run/netns/foo), or of the
// current one when nsPath is "". It reads the ruleset once to check that nftables is there;
// it changes nothing.
func Open(nsPath string) (*Table, error) {
	t := &Table{nsPath: nsPath, applied: map[string]Contribution{}}
	if err := t.dial(); err != nil {
		return nil, err
	}
	if err := t.deadline(); err != nil {
		t.Close()
		return nil, err
	}
	if _, err := t.conn.ListTablesOfFamily(nftables.TableFamilyIPv4); err != nil {
		t.Close()
		return nil, fmt.Errorf("nftables: list tables: %w", err)
	}
	return t, nil
}

// dial opens the netlink socket in the namespace. One socket serves every exchange: opening
// one per request costs a setns round trip each.
func (t *Table) dial() error {
	keep := func(c *netlink.Conn) error { t.sock = c; return nil }
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(keep)}
	if t.nsPath != "" {
		ns, err := netns.GetFromPath(t.nsPath)
		if err != nil {
			return fmt.Errorf("open network namespace %s: %w", t.nsPath, err)
		}
		defer ns.Close() // the socket keeps the namespace
		opts = append(opts, nftables.WithNetNSFd(int(ns)))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("nftables netlink socket: %w", err)
	}
	t.conn = conn
	return nil
}

// redial replaces the socket after a failed exchange: a request that timed out or failed
// half-way may leave answers in it that the next request would read as its own. Under t.mu.
func (t *Table) redial() {
	if t.conn == nil {
		return
	}
	_ = t.conn.CloseLasting()
	t.conn, t.sock = nil, nil
	_ = t.dial() // on failure the table stays closed and says so at the next request
}

// Close releases the netlink socket; the kernel's table stays as it is.
func (t *Table) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		_ = t.conn.CloseLasting()
		t.conn = nil
	}
}

// deadline bounds the next exchanges with the kernel, so a wedged kernel call cannot hang the
// agent with the table's mutex held.
func (t *Table) deadline() error {
	if t.conn == nil {
		return errors.New("nat table is closed (or its netlink socket could not be opened again)")
	}
	if t.sock == nil {
		return nil
	}
	return t.sock.SetDeadline(time.Now().Add(requestTimeout))
}

// Load adds the contributions known from the agent's store at start (each kind that contributes
// loads its own objects), touching nothing in the kernel: what the objects asked for is what
// the table should hold, so Observe measures drift against it and the next Steps of any
// object repairs the rest.
func (t *Table) Load(c map[string]Contribution) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.version++
	if t.applied == nil {
		t.applied = make(map[string]Contribution, len(c))
	}
	for id, x := range c { // several kinds load theirs: ids are unique across kinds
		// Steps refuses what the table cannot hold, so a stored contribution has none of it;
		// a record that has is left out rather than given to the kernel.
		var n Contribution
		for _, p := range x.Masquerade {
			if p.IsValid() && p.Addr().Is4() {
				n.Masquerade = append(n.Masquerade, p.Masked())
			}
		}
		for _, p := range x.Exempt {
			if p.IsValid() && p.Addr().Is4() {
				n.Exempt = append(n.Exempt, p.Masked())
			}
		}
		t.applied[id] = n
	}
}

// Contributes tells whether id has a contribution in the table (as last applied or loaded).
func (t *Table) Contributes(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.applied[id]
	return ok
}
