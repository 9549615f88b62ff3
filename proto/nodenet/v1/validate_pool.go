package nodenetv1

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
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
		if err := ValidateVxlanTunnel(v); err != nil {
			return prefixed(p+"vxlan.", err)
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
	if _, err := ParseDeviceAddress(p+"address", t.GetAddress()); err != nil {
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
