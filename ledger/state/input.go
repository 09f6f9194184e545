package state

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// InputVersion names the derivation [Input] implements; the server records
// it in SendDecision.input_version, and the verifier derives each decision's
// input with the version it names ([InputOf]). A decision recorded without
// it (0) was derived with version 1.
//
//   - Version 1: now, the request, the subject's consents and the open
//     breaches, as the first wave built them.
//   - Version 2 adds request.legal_basis, each consent's confirmed_via (the
//     channel its double opt-in was confirmed on) and subject.objection (an
//     objection to direct marketing) and each consent's notice_language (the
//     language of the published notice its grant names), and lists each
//     breach's channels once, known channels only.
const InputVersion = 2

// KnownInputVersion reports whether this package can derive inputs of
// version v (0 meaning 1).
func KnownInputVersion(v uint32) bool { return v <= InputVersion }

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
	return InputOf(InputVersion, now, req, known, st, breaches)
}

// InputOf is [Input] as derivation version builds it (0 meaning 1), so that
// decisions recorded by an older server are derived as it derived them.
func InputOf(version uint32, now time.Time, req *pb.SendRequest, known bool, st *pb.SubjectState, breaches []*pb.BreachState) *policies.Input {
	v2 := version >= 2
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
		if v2 && cs.ConfirmedVia != pb.Channel_CHANNEL_UNSPECIFIED {
			c.ConfirmedVia = ChannelName(cs.ConfirmedVia)
		}
		if v2 {
			c.NoticeLanguage = cs.NoticeLanguage
		}
	}
	if o := st.GetObjection(); v2 && o != nil {
		in.Subject.Objection = &policies.InputObjection{Index: o.Index, At: rfc3339(st.GetObjectedAt())}
	}
	if v2 {
		in.Request.LegalBasis = req.GetLegalBasis()
	}
	for _, b := range breaches {
		ib := policies.InputBreach{BreachID: b.BreachId, Status: b.Status, Channels: make([]string, 0, min(len(b.Channels), 4)), DetectedAt: rfc3339(b.DetectedAt)}
		var seen [8]bool
		for _, c := range b.Channels {
			if v2 {
				// Only what the policy needs of a breach, each channel once:
				// a breach recorded before channels were bounded must not
				// make every decision's input large.
				if c <= 0 || int(c) >= len(seen) || seen[c] {
					continue
				}
				seen[c] = true
			}
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
