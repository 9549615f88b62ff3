package dataplane

import (
	"errors"
	"fmt"

	pb "github.com/nodenet/terraform-provider-nodenet/proto/nodenet/v1"
)

// Step is one kernel change: Do makes it, Undo reverts it (nil: nothing to revert). Change
// is what the caller is told (nil for a step that is part of another's).
type Step struct {
	Change *pb.Change
	// Desc names the entry in errors: "fdb <mac> dst <ip>".
	Desc string
	Do   func() error
	Undo func() error
}

// NewChange is a Change of one kernel entry.
func NewChange(action pb.Change_Action, entry, key, detail string) *pb.Change {
	return &pb.Change{Action: action, Entry: entry, Key: key, Detail: detail}
}

// Changes are the reported changes of the steps, in order.
func Changes(steps []Step) []*pb.Change {
	out := []*pb.Change{}
	for _, s := range steps {
		if s.Change != nil {
			out = append(out, s.Change)
		}
	}
	return out
}

// Run makes the steps in order; when one fails it undoes the ones made, last first, and
// returns the failure (and what could not be undone). before, when set (by tests), runs
// before every reported step; an error fails that step as if the kernel had refused it.
func Run(what string, steps []Step, before func(*pb.Change) error) error {
	for i, s := range steps {
		var err error
		if before != nil && s.Change != nil {
			err = before(s.Change)
		}
		if err == nil {
			err = s.Do()
		}
		if err == nil {
			continue
		}
		err = fmt.Errorf("%s: %s: %w", what, s.Desc, err)
		var rb []error
		for j := i - 1; j >= 0; j-- {
			if steps[j].Undo == nil {
				continue
			}
			if uerr := steps[j].Undo(); uerr != nil {
				rb = append(rb, fmt.Errorf("undo %s: %w", steps[j].Desc, uerr))
			}
		}
		if len(rb) > 0 {
			return fmt.Errorf("%w (rollback incomplete: %v)", err, errors.Join(rb...))
		}
		return err
	}
	return nil
}
