package nodenetv1

import (
	"strings"
	"testing"
)

func TestDeriveMACIsStableUnicastAndLocal(t *testing.T) {
	a := DeriveMAC("test-cluster1", "multicluster-test-002", "vxlan-test")
	if b := DeriveMAC("test-cluster1", "multicluster-test-002", "vxlan-test"); a != b {
		t.Fatalf("not stable: %s then %s", a, b)
	}
	if _, err := ParseUnicastMAC("mac", a); err != nil {
		t.Fatalf("derived MAC %s is not unicast: %v", a, err)
	}
	if a[1] != '2' && a[1] != '6' && a[1] != 'a' && a[1] != 'e' {
		t.Fatalf("derived MAC %s is not locally administered", a)
	}
	seen := map[string]string{}
	for _, k := range [][3]string{
		{"c1", "n1", "vxlan-test"}, {"c1", "n2", "vxlan-test"}, {"c2", "n1", "vxlan-test"},
		{"c1", "n1", "vxlan-other"}, {"c1n", "1", "vxlan-test"},
	} {
		m := DeriveMAC(k[0], k[1], k[2])
		if prev, dup := seen[m]; dup {
			t.Fatalf("%v and %s derive the same MAC %s", k, prev, m)
		}
		seen[m] = strings.Join(k[:], "/")
	}
}

func TestFieldRules(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		field string
		want  string // part of the message; "" = no error
	}{
		{"vni 0", ValidateVNI("vni", 0), "vni", "allowed 1 to 16777215"},
		{"vni max+1", ValidateVNI("vni", 16777216), "vni", "allowed 1 to 16777215"},
		{"vni max", ValidateVNI("vni", 16777215), "", ""},
		{"port 0", ValidatePort("port", 0), "port", "allowed 1 to 65535"},
		{"port 65536", ValidatePort("port", 65536), "port", "allowed 1 to 65535"},
		{"ifname 16 bytes", ValidateIfName("name", "vxlan-test-12345"), "name", "at most 15"},
		{"ifname slash", ValidateIfName("name", "vx/lan"), "name", "'/'"},
		{"ifname 15 bytes", ValidateIfName("name", "vxlan-test-1234"), "", ""},
		{"mtu low", ValidateMTU("mtu", 67), "mtu", "allowed 68"},
	}
	for _, c := range cases {
		if c.want == "" {
			if c.err != nil {
				t.Errorf("%s: unexpected error %v", c.name, c.err)
			}
			continue
		}
		fe, ok := AsFieldError(c.err)
		if !ok {
			t.Errorf("%s: want a FieldError, got %v", c.name, c.err)
			continue
		}
		if fe.Field != c.field || !strings.Contains(fe.Msg, c.want) {
			t.Errorf("%s: got %q on %q, want %q on %q", c.name, fe.Msg, fe.Field, c.want, c.field)
		}
	}
}

func TestParsers(t *testing.T) {
	for _, bad := range []string{"01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "c2:6a:9b:e5:39", "zz:6a:9b:e5:39:8d"} {
		if _, err := ParseUnicastMAC("mac", bad); err == nil {
			t.Errorf("MAC %q accepted", bad)
		}
	}
	if m, err := ParseUnicastMAC("mac", "C2:6A:9B:E5:39:8D"); err != nil || m != "c2:6a:9b:e5:39:8d" {
		t.Errorf("canonical form: %q %v", m, err)
	}
	for _, bad := range []string{"10.235.88.1/24", "10.235.88.0", "fd00::/64", "10.235.88.0/33"} {
		if _, err := ParseCIDR("dst", bad); err == nil {
			t.Errorf("CIDR %q accepted", bad)
		}
	}
	for _, bad := range []string{"179.17.1.0/24", "179.17.1.21/32", "179.17.1.21", "x/24"} {
		if _, err := ParseInterfaceAddress("address", bad); err == nil {
			t.Errorf("address %q accepted", bad)
		}
	}
}

// validateObject is what the agent runs on an Apply of a vxlan_tunnel (its registry composes
// the envelope and the kind's rule).
func validateObject(o *Object) error {
	if err := ValidateEnvelope(o, true); err != nil {
		return err
	}
	return ValidateVxlanTunnelObject(o)
}

func TestValidateObject(t *testing.T) {
	good := func() *Object {
		return &Object{Id: "vxlan_tunnel/vxlan-test", Owner: "nodenet_vxlan_tunnel:0b1d", Spec: &Object_VxlanTunnel{VxlanTunnel: &VxlanTunnel{
			Device:    &VxlanDevice{Name: "vxlan-test", Vni: 10001, Port: 4899, Underlay: "eth0", Mac: "c2:6a:9b:e5:39:8d", Address: "179.17.1.21/24"},
			Fdb:       []*FdbEntry{{Mac: "7a:3a:fe:45:a3:76", Dst: "192.168.0.31"}},
			Neighbors: []*Neighbor{{Ip: "179.17.1.31", Mac: "7a:3a:fe:45:a3:76"}},
			Routes:    []*Route{{Dst: "10.235.88.0/24", Via: "179.17.1.16"}},
		}}}
	}
	if err := validateObject(good()); err != nil {
		t.Fatalf("good object refused: %v", err)
	}
	withHealth := good()
	withHealth.GetVxlanTunnel().HealthCheck = true
	withHealth.GetVxlanTunnel().Neighbors[0].Node = "test-cluster2/multicluster-test-004"
	if err := validateObject(withHealth); err != nil {
		t.Fatalf("health checks with a neighbour's node refused: %v", err)
	}
	for name, c := range map[string]struct {
		mutate func(o *Object)
		field  string
	}{
		"vni 0":           {func(o *Object) { o.GetVxlanTunnel().Device.Vni = 0 }, "vxlan_tunnel.device.vni"},
		"id mismatch":     {func(o *Object) { o.Id = "vxlan_tunnel/other" }, "vxlan_tunnel.device.name"},
		"other kind":      {func(o *Object) { o.Id = "bgp/x" }, "id"},
		"bad kind":        {func(o *Object) { o.Id = "Vx-lan/x" }, "id"},
		"name with space": {func(o *Object) { o.Id = "vxlan_tunnel/a b" }, "id"},
		"no owner":        {func(o *Object) { o.Owner = "" }, "owner"},
		"owner with tab":  {func(o *Object) { o.Owner = "a\tb" }, "owner"},
		"no spec":         {func(o *Object) { o.Spec = nil }, "object.spec"},
		"dup fdb":         {func(o *Object) { t := o.GetVxlanTunnel(); t.Fdb = append(t.Fdb, t.Fdb[0]) }, "vxlan_tunnel.fdb[1].mac"},
		"multicast neigh": {func(o *Object) { o.GetVxlanTunnel().Neighbors[0].Mac = "01:00:5e:00:00:01" }, "vxlan_tunnel.neighbors[0].mac"},
		"route host bits": {func(o *Object) { o.GetVxlanTunnel().Routes[0].Dst = "10.235.88.1/24" }, "vxlan_tunnel.routes[0].dst"},
		"no underlay":     {func(o *Object) { o.GetVxlanTunnel().Device.Underlay = "" }, "vxlan_tunnel.device.underlay"},
		"node no cluster": {func(o *Object) { o.GetVxlanTunnel().Neighbors[0].Node = "node2" }, "vxlan_tunnel.neighbors[0].node"},
		"node two slash":  {func(o *Object) { o.GetVxlanTunnel().Neighbors[0].Node = "c/n/x" }, "vxlan_tunnel.neighbors[0].node"},
		"node empty name": {func(o *Object) { o.GetVxlanTunnel().Neighbors[0].Node = "c/" }, "vxlan_tunnel.neighbors[0].node"},
		"node space":      {func(o *Object) { o.GetVxlanTunnel().Neighbors[0].Node = "c/n 2" }, "vxlan_tunnel.neighbors[0].node"},
	} {
		o := good()
		c.mutate(o)
		fe, ok := AsFieldError(validateObject(o))
		if !ok || fe.Field != c.field {
			t.Errorf("%s: want an error on %s, got %v", name, c.field, validateObject(o))
		}
	}
}

func TestValidateASN(t *testing.T) {
	for _, ok := range []int64{1, 63400, 64512, 65534, 4200000000, 4294967294} {
		if err := ValidateASN("asn", ok); err != nil {
			t.Errorf("%d: %v", ok, err)
		}
	}
	for asn, want := range map[int64]string{0: "out of range", 4294967296: "out of range", -1: "out of range",
		23456: "AS_TRANS", 65535: "reserved", 4294967295: "reserved"} {
		err := ValidateASN("asn", asn)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "asn: ") {
			t.Errorf("%d: got %v, want an error naming asn with %q", asn, err, want)
		}
	}
}

func TestObjectIDsAreSyntaxOnly(t *testing.T) {
	for id, want := range map[string][2]string{
		"ippool/10.244.0.0/16":    {"ippool", "10.244.0.0/16"},
		"vxlan_tunnel/vxlan-test": {"vxlan_tunnel", "vxlan-test"},
		"bgp_peer2/x%y":           {"bgp_peer2", "x%y"},
	} {
		k, n, err := SplitObjectID(id)
		if err != nil || k != want[0] || n != want[1] {
			t.Errorf("%s: %q %q %v", id, k, n, err)
		}
	}
	for _, bad := range []string{"", "x", "/x", "x/", "2x/y", "x-y/z", "x/a\x00b", "x/" + strings.Repeat("a", 254)} {
		if _, _, err := SplitObjectID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestKindOf(t *testing.T) {
	if k := KindOf(&Object{Spec: &Object_VxlanTunnel{VxlanTunnel: &VxlanTunnel{}}}); k != KindVxlanTunnel {
		t.Errorf("KindOf = %q", k)
	}
	if k := KindOf(&Object{}); k != "" {
		t.Errorf("KindOf(no spec) = %q", k)
	}
}
