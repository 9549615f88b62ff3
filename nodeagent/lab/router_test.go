package lab

import (
	"context"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// twoSubnets: two hosts in 192.168.1.0/24, one in 192.168.2.0/24, a router between them.
func twoSubnets(prefix, dir string) Options {
	h := func(name, ip string) HostSpec {
		return HostSpec{Cluster: "c1", Name: name, UnderlayIP: netip.MustParsePrefix(ip)}
	}
	return Options{Prefix: prefix, Dir: dir,
		Hosts: []HostSpec{h("rack1-a", "192.168.1.10/24"), h("rack1-b", "192.168.1.11/24"), h("rack2-a", "192.168.2.10/24")},
		Router: &RouterSpec{Addrs: []netip.Prefix{
			netip.MustParsePrefix("192.168.1.1/24"), netip.MustParsePrefix("192.168.2.1/24"),
		}},
	}
}

var ttlRE = regexp.MustCompile(`ttl=(\d+)`)

// pingTTL pings to from h once and returns the TTL of the reply.
func pingTTL(t *testing.T, h *Host, to netip.Addr) int {
	t.Helper()
	out, err := h.Run("ping", "-c1", "-W2", to.String())
	if err != nil {
		t.Fatalf("%s -> %v: %v", h.Name, to, err)
	}
	m := ttlRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no ttl in ping output:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// forwarded reads the router's IP ForwDatagrams counter.
func forwarded(t *testing.T, r *Router) int {
	t.Helper()
	out, err := r.Run("cat", "/proc/net/snmp")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "Ip:" || len(values) != len(names) {
			continue
		}
		for j, n := range names {
			if n == "ForwDatagrams" {
				v, _ := strconv.Atoi(values[j])
				return v
			}
		}
	}
	t.Fatalf("no Ip ForwDatagrams in:\n%s", out)
	return 0
}

// TestRouter: a host of one subnet reaches a host of the other through the router (the
// reply's TTL is one less, the router counts forwarded packets, and without forwarding on
// the router nothing crosses), a host of its own subnet directly; the root namespace keeps
// its routes and Down removes the router with the rest.
func TestRouter(t *testing.T) {
	needRoot(t)
	prefix := testPrefix(t)
	before := rootRoutes(t)
	l, err := Up(context.Background(), twoSubnets(prefix, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Down() })
	if after := rootRoutes(t); after != before {
		t.Errorf("root routes changed by Up:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if l.Router == nil || l.Router.NS != prefix+"rt" {
		t.Fatalf("router %+v", l.Router)
	}
	if got := nsWithPrefix(t, prefix); len(got) != 1+3+1 {
		t.Errorf("namespaces %v, want bridge + 3 hosts + router", got)
	}
	a, b, c := l.Hosts[0], l.Hosts[1], l.Hosts[2]

	if out, err := c.Run("ip", "route", "show", "192.168.1.0/24"); err != nil || !strings.Contains(out, "via 192.168.2.1 dev eth0") {
		t.Errorf("rack2-a's route to the other subnet: %v %q", err, out)
	}
	if out, err := a.Run("ip", "route", "show", "192.168.1.0/24"); err != nil || strings.Contains(out, "via") {
		t.Errorf("rack1-a routes its own subnet through the router: %v %q", err, out)
	}

	if ttl := pingTTL(t, a, b.UnderlayIP.Addr()); ttl != 64 {
		t.Errorf("same subnet: reply ttl %d, want 64 (no router on the path)", ttl)
	}
	n0 := forwarded(t, l.Router)
	if ttl := pingTTL(t, a, c.UnderlayIP.Addr()); ttl != 63 {
		t.Errorf("across subnets: reply ttl %d, want 63 (one router on the path)", ttl)
	}
	if ttl := pingTTL(t, c, b.UnderlayIP.Addr()); ttl != 63 {
		t.Errorf("back across subnets: reply ttl %d, want 63", ttl)
	}
	if n := forwarded(t, l.Router) - n0; n < 4 {
		t.Errorf("the router forwarded %d packets for two pings across, want 4", n)
	}

	if _, err := l.Router.Run("sysctl", "-w", "net.ipv4.ip_forward=0"); err != nil {
		t.Fatal(err)
	}
	if out, err := a.Run("ping", "-c1", "-W1", c.UnderlayIP.Addr().String()); err == nil {
		t.Errorf("crossed with forwarding off on the router:\n%s", out)
	}
	if _, err := l.Router.Run("sysctl", "-w", "net.ipv4.ip_forward=1"); err != nil {
		t.Fatal(err)
	}
	// No shortcut: the router sends no redirects, so the path stays through it.
	if out, _ := l.Router.Run("sysctl", "-n", "net.ipv4.conf.eth0.send_redirects", "net.ipv4.conf.all.send_redirects"); out != "0\n0\n" {
		t.Errorf("router send_redirects: %q", out)
	}

	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	if got := nsWithPrefix(t, prefix); len(got) != 0 {
		t.Errorf("namespaces left after Down: %v", got)
	}
	if after := rootRoutes(t); after != before {
		t.Errorf("root routes changed after Down")
	}
}

// TestRouterFailedUp: the router's namespace name is taken; Up fails after the hosts exist and
// removes all it made, and only that.
func TestRouterFailedUp(t *testing.T) {
	needRoot(t)
	prefix := testPrefix(t)
	if err := createNamedNS(prefix + "rt"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamedNS(prefix + "rt") })
	if _, err := Up(context.Background(), twoSubnets(prefix, t.TempDir())); err == nil {
		t.Fatal("Up succeeded over an existing router namespace")
	}
	if got := nsWithPrefix(t, prefix); len(got) != 1 || got[0] != prefix+"rt" {
		t.Errorf("namespaces %v, want only the foreign %srt", got, prefix)
	}
}

func TestRouterOptions(t *testing.T) {
	ok := twoSubnets("x-", "/tmp/x")
	if err := validate(&ok); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"one subnet", func(o *Options) { o.Router.Addrs = o.Router.Addrs[:1] }, "at least two subnets"},
		{"overlap", func(o *Options) { o.Router.Addrs[1] = netip.MustParsePrefix("192.168.1.2/23") }, "overlapping"},
		{"ipv6", func(o *Options) { o.Router.Addrs[1] = netip.MustParsePrefix("fd00::1/64") }, "IPv4"},
		{"host off the router", func(o *Options) { o.Hosts[2].UnderlayIP = netip.MustParsePrefix("192.168.3.10/24") }, "none of the router's"},
		{"other prefix length", func(o *Options) { o.Hosts[2].UnderlayIP = netip.MustParsePrefix("192.168.2.10/25") }, "none of the router's"},
		{"host has the router's address", func(o *Options) { o.Hosts[2].UnderlayIP = netip.MustParsePrefix("192.168.2.1/24") }, "has the router's address"},
		{"static pod routes across", func(o *Options) {
			o.Hosts[0].PodCIDR = netip.MustParsePrefix("10.244.0.0/24")
			o.Hosts[2].PodCIDR = netip.MustParsePrefix("10.244.1.0/24")
		}, "set NoPodRoutes"},
	} {
		o := twoSubnets("x-", "/tmp/x")
		tc.edit(&o)
		if err := validate(&o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	o := twoSubnets("x-", "/tmp/x")
	o.Hosts[0].PodCIDR = netip.MustParsePrefix("10.244.0.0/24")
	o.Hosts[2].PodCIDR = netip.MustParsePrefix("10.244.1.0/24")
	o.NoPodRoutes = true
	if err := validate(&o); err != nil {
		t.Errorf("pods across subnets routed by the system under test: %v", err)
	}
}
