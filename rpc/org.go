package rpc

import (
	"fmt"
	"strings"

	"connectrpc.com/connect"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Org is who the server keeps the log for (README.md: Privacy notices, breaches, reports): the controller (or
// processor), its DPO or contact point, and its supervisory authority. The
// zero value configures none of them.
type Org struct {
	// Controller; nil when not configured. Role "controller" or "processor".
	Controller *pb.Organisation
	// Contact is the DPO (kind "dpo") or, where none is required (§38
	// BDSG), the contact point (kind "contact_point"); nil when not configured.
	Contact *pb.ContactPerson
	// Authority is the supervisory authority; nil when not configured.
	Authority *pb.Authority
}

// Processor reports whether the organisation is a processor (Art. 33(2):
// it notifies its controllers, not the authority).
func (o Org) Processor() bool { return o.Controller.GetRole() == "processor" }

// Role returns "controller" or "processor".
func (o Org) Role() string {
	if o.Processor() {
		return "processor"
	}
	return "controller"
}

// ContactLine is the DPO or contact point in one line, for the help reply:
// "Data protection officer: NAME, EMAIL, PHONE" or "Data protection
// contact: …" (a contact point is never called a DPO). Empty when none is
// configured.
func (o Org) ContactLine() string {
	c := o.Contact
	if c == nil {
		return ""
	}
	var parts []string
	for _, v := range []string{c.Name, c.Email, c.Phone} {
		if v != "" {
			parts = append(parts, v)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	label := "Data protection contact"
	if c.Kind == "dpo" {
		label = "Data protection officer"
	}
	return label + ": " + strings.Join(parts, ", ")
}

// checkController refuses a notice whose controller is not the configured one.
func (o Org) checkController(name string) error {
	want := o.Controller.GetName()
	switch {
	case want == "" && name == "":
		return nil
	case want == "":
		return nil // no controller configured: the notice names its own
	case name == "":
		return invalid("controller", "is required: the configured controller is %q", want)
	case name != want:
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("controller: %q is not the configured controller %q (config controller.name)", name, want))
	}
	return nil
}
