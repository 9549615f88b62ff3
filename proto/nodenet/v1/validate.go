package nodenetv1

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"unicode"
)

// The rules in this file are the contract's: the provider runs them at plan time and the
// agent runs them on every request, so a spec the provider accepts is one the agent accepts.

const (
	// MaxVNI is the largest VXLAN network identifier (24 bits).
	MaxVNI = 1<<24 - 1
	// DefaultVxlanPort is the IANA VXLAN port, used when a spec leaves port 0.
	DefaultVxlanPort = 4789
	// VxlanOverhead is what VXLAN over IPv4 adds to a frame: the kernel refuses a vxlan MTU
	// above the underlay MTU minus this.
	VxlanOverhead = 50
	// MinMTU is the smallest IPv4 MTU.
	MinMTU = 68
	// MaxIfNameLen is IFNAMSIZ - 1.
	MaxIfNameLen = 15

	// KindVxlanTunnel is the object kind of VxlanTunnel specs.
	KindVxlanTunnel = "vxlan_tunnel"
	// OwnerPrefix starts the ifalias of every link nodenet owns: "nodenet:<object id>".
	OwnerPrefix = "nodenet:"
)

// FieldError is a rule broken by one field. Field is a dotted path inside the request.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// AsFieldError returns the FieldError inside err, if any.
func AsFieldError(err error) (*FieldError, bool) {
	var fe *FieldError
	ok := errors.As(err, &fe)
	return fe, ok
}

// ObjectID is the id of an object of the given kind and name: "<kind>/<name>".
func ObjectID(kind, name string) string { return kind + "/" + name }

// MaxNameLen bounds an object's name (its natural key on the node).
const MaxNameLen = 253

// MaxOwnerLen bounds an owner identity.
const MaxOwnerLen = 200

// SplitObjectID returns the kind and name of an object id "<kind>/<name>". Only the syntax is
// checked here: a kind is lower case letters, digits and '_'; a name is printable, may contain
// '/' (CIDRs) and is at most MaxNameLen bytes. Which kinds exist, and the rules of their names,
// are the kinds' own.
func SplitObjectID(id string) (kind, name string, err error) {
	kind, name, ok := strings.Cut(id, "/")
	if !ok || kind == "" || name == "" {
		return "", "", fieldErr("id", "%q is not of the form <kind>/<name>", id)
	}
	for i, r := range kind {
		if !(r >= 'a' && r <= 'z' || r == '_' || i > 0 && r >= '0' && r <= '9') {
			return "", "", fieldErr("id", "kind %q of %q: lower case letters, digits and '_' only", kind, id)
		}
	}
	if len(name) > MaxNameLen {
		return "", "", fieldErr("id", "the name in %q is %d bytes; at most %d", id, len(name), MaxNameLen)
	}
	if !printable(name) {
		return "", "", fieldErr("id", "the name in %q has white space or control characters", id)
	}
	return kind, name, nil
}

func printable(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// ValidateNodeKey checks a node key "<cluster>/<node>": two printable, non-empty names
// without white space, joined by the one '/'.
func ValidateNodeKey(field, key string) error {
	cluster, node, ok := strings.Cut(key, "/")
	if !ok || cluster == "" || node == "" || strings.Contains(node, "/") || !printable(key) {
		return fieldErr(field, "%q is not a node key <cluster>/<node>, like test-cluster1/multicluster-test-001", key)
	}
	return nil
}

// ValidateOwner checks an owner identity: printable, no white space, at most MaxOwnerLen bytes.
func ValidateOwner(field, owner string) error {
	switch {
	case owner == "":
		return fieldErr(field, "an owner is required (the managing Terraform resource instance); a provider that sends none is older than this agent")
	case len(owner) > MaxOwnerLen:
		return fieldErr(field, "owner is %d bytes; at most %d", len(owner), MaxOwnerLen)
	case !printable(owner):
		return fieldErr(field, "owner %q has white space or control characters", owner)
	}
	return nil
}

// KindOf is the kind of the object's spec: the name of the oneof field that is set ("" when
// none is). Kinds are named after their oneof fields, so dispatching on it needs no list.
func KindOf(o *Object) string {
	m := o.ProtoReflect()
	if f := m.WhichOneof(m.Descriptor().Oneofs().ByName("spec")); f != nil {
		return string(f.Name())
	}
	return ""
}

// ValidateEnvelope checks what every object has, whatever its kind: an id, an owner (when
// required) and, when a spec is set, a spec of the id's kind.
func ValidateEnvelope(o *Object, ownerRequired bool) error {
	if o == nil {
		return fieldErr("object", "an object is required")
	}
	kind, _, err := SplitObjectID(o.GetId())
	if err != nil {
		return err
	}
	if ownerRequired || o.GetOwner() != "" {
		if err := ValidateOwner("owner", o.GetOwner()); err != nil {
			return err
		}
	}
	if sk := KindOf(o); sk != "" && sk != kind {
		return fieldErr("id", "id %q names kind %q but the spec is a %s", o.GetId(), kind, sk)
	}
	return nil
}

// OwnerAlias is the ifalias that marks a link as owned by the object id.
func OwnerAlias(id string) string { return OwnerPrefix + id }

// ValidateIfName checks a Linux interface name: 1 to 15 bytes, not "." or "..", and no '/',
// ':' or white space (the kernel's dev_valid_name).
func ValidateIfName(field, name string) error {
	switch {
	case name == "":
		return fieldErr(field, "an interface name is required")
	case len(name) > MaxIfNameLen:
		return fieldErr(field, "%q is %d bytes; an interface name has at most %d", name, len(name), MaxIfNameLen)
	case name == "." || name == "..":
		return fieldErr(field, "%q is not an interface name", name)
	case strings.ContainsAny(name, "/: \t\n\r\v\f"):
		return fieldErr(field, "%q may not contain '/', ':' or white space", name)
	}
	return nil
}

// ValidateVNI checks a VXLAN network identifier: 1 to 16777215.
func ValidateVNI(field string, vni int64) error {
	if vni < 1 || vni > MaxVNI {
		return fieldErr(field, "VNI %d is out of range; allowed 1 to %d", vni, MaxVNI)
	}
	return nil
}

// ValidatePort checks a UDP port: 1 to 65535.
func ValidatePort(field string, port int64) error {
	if port < 1 || port > 65535 {
		return fieldErr(field, "port %d is out of range; allowed 1 to 65535", port)
	}
	return nil
}

// ValidateASN checks a BGP autonomous system number: 1 to 4294967294, but not the values
// RFC 6793 and RFC 7300 reserve (23456 AS_TRANS, 65535, 4294967295).
func ValidateASN(field string, asn int64) error {
	switch {
	case asn < 1 || asn > 4294967295:
		return fieldErr(field, "ASN %d is out of range; allowed 1 to 4294967294 (private: 64512 to 65534 and 4200000000 to 4294967294)", asn)
	case asn == 23456:
		return fieldErr(field, "ASN 23456 is AS_TRANS (RFC 6793), reserved for 2-byte speakers; choose another")
	case asn == 65535 || asn == 4294967295:
		return fieldErr(field, "ASN %d is reserved (RFC 7300); choose another", asn)
	}
	return nil
}

// ValidateMTU checks the range every link MTU must be in; the upper bound a vxlan device
// may have depends on its underlay and is checked against the node.
func ValidateMTU(field string, mtu int64) error {
	if mtu < MinMTU || mtu > 65535 {
		return fieldErr(field, "MTU %d is out of range; allowed %d to 65535", mtu, MinMTU)
	}
	return nil
}

// ParseUnicastMAC parses a 48-bit unicast MAC address and returns it in canonical form.
func ParseUnicastMAC(field, s string) (string, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", fieldErr(field, "%q is not a MAC address; expected six hex octets like c2:6a:9b:e5:39:8d", s)
	}
	if hw[0]&0x01 != 0 {
		return "", fieldErr(field, "%q is a multicast MAC; a unicast MAC (even first octet) is required", s)
	}
	if string(hw) == "\x00\x00\x00\x00\x00\x00" {
		return "", fieldErr(field, "%q is the all-zero MAC; a unicast MAC is required", s)
	}
	return hw.String(), nil
}

// ParseInterfaceAddress parses an IPv4 address with prefix length, like 179.17.1.21/24.
func ParseInterfaceAddress(field, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fieldErr(field, "%q is not an IPv4 address with prefix length, like 179.17.1.21/24", s)
	}
	if p.Bits() == 32 {
		return netip.Prefix{}, fieldErr(field, "%q has a /32 prefix; the overlay address needs the overlay subnet's prefix length, like /24", s)
	}
	if p.Addr() == p.Masked().Addr() {
		return netip.Prefix{}, fieldErr(field, "%q is the subnet's network address; give a host address", s)
	}
	return p, nil
}

// ParseCIDR parses an IPv4 network prefix, like 10.235.88.0/24; host bits must be zero.
func ParseCIDR(field, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fieldErr(field, "%q is not an IPv4 CIDR, like 10.235.88.0/24", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fieldErr(field, "%q has host bits set; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

// ParseIPv4 parses an IPv4 address.
func ParseIPv4(field, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fieldErr(field, "%q is not an IPv4 address", s)
	}
	return a, nil
}

// DeriveMAC returns the MAC nodenet gives a device when none is configured: stable for the
// same cluster, node and device name (so a recreated device keeps it and peers' FDB and
// neighbour entries stay right), locally administered and unicast.
func DeriveMAC(cluster, node, device string) string {
	sum := sha256.Sum256([]byte("nodenet/mac/v1\x00" + cluster + "\x00" + node + "\x00" + device))
	hw := net.HardwareAddr(sum[:6])
	hw[0] = (hw[0] | 0x02) &^ 0x01
	return hw.String()
}

// ValidateVxlanTunnelObject checks a vxlan_tunnel object: its spec, and a device named as the
// id says (a device name is the kind's natural key).
func ValidateVxlanTunnelObject(o *Object) error {
	kind, name, err := SplitObjectID(o.GetId())
	if err != nil {
		return err
	}
	t := o.GetVxlanTunnel()
	if kind != KindVxlanTunnel || t == nil {
		return fieldErr("object.spec", "a %s spec is required for id %q", KindVxlanTunnel, o.GetId())
	}
	if err := ValidateIfName("id", name); err != nil {
		return err
	}
	if err := ValidateVxlanTunnel(t); err != nil {
		return err
	}
	if dn := t.GetDevice().GetName(); dn != name {
		return fieldErr("vxlan_tunnel.device.name", "device %q does not match the id %q", dn, o.GetId())
	}
	return nil
}

// ValidateVxlanTunnel checks one node's share of a VXLAN overlay.
func ValidateVxlanTunnel(t *VxlanTunnel) error {
	const p = "vxlan_tunnel."
	d := t.GetDevice()
	if d == nil {
		return fieldErr(p+"device", "a device is required")
	}
	if err := ValidateIfName(p+"device.name", d.GetName()); err != nil {
		return err
	}
	if err := ValidateVNI(p+"device.vni", int64(d.GetVni())); err != nil {
		return err
	}
	if d.GetPort() != 0 {
		if err := ValidatePort(p+"device.port", int64(d.GetPort())); err != nil {
			return err
		}
	}
	if d.GetUnderlay() == "" && d.GetLocalIp() == "" {
		return fieldErr(p+"device.underlay", "an underlay interface or a local IP is required")
	}
	if d.GetUnderlay() != "" {
		if err := ValidateIfName(p+"device.underlay", d.GetUnderlay()); err != nil {
			return err
		}
	}
	if d.GetLocalIp() != "" {
		if _, err := ParseIPv4(p+"device.local_ip", d.GetLocalIp()); err != nil {
			return err
		}
	}
	if d.GetMtu() != 0 {
		if err := ValidateMTU(p+"device.mtu", int64(d.GetMtu())); err != nil {
			return err
		}
	}
	if d.GetMac() != "" {
		if _, err := ParseUnicastMAC(p+"device.mac", d.GetMac()); err != nil {
			return err
		}
	}
	if d.GetAddress() != "" {
		if _, err := ParseInterfaceAddress(p+"device.address", d.GetAddress()); err != nil {
			return err
		}
	}
	seenMAC := map[string]bool{}
	for i, e := range t.GetFdb() {
		f := fmt.Sprintf("%sfdb[%d]", p, i)
		mac, err := ParseUnicastMAC(f+".mac", e.GetMac())
		if err != nil {
			return err
		}
		if seenMAC[mac] {
			return fieldErr(f+".mac", "%s appears twice; one FDB entry per MAC", mac)
		}
		seenMAC[mac] = true
		if _, err := ParseIPv4(f+".dst", e.GetDst()); err != nil {
			return err
		}
	}
	seenIP := map[netip.Addr]bool{}
	for i, n := range t.GetNeighbors() {
		f := fmt.Sprintf("%sneighbors[%d]", p, i)
		ip, err := ParseIPv4(f+".ip", n.GetIp())
		if err != nil {
			return err
		}
		if seenIP[ip] {
			return fieldErr(f+".ip", "%s appears twice; one neighbour entry per IP", ip)
		}
		seenIP[ip] = true
		if _, err := ParseUnicastMAC(f+".mac", n.GetMac()); err != nil {
			return err
		}
		if n.GetNode() != "" {
			if err := ValidateNodeKey(f+".node", n.GetNode()); err != nil {
				return err
			}
		}
	}
	seenDst := map[netip.Prefix]bool{}
	for i, r := range t.GetRoutes() {
		f := fmt.Sprintf("%sroutes[%d]", p, i)
		dst, err := ParseCIDR(f+".dst", r.GetDst())
		if err != nil {
			return err
		}
		if seenDst[dst] {
			return fieldErr(f+".dst", "%s appears twice; one route per destination", dst)
		}
		seenDst[dst] = true
		if _, err := ParseIPv4(f+".via", r.GetVia()); err != nil {
			return err
		}
	}
	return nil
}
