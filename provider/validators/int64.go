package validators

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/schema/validator"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// int64Validator is one of the contract's range rules.
type int64Validator struct {
	desc    string
	summary string
	check   func(field string, v int64) error
}

var _ validator.Int64 = int64Validator{}

func (v int64Validator) Description(context.Context) string { return v.desc }

func (v int64Validator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (v int64Validator) ValidateInt64(_ context.Context, req validator.Int64Request, resp *validator.Int64Response) {
	// Unknown values are checked again once known; null means unset, which the schema governs.
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := v.check("", req.ConfigValue.ValueInt64()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, v.summary, message(err))
	}
}

// VNI accepts a VXLAN network identifier, 1 to 16777215.
func VNI() validator.Int64 {
	return int64Validator{desc: fmt.Sprintf("value must be a VNI from 1 to %d", pb.MaxVNI), summary: "Invalid VNI", check: pb.ValidateVNI}
}

// Port accepts a UDP port, 1 to 65535.
func Port() validator.Int64 {
	return int64Validator{desc: "value must be a UDP port from 1 to 65535", summary: "Invalid port", check: pb.ValidatePort}
}

// MTU accepts a link MTU, 68 to 65535. The tighter bound of a vxlan device depends on its
// underlay, so only the agent can check it.
func MTU() validator.Int64 {
	return int64Validator{desc: fmt.Sprintf("value must be an MTU from %d to 65535", pb.MinMTU), summary: "Invalid MTU", check: pb.ValidateMTU}
}

// ASN accepts a BGP autonomous system number, 1 to 4294967294 less the reserved values.
func ASN() validator.Int64 {
	return int64Validator{desc: "value must be an ASN from 1 to 4294967294, not 23456 or 65535", summary: "Invalid ASN", check: pb.ValidateASN}
}
