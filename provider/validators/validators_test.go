package validators

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// checkDiags wants no diagnostics when want is "", else exactly one attribute error at p
// whose detail contains want.
func checkDiags(t *testing.T, diags diag.Diagnostics, p path.Path, want string) {
	t.Helper()
	if want == "" {
		if len(diags) != 0 {
			t.Fatalf("want no diagnostics, got %v", diags)
		}
		return
	}
	if len(diags) != 1 {
		t.Fatalf("want one diagnostic, got %v", diags)
	}
	d := diags[0]
	if d.Severity() != diag.SeverityError {
		t.Errorf("severity %v, want error", d.Severity())
	}
	wp, ok := d.(diag.DiagnosticWithPath)
	if !ok {
		t.Fatalf("diagnostic %v has no attribute path", d)
	}
	if !wp.Path().Equal(p) {
		t.Errorf("path %s, want %s", wp.Path(), p)
	}
	if !strings.Contains(d.Detail(), want) {
		t.Errorf("detail %q does not contain %q", d.Detail(), want)
	}
	// The validators pass an empty field, so a kept prefix would show as a leading ": ".
	if strings.HasPrefix(d.Detail(), ":") {
		t.Errorf("detail %q keeps the contract's field prefix", d.Detail())
	}
}

func TestStringValidators(t *testing.T) {
	tests := []struct {
		name  string
		v     validator.String
		value string
		want  string // "" = valid
	}{
		{"ifname", IfName(), "vxlan100", ""},
		{"underlay name", Underlay(), "eth0", ""},
		{"underlay ip", Underlay(), "192.168.0.21", ""},
		{"underlay v6", Underlay(), "fd00::1", "is not an IPv4 address"},
		{"underlay bad", Underlay(), "eth 0", "may not contain '/', ':' or white space; give an interface name (like eth0) or an IPv4 address of the node"},
		{"ifname 15 bytes", IfName(), "abcdefghijklmno", ""},
		{"ifname empty", IfName(), "", "an interface name is required"},
		{"ifname long", IfName(), "abcdefghijklmnop", `"abcdefghijklmnop" is 16 bytes; an interface name has at most 15`},
		{"ifname dot", IfName(), "..", `".." is not an interface name`},
		{"ifname slash", IfName(), "a/b", `"a/b" may not contain '/', ':' or white space`},

		{"mac", UnicastMAC(), "c2:6a:9b:e5:39:8d", ""},
		{"mac garbage", UnicastMAC(), "c2:6a", `"c2:6a" is not a MAC address; expected six hex octets like c2:6a:9b:e5:39:8d`},
		{"mac multicast", UnicastMAC(), "01:00:5e:00:00:01", `"01:00:5e:00:00:01" is a multicast MAC`},
		{"mac zero", UnicastMAC(), "00:00:00:00:00:00", `"00:00:00:00:00:00" is the all-zero MAC`},
		{"mac upper", UnicastMAC(), "C2:6A:9B:E5:39:8D", `write "C2:6A:9B:E5:39:8D" as "c2:6a:9b:e5:39:8d" (lower case, colons), the way the kernel reports it`},
		{"mac dashes", UnicastMAC(), "c2-6a-9b-e5-39-8d", `write "c2-6a-9b-e5-39-8d" as "c2:6a:9b:e5:39:8d"`},
		{"mac dots", UnicastMAC(), "c26a.9be5.398d", `write "c26a.9be5.398d" as "c2:6a:9b:e5:39:8d"`},

		{"ipv4", IPv4(), "192.0.2.1", ""},
		{"ipv4 v6", IPv4(), "2001:db8::1", `"2001:db8::1" is not an IPv4 address`},
		{"ipv4 prefix", IPv4(), "192.0.2.1/24", `"192.0.2.1/24" is not an IPv4 address`},

		{"cidr", CIDR(), "10.235.88.0/24", ""},
		{"cidr host bits", CIDR(), "10.235.88.1/24", `"10.235.88.1/24" has host bits set; did you mean 10.235.88.0/24?`},
		{"cidr no prefix", CIDR(), "10.235.88.0", `"10.235.88.0" is not an IPv4 CIDR, like 10.235.88.0/24`},

		{"address", InterfaceAddress(), "179.17.1.21/24", ""},
		{"address /32", InterfaceAddress(), "179.17.1.21/32", `"179.17.1.21/32" has a /32 prefix`},
		{"address network", InterfaceAddress(), "179.17.1.0/24", `"179.17.1.0/24" is the subnet's network address; give a host address`},
		{"address bare", InterfaceAddress(), "179.17.1.21", `"179.17.1.21" is not an IPv4 address with prefix length, like 179.17.1.21/24`},

		{"node key", NodeKey(), "lab/node-1", ""},
		{"node key no slash", NodeKey(), "x", `member keys are "<cluster>/<node>", got "x"`},
		{"node key two slashes", NodeKey(), "a/b/c", `member keys are "<cluster>/<node>", got "a/b/c"`},
		{"node key empty cluster", NodeKey(), "/b", `got "/b"`},
		{"node key empty node", NodeKey(), "a/", `got "a/"`},

		{"duration", Duration(), "30s", ""},
		{"duration minutes", Duration(), "2m", ""},
		{"duration zero", Duration(), "0s", `"0s" is not a positive Go duration like 30s or 2m`},
		{"duration negative", Duration(), "-1s", `"-1s" is not a positive Go duration like 30s or 2m`},
		{"duration no unit", Duration(), "30", `"30" is not a positive Go duration like 30s or 2m`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := path.Root("x")
			req := validator.StringRequest{Path: p, ConfigValue: types.StringValue(tt.value)}
			var resp validator.StringResponse
			tt.v.ValidateString(context.Background(), req, &resp)
			checkDiags(t, resp.Diagnostics, p, tt.want)
		})
	}
}

func TestInt64Validators(t *testing.T) {
	tests := []struct {
		name  string
		v     validator.Int64
		value int64
		want  string // "" = valid
	}{
		{"vni 1", VNI(), 1, ""},
		{"vni max", VNI(), 16777215, ""},
		{"vni 0", VNI(), 0, "VNI 0 is out of range; allowed 1 to 16777215"},
		{"vni too big", VNI(), 16777216, "VNI 16777216 is out of range; allowed 1 to 16777215"},

		{"port", Port(), 4789, ""},
		{"port 0", Port(), 0, "port 0 is out of range; allowed 1 to 65535"},
		{"port too big", Port(), 65536, "port 65536 is out of range; allowed 1 to 65535"},

		{"mtu", MTU(), 1450, ""},
		{"mtu min", MTU(), 68, ""},
		{"mtu too small", MTU(), 67, "MTU 67 is out of range; allowed 68 to 65535"},
		{"mtu too big", MTU(), 65536, "MTU 65536 is out of range; allowed 68 to 65535"},

		{"asn private", ASN(), 64512, ""},
		{"asn 4-byte", ASN(), 4294967294, ""},
		{"asn 0", ASN(), 0, "ASN 0 is out of range; allowed 1 to 4294967294"},
		{"asn as_trans", ASN(), 23456, "ASN 23456 is AS_TRANS (RFC 6793)"},
		{"asn 65535", ASN(), 65535, "ASN 65535 is reserved (RFC 7300); choose another"},
		{"asn max", ASN(), 4294967295, "ASN 4294967295 is reserved (RFC 7300); choose another"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := path.Root("x")
			req := validator.Int64Request{Path: p, ConfigValue: types.Int64Value(tt.value)}
			var resp validator.Int64Response
			tt.v.ValidateInt64(context.Background(), req, &resp)
			checkDiags(t, resp.Diagnostics, p, tt.want)
		})
	}
}

// Null and unknown values are left to the schema and to a later run once known.
func TestNullAndUnknown(t *testing.T) {
	strs := map[string]validator.String{
		"IfName": IfName(), "UnicastMAC": UnicastMAC(), "IPv4": IPv4(), "CIDR": CIDR(),
		"InterfaceAddress": InterfaceAddress(), "NodeKey": NodeKey(), "Duration": Duration(),
	}
	for name, v := range strs {
		for _, val := range []types.String{types.StringNull(), types.StringUnknown()} {
			var resp validator.StringResponse
			v.ValidateString(context.Background(), validator.StringRequest{Path: path.Root("x"), ConfigValue: val}, &resp)
			if len(resp.Diagnostics) != 0 {
				t.Errorf("%s(%s): %v", name, val, resp.Diagnostics)
			}
		}
	}
	ints := map[string]validator.Int64{"VNI": VNI(), "Port": Port(), "MTU": MTU(), "ASN": ASN()}
	for name, v := range ints {
		for _, val := range []types.Int64{types.Int64Null(), types.Int64Unknown()} {
			var resp validator.Int64Response
			v.ValidateInt64(context.Background(), validator.Int64Request{Path: path.Root("x"), ConfigValue: val}, &resp)
			if len(resp.Diagnostics) != 0 {
				t.Errorf("%s(%s): %v", name, val, resp.Diagnostics)
			}
		}
	}
}

// Descriptions show in generated docs; an empty one would leave a hole there.
func TestDescriptions(t *testing.T) {
	ctx := context.Background()
	type described interface {
		Description(context.Context) string
		MarkdownDescription(context.Context) string
	}
	for _, v := range []described{IfName(), UnicastMAC(), IPv4(), CIDR(), InterfaceAddress(), NodeKey(), Duration(), VNI(), Port(), MTU(), ASN()} {
		if v.Description(ctx) == "" || v.MarkdownDescription(ctx) == "" {
			t.Errorf("%T has an empty description", v)
		}
	}
}
