package nodenetv1

import (
	"net/netip"
	"strings"

	"google.golang.org/protobuf/proto"
)

// Kinds of the BGP routing objects, and the one name a speaker has.
const (
	KindBgpSpeaker   = "bgp_speaker"
	KindBgpPeer      = "bgp_peer"
	KindBgpReflector = "bgp_reflector"
	KindIpPool       = "ip_pool"
	// SpeakerName is the name of the node's one speaker: its id is "bgp_speaker/default".
	SpeakerName = "default"
	// MaxRestartTime is the largest graceful restart time the capability can carry (12 bits).
	MaxRestartTime = 4095
)

// ValidateBgpSpeaker checks a node's speaker.
func ValidateBgpSpeaker(s *BgpSpeaker) error {
	const p = "bgp_speaker."
	if s == nil {
		return fieldErr("object.spec", "a bgp_speaker spec is required")
	}
	if err := ValidateASN(p+"asn", int64(s.GetAsn())); err != nil {
		return err
	}
	if _, err := ParseIPv4(p+"address", s.GetAddress()); err != nil {
		return err
	}
	if s.GetRouterId() != "" {
		if _, err := ParseIPv4(p+"router_id", s.GetRouterId()); err != nil {
			return err
		}
	}
	if s.GetListenPort() != 0 {
		if err := ValidatePort(p+"listen_port", int64(s.GetListenPort())); err != nil {
			return err
		}
	}
	if err := validateGracefulRestart(p+"graceful_restart", s.GetGracefulRestart()); err != nil {
		return err
	}
	if err := ValidateBgpTimers(p+"timers", s.GetTimers()); err != nil {
		return err
	}
	return validateNeighbors(p+"mesh", s.GetMesh(), s.GetAddress())
}

// ValidateBgpPeer checks an explicit peering; name is the id's name (the peer's address).
func ValidateBgpPeer(name string, b *BgpPeer) error {
	const p = "bgp_peer."
	if b == nil {
		return fieldErr("object.spec", "a bgp_peer spec is required")
	}
	ip, err := ParseIPv4(p+"peer_ip", b.GetPeerIp())
	if err != nil {
		return err
	}
	if ip.String() != name {
		return fieldErr(p+"peer_ip", "peer %q does not match the id's name %q", b.GetPeerIp(), name)
	}
	if err := ValidateASN(p+"peer_asn", int64(b.GetPeerAsn())); err != nil {
		return err
	}
	if len(b.GetPassword()) > 80 {
		return fieldErr(p+"password", "the password is %d bytes; TCP MD5 keys are at most 80", len(b.GetPassword()))
	}
	if b.GetEbgpMultihop() > 255 {
		return fieldErr(p+"ebgp_multihop", "TTL %d is out of range; allowed 1 to 255 (0: off)", b.GetEbgpMultihop())
	}
	if b.GetSourceAddress() != "" {
		if _, err := ParseIPv4(p+"source_address", b.GetSourceAddress()); err != nil {
			return err
		}
	}
	if b.GetPort() != 0 {
		if err := ValidatePort(p+"port", int64(b.GetPort())); err != nil {
			return err
		}
	}
	if err := validateGracefulRestart(p+"graceful_restart", b.GetGracefulRestart()); err != nil {
		return err
	}
	return ValidateBgpTimers(p+"timers", b.GetTimers())
}

// ValidateBgpReflector checks a reflector's share of a node; name is the reflector node.
func ValidateBgpReflector(name string, r *BgpReflector) error {
	const p = "bgp_reflector."
	if r == nil {
		return fieldErr("object.spec", "a bgp_reflector spec is required")
	}
	if r.GetReflector() != name {
		return fieldErr(p+"reflector", "reflector %q does not match the id's name %q", r.GetReflector(), name)
	}
	if _, err := ParseIPv4(p+"address", r.GetAddress()); err != nil {
		return err
	}
	if err := ValidateASN(p+"asn", int64(r.GetAsn())); err != nil {
		return err
	}
	if r.GetClusterId() == "" {
		if len(r.GetClients()) > 0 {
			return fieldErr(p+"cluster_id", "a reflector with clients needs a cluster id")
		}
		return nil
	}
	if _, err := ParseIPv4(p+"cluster_id", r.GetClusterId()); err != nil {
		return err
	}
	return validateNeighbors(p+"clients", r.GetClients(), r.GetAddress())
}

// ValidateIpPool checks a pool's share of a node; name is the pool's CIDR.
func ValidateIpPool(name string, ip *IpPool) error {
	const p = "ip_pool."
	if ip == nil {
		return fieldErr("object.spec", "an ip_pool spec is required")
	}
	pool, err := ParseCIDR(p+"cidr", ip.GetCidr())
	if err != nil {
		return err
	}
	if pool.String() != name {
		return fieldErr(p+"cidr", "pool %q does not match the id's name %q", ip.GetCidr(), name)
	}
	if err := validateCNIFile(p, ip.GetCniFile(), ip.GetCniConfig()); err != nil {
		return err
	}
	if ip.GetBlock() == "" {
		if ip.GetEncapsulation() != nil {
			return fieldErr(p+"encapsulation", "a node without a block of the pool has no tunnel endpoint: leave encapsulation out")
		}
		if ip.GetCniConfig() != "" {
			return fieldErr(p+"cni_config", "a node without a block of the pool has no CNI configuration for it")
		}
		return nil
	}
	block, err := ParseCIDR(p+"block", ip.GetBlock())
	if err != nil {
		return err
	}
	if block.Bits() < pool.Bits() || !pool.Contains(block.Addr()) {
		return fieldErr(p+"block", "block %s is not inside the pool %s", block, pool)
	}
	return ValidatePoolEncapsulation(p+"encapsulation.", ip.GetEncapsulation())
}

// ValidateBgpTimers checks timers; zero values mean the defaults. The hold time is 0 or at
// least 3 seconds (RFC 4271) and more than the keepalive.
func ValidateBgpTimers(field string, t *BgpTimers) error {
	if t == nil {
		return nil
	}
	if h := t.GetHoldTime(); h != 0 && (h < 3 || h > 65535) {
		return fieldErr(field+".hold_time", "hold time %d is out of range; allowed 3 to 65535 seconds", h)
	}
	if k := t.GetKeepalive(); k > 21845 {
		return fieldErr(field+".keepalive", "keepalive %d is out of range; allowed 1 to 21845 seconds", k)
	}
	if k, h := t.GetKeepalive(), t.GetHoldTime(); k != 0 && h != 0 && k >= h {
		return fieldErr(field+".keepalive", "keepalive %d must be less than the hold time %d (usually a third of it)", k, h)
	}
	if c := t.GetConnectRetry(); c > 65535 {
		return fieldErr(field+".connect_retry", "connect retry %d is out of range; allowed 1 to 65535 seconds", c)
	}
	if i := t.GetIdleHold(); i > 65535 {
		return fieldErr(field+".idle_hold", "idle hold %d is out of range; allowed 1 to 65535 seconds", i)
	}
	return nil
}

func validateGracefulRestart(field string, g *BgpGracefulRestart) error {
	if g == nil || !g.GetEnabled() {
		return nil
	}
	if t := g.GetRestartTime(); t < 1 || t > MaxRestartTime {
		return fieldErr(field+".restart_time", "restart time %d is out of range; allowed 1 to %d seconds", t, MaxRestartTime)
	}
	return nil
}

func validateNeighbors(field string, ns []*BgpNeighbor, self string) error {
	seen := map[netip.Addr]string{}
	for _, n := range ns {
		f := field + "[" + n.GetNode() + "]"
		if strings.TrimSpace(n.GetNode()) == "" {
			return fieldErr(field, "every neighbour needs its node's name")
		}
		a, err := ParseIPv4(f+".address", n.GetAddress())
		if err != nil {
			return err
		}
		if a.String() == self {
			return fieldErr(f+".address", "%s is this node's own address", a)
		}
		if other, dup := seen[a]; dup {
			return fieldErr(f+".address", "%s is also the address of %s", a, other)
		}
		seen[a] = n.GetNode()
		if err := ValidateASN(f+".asn", int64(n.GetAsn())); err != nil {
			return err
		}
	}
	return nil
}

// Redacted returns o without its input-only secrets (a peer's password), for every answer
// that carries a stored spec: secrets never leave the agent.
func Redacted(o *Object) *Object {
	if o.GetBgpPeer().GetPassword() == "" {
		return o
	}
	c := proto.Clone(o).(*Object)
	c.GetBgpPeer().Password = ""
	return c
}
