package ledger

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Consent statuses in the state index.
const (
	StatusGranted   = "granted"
	StatusWithdrawn = "withdrawn"
	StatusErased    = "erased"
)

// Scopes of a ConsentWithdrawn entry.
const (
	// ScopeChannel (or "") withdraws consent on the entry's channel (Art. 7(3)).
	ScopeChannel = "channel"
	// ScopeAllMarketing is an objection to direct marketing (Art. 21(3)):
	// recorded as the subject's objection, for every channel.
	ScopeAllMarketing = "all_marketing"
)

// Breach statuses in the state index.
const (
	BreachOpen   = "open"
	BreachClosed = "closed"
)

// stateWriter is where applyEntry reads and writes the state index: the
// sequencer's overlay, or RebuildState's.
type stateWriter struct {
	o       *overlay
	batchNo uint64
}

func (w stateWriter) subject(id string) (*pb.SubjectState, error) {
	b, ok, err := w.o.get(subjectKey(id))
	if err != nil || !ok {
		return nil, err
	}
	s := new(pb.SubjectState)
	if err := proto.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("decode state of subject %s: %w", id, err)
	}
	return s, nil
}

func (w stateWriter) putSubject(s *pb.SubjectState) error {
	return w.put(subjectKey(s.SubjectId), s)
}

func (w stateWriter) breach(id string) (*pb.BreachState, error) {
	b, ok, err := w.o.get(breachKey(id))
	if err != nil || !ok {
		return nil, err
	}
	s := new(pb.BreachState)
	if err := proto.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("decode state of breach %s: %w", id, err)
	}
	return s, nil
}

func (w stateWriter) put(key []byte, m proto.Message) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	w.o.put(key, b, w.batchNo)
	return nil
}

// isConsentEvent reports whether e is on its subject's consent chain.
func isConsentEvent(e *pb.Entry) bool {
	switch e.Event.(type) {
	case *pb.Entry_ConsentGranted, *pb.Entry_ConsentConfirmed, *pb.Entry_ConsentWithdrawn, *pb.Entry_SubjectErased:
		return true
	}
	return false
}

// checkAgainstState refuses an entry that the state does not allow. It runs
// in the sequencer before the entry is sequenced; ss is the subject's state
// (nil if none).
func checkAgainstState(w stateWriter, e *pb.Entry, ss *pb.SubjectState) error {
	switch ev := e.Event.(type) {
	case *pb.Entry_ConsentConfirmed:
		c := ev.ConsentConfirmed
		for _, p := range c.Purposes {
			cs := findConsent(ss, c.Channel, p)
			if cs == nil || cs.Status != StatusGranted {
				return fmt.Errorf("%w: there is no active opt-in for %s/%s to confirm; record the opt-in first", ErrPrecondition, ChannelName(c.Channel), p)
			}
		}
	case *pb.Entry_BreachDetected:
		b, err := w.breach(ev.BreachDetected.BreachId)
		if err != nil {
			return err
		}
		if b != nil {
			return fmt.Errorf("%w: breach %q already exists (entry %d)", ErrConflict, b.BreachId, b.Detected.GetIndex())
		}
	case *pb.Entry_BreachAuthorityNotified, *pb.Entry_BreachSubjectsNotified, *pb.Entry_BreachClosed:
		id := breachIDOf(e)
		b, err := w.breach(id)
		if err != nil {
			return err
		}
		if b == nil {
			return fmt.Errorf("%w: no breach with id %q", ErrNotFound, id)
		}
		if _, closing := e.Event.(*pb.Entry_BreachClosed); closing && b.Status == BreachClosed {
			return fmt.Errorf("%w: breach %q is already closed (entry %d)", ErrPrecondition, id, b.Closure.GetIndex())
		}
	default:
		return checkRule2(w, e)
	}
	return nil
}

func breachIDOf(e *pb.Entry) string {
	switch ev := e.Event.(type) {
	case *pb.Entry_BreachDetected:
		return ev.BreachDetected.BreachId
	case *pb.Entry_BreachAuthorityNotified:
		return ev.BreachAuthorityNotified.BreachId
	case *pb.Entry_BreachSubjectsNotified:
		return ev.BreachSubjectsNotified.BreachId
	case *pb.Entry_BreachClosed:
		return ev.BreachClosed.BreachId
	}
	return ""
}

// applyEntry updates the state index for a sequenced entry. It is the one
// definition of the state: the sequencer and RebuildState both call it, so
// the index rebuilt from the entries equals the live one.
func applyEntry(w stateWriter, e *pb.Entry, ref *pb.EntryRef) error {
	if e.SubjectId != "" {
		if err := applySubject(w, e, ref); err != nil {
			return err
		}
	}
	switch ev := e.Event.(type) {
	case *pb.Entry_InboundReview:
		return w.put(reviewKey(ref.Index), ref)
	case *pb.Entry_PolicyPublished:
		return w.put(policyKey, &pb.PolicyState{Entry: ref, Digest: ev.PolicyPublished.Digest})
	case *pb.Entry_BreachDetected:
		d := ev.BreachDetected
		b := &pb.BreachState{
			BreachId: d.BreachId, Status: BreachOpen, Detected: ref, DetectedAt: d.DetectedAt,
			Channels: d.Channels, Risk: d.Risk, Description: d.Description,
		}
		extendDetected(b, d)
		noteBreachEntry(b, e, ref)
		return w.put(breachKey(d.BreachId), b)
	case *pb.Entry_BreachAuthorityNotified, *pb.Entry_BreachSubjectsNotified, *pb.Entry_BreachClosed:
		b, err := w.breach(breachIDOf(e))
		if err != nil {
			return err
		}
		if b == nil {
			return fmt.Errorf("entry %d: no breach %q", ref.Index, breachIDOf(e))
		}
		switch ev := e.Event.(type) {
		case *pb.Entry_BreachAuthorityNotified:
			if b.AuthorityNotifiedAt == nil {
				b.AuthorityNotifiedAt, b.AuthorityNotification = ev.BreachAuthorityNotified.NotifiedAt, ref
			}
		case *pb.Entry_BreachSubjectsNotified:
			if b.SubjectsNotifiedAt == nil && ev.BreachSubjectsNotified.Exception == "" {
				b.SubjectsNotifiedAt = ev.BreachSubjectsNotified.NotifiedAt
			}
		case *pb.Entry_BreachClosed:
			b.Status, b.ClosedAt, b.Closure = BreachClosed, ev.BreachClosed.ClosedAt, ref
		}
		noteBreachEntry(b, e, ref)
		return w.put(breachKey(b.BreachId), b)
	}
	return applyRule2(w, e, ref)
}

func applySubject(w stateWriter, e *pb.Entry, ref *pb.EntryRef) error {
	// A send decision changes no consent and no head: an allowed one only
	// records the last allowed send, in a small record of its own, so that
	// the most frequent entry does not rewrite the subject's state.
	if d := e.GetSendDecision(); d != nil {
		if d.Allow {
			return w.put(lastSendKey(e.SubjectId, d.Request.GetChannel(), d.Request.GetPurpose()), ref)
		}
		return nil
	}
	// A review changes no consent: it is listed from its own table.
	if e.GetInboundReview() != nil {
		return nil
	}
	ss, err := w.subject(e.SubjectId)
	if err != nil {
		return err
	}
	if ss == nil {
		ss = &pb.SubjectState{SubjectId: e.SubjectId}
	}
	at := func(t *timestamppb.Timestamp) *timestamppb.Timestamp {
		if t != nil {
			return t
		}
		return ref.RecordedAt
	}
	switch ev := e.Event.(type) {
	case *pb.Entry_ConsentGranted:
		g := ev.ConsentGranted
		for _, p := range g.Purposes {
			cs := upsertConsent(ss, g.Channel, p)
			cs.Status, cs.GrantedAt, cs.Method, cs.NoticeVersion = StatusGranted, at(g.OccurredAt), g.Method, g.NoticeVersion
			cs.DoubleOptIn, cs.ConfirmedAt, cs.Confirmation, cs.ConfirmedVia = g.DoubleOptInConfirmed, nil, nil, pb.Channel_CHANNEL_UNSPECIFIED
			if g.DoubleOptInConfirmed {
				// Confirmed before it was recorded: on its own channel.
				cs.ConfirmedAt, cs.ConfirmedVia = at(g.OccurredAt), g.Channel
			}
			cs.Grant, cs.WithdrawnAt, cs.Withdrawal = ref, nil, nil
			cs.NoticeLanguage, cs.NoticeIndex = g.NoticeLanguage, g.NoticeIndex
		}
	case *pb.Entry_ConsentConfirmed:
		c := ev.ConsentConfirmed
		for _, p := range c.Purposes {
			if cs := findConsent(ss, c.Channel, p); cs != nil {
				cs.DoubleOptIn, cs.ConfirmedAt, cs.Confirmation = true, at(c.OccurredAt), ref
				// Entries from before confirmed_via existed: their own channel.
				cs.ConfirmedVia = cmp.Or(c.ConfirmedVia, c.Channel)
			}
		}
	case *pb.Entry_ConsentWithdrawn:
		wd := ev.ConsentWithdrawn
		if wd.Scope == ScopeAllMarketing {
			// An objection: the policy denies every marketing purpose on
			// every channel after it (input.subject.objection).
			ss.Objection, ss.ObjectedAt = ref, at(wd.OccurredAt)
			break
		}
		withdraw := func(cs *pb.ConsentState) {
			cs.Status, cs.WithdrawnAt, cs.Withdrawal = StatusWithdrawn, at(wd.OccurredAt), ref
		}
		if len(wd.Purposes) == 0 {
			for _, cs := range ss.Consents {
				if cs.Channel == wd.Channel {
					withdraw(cs)
				}
			}
		}
		for _, p := range wd.Purposes {
			withdraw(upsertConsent(ss, wd.Channel, p))
		}
	case *pb.Entry_SubjectErased:
		for _, cs := range ss.Consents {
			cs.Status = StatusErased
		}
		ss.Erased = true
	}
	if isConsentEvent(e) {
		ss.Head = ref
	}
	return w.putSubject(ss)
}

func findConsent(ss *pb.SubjectState, ch pb.Channel, purpose string) *pb.ConsentState {
	for _, cs := range ss.GetConsents() {
		if cs.Channel == ch && cs.Purpose == purpose {
			return cs
		}
	}
	return nil
}

func upsertConsent(ss *pb.SubjectState, ch pb.Channel, purpose string) *pb.ConsentState {
	if cs := findConsent(ss, ch, purpose); cs != nil {
		return cs
	}
	cs := &pb.ConsentState{Channel: ch, Purpose: purpose}
	ss.Consents = append(ss.Consents, cs)
	slices.SortFunc(ss.Consents, func(a, b *pb.ConsentState) int {
		return cmp.Or(cmp.Compare(a.Channel, b.Channel), strings.Compare(a.Purpose, b.Purpose))
	})
	return cs
}

// ChannelName returns the lowercase name of a channel: "whatsapp", "sms", "rcs", "email".
func ChannelName(c pb.Channel) string {
	return strings.ToLower(strings.TrimPrefix(c.String(), "CHANNEL_"))
}
