package state

import (
	"slices"
	"strings"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// State is the fold of a log prefix in memory: every subject's consent
// state and last allowed sends, the breaches and the policy in force. Its
// zero value is not usable; call [New].
type State struct {
	subjects    map[string]*pb.SubjectState
	lastSends   map[sendKey]*pb.EntryRef
	subjectLast map[string]*pb.EntryRef
	breaches    map[string]*pb.BreachState
	policy      *pb.PolicyState
	seen        map[string]bool // subjects with an entry: the ledger's subject table has their row
}

type sendKey struct {
	subject string
	channel pb.Channel
	purpose string
}

// New returns the state of the empty log.
func New() *State {
	return &State{
		subjects: map[string]*pb.SubjectState{}, lastSends: map[sendKey]*pb.EntryRef{},
		subjectLast: map[string]*pb.EntryRef{}, breaches: map[string]*pb.BreachState{}, seen: map[string]bool{},
	}
}

// Apply folds the entry e, sequenced as ref, into the state, exactly as the
// ledger's state index does. It never fails: an event that names a breach
// that does not exist changes nothing (the audit reports it).
func (s *State) Apply(e *pb.Entry, ref *pb.EntryRef) {
	if id := e.GetSubjectId(); id != "" {
		s.seen[id] = true
		if d := e.GetSendDecision(); d != nil {
			if d.Allow {
				s.lastSends[sendKey{id, d.GetRequest().GetChannel(), d.GetRequest().GetPurpose()}] = ref
				s.subjectLast[id] = ref
			}
		} else if IsConsentEvent(e) {
			s.subjects[id] = ApplyConsent(s.subjects[id], e, ref)
		}
	}
	switch ev := e.GetEvent().(type) {
	case *pb.Entry_PolicyPublished:
		s.policy = ApplyPolicy(ev.PolicyPublished, ref)
	case *pb.Entry_BreachDetected, *pb.Entry_BreachAuthorityNotified, *pb.Entry_BreachSubjectsNotified, *pb.Entry_BreachClosed,
		*pb.Entry_BreachAssessed, *pb.Entry_BreachStepCompleted:
		id := BreachID(e)
		if b := ApplyBreach(s.breaches[id], e, ref); b != nil {
			s.breaches[id] = b
		}
	}
}

// Subject returns a copy of the subject's consent state with each
// consent's last allowed send and the subject's, as the ledger's
// LookupSubject returns it;
// nil if the subject has no consent event.
func (s *State) Subject(id string) *pb.SubjectState {
	st := WithLastSends(s.subjects[id], func(ch pb.Channel, purpose string) *pb.EntryRef {
		return s.lastSends[sendKey{id, ch, purpose}]
	})
	if st != nil {
		st.LastAllowedSend = s.subjectLast[id]
	}
	return st
}

// Known reports whether the ledger knew the subject before the next entry:
// it has an entry (a consent event or a decision) and was not erased. This
// is the input's subject.known (the ledger's subject table has a row).
func (s *State) Known(id string) bool { return s.seen[id] && !s.subjects[id].GetErased() }

// LastAllowedSend returns the subject's last allowed send decision on any
// channel, or nil.
func (s *State) LastAllowedSend(id string) *pb.EntryRef { return s.subjectLast[id] }

// OpenBreaches returns the open breaches in order of breach_id, as the
// ledger lists them.
func (s *State) OpenBreaches() []*pb.BreachState {
	var out []*pb.BreachState
	for _, b := range s.breaches {
		if b.Status == BreachOpen {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b *pb.BreachState) int { return strings.Compare(a.BreachId, b.BreachId) })
	return out
}

// Breach returns the state of one breach, or nil.
func (s *State) Breach(id string) *pb.BreachState { return s.breaches[id] }

// Policy returns the policy in force, or nil before the first publication.
func (s *State) Policy() *pb.PolicyState { return s.policy }
