package nodenetv1

import (
	"strings"
	"testing"
)

// TestPoolTunnelAddress: a pool's tunnel device has the node's tunnel address, a /32 of its
// block (the block's first address included), not an overlay subnet address as a
// vxlan_tunnel's device has.
func TestPoolTunnelAddress(t *testing.T) {
	vx := func(addr string) *PoolEncapsulation {
		return &PoolEncapsulation{Vxlan: &VxlanTunnel{
			Device: &VxlanDevice{Name: "vxlan-pool0", Vni: 4096, Underlay: "eth0", Address: addr},
			Routes: []*Route{{Dst: "10.244.0.64/26", Via: "10.244.0.64"}},
		}}
	}
	ipip := func(addr string) *PoolEncapsulation {
		return &PoolEncapsulation{Ipip: &IpipTunnel{Name: "tunl-pool0", LocalIp: "192.168.1.11", Address: addr, Routes: []*Route{{Dst: "10.244.0.64/26", Via: "192.168.1.12"}}}}
	}
	for _, addr := range []string{"10.244.0.0/32", "10.244.0.64/32", "10.244.0.5/32"} {
		if err := ValidatePoolEncapsulation("ip_pool.encapsulation.", vx(addr)); err != nil {
			t.Errorf("vxlan %s: %v", addr, err)
		}
		if err := ValidatePoolEncapsulation("ip_pool.encapsulation.", ipip(addr)); err != nil {
			t.Errorf("ipip %s: %v", addr, err)
		}
	}
	if err := ValidatePoolEncapsulation("ip_pool.encapsulation.", vx("")); err != nil {
		t.Errorf("vxlan without an address: %v", err)
	}
	for _, addr := range []string{"10.244.0.1/24", "10.244.0.0", "fd00::1/128", "x"} {
		err := ValidatePoolEncapsulation("ip_pool.encapsulation.", vx(addr))
		if fe, ok := AsFieldError(err); !ok || fe.Field != "ip_pool.encapsulation.vxlan.device.address" || !strings.Contains(fe.Msg, "/32") {
			t.Errorf("vxlan %q: got %v", addr, err)
		}
		err = ValidatePoolEncapsulation("ip_pool.encapsulation.", ipip(addr))
		if fe, ok := AsFieldError(err); !ok || fe.Field != "ip_pool.encapsulation.ipip.address" {
			t.Errorf("ipip %q: got %v", addr, err)
		}
	}
	if err := ValidatePoolEncapsulation("ip_pool.encapsulation.", ipip("")); err == nil {
		t.Errorf("ipip without an address accepted")
	}
	// The vxlan_tunnel's other rules still apply, named where the pool has them.
	bad := vx("10.244.0.0/32")
	bad.Vxlan.Device.Vni = 0
	if fe, ok := AsFieldError(ValidatePoolEncapsulation("ip_pool.encapsulation.", bad)); !ok || fe.Field != "ip_pool.encapsulation.vxlan.device.vni" {
		t.Errorf("vni 0: got %v", fe)
	}
	// Health checks are a vxlan_tunnel's: a pool's tunnel asking for them is refused, not
	// silently left unprobed.
	hc := vx("10.244.0.0/32")
	hc.Vxlan.HealthCheck = true
	if fe, ok := AsFieldError(ValidatePoolEncapsulation("ip_pool.encapsulation.", hc)); !ok || fe.Field != "ip_pool.encapsulation.vxlan.health_check" {
		t.Errorf("health_check in a pool's tunnel: got %v", fe)
	}
}
