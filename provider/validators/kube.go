package validators

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
)

// Kubernetes object names, as the API server checks them (RFC 1123).
var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// DNSLabel accepts a Kubernetes namespace name: an RFC 1123 label.
func DNSLabel() validator.String {
	return stringValidator{
		desc:    "value must be a lower-case RFC 1123 label of at most 63 characters (a-z, 0-9, '-'), like kube-system",
		summary: "Invalid namespace",
		check: func(s string) error {
			if len(s) > 63 || !dnsLabel.MatchString(s) {
				return fmt.Errorf("%q is not a namespace name: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63", s)
			}
			return nil
		},
	}
}

// DNSSubdomain accepts a Kubernetes object name: an RFC 1123 subdomain.
func DNSSubdomain() validator.String {
	return stringValidator{
		desc:    "value must be a lower-case RFC 1123 subdomain of at most 253 characters, like macvlan-conf-1",
		summary: "Invalid name",
		check: func(s string) error {
			if len(s) > 253 || !dnsSubdomain.MatchString(s) {
				return fmt.Errorf("%q is not an object name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253", s)
			}
			return nil
		},
	}
}

// ClusterName accepts a name of the provider's clusters map: non-empty, no '/'.
func ClusterName() validator.String {
	return stringValidator{
		desc:    "value must be a cluster name of the provider: non-empty, no '/'",
		summary: "Invalid cluster name",
		check: func(s string) error {
			if s == "" || strings.Contains(s, "/") {
				return fmt.Errorf("%q is not a cluster name: non-empty, no '/'", s)
			}
			return nil
		},
	}
}

// VlanID accepts an 802.1Q VLAN id, 1 to 4094.
func VlanID() validator.Int64 {
	return int64Validator{desc: "value must be a VLAN id from 1 to 4094", summary: "Invalid VLAN id", check: func(_ string, v int64) error {
		if v < 1 || v > 4094 {
			return fmt.Errorf("VLAN id %d is not 1 to 4094", v)
		}
		return nil
	}}
}
