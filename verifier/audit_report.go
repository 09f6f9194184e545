package verifier

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/consentledger/consentledger/ledger/state"
)

// AuditReport is the result of [Audit], for people ([AuditReport.Text])
// and machines (JSON).
type AuditReport struct {
	// Verified is true when the audit found nothing.
	Verified   bool        `json:"verified"`
	Checkpoint *Checkpoint `json:"checkpoint"`
	Entries    uint64      `json:"entries"`
	FirstTime  time.Time   `json:"first_recorded_at"`
	LastTime   time.Time   `json:"last_recorded_at"`
	// Kinds counts the entries by event, e.g. "send_decision".
	Kinds          []KindCount    `json:"kinds"`
	Subjects       int            `json:"subjects"`
	ErasedSubjects int            `json:"erased_subjects"`
	Policies       int            `json:"policies"`
	Allowed        uint64         `json:"decisions_allowed"`
	Denied         uint64         `json:"decisions_denied"`
	Replayed       uint64         `json:"decisions_replayed"`
	Breaches       []BreachStatus `json:"breaches"`
	Checks         []CheckResult  `json:"checks"`
	// Unproven says, in plain words, what the log cannot show: each
	// decision's subject.country comes from a phone number the log never
	// holds (only `consentledger subject reveal` and the commitment show it).
	Unproven []string `json:"unproven"`
	// Findings lists at most MaxFindings findings, by index; FindingsTotal
	// counts them all. FirstBadIndex is the lowest index with a finding.
	Findings      []Finding `json:"findings"`
	FindingsTotal int       `json:"findings_total"`
	FirstBadIndex *uint64   `json:"first_bad_index,omitempty"`
	// Witness is the witness check, with pinned witness keys (README.md: Witnesses).
	Witness *WitnessReport `json:"witness,omitempty"`
}

// KindCount is the number of entries of one event kind.
type KindCount struct {
	Kind  string `json:"kind"`
	Count uint64 `json:"count"`
}

func (s *scanner) auditReport() *AuditReport {
	r := &AuditReport{
		Verified: s.total == 0, Checkpoint: s.cp, Entries: s.n, FirstTime: s.firstTime.UTC(), LastTime: s.prevTime.UTC(),
		Subjects: len(s.subjects), ErasedSubjects: s.erased, Policies: len(s.policies),
		Allowed: s.decisions.allowed, Denied: s.decisions.denied, Replayed: s.replayed,
		Breaches: s.breachList(), Findings: s.findings, FindingsTotal: s.total,
	}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	for k, n := range s.kinds {
		r.Kinds = append(r.Kinds, KindCount{k, n})
	}
	slices.SortFunc(r.Kinds, func(a, b KindCount) int { return strings.Compare(a.Kind, b.Kind) })
	for _, f := range s.findings {
		if f.HasIndex {
			i := f.Index
			r.FirstBadIndex = &i
			break
		}
	}
	failed := map[string]int{}
	for _, f := range s.findings {
		failed[f.Check]++
	}
	decisions := r.Allowed + r.Denied
	consentEvents := uint64(0)
	for _, k := range []string{"consent_granted", "consent_confirmed", "consent_withdrawn", "subject_erased"} {
		consentEvents += s.kinds[k]
	}
	details := map[string]string{
		AuditSignature: fmt.Sprintf("The checkpoint of size %d (root %s) is signed by the pinned key %s+%s.", s.cp.Size, shortHex(s.cp.Root), s.cp.KeyName, s.cp.KeyHash),
		AuditEntry:     fmt.Sprintf("All %d entries decode and record an event.", s.n),
		AuditIndex:     "Every entry's index field is its position in the log.",
		AuditHashChain: "Every entry's prev_hash is the leaf hash of the entry before it (32 zero bytes for entry 0).",
		AuditTimeOrder: fmt.Sprintf("recorded_at never decreases, from %s to %s.", fmtGoTime(r.FirstTime), fmtGoTime(r.LastTime)),
		AuditRoot:      fmt.Sprintf("The %d entries hash to the checkpoint's root, and their count is its size.", s.n),
		AuditSubjects: fmt.Sprintf("%d subjects with consent events (%d erased), %d consent events: every chain is linear and complete, and each of the %d decisions names its subject's latest consent event.",
			r.Subjects, r.ErasedSubjects, consentEvents, decisions),
		AuditPolicies: fmt.Sprintf("%d policies: every digest recomputes from its files, and every decision names the policy in force (the latest published before it) with its digest.", r.Policies),
		AuditInput:    fmt.Sprintf("Every decision's recorded input is the one derived from the log before it (consent state on every channel, last allowed sends, open breaches, the recorded request), its now within %s before recorded_at; allowed decisions rely on the grant in force.", state.MaxInputLag),
		AuditReplay: fmt.Sprintf("%d decisions (%d allowed, %d denied) replayed with their policies: every result is the recorded one.",
			decisions, r.Allowed, r.Denied),
		AuditBreaches: fmt.Sprintf("%d breaches: each notified to the authority within 72 hours, or late with a reason, or not yet due.", len(r.Breaches)),
	}
	r.Unproven = []string{}
	if s.unproven > 0 {
		r.Unproven = append(r.Unproven, fmt.Sprintf("subject.country in %s: it comes from the phone number, which the log never holds; only `consentledger subject reveal` and the subject commitment show it.", plural(int(s.unproven), "decision")))
	}
	for _, c := range auditChecks {
		res := CheckResult{Name: c, Status: StatusPassed, Detail: details[c]}
		if n := failed[c]; n > 0 {
			res.Status = StatusFailed
			res.Detail = plural(n, "finding") + "."
		}
		r.Checks = append(r.Checks, res)
	}
	return r
}

// Text returns the report for people.
func (r *AuditReport) Text() string {
	var b strings.Builder
	if r.Verified {
		fmt.Fprintf(&b, "VERIFIED: the log %s, %d entries, checkpoint root %s\n\n", r.Checkpoint.Origin, r.Entries, r.Checkpoint.RootHex())
	} else {
		first := "the log as a whole"
		if r.FirstBadIndex != nil {
			first = fmt.Sprintf("entry #%d", *r.FirstBadIndex)
		}
		fmt.Fprintf(&b, "NOT VERIFIED: the log %s, %d entries: %s; the first bad index is %s\n\n", r.Checkpoint.Origin, r.Entries, plural(r.FindingsTotal, "finding"), first)
	}
	b.WriteString("Checks:\n")
	for _, c := range r.Checks {
		mark := "✓"
		if c.Status == StatusFailed {
			mark = "✗"
		}
		head := fmt.Sprintf("  %s %-14s ", mark, c.Name)
		b.WriteString(head + wrap(c.Detail, 78, len([]rune(head)), strings.Repeat(" ", len([]rune(head)))))
	}
	b.WriteString("\nEntries by kind:\n")
	for _, k := range r.Kinds {
		fmt.Fprintf(&b, "  %-26s %d\n", k.Kind, k.Count)
	}
	if len(r.Breaches) > 0 {
		b.WriteString("\nBreaches (GDPR Art. 33):\n")
		for _, br := range r.Breaches {
			fmt.Fprintf(&b, "  %-22s detected %s, deadline %s: %s\n", br.BreachID, fmtGoTime(br.DetectedAt), fmtGoTime(br.Deadline), strings.ReplaceAll(br.Timeliness, "_", " "))
		}
	}
	if r.Witness != nil {
		b.WriteString(r.Witness.Text(fmt.Sprintf("entries #0 to #%d", max(r.Witness.Size, 1)-1)))
	}
	if len(r.Unproven) > 0 {
		b.WriteString("\nNot proven by the log:\n")
		for _, u := range r.Unproven {
			b.WriteString("  " + wrap(u, 78, 2, "  "))
		}
	}
	writeFindings(&b, r.Findings, r.FindingsTotal)
	return EscapeControls(b.String())
}

// plural writes "1 finding", "2 findings".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
