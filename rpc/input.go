package rpc

import (
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

func rfc3339(t interface{ AsTime() time.Time }) string {
	return t.AsTime().UTC().Format(time.RFC3339Nano)
}

func refIndex(r *pb.EntryRef) *uint64 {
	if r == nil {
		return nil
	}
	i := r.Index
	return &i
}

// buildInput returns the policy input document (policies/README.md) for a
// send request, the subject's state (nil if none) and the open breaches: the
// AST value to evaluate, and the same value as the JSON to record with the
// decision.
func buildInput(now time.Time, req *pb.SendRequest, known bool, st *pb.SubjectState, breaches []*pb.BreachState) (ast.Value, []byte) {
	v := inputDocument(now, req, known, st, breaches).Value()
	return v, policies.AppendJSON(make([]byte, 0, 1024), v)
}

func inputDocument(now time.Time, req *pb.SendRequest, known bool, st *pb.SubjectState, breaches []*pb.BreachState) *policies.Input {
	in := &policies.Input{
		Now: now.UTC().Format(time.RFC3339Nano),
		Request: policies.InputRequest{
			Channel: ledger.ChannelName(req.Channel), Purpose: req.Purpose, Category: req.Category,
			ProviderName: req.GetProvider().GetName(), ProviderRegion: req.GetProvider().GetRegion(),
			SubjectTimezone: req.SubjectTimezone, ServiceWindowOpen: req.ServiceWindowOpen, MessageRef: req.MessageRef,
			LegalBasis: req.LegalBasis,
		},
		Subject:  policies.InputSubject{Known: known, Country: req.SubjectCountry},
		Breaches: make([]policies.InputBreach, 0, len(breaches)),
	}
	consents := st.GetConsents()
	in.Subject.Consents = make([]policies.InputConsent, len(consents))
	for i, cs := range consents {
		c := &in.Subject.Consents[i]
		*c = policies.InputConsent{
			Channel: ledger.ChannelName(cs.Channel), Purpose: cs.Purpose,
			Status: cs.Status, Method: cs.Method, NoticeVersion: cs.NoticeVersion, DoubleOptIn: cs.DoubleOptIn,
			NoticeLanguage: cs.NoticeLanguage,
			GrantIndex:     refIndex(cs.Grant), ConfirmationIndex: refIndex(cs.Confirmation), WithdrawalIndex: refIndex(cs.Withdrawal),
		}
		if cs.GrantedAt != nil {
			c.GrantedAt = rfc3339(cs.GrantedAt)
		}
		if cs.ConfirmedAt != nil {
			c.ConfirmedAt = rfc3339(cs.ConfirmedAt)
		}
		if cs.ConfirmedVia != pb.Channel_CHANNEL_UNSPECIFIED {
			c.ConfirmedVia = ledger.ChannelName(cs.ConfirmedVia)
		}
		if cs.WithdrawnAt != nil {
			c.WithdrawnAt = rfc3339(cs.WithdrawnAt)
		}
		if cs.LastAllowedSendAt != nil {
			c.LastAllowedSendAt = rfc3339(cs.LastAllowedSendAt)
		}
	}
	if o := st.GetObjection(); o != nil {
		in.Subject.Objection = &policies.InputObjection{Index: o.Index}
		if st.ObjectedAt != nil {
			in.Subject.Objection.At = rfc3339(st.ObjectedAt)
		}
	}
	for _, b := range breaches {
		ib := policies.InputBreach{BreachID: b.BreachId, Status: b.Status, Channels: make([]string, 0, len(b.Channels))}
		if b.DetectedAt != nil {
			ib.DetectedAt = rfc3339(b.DetectedAt)
		}
		for _, c := range b.Channels {
			ib.Channels = append(ib.Channels, ledger.ChannelName(c))
		}
		in.Breaches = append(in.Breaches, ib)
	}
	return in
}
