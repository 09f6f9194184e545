package ledger

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/consentledger/consentledger/ledger/state"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Consent statuses in the state index (package state defines them).
const (
	StatusGranted   = state.StatusGranted
	StatusWithdrawn = state.StatusWithdrawn
	StatusErased    = state.StatusErased
)

// Scopes of a ConsentWithdrawn entry (package state defines them).
const (
	ScopeChannel      = state.ScopeChannel
	ScopeAllMarketing = state.ScopeAllMarketing
)

// Breach statuses in the state index (package state defines them).
const (
	BreachOpen   = state.BreachOpen
	BreachClosed = state.BreachClosed
)

// stateWriter is where applyEntry reads and writes the state index: the
// sequencer's overlay, or RebuildState's. It is the storage glue around the
// pure fold of package state.
type stateWriter struct {
	o       *overlay
	batchNo uint64
}

func (w stateWriter) subject(id string) (*pb.SubjectState, error) {
	return getOverlay(w.o, subjectKey(id), new(pb.SubjectState), "state of subject "+id)
}

func (w stateWriter) breach(id string) (*pb.BreachState, error) {
	return getOverlay(w.o, breachKey(id), new(pb.BreachState), "state of breach "+id)
}

// ref reads the EntryRef record at key (nil if absent).
func (w stateWriter) ref(key []byte) (*pb.EntryRef, error) {
	return getOverlay(w.o, key, new(pb.EntryRef), "state record")
}

// policy reads the active policy's record (nil if none).
func (w stateWriter) policy() (*pb.PolicyState, error) {
	return getOverlay(w.o, policyKey, new(pb.PolicyState), "active policy")
}

func getOverlay[M proto.Message](o *overlay, key []byte, m M, what string) (M, error) {
	var zero M
	b, ok, err := o.get(key)
	if err != nil || !ok {
		return zero, err
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return zero, fmt.Errorf("decode %s: %w", what, err)
	}
	return m, nil
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
func isConsentEvent(e *pb.Entry) bool { return state.IsConsentEvent(e) }

// checkAgainstState refuses an entry that the state does not allow. It runs
// in the sequencer before the entry is sequenced; ss is the subject's state
// (nil if none).
func checkAgainstState(w stateWriter, e *pb.Entry, ss *pb.SubjectState) error {
	switch ev := e.Event.(type) {
	case *pb.Entry_ConsentConfirmed:
		c := ev.ConsentConfirmed
		if p, missing := state.Unconfirmable(ss, c); missing {
			return fmt.Errorf("%w: there is no active opt-in for %s/%s to confirm; record the opt-in first", ErrPrecondition, ChannelName(c.Channel), p)
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
		id := state.BreachID(e)
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

// applyEntry updates the state index for a sequenced entry with the pure
// fold of package state: the sequencer and RebuildState both call it, so the
// index rebuilt from the entries equals the live one, and the verifier
// derives the same state with the same functions.
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
		return w.put(policyKey, state.ApplyPolicy(ev.PolicyPublished, ref))
	case *pb.Entry_BreachDetected, *pb.Entry_BreachAuthorityNotified, *pb.Entry_BreachSubjectsNotified, *pb.Entry_BreachClosed,
		*pb.Entry_BreachAssessed, *pb.Entry_BreachStepCompleted:
		id := state.BreachID(e)
		b, err := w.breach(id)
		if err != nil {
			return err
		}
		if b = state.ApplyBreach(b, e, ref); b == nil {
			return fmt.Errorf("entry %d: no breach %q", ref.Index, id)
		}
		if err := w.put(breachKey(id), b); err != nil {
			return err
		}
		// Any breach event may change the open breaches a decision's input lists.
		return w.put(breachEpochKey, ref)
	}
	return applyRule2(w, e, ref)
}

func applySubject(w stateWriter, e *pb.Entry, ref *pb.EntryRef) error {
	// A send decision changes no consent and no head: an allowed one only
	// records the last allowed send, in small records of its own, so that
	// the most frequent entry does not rewrite the subject's state.
	if d := e.GetSendDecision(); d != nil {
		if d.Allow {
			if err := w.put(lastSendKey(e.SubjectId, d.Request.GetChannel(), d.Request.GetPurpose()), ref); err != nil {
				return err
			}
			return w.put(subjectLastSendKey(e.SubjectId), ref)
		}
		return nil
	}
	if !isConsentEvent(e) {
		return nil
	}
	ss, err := w.subject(e.SubjectId)
	if err != nil {
		return err
	}
	return w.put(subjectKey(e.SubjectId), state.ApplyConsent(ss, e, ref))
}

// ChannelName returns the lowercase name of a channel: "whatsapp", "sms", "rcs", "email".
func ChannelName(c pb.Channel) string { return state.ChannelName(c) }
