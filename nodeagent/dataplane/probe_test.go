package dataplane

import (
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestProbeKernelFeatures(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	before, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	features, release, err := ProbeKernelFeatures()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel %s", release)
	for _, k := range ProbedKinds {
		t.Logf("%-10s %v", k, features[k])
		if _, ok := features[k]; !ok {
			t.Errorf("feature %s not reported", k)
		}
	}
	for _, k := range []string{"vxlan", "veth", "bridge", "macvlan"} {
		if !features[k] {
			t.Errorf("%s reported missing", k)
		}
	}
	if release == "" {
		t.Error("no kernel release")
	}
	after, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	had := map[string]bool{}
	for _, l := range before {
		had[l.Attrs().Name] = true
	}
	for _, l := range after {
		if n := l.Attrs().Name; !had[n] && strings.HasPrefix(n, "p-") {
			t.Errorf("probe left link %s in the current namespace", n)
		}
	}
}
