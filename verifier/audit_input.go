package verifier

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/consentledger/consentledger/ledger/state"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// derived checks decision i against the state the log derives up to it:
// its recorded input, its time and the consent entries it relies on.
func (s *scanner) derived(i uint64, e *pb.Entry, d *pb.SendDecision) {
	if d.GetRequest().GetSubjectCountry() != "" {
		s.mu.Lock()
		s.unproven++
		s.mu.Unlock()
	}
	st := s.st.Subject(e.SubjectId)
	var want []uint64
	for _, r := range state.ReliedOn(d.Allow, d.Request, st) {
		want = append(want, r.Index)
	}
	if !slices.Equal(d.ConsentIndexes, want) {
		s.find(AuditSubjects, i, fmtIndexes(d.ConsentIndexes), fmtIndexes(want),
			"the decision's consent entries are not the subject's grant (and confirmation) for %s/%s in force at the decision, with no withdrawal since",
			channelName(d.GetRequest().GetChannel()), state.ConsentPurpose(d.Request))
	}
	if !state.KnownInputVersion(d.InputVersion) {
		s.find(AuditInput, i, fmt.Sprint(d.InputVersion), fmt.Sprint(state.InputVersion),
			"the decision names an input derivation this verifier does not know: use a newer consentverify")
		return
	}
	now, err := recordedNow(d.Input)
	if err != nil {
		s.find(AuditInput, i, "", "", "the recorded input cannot be derived: %v", err)
		return
	}
	if got, want, problem := nowProblem(now, timeOf(e.RecordedAt)); problem != "" {
		s.find(AuditInput, i, got, want, "%s", problem)
	}
	known, open := s.st.Known(e.SubjectId), s.st.OpenBreaches()
	derived := policies.AppendJSON(make([]byte, 0, len(d.Input)), state.InputOf(d.InputVersion, now, d.Request, known, st, open).Value())
	if bytes.Equal(derived, d.Input) {
		return
	}
	// Decisions recorded before input_version existed said subject.known
	// in two ways for a subject with decisions but no consent event (the
	// default policy never reads it): either is accepted.
	if d.InputVersion == 0 && st == nil {
		other := policies.AppendJSON(nil, state.InputOf(d.InputVersion, now, d.Request, !known, st, open).Value())
		if bytes.Equal(other, d.Input) {
			return
		}
	}
	if path, got, want, differ := firstDifference(d.Input, derived); differ {
		s.find(AuditInput, i, got, want,
			"the recorded input is not the one the log derives (consent state, last allowed sends, open breaches, request): %s differs", path)
	}
}

func fmtIndexes(ix []uint64) string {
	if len(ix) == 0 {
		return "none"
	}
	var b bytes.Buffer
	for k, i := range ix {
		if k > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "#%d", i)
	}
	return b.String()
}
