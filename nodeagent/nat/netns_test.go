package nat

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/nodenet/terraform-provider-nodenet/nodeagent/dataplane"
)

// The integration tests run in network namespaces named nntnat<pid>-<n>, made for one test
// and deleted when it ends, failed or not. Nothing is added to the root namespace.

var nsSeq atomic.Int64

// newNS makes a network namespace with lo up and returns its name.
func newNS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the table is made in throwaway network namespaces")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (Debian's nftables, make deps) to make drift by hand and read the ruleset as an operator does")
	}
	name := fmt.Sprintf("nntnat%d-%d", os.Getpid(), nsSeq.Add(1))
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

func nsPath(ns string) string { return "/run/netns/" + ns }

// openTable opens the table of namespace ns, closed when the test ends.
func openTable(t *testing.T, ns string) *Table {
	t.Helper()
	tb, err := Open(nsPath(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	return tb
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nft runs nft in namespace ns, as an operator on the node would.
func nft(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "netns", "exec", ns, "nft"}, args...)...)
}

// nftFile loads a ruleset file with nft -f in namespace ns.
func nftFile(t *testing.T, ns, text string) {
	t.Helper()
	f := t.TempDir() + "/ruleset.nft"
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	nft(t, ns, "-f", f)
}

func ruleset(t *testing.T, ns string) string {
	t.Helper()
	return nft(t, ns, "list", "ruleset")
}

// apply sets id's contribution and runs the steps, failing the test on an error.
func apply(t *testing.T, tb *Table, id string, c *Contribution) []string {
	t.Helper()
	steps, err := tb.Steps(id, c)
	if err != nil {
		t.Fatalf("steps of %s: %v", id, err)
	}
	if err := dataplane.Run("nat "+id, steps, nil); err != nil {
		t.Fatalf("run steps of %s: %v", id, err)
	}
	return changeLines(steps)
}

// changeLines are the reported changes of steps as "ADD set masquerade 10.0.0.0/16".
func changeLines(steps []dataplane.Step) []string {
	var out []string
	for _, c := range dataplane.Changes(steps) {
		out = append(out, c.GetAction().String()+" "+c.GetKey())
	}
	return out
}

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

// pool is an IP pool's contribution: exempt always, masqueraded when nat is on.
func pool(cidr string, nat bool) *Contribution {
	c := &Contribution{Exempt: pfx(cidr)}
	if nat {
		c.Masquerade = pfx(cidr)
	}
	return c
}

// inNS runs fn on an OS thread in namespace ns (sockets made there stay in ns) and puts the
// thread back; a thread that cannot go back is left locked so the runtime discards it.
func inNS(t *testing.T, ns string, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(nsPath(ns))
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("back to the original namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	if err := <-errc; err != nil {
		t.Fatalf("in namespace %s: %v", ns, err)
	}
}

// udpListen opens a UDP socket on port in namespace ns.
func udpListen(t *testing.T, ns string, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	inNS(t, ns, func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{Port: port})
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}
