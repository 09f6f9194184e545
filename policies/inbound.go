package policies

import (
	"context"
	"fmt"
	"math"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
)

// The actions [Set.Inbound] returns.
const (
	ActionOptOut = "opt_out" // withdraw consent for the channel
	ActionOptIn  = "opt_in"  // restore what the channel's last keyword opt-out withdrew
	ActionHelp   = "help"    // answer with the help reply
	ActionReview = "review"  // looks like an opt-out but is no keyword: a person must read it
	ActionNone   = "none"    // not a keyword
)

// Scopes of an opt-out.
const (
	// ScopeChannel withdraws consent on the message's channel (GDPR Art. 7(3)).
	ScopeChannel = "channel"
	// ScopeAllMarketing is an objection to direct marketing (Art. 21(3)):
	// every marketing purpose on every channel.
	ScopeAllMarketing = "all_marketing"
)

// SignalWhatsAppStopPromotions is WhatsApp's "Stop promotions" button, a
// user_preferences webhook: a marketing opt-out for WhatsApp.
const SignalWhatsAppStopPromotions = "whatsapp_stop_promotions"

// DefaultReviewDueHours is how long a person has to handle a review when
// the policy does not say (policies published before reviews existed).
const DefaultReviewDueHours = 24

// Contact is what the help reply tells the person (GDPR Art. 13, 21(4)):
// who sends, where to get support, how to opt out, the privacy notice and
// the data protection officer or contact point. Empty fields are left out
// of the reply.
type Contact struct {
	SenderName       string `json:"sender_name,omitempty"`
	SupportContact   string `json:"support_contact,omitempty"`
	OptOut           string `json:"opt_out,omitempty"`
	PrivacyNoticeURL string `json:"privacy_notice_url,omitempty"`
	DPOContact       string `json:"dpo_contact,omitempty"`
	// PrivacyContact is the data protection contact point where no DPO is
	// required (§38 BDSG); never labelled DPO.
	PrivacyContact string `json:"privacy_contact,omitempty"`
}

// InboundMessage is an inbound message to interpret: its text, or a
// platform signal such as [SignalWhatsAppStopPromotions].
type InboundMessage struct {
	Text    string
	Signal  string
	Contact Contact // fills the help reply
}

// InboundResult is what an inbound message means.
type InboundResult struct {
	Action  string // one of the Action constants
	Keyword string // the normalised keyword or review phrase; never other message text
	Scope   string // for an opt-out: ScopeChannel or ScopeAllMarketing
	// Purposes an opt-out withdraws; empty means every purpose on the channel.
	Purposes []string
	// Reply is the help text for ActionHelp, else "".
	Reply string
	// ReviewDueHours is how long a person has to handle a review.
	ReviewDueHours int
}

func (m *InboundMessage) value() ast.Value {
	o := ast.NewObject(ast.Item(ast.InternedTerm("text"), ast.StringTerm(m.Text)))
	if m.Signal != "" {
		o.Insert(ast.InternedTerm("signal"), ast.StringTerm(m.Signal))
	}
	c := ast.NewObject()
	for k, v := range map[string]string{
		"sender_name": m.Contact.SenderName, "support_contact": m.Contact.SupportContact, "opt_out": m.Contact.OptOut,
		"privacy_notice_url": m.Contact.PrivacyNoticeURL, "dpo_contact": m.Contact.DPOContact,
		"privacy_contact": m.Contact.PrivacyContact,
	} {
		if v != "" {
			c.Insert(ast.StringTerm(k), ast.StringTerm(v))
		}
	}
	o.Insert(ast.InternedTerm("contact"), ast.NewTerm(c))
	return o
}

// Inbound evaluates what an inbound text means: action is one of the
// Action constants; keyword is the normalised keyword that matched ("" for
// none), the only part of the message the ledger records. It is safe for
// concurrent use. See [Set.InboundMessage] for the whole result.
func (s *Set) Inbound(ctx context.Context, text string) (action, keyword string, err error) {
	r, err := s.InboundMessage(ctx, InboundMessage{Text: text})
	return r.Action, r.Keyword, err
}

// InboundMessage evaluates what an inbound message means. The action and
// keyword come from [InboundActionRef] and [InboundKeywordRef]; the rest
// from [InboundResultRef] when the policy defines it, else the defaults of
// policies that predate it (scope channel, all purposes, no reply). It is
// safe for concurrent use.
func (s *Set) InboundMessage(ctx context.Context, m InboundMessage) (InboundResult, error) {
	in := m.value()
	c, stop := evalCancel(ctx)
	defer stop()
	rs, err := s.inbound.Eval(ctx, rego.EvalParsedInput(in), rego.EvalExternalCancel(c), rego.EvalMetrics(metrics.NoOp()))
	if err != nil {
		return InboundResult{}, fmt.Errorf("policies: inbound: %w", err)
	}
	if len(rs) == 0 {
		return InboundResult{}, fmt.Errorf("policies: %w: %s or %s is undefined", ErrNoDecision, InboundActionRef, InboundKeywordRef)
	}
	action, ok1 := rs[0].Bindings["action"].(string)
	keyword, ok2 := rs[0].Bindings["keyword"].(string)
	switch {
	case !ok1 || !ok2:
		return InboundResult{}, fmt.Errorf("policies: %w: inbound action %T and keyword %T, want strings", ErrMalformedDecision, rs[0].Bindings["action"], rs[0].Bindings["keyword"])
	case action != ActionOptOut && action != ActionOptIn && action != ActionHelp && action != ActionReview && action != ActionNone:
		return InboundResult{}, fmt.Errorf("policies: %w: inbound action %q, want opt_out, opt_in, help, review or none", ErrMalformedDecision, action)
	}
	r := InboundResult{Action: action, Keyword: keyword, Scope: ScopeChannel, ReviewDueHours: DefaultReviewDueHours}
	rs, err = s.result.Eval(ctx, rego.EvalParsedInput(in), rego.EvalExternalCancel(c), rego.EvalMetrics(metrics.NoOp()))
	if err != nil {
		return InboundResult{}, fmt.Errorf("policies: inbound result: %w", err)
	}
	if len(rs) == 0 {
		return r, nil
	}
	res, ok := rs[0].Bindings["result"].(map[string]any)
	if !ok {
		return InboundResult{}, fmt.Errorf("policies: %w: %s is %T, want an object", ErrMalformedDecision, InboundResultRef, rs[0].Bindings["result"])
	}
	if err := readResult(res, &r); err != nil {
		return InboundResult{}, fmt.Errorf("policies: %w: %s: %w", ErrMalformedDecision, InboundResultRef, err)
	}
	return r, nil
}

// readResult reads the optional fields of the inbound result into r.
func readResult(res map[string]any, r *InboundResult) error {
	if v, ok := res["scope"]; ok {
		s, _ := v.(string)
		if s != ScopeChannel && s != ScopeAllMarketing {
			return fmt.Errorf("scope %v, want %q or %q", v, ScopeChannel, ScopeAllMarketing)
		}
		r.Scope = s
	}
	if v, ok := res["purposes"]; ok {
		list, ok := v.([]any)
		if !ok {
			return fmt.Errorf("purposes is %T, want an array of strings", v)
		}
		for _, p := range list {
			s, ok := p.(string)
			if !ok {
				return fmt.Errorf("purposes holds %T, want strings", p)
			}
			r.Purposes = append(r.Purposes, s)
		}
	}
	if v, ok := res["reply"]; ok {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("reply is %T, want a string", v)
		}
		r.Reply = s
	}
	if v, ok := res["review_due_hours"]; ok {
		n, err := hours(v)
		if err != nil {
			return err
		}
		r.ReviewDueHours = n
	}
	return nil
}

// hours reads a whole number of hours from 1 to a year.
func hours(v any) (int, error) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case interface{ Float64() (float64, error) }:
		var err error
		if f, err = x.Float64(); err != nil {
			return 0, fmt.Errorf("review_due_hours %v: %w", v, err)
		}
	default:
		return 0, fmt.Errorf("review_due_hours is %T, want a number", v)
	}
	if f != math.Trunc(f) || f < 1 || f > 8760 {
		return 0, fmt.Errorf("review_due_hours %v, want a whole number from 1 to 8760", v)
	}
	return int(f), nil
}
