// Package state is the one derivation of the ledger's state and of a send
// decision's policy input from the log's entries (docs/guarantees.md). It is
// pure: plain values in, plain values out, no storage and no clock. The
// ledger folds entries with it into its state index (over its storage), rpc
// builds the policy input with it, and the verifier derives both again from
// an export or a bundle, so that a recorded input is checked, never trusted.
//
// The fold is one function per event kind ([ApplyGranted],
// [ApplyConfirmed], [ApplyWithdrawn], [ApplyErased], [ApplyBreach],
// [ApplyPolicy]); [State] is the whole fold in memory, for the verifier.
package state

import (
	"cmp"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Consent statuses.
const (
	StatusGranted   = "granted"
	StatusWithdrawn = "withdrawn"
	StatusErased    = "erased"
)

// Breach statuses.
const (
	BreachOpen   = "open"
	BreachClosed = "closed"
)

// ChannelName returns the lowercase name of a channel: "whatsapp", "sms", "rcs", "email".
func ChannelName(c pb.Channel) string {
	return strings.ToLower(strings.TrimPrefix(c.String(), "CHANNEL_"))
}

// IsConsentEvent reports whether e is on its subject's consent chain.
func IsConsentEvent(e *pb.Entry) bool {
	switch e.GetEvent().(type) {
	case *pb.Entry_ConsentGranted, *pb.Entry_ConsentConfirmed, *pb.Entry_ConsentWithdrawn, *pb.Entry_SubjectErased:
		return true
	}
	return false
}

// ApplyConsent applies the consent event e (see [IsConsentEvent]), sequenced
// as ref, to the subject's state ss (nil: the subject has no consent event
// yet) and returns the new state: ss changed in place, or a new one. Any
// other entry returns ss unchanged.
func ApplyConsent(ss *pb.SubjectState, e *pb.Entry, ref *pb.EntryRef) *pb.SubjectState {
	if !IsConsentEvent(e) {
		return ss
	}
	if ss == nil {
		ss = &pb.SubjectState{SubjectId: e.GetSubjectId()}
	}
	switch ev := e.Event.(type) {
	case *pb.Entry_ConsentGranted:
		ApplyGranted(ss, ev.ConsentGranted, ref)
	case *pb.Entry_ConsentConfirmed:
		ApplyConfirmed(ss, ev.ConsentConfirmed, ref)
	case *pb.Entry_ConsentWithdrawn:
		ApplyWithdrawn(ss, ev.ConsentWithdrawn, ref)
	case *pb.Entry_SubjectErased:
		ApplyErased(ss)
	}
	ss.Head = ref
	return ss
}

// at is t, or the entry's recorded_at when the event names no time.
func at(t *timestamppb.Timestamp, ref *pb.EntryRef) *timestamppb.Timestamp {
	if t != nil {
		return t
	}
	return ref.GetRecordedAt()
}

// ApplyGranted records a grant: each purpose's consent on the channel is
// granted anew, with the grant's method, notice and double opt-in.
func ApplyGranted(ss *pb.SubjectState, g *pb.ConsentGranted, ref *pb.EntryRef) {
	for _, p := range g.GetPurposes() {
		cs := UpsertConsent(ss, g.Channel, p)
		cs.Status, cs.GrantedAt, cs.Method, cs.NoticeVersion = StatusGranted, at(g.OccurredAt, ref), g.Method, g.NoticeVersion
		cs.DoubleOptIn, cs.ConfirmedAt, cs.Confirmation, cs.ConfirmedVia = g.DoubleOptInConfirmed, nil, nil, pb.Channel_CHANNEL_UNSPECIFIED
		if g.DoubleOptInConfirmed {
			// Confirmed before it was recorded: on its own channel.
			cs.ConfirmedAt, cs.ConfirmedVia = at(g.OccurredAt, ref), g.Channel
		}
		cs.NoticeLanguage, cs.NoticeIndex = g.NoticeLanguage, g.NoticeIndex
		cs.Grant, cs.WithdrawnAt, cs.Withdrawal = ref, nil, nil
	}
}

// ApplyConfirmed records a double opt-in confirmation of existing consents.
func ApplyConfirmed(ss *pb.SubjectState, c *pb.ConsentConfirmed, ref *pb.EntryRef) {
	for _, p := range c.GetPurposes() {
		if cs := FindConsent(ss, c.Channel, p); cs != nil {
			cs.DoubleOptIn, cs.ConfirmedAt, cs.Confirmation = true, at(c.OccurredAt, ref), ref
			// Entries from before confirmed_via existed: their own channel.
			cs.ConfirmedVia = cmp.Or(c.ConfirmedVia, c.Channel)
		}
	}
}

// Scopes of a ConsentWithdrawn entry.
const (
	// ScopeChannel (or "") withdraws consent on the entry's channel (Art. 7(3)).
	ScopeChannel = "channel"
	// ScopeAllMarketing is an objection to direct marketing (Art. 21(3)):
	// recorded as the subject's objection, for every channel.
	ScopeAllMarketing = "all_marketing"
)

// ApplyWithdrawn records a withdrawal: of the named purposes on the
// channel, or of every purpose the channel has when none is named; or, for
// scope all_marketing, the subject's objection to direct marketing, which
// the policy applies to every marketing purpose on every channel
// (input.subject.objection).
func ApplyWithdrawn(ss *pb.SubjectState, wd *pb.ConsentWithdrawn, ref *pb.EntryRef) {
	if wd.GetScope() == ScopeAllMarketing {
		ss.Objection, ss.ObjectedAt = ref, at(wd.OccurredAt, ref)
		return
	}
	withdraw := func(cs *pb.ConsentState) {
		cs.Status, cs.WithdrawnAt, cs.Withdrawal = StatusWithdrawn, at(wd.OccurredAt, ref), ref
	}
	if len(wd.GetPurposes()) == 0 {
		for _, cs := range ss.Consents {
			if cs.Channel == wd.Channel {
				withdraw(cs)
			}
		}
	}
	for _, p := range wd.GetPurposes() {
		withdraw(UpsertConsent(ss, wd.Channel, p))
	}
}

// ApplyErased records the subject's erasure.
func ApplyErased(ss *pb.SubjectState) {
	for _, cs := range ss.Consents {
		cs.Status = StatusErased
	}
	ss.Erased = true
}

// Unconfirmable returns the first purpose of c that has no granted consent
// to confirm on c's channel, and whether there is one.
func Unconfirmable(ss *pb.SubjectState, c *pb.ConsentConfirmed) (string, bool) {
	for _, p := range c.GetPurposes() {
		cs := FindConsent(ss, c.Channel, p)
		if cs == nil || cs.Status != StatusGranted {
			return p, true
		}
	}
	return "", false
}

// FindConsent returns the subject's consent for the channel and purpose, or nil.
func FindConsent(ss *pb.SubjectState, ch pb.Channel, purpose string) *pb.ConsentState {
	for _, cs := range ss.GetConsents() {
		if cs.Channel == ch && cs.Purpose == purpose {
			return cs
		}
	}
	return nil
}

// UpsertConsent returns the subject's consent for the channel and purpose,
// adding an empty one (kept sorted by channel, then purpose) if absent.
func UpsertConsent(ss *pb.SubjectState, ch pb.Channel, purpose string) *pb.ConsentState {
	if cs := FindConsent(ss, ch, purpose); cs != nil {
		return cs
	}
	cs := &pb.ConsentState{Channel: ch, Purpose: purpose}
	ss.Consents = append(ss.Consents, cs)
	slices.SortFunc(ss.Consents, func(a, b *pb.ConsentState) int {
		return cmp.Or(cmp.Compare(a.Channel, b.Channel), strings.Compare(a.Purpose, b.Purpose))
	})
	return cs
}

// BreachID returns the breach_id a breach event names, "" for other entries.
func BreachID(e *pb.Entry) string {
	switch ev := e.GetEvent().(type) {
	case *pb.Entry_BreachDetected:
		return ev.BreachDetected.GetBreachId()
	case *pb.Entry_BreachAuthorityNotified:
		return ev.BreachAuthorityNotified.GetBreachId()
	case *pb.Entry_BreachSubjectsNotified:
		return ev.BreachSubjectsNotified.GetBreachId()
	case *pb.Entry_BreachClosed:
		return ev.BreachClosed.GetBreachId()
	case *pb.Entry_BreachAssessed:
		return ev.BreachAssessed.GetBreachId()
	case *pb.Entry_BreachStepCompleted:
		return ev.BreachStepCompleted.GetBreachId()
	}
	return ""
}

// ApplyBreach applies the breach event e, sequenced as ref, to the breach's
// state b (nil: no such breach yet) and returns the new state, changed in
// place or new. A detection starts an open breach; a later event for a
// breach that does not exist returns nil.
func ApplyBreach(b *pb.BreachState, e *pb.Entry, ref *pb.EntryRef) *pb.BreachState {
	if d := e.GetBreachDetected(); d != nil {
		b = &pb.BreachState{
			BreachId: d.BreachId, Status: BreachOpen, Detected: ref, DetectedAt: d.DetectedAt,
			Channels: d.Channels, Risk: d.Risk, Description: d.Description,
			PlanVersion: d.PlanVersion, PlanIndex: d.PlanIndex, ControllerRole: d.ControllerRole,
		}
		b.EntryIndexes = append(b.EntryIndexes, ref.GetIndex())
		return b
	}
	if b == nil {
		return nil
	}
	switch ev := e.GetEvent().(type) {
	case *pb.Entry_BreachAuthorityNotified:
		if b.AuthorityNotifiedAt == nil {
			b.AuthorityNotifiedAt, b.AuthorityNotification = ev.BreachAuthorityNotified.NotifiedAt, ref
		}
	case *pb.Entry_BreachSubjectsNotified:
		n := ev.BreachSubjectsNotified
		switch {
		case n.Exception != "":
			// An Art. 34(3) exception recorded instead of a communication.
			if b.SubjectsException == "" {
				b.SubjectsException = n.Exception
			}
		case b.SubjectsNotifiedAt == nil:
			b.SubjectsNotifiedAt = n.NotifiedAt
		}
	case *pb.Entry_BreachClosed:
		b.Status, b.ClosedAt, b.Closure = BreachClosed, ev.BreachClosed.ClosedAt, ref
	case *pb.Entry_BreachAssessed:
		a := ev.BreachAssessed
		b.Assessment, b.AssessedAt, b.AssessmentEntry = a.Level, a.AssessedAt, ref
	case *pb.Entry_BreachStepCompleted:
		st := ev.BreachStepCompleted
		b.Steps = append(b.Steps, &pb.StepState{StepId: st.StepId, CompletedAt: st.CompletedAt, Entry: ref})
	}
	b.EntryIndexes = append(b.EntryIndexes, ref.GetIndex())
	return b
}

// ApplyPolicy returns the policy state after the PolicyPublished entry ref.
func ApplyPolicy(pp *pb.PolicyPublished, ref *pb.EntryRef) *pb.PolicyState {
	return &pb.PolicyState{Entry: ref, Digest: pp.GetDigest()}
}

// WithLastSends returns a copy of ss whose consents carry their last
// allowed send, as lookup finds it (nil: none) for the channel and purpose;
// ss itself is not changed. It returns nil for a nil ss.
func WithLastSends(ss *pb.SubjectState, lookup func(ch pb.Channel, purpose string) *pb.EntryRef) *pb.SubjectState {
	if ss == nil {
		return nil
	}
	out := proto.CloneOf(ss)
	for _, cs := range out.Consents {
		if ref := lookup(cs.Channel, cs.Purpose); ref != nil {
			cs.LastAllowedSend, cs.LastAllowedSendAt = ref, ref.RecordedAt
		}
	}
	return out
}
