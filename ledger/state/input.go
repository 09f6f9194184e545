package state

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// InputVersion names the derivation [Input] implements; the server records
// it in SendDecision.input_version. A decision recorded without it (0) was
// derived with version 1.
const InputVersion = 1

// KnownInputVersion reports whether this package can derive inputs of
// version v (0 meaning 1).
func KnownInputVersion(v uint32) bool { return v == 0 || v == InputVersion }

// MaxInputLag bounds how long before a decision's recorded_at its input's
// `now` may lie: the sequencer refuses a decision evaluated longer ago (rpc
// evaluates it again), and the verifier fails one whose `now` is earlier.
// `now` is never after recorded_at.
const MaxInputLag = time.Minute

// Input returns the policy input document (policies/README.md) for a send
// request at now, given the subject's state with its last allowed sends (nil
// if the subject has no consent event; see [WithLastSends]), whether the
// ledger knew the subject (see [State.Known]: it had an entry before and was
// not erased), and the open breaches in order of breach_id.
func Input(now time.Time, req *pb.SendRequest, known bool, st *pb.SubjectState, breaches []*pb.BreachState) *policies.Input {
	in := &policies.Input{
		Now: now.UTC().Format(time.RFC3339Nano),
		Request: policies.InputRequest{
			Channel: ChannelName(req.GetChannel()), Purpose: req.GetPurpose(), Category: req.GetCategory(),
			ProviderName: req.GetProvider().GetName(), ProviderRegion: req.GetProvider().GetRegion(),
			SubjectTimezone: req.GetSubjectTimezone(), ServiceWindowOpen: req.GetServiceWindowOpen(), MessageRef: req.GetMessageRef(),
		},
		Subject:  policies.InputSubject{Known: known, Country: req.GetSubjectCountry()},
		Breaches: make([]policies.InputBreach, 0, len(breaches)),
	}
	consents := st.GetConsents()
	in.Subject.Consents = make([]policies.InputConsent, len(consents))
	for i, cs := range consents {
		c := &in.Subject.Consents[i]
		*c = policies.InputConsent{
			Channel: ChannelName(cs.Channel), Purpose: cs.Purpose,
			Status: cs.Status, Method: cs.Method, NoticeVersion: cs.NoticeVersion, DoubleOptIn: cs.DoubleOptIn,
			GrantIndex: refIndex(cs.Grant), ConfirmationIndex: refIndex(cs.Confirmation), WithdrawalIndex: refIndex(cs.Withdrawal),
		}
		c.GrantedAt = rfc3339(cs.GrantedAt)
		c.ConfirmedAt = rfc3339(cs.ConfirmedAt)
		c.WithdrawnAt = rfc3339(cs.WithdrawnAt)
		c.LastAllowedSendAt = rfc3339(cs.LastAllowedSendAt)
	}
	for _, b := range breaches {
		ib := policies.InputBreach{BreachID: b.BreachId, Status: b.Status, Channels: make([]string, 0, len(b.Channels)), DetectedAt: rfc3339(b.DetectedAt)}
		for _, c := range b.Channels {
			ib.Channels = append(ib.Channels, ChannelName(c))
		}
		in.Breaches = append(in.Breaches, ib)
	}
	return in
}

func rfc3339(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.AsTime().UTC().Format(time.RFC3339Nano)
}

func refIndex(r *pb.EntryRef) *uint64 {
	if r == nil {
		return nil
	}
	i := r.Index
	return &i
}
