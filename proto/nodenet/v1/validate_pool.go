package nodenetv1

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"google.golang.org/protobuf/proto"
)

// ValidatePoolEncapsulation checks a pool's encapsulation on one node (nil: none): one tunnel
// (vxlan or ipip), its entries, and direct routes that go nowhere a tunnel route goes.
func ValidatePoolEncapsulation(p string, e *PoolEncapsulation) error {
	if e == nil {
		return nil
	}
	if (e.GetVxlan() == nil) == (e.GetIpip() == nil) {
		return fieldErr(p+"vxlan", "exactly one of vxlan and ipip is required")
	}
	tunnelDst := map[netip.Prefix]bool{}
	if v := e.GetVxlan(); v != nil {
		// The device's address is the node's tunnel address (a /32), not an address in an
		// overlay subnet as a vxlan_tunnel's: the rest is the vxlan_tunnel's rules.
		rest, _ := proto.Clone(v).(*VxlanTunnel)
		if rest.GetDevice() != nil {
			rest.Device.Address = ""
		}
		if err := ValidateVxlanTunnel(rest); err != nil {
			return prefixed(p+"vxlan.", err)
		}
		if v.GetHealthCheck() {
			// The agent probes the members of vxlan_tunnel objects only; accepting it here
			// would promise results nobody measures.
			return fieldErr(p+"vxlan.health_check", "health checks are a vxlan_tunnel's; a pool's tunnel has none")
		}
		if a := v.GetDevice().GetAddress(); a != "" {
			if _, err := parseTunnelAddress(p+"vxlan.device.address", a); err != nil {
				return err
			}
		}
		for _, r := range v.GetRoutes() {
			tunnelDst[netip.MustParsePrefix(r.GetDst()).Masked()] = true
		}
	}
	if t := e.GetIpip(); t != nil {
		if err := ValidateIpipTunnel(p+"ipip.", t); err != nil {
			return err
		}
		for _, r := range t.GetRoutes() {
			tunnelDst[netip.MustParsePrefix(r.GetDst()).Masked()] = true
		}
	}
	seen := map[netip.Prefix]bool{}
	for i, r := range e.GetDirect() {
		f := fmt.Sprintf("%sdirect[%d]", p, i)
		dst, err := ParseCIDR(f+".dst", r.GetDst())
		if err != nil {
			return err
		}
		if seen[dst] || tunnelDst[dst] {
			return fieldErr(f+".dst", "%s appears twice; one route per destination", dst)
		}
		seen[dst] = true
		if _, err := ParseIPv4(f+".via", r.GetVia()); err != nil {
			return err
		}
	}
	return nil
}

// ValidateIpipTunnel checks an IPIP device and its routes.
func ValidateIpipTunnel(p string, t *IpipTunnel) error {
	if err := ValidateIfName(p+"name", t.GetName()); err != nil {
		return err
	}
	if _, err := parseTunnelAddress(p+"address", t.GetAddress()); err != nil {
		return err
	}
	if _, err := ParseIPv4(p+"local_ip", t.GetLocalIp()); err != nil {
		return err
	}
	if t.GetMtu() != 0 {
		if err := ValidateMTU(p+"mtu", int64(t.GetMtu())); err != nil {
			return err
		}
	}
	seen := map[netip.Prefix]bool{}
	for i, r := range t.GetRoutes() {
		f := fmt.Sprintf("%sroutes[%d]", p, i)
		dst, err := ParseCIDR(f+".dst", r.GetDst())
		if err != nil {
			return err
		}
		if seen[dst] {
			return fieldErr(f+".dst", "%s appears twice; one route per destination", dst)
		}
		seen[dst] = true
		if _, err := ParseIPv4(f+".via", r.GetVia()); err != nil {
			return err
		}
	}
	return nil
}

// parseTunnelAddress parses a node's tunnel address in a pool: one IPv4 address of its block as
// a /32, like 10.244.0.64/32 (the block's first address, as Calico gives tunl0 and
// vxlan.calico; a network address is fine: the block is routed, not a link's subnet).
func parseTunnelAddress(field, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() || p.Bits() != 32 {
		return netip.Prefix{}, fieldErr(field, "%q is not a tunnel address: an IPv4 address of the node's block with /32, like 10.244.0.64/32", s)
	}
	return p, nil
}

// validateCNIFile checks a CNI configuration and its file name: both or neither; a plain file
// name ending in .conflist (runtimes read a .conf as a single plugin, not a list); a JSON
// object.
func validateCNIFile(p, file, config string) error {
	if (file == "") != (config == "") {
		return fieldErr(p+"cni_file", "cni_file and cni_config go together: both or neither")
	}
	if file == "" {
		return nil
	}
	if !CNIFileName(file) {
		return fieldErr(p+"cni_file", "%q is not a CNI configuration list file name: letters, digits, '.', '-' and '_', ending in .conflist, at most 100 bytes", file)
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(config), &obj); err != nil {
		return fieldErr(p+"cni_config", "not a JSON object: %v", err)
	}
	return nil
}

// CNIFileName tells whether name is a file name the agent writes CNI configurations to.
func CNIFileName(name string) bool {
	if len(name) > 100 || !strings.HasSuffix(name, ".conflist") || strings.HasPrefix(name, ".") {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// prefixed puts p before a field error's field (vxlan_tunnel.x -> <p>x).
func prefixed(p string, err error) error {
	if fe, ok := AsFieldError(err); ok {
		return &FieldError{Field: p + strings.TrimPrefix(fe.Field, "vxlan_tunnel."), Msg: fe.Msg}
	}
	return err
}
