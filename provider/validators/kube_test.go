package validators

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

func TestKubeValidators(t *testing.T) {
	p := path.Root("x")
	for _, c := range []struct {
		v     validator.String
		value string
		want  string
	}{
		{DNSLabel(), "kube-system", ""},
		{DNSLabel(), "Kube", "is not a namespace name"},
		{DNSLabel(), "a.b", "is not a namespace name"},
		{DNSLabel(), strings.Repeat("a", 64), "at most 63"},
		{DNSSubdomain(), "macvlan-conf-1", ""},
		{DNSSubdomain(), "a.b-c", ""},
		{DNSSubdomain(), "-a", "is not an object name"},
		{DNSSubdomain(), "a_b", "is not an object name"},
		{ClusterName(), "cluster1", ""},
		{ClusterName(), "a/b", "non-empty, no '/'"},
	} {
		var resp validator.StringResponse
		c.v.ValidateString(context.Background(), validator.StringRequest{Path: p, ConfigValue: types.StringValue(c.value)}, &resp)
		checkDiags(t, resp.Diagnostics, p, c.want)
	}
	for v, want := range map[int64]string{1: "", 4094: "", 0: "is not 1 to 4094", 4095: "is not 1 to 4094"} {
		var resp validator.Int64Response
		VlanID().ValidateInt64(context.Background(), validator.Int64Request{Path: p, ConfigValue: types.Int64Value(v)}, &resp)
		checkDiags(t, resp.Diagnostics, p, want)
	}
}
