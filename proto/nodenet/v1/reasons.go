package nodenetv1

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The reasons of the agent's refusals that the provider acts on, carried as a
// google.rpc.ErrorInfo detail of the gRPC status, so no message text is parsed.
const (
	// ErrorDomain is the ErrorInfo domain of nodenet's reasons.
	ErrorDomain = "nodenet"
	// ReasonOtherOwner: the object is managed by another owner (metadata "owner").
	ReasonOtherOwner = "OTHER_OWNER"
	// ReasonEntryHeld: a kernel entry the object wants is another object's (metadata
	// "entry", "holder", "owner").
	ReasonEntryHeld = "ENTRY_HELD"
)

// StatusWithReason is a gRPC status error with an ErrorInfo detail.
func StatusWithReason(code codes.Code, msg, reason string, metadata map[string]string) error {
	st := status.New(code, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain, Metadata: metadata}); err == nil {
		st = d
	}
	return st.Err()
}

// Reason is the nodenet reason of a gRPC status error and its metadata ("" when none).
func Reason(err error) (string, map[string]string) {
	st, ok := status.FromError(err)
	if !ok {
		return "", nil
	}
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetDomain() == ErrorDomain {
			return ei.GetReason(), ei.GetMetadata()
		}
	}
	return "", nil
}
