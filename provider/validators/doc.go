// Package validators holds the provider's attribute validators. Each one runs a rule of the
// contract (proto/nodenet/v1), the same code the agent runs on every request, so a value
// is refused at plan time with the message the agent would give, and the error points at
// the attribute instead of surfacing later as a failed apply.
package validators

import pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"

// message drops the contract's field prefix: the attribute path already names the field.
func message(err error) string {
	if fe, ok := pb.AsFieldError(err); ok {
		return fe.Msg
	}
	return err.Error()
}
