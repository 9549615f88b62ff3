// Package cniconf renders the CNI configuration list a node's pods get from an IP pool: the
// reference ptp plugin with host-local IPAM over the node's block, as close to what Calico's
// CNI gives a pod as those two plugins allow. It is pure: the provider plans the text, the
// agent writes it verbatim, and the lab's tests run the plugins on it.
//
// What Calico gives a pod, and what ptp + host-local give instead:
//
//   - Calico: the pod's eth0 has a /32 from the block and one route, default via 169.254.1.1;
//     the host side of the veth has no address and answers ARP by proxy_arp.
//   - ptp puts the address on eth0 with the range's prefix length, then deletes the connected
//     route of that prefix and adds "<gateway> dev eth0 scope link" and "<block> via
//     <gateway>", so every packet, even to a pod of the same block, goes to the host, as with
//     Calico. The host side of the veth gets <gateway>/32 and the host a /32 route to the pod
//     over the veth (Calico's route too). The routes of the IPAM section are added through
//     the gateway: "0.0.0.0/0" is the pod's default route via the gateway.
//   - The gateway cannot be 169.254.1.1. host-local (v1.9.1) does accept a gateway outside
//     the subnet (it only canonicalizes it), but ptp adds the IPAM routes before its own
//     route to the gateway, while the only route the pod has is the block's connected one:
//     "failed to add route 0.0.0.0/0 via 169.254.1.1 dev eth0: network is unreachable".
//     Without IPAM routes the pod would reach its own block and nothing else. So the
//     gateway is the block's first address, which is also host-local's default, given
//     explicitly so that the file says what the pods get; host-local never hands it out.
//     Every veth of the node carries it; the node owns it, as it owns Calico's 169.254.1.1.
//   - host-local hands out the block's addresses but its network and broadcast addresses
//     and the gateway: 61 pods in a /26 where Calico has 64.
//
// No other plugin is chained: portmap, bandwidth and tuning are not what the pool is about,
// and ipMasq stays false because NAT is the pool's nat_outgoing, made by the agent.
package cniconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
)

// CNIVersion is the version of the CNI specification the configuration is written for; the
// reference plugins since v1.0.0 implement it.
const CNIVersion = "1.0.0"

// Config is one node's share of a pool's CNI configuration.
type Config struct {
	// Network is the configuration's name. Runtimes pick a network by it, and host-local
	// keeps its leases in a directory of that name under DataDir.
	Network string
	// Block is the node's block of the pool, which the node's pods get addresses from.
	Block netip.Prefix
	// MTU of both ends of the pod's veth (the pool's, less its encapsulation's overhead);
	// 0 leaves it out, and the kernel's default (1500) applies.
	MTU int
	// DataDir is where host-local keeps its leases (absolute); "" leaves it out, and
	// host-local uses /var/lib/cni/networks.
	DataDir string
}

// The JSON documents, fields in the order they are written.
type (
	conflist struct {
		CNIVersion string   `json:"cniVersion"`
		Name       string   `json:"name"`
		Plugins    []plugin `json:"plugins"`
	}
	plugin struct {
		Type   string `json:"type"`
		MTU    int    `json:"mtu,omitempty"`
		IPMasq bool   `json:"ipMasq"`
		IPAM   ipam   `json:"ipam"`
	}
	ipam struct {
		Type    string      `json:"type"`
		Ranges  [][]ipRange `json:"ranges"`
		Routes  []route     `json:"routes"`
		DataDir string      `json:"dataDir,omitempty"`
	}
	ipRange struct {
		Subnet  string `json:"subnet"`
		Gateway string `json:"gateway"`
	}
	route struct {
		Dst string `json:"dst"`
	}
)

// Render returns the configuration list of c: JSON indented by two spaces, keys in a fixed
// order, ending in a newline. The same Config always gives the same text, which Terraform
// compares in a plan and the agent writes as it is.
func Render(c Config) (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	def := "0.0.0.0/0"
	if c.Block.Addr().Is6() {
		def = "::/0"
	}
	doc := conflist{
		CNIVersion: CNIVersion,
		Name:       c.Network,
		Plugins: []plugin{{
			Type:   "ptp",
			MTU:    c.MTU,
			IPMasq: false,
			IPAM: ipam{
				Type:    "host-local",
				Ranges:  [][]ipRange{{{Subnet: c.Block.String(), Gateway: Gateway(c.Block).String()}}},
				Routes:  []route{{Dst: def}},
				DataDir: c.DataDir,
			},
		}},
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // a data dir with & or < is written as it is
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil { // Encode ends the text with a newline
		return "", err
	}
	return b.String(), nil
}

// Gateway is the pods' gateway in block: its first address after the network address.
func Gateway(block netip.Prefix) netip.Addr { return block.Masked().Addr().Next() }

func (c Config) check() error {
	if !NetworkName(c.Network) {
		return fmt.Errorf("CNI network name %q: letters, digits, '_', '.' and '-', starting with a letter or digit, at most 255 bytes", c.Network)
	}
	b := c.Block
	if !b.IsValid() {
		return errors.New("CNI configuration: no block")
	}
	if b != b.Masked() {
		return fmt.Errorf("block %s has host bits set (the block is %s)", b, b.Masked())
	}
	// host-local refuses ranges without room for an address (/31, /32); the gateway takes
	// one more, so a /30 holds one pod.
	if max := b.Addr().BitLen() - 2; b.Bits() > max {
		return fmt.Errorf("block %s is too small for host-local: the prefix length must be at most %d", b, max)
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		return fmt.Errorf("MTU %d: must be between 68 and 65535 (0 leaves it to the kernel)", c.MTU)
	}
	if c.DataDir != "" && (!filepath.IsAbs(c.DataDir) || filepath.Clean(c.DataDir) != c.DataDir) {
		return fmt.Errorf("host-local data dir %q: must be a clean absolute path", c.DataDir)
	}
	return nil
}

// NetworkName tells whether name is a valid CNI network name (the rule of libcni's
// ValidateNetworkName) that host-local can also use as a directory name.
func NetworkName(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for i, r := range name {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || r != '_' && r != '.' && r != '-') {
			return false
		}
	}
	return true
}
