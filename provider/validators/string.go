package validators

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/schema/validator"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
	"github.com/nodenet/terraform-provider-nodenet/provider/cniconf"
	"github.com/nodenet/terraform-provider-nodenet/provider/mesh"
)

// stringValidator is one rule; check returns the problem with s, or nil.
type stringValidator struct {
	desc    string
	md      string // when the plain description would not read right as markdown
	summary string
	check   func(s string) error
}

var _ validator.String = stringValidator{}

func (v stringValidator) Description(context.Context) string { return v.desc }

func (v stringValidator) MarkdownDescription(ctx context.Context) string {
	if v.md != "" {
		return v.md
	}
	return v.Description(ctx)
}

func (v stringValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	// Unknown values are checked again once known; null means unset, which the schema governs.
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := v.check(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, v.summary, message(err))
	}
}

// IfName accepts a Linux interface name.
func IfName() validator.String {
	return stringValidator{
		desc:    "value must be a Linux interface name (1 to 15 bytes, no '/', ':' or white space)",
		summary: "Invalid interface name",
		check:   func(s string) error { return pb.ValidateIfName("", s) },
	}
}

// UnicastMAC accepts a 48-bit unicast MAC written as the kernel reports it. Another
// spelling of the same MAC is refused: state would hold the kernel's form, so the plan
// would show a change on every run.
func UnicastMAC() validator.String {
	return stringValidator{
		desc:    "value must be a unicast MAC address in lower case with colons, like c2:6a:9b:e5:39:8d",
		summary: "Invalid MAC address",
		check: func(s string) error {
			mac, err := pb.ParseUnicastMAC("", s)
			if err != nil {
				return err
			}
			if mac != s {
				return fmt.Errorf("write %q as %q (lower case, colons), the way the kernel reports it", s, mac)
			}
			return nil
		},
	}
}

// IPv4 accepts an IPv4 address.
func IPv4() validator.String {
	return stringValidator{
		desc:    "value must be an IPv4 address",
		summary: "Invalid IPv4 address",
		check: func(s string) error {
			_, err := pb.ParseIPv4("", s)
			return err
		},
	}
}

// CIDR accepts an IPv4 network prefix with its host bits zero, like 10.235.88.0/24.
func CIDR() validator.String {
	return stringValidator{
		desc:    "value must be an IPv4 CIDR with host bits zero, like 10.235.88.0/24",
		summary: "Invalid CIDR",
		check: func(s string) error {
			_, err := pb.ParseCIDR("", s)
			return err
		},
	}
}

// InterfaceAddress accepts an IPv4 host address with its subnet's prefix length, like
// 179.17.1.21/24.
func InterfaceAddress() validator.String {
	return stringValidator{
		desc:    "value must be an IPv4 host address with prefix length, like 179.17.1.21/24",
		summary: "Invalid interface address",
		check: func(s string) error {
			_, err := pb.ParseInterfaceAddress("", s)
			return err
		},
	}
}

// NodeKey accepts a node key "<cluster>/<node>". It uses mesh's rule so a key that passes
// here is one the overlay plan can split.
func NodeKey() validator.String {
	return stringValidator{
		desc:    `value must be a node key "<cluster>/<node>"`,
		md:      "value must be a node key `<cluster>/<node>`",
		summary: "Invalid node key",
		check: func(s string) error {
			if _, _, ok := mesh.SplitKey(s); !ok {
				return fmt.Errorf("member keys are \"<cluster>/<node>\", got %q", s)
			}
			return nil
		},
	}
}

// Duration accepts a positive Go duration such as 30s or 2m; zero or negative would mean
// no time at all.
func Duration() validator.String {
	return stringValidator{
		desc:    "value must be a positive Go duration like 30s or 2m",
		summary: "Invalid duration",
		check: func(s string) error {
			if d, err := time.ParseDuration(s); err != nil || d <= 0 {
				return fmt.Errorf("%q is not a positive Go duration like 30s or 2m", s)
			}
			return nil
		},
	}
}

// Underlay accepts what a VXLAN member's underlay may be: an interface name (its primary
// IPv4 address is the local IP) or an IPv4 address of the node.
func Underlay() validator.String {
	return stringValidator{
		desc:    "value must be an interface name (like eth0) or an IPv4 address of the node",
		summary: "Invalid underlay",
		check: func(s string) error {
			if _, err := netip.ParseAddr(s); err == nil {
				_, err := pb.ParseIPv4("", s)
				return err
			}
			if err := pb.ValidateIfName("", s); err != nil {
				return fmt.Errorf("%s; give an interface name (like eth0) or an IPv4 address of the node", message(err))
			}
			return nil
		},
	}
}

// CNIFile accepts a CNI configuration list file name, as the agent writes it in its CNI
// configuration directory.
func CNIFile() validator.String {
	return stringValidator{
		desc:    "value must be a file name (letters, digits, '.', '-' and '_') ending in .conflist",
		summary: "Invalid CNI configuration file name",
		check: func(s string) error {
			if !pb.CNIFileName(s) {
				return fmt.Errorf("%q is not a CNI configuration list file name: letters, digits, '.', '-' and '_', ending in .conflist, at most 100 bytes", s)
			}
			return nil
		},
	}
}

// CNINetwork accepts a CNI network name (libcni's rule, usable as host-local's directory).
func CNINetwork() validator.String {
	return stringValidator{
		desc:    "value must be a CNI network name: letters, digits, '.', '-' and '_', starting with a letter or digit",
		summary: "Invalid CNI network name",
		check: func(s string) error {
			if !cniconf.NetworkName(s) {
				return fmt.Errorf("%q is not a CNI network name: letters, digits, '.', '-' and '_', starting with a letter or digit, at most 255 bytes", s)
			}
			return nil
		},
	}
}
