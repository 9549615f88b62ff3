package provider

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/nodenet/terraform-provider-nodenet/provider/kube"
)

func s(v string) types.String { return types.StringValue(v) }

// Every typed form renders a configuration that reads back into the same attributes, so
// import and drift detection see what create wrote.
func TestTypedConfigRoundTrip(t *testing.T) {
	base := func() networkAttachmentModel {
		return networkAttachmentModel{Name: s("n1"), Namespace: s("default"), CNIVersion: s("0.4.0")}
	}
	cases := map[string]func(m *networkAttachmentModel){
		"macvlan whereabouts": func(m *networkAttachmentModel) {
			m.Macvlan = &macvlanModel{Master: s("eth1"), Mode: s("bridge"), MTU: types.Int64Value(1400)}
			m.IPAM = &ipamModel{Whereabouts: &whereaboutsModel{Range: s("192.168.60.0/24"), RangeStart: s("192.168.60.20"),
				RangeEnd: s("192.168.60.50"), Gateway: s("192.168.60.1"), Exclude: []types.String{s("192.168.60.32/28")}}}
		},
		"ipvlan static": func(m *networkAttachmentModel) {
			m.Ipvlan = &ipvlanModel{Master: s("eth0"), Mode: s("l3"), MTU: types.Int64Null()}
			m.IPAM = &ipamModel{Static: &staticIPAMModel{
				Addresses: []staticAddressModel{{Address: s("10.1.0.5/24"), Gateway: s("10.1.0.1")}},
				Routes:    []cniRouteModel{{Dst: s("0.0.0.0/0"), GW: types.StringNull()}}}}
		},
		"bridge host-local": func(m *networkAttachmentModel) {
			m.Bridge = &bridgeModel{Name: s("br-pods"), IsGateway: types.BoolValue(true), IPMasq: types.BoolValue(false), MTU: types.Int64Null(), Vlan: types.Int64Value(42)}
			m.IPAM = &ipamModel{HostLocal: &hostLocalModel{Subnet: s("10.2.0.0/16"), RangeStart: types.StringNull(), RangeEnd: types.StringNull(), Gateway: s("10.2.0.1")}}
		},
		"host-device no ipam": func(m *networkAttachmentModel) { m.HostDevice = &hostDeviceModel{Device: s("ens5")} },
	}
	for name, set := range cases {
		m := base()
		set(&m)
		raw := render(m.toConf())
		c, ok := parseConf(raw, "n1")
		if !ok {
			t.Errorf("%s: %s does not read back", name, raw)
			continue
		}
		back := base()
		back.fromConf(c)
		if again := render(back.toConf()); again != raw {
			t.Errorf("%s: rendered\n%s\nread back and rendered again\n%s", name, raw, again)
		}
	}
}

// What the typed attributes cannot say exactly is shown as raw config.
func TestParseConfRefuses(t *testing.T) {
	for _, raw := range []string{
		`{"cniVersion":"0.4.0","name":"ovn-kubernetes","type":"ovn-k8s-cni-overlay","ipam":{}}`, // another plugin
		`{"cniVersion":"0.3.1","name":"n1","type":"macvlan","master":"eth1","promisc":true}`,    // a field typed attributes lack
		`{"cniVersion":"0.3.1","name":"other","type":"macvlan","master":"eth1"}`,                // CNI name differs from the NAD's
		`{"cniVersion":"0.3.1","name":"n1","type":"macvlan","ipam":{"type":"dhcp"}}`,            // an IPAM typed attributes lack
		`not json`,
	} {
		if _, ok := parseConf(raw, "n1"); ok {
			t.Errorf("%s read as typed", raw)
		}
	}
}

func TestPodAnnotation(t *testing.T) {
	got := podAnnotation("default", "yusur-ovn", "eth1", []string{"10.144.0.1"})
	want := `[{"name":"yusur-ovn","namespace":"default","interface":"eth1","default-route":["10.144.0.1"]}]`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got := podAnnotation("ns", "n", "", nil); got != `[{"name":"n","namespace":"ns"}]` {
		t.Errorf("bare: %s", got)
	}
}

func TestValidateIPAM(t *testing.T) {
	w := func(start, end, gw string, exclude ...string) *ipamModel {
		opt := func(v string) types.String {
			if v == "" {
				return types.StringNull()
			}
			return s(v)
		}
		var ex []types.String
		for _, e := range exclude {
			ex = append(ex, s(e))
		}
		return &ipamModel{Whereabouts: &whereaboutsModel{Range: s("192.168.60.0/24"), RangeStart: opt(start), RangeEnd: opt(end), Gateway: opt(gw), Exclude: ex}}
	}
	for _, c := range []struct {
		ipam *ipamModel
		want string // "" = valid
	}{
		{w("192.168.60.20", "192.168.60.50", "192.168.60.1"), ""},
		{w("192.168.60.20", "192.168.61.5", ""), "range_end 192.168.61.5 is outside range 192.168.60.0/24: it must be an address from 192.168.60.0 to 192.168.60.255"},
		{w("192.168.59.1", "", ""), "range_start 192.168.59.1 is outside range"},
		{w("", "", "10.0.0.1"), "gateway 10.0.0.1 is outside range"},
		{w("192.168.60.50", "192.168.60.20", ""), "range_end 192.168.60.20 is before range_start 192.168.60.50"},
		{w("", "", "", "192.168.60.0/28"), ""},
		{w("", "", "", "192.168.0.0/16"), "exclude 192.168.0.0/16 is not inside range 192.168.60.0/24"},
		{&ipamModel{}, "set exactly one of whereabouts, static or host_local (0 set)"},
		{&ipamModel{Static: &staticIPAMModel{Addresses: []staticAddressModel{{Address: s("10.1.0.5/24"), Gateway: s("10.9.0.1")}}}}, "gateway 10.9.0.1 is not in 10.1.0.0/24"},
	} {
		var d diag.Diagnostics
		validateIPAM(c.ipam, &d)
		got := ""
		for _, e := range d.Errors() {
			got += e.Detail()
		}
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("want %q, got %q", c.want, got)
		}
	}
}

func TestLastAddr(t *testing.T) {
	for p, want := range map[string]string{"192.168.60.0/24": "192.168.60.255", "10.0.0.0/8": "10.255.255.255", "10.1.2.3/32": "10.1.2.3"} {
		if got := lastAddr(netip.MustParsePrefix(p)); got.String() != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
}

func TestImportID(t *testing.T) {
	one := &NetworkAttachmentResource{data: &providerData{Kube: map[string]*kube.Client{"c1": nil}}}
	two := &NetworkAttachmentResource{data: &providerData{Kube: map[string]*kube.Client{"c1": nil, "c2": nil}}}
	if c, ns, n, err := one.parseImportID("default/m"); err != nil || c != "c1" || ns != "default" || n != "m" {
		t.Errorf("one cluster, ns/name: %s %s %s %v", c, ns, n, err)
	}
	if _, _, _, err := two.parseImportID("default/m"); err == nil || !strings.Contains(err.Error(), "expecting <cluster>/<namespace>/<name>") {
		t.Errorf("two clusters, ns/name: %v", err)
	}
	if c, _, _, err := two.parseImportID("c2/default/m"); err != nil || c != "c2" {
		t.Errorf("two clusters, cluster/ns/name: %s %v", c, err)
	}
	for _, bad := range []string{"m", "a//b", "a/b/c/d", ""} {
		if _, _, _, err := one.parseImportID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
