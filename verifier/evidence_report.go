package verifier

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Outcomes of an evidence verification.
const (
	// OutcomeConsent: all six checks hold; the bundle proves that consent
	// existed when the send was decided.
	OutcomeConsent = "consent_proven"
	// OutcomeDenial: checks 1, 2, 5 and 6 hold for a denied send; the bundle
	// proves that the denial was recorded as the policy made it.
	OutcomeDenial = "recorded_denial"
	// OutcomeFailed: a check failed; the bundle proves nothing.
	OutcomeFailed = "not_verified"
)

// Statuses of one check in a report.
const (
	StatusPassed  = "passed"
	StatusFailed  = "failed"
	StatusSkipped = "not_applicable"
	StatusNotRun  = "not_checked"
)

// EvidenceReport is the result of [VerifyEvidence], for people ([Text]) and
// machines (JSON). Facts about entries (Decision, Chain, Grant, Policy) are
// filled in only once check 2 has shown the entries authentic.
type EvidenceReport struct {
	Verified bool   `json:"verified"`
	Outcome  string `json:"outcome"` // OutcomeConsent, OutcomeDenial or OutcomeFailed
	// Summary says in one paragraph what the bundle proves, or why it
	// proves nothing.
	Summary string        `json:"summary"`
	Checks  []CheckResult `json:"checks"`
	// Failure is the first failed check, nil when verified.
	Failure *CheckError `json:"failure,omitempty"`

	Checkpoint *Checkpoint    `json:"checkpoint,omitempty"`
	Entries    []uint64       `json:"entries,omitempty"` // indexes of the entries proven included
	Decision   *DecisionFacts `json:"decision,omitempty"`
	Chain      []ChainEvent   `json:"chain,omitempty"`
	Grant      *GrantFacts    `json:"grant,omitempty"`
	Policy     *PolicyFacts   `json:"policy,omitempty"`
	// Witness is the witness check, when witness keys were pinned.
	Witness *WitnessReport `json:"witness,omitempty"`
	// NotProven says in plain words which facts the decision relied on that
	// this bundle cannot prove on its own (check 6): what only the audit
	// of the whole log proves, what nothing in the log shows, and what a
	// bundle written before check 6 existed does not show.
	NotProven []string `json:"not_proven,omitempty"`
	// Notice is the privacy notice the grant names, from bundle field 5
	//; NoticeNote says why there is none.
	Notice     *NoticeFacts `json:"notice,omitempty"`
	NoticeNote string       `json:"notice_note,omitempty"`
}

// CheckResult is the state of one of the six checks.
type CheckResult struct {
	Check  int    `json:"check,omitempty"` // 1 to 6 for evidence; 0 for an audit's named checks
	Name   string `json:"name"`
	Status string `json:"status"` // StatusPassed, StatusFailed, StatusSkipped or StatusNotRun
	Detail string `json:"detail"`
}

// DecisionFacts are the verified facts of the send decision.
type DecisionFacts struct {
	Index            uint64    `json:"index"`
	RecordedAt       time.Time `json:"recorded_at"`
	SubjectID        string    `json:"subject_id"`
	Actor            string    `json:"actor"`
	Channel          string    `json:"channel"`
	Purpose          string    `json:"purpose"`
	ConsentPurpose   string    `json:"consent_purpose"`
	Category         string    `json:"category,omitempty"`
	Provider         string    `json:"provider,omitempty"`
	ProviderRegion   string    `json:"provider_region,omitempty"`
	SubjectTimezone  string    `json:"subject_timezone,omitempty"`
	MessageRef       string    `json:"message_ref,omitempty"`
	Allow            bool      `json:"allow"`
	Reasons          []string  `json:"reasons"`
	PolicyIndex      uint64    `json:"policy_index"`
	PolicyDigest     string    `json:"policy_digest"`
	ConsentIndexes   []uint64  `json:"consent_indexes,omitempty"`
	ConsentHeadIndex *uint64   `json:"consent_head_index,omitempty"`
	channel          pb.Channel
}

// ChainEvent is one verified event of the consent chain.
type ChainEvent struct {
	Index       uint64    `json:"index"`
	Kind        string    `json:"kind"`
	Description string    `json:"description"`
	RecordedAt  time.Time `json:"recorded_at"`
}

// GrantFacts are the verified facts of the opt-in a decision relied on.
type GrantFacts struct {
	Index         uint64     `json:"index"`
	RecordedAt    time.Time  `json:"recorded_at"`
	OccurredAt    *time.Time `json:"occurred_at,omitempty"`
	Channel       string     `json:"channel"`
	Purposes      []string   `json:"purposes"`
	Method        string     `json:"method"`
	NoticeVersion string     `json:"notice_version"`
	// DoubleOptIn is true when the chain shows a double opt-in confirmation
	// (in the grant itself or a later ConsentConfirmed), at ConfirmedAt by
	// entry ConfirmedBy.
	DoubleOptIn bool       `json:"double_opt_in"`
	ConfirmedAt *time.Time `json:"confirmed_at,omitempty"`
	ConfirmedBy *uint64    `json:"confirmed_by,omitempty"`
	// DoubleOptInDemanded is true when the decision relied on a double
	// opt-in (a double_opt_in: reason, or the recorded input says so).
	DoubleOptInDemanded bool `json:"double_opt_in_demanded"`
}

// PolicyFacts are the verified facts of the policy entry.
type PolicyFacts struct {
	Index      uint64    `json:"index"`
	RecordedAt time.Time `json:"recorded_at"`
	Digest     string    `json:"digest"`
	Note       string    `json:"note,omitempty"`
	Files      []string  `json:"files"`
}

// MarshalJSON writes a CheckError as the report's failure object.
func (e *CheckError) MarshalJSON() ([]byte, error) {
	type failure struct {
		Check   int     `json:"check"`
		Name    string  `json:"name"`
		Index   *uint64 `json:"index,omitempty"`
		Message string  `json:"message"`
		Got     string  `json:"got,omitempty"`
		Want    string  `json:"want,omitempty"`
		Error   string  `json:"error"`
	}
	f := failure{Check: e.Check, Name: e.Name, Message: e.Message, Got: e.Got, Want: e.Want, Error: e.Error()}
	if e.HasIndex {
		f.Index = &e.Index
	}
	return marshalJSON(f)
}

func newEvidenceReport() *EvidenceReport {
	r := &EvidenceReport{Outcome: OutcomeFailed}
	for n := CheckSignature; n <= CheckInput; n++ {
		r.Checks = append(r.Checks, CheckResult{Check: n, Name: CheckName(n), Status: StatusNotRun, Detail: "Not checked: an earlier check failed."})
	}
	return r
}

func (r *EvidenceReport) pass(n int, format string, args ...any) {
	r.Checks[n-1].Status, r.Checks[n-1].Detail = StatusPassed, fmt.Sprintf(format, args...)
}

func (r *EvidenceReport) skip(n int, detail string) {
	r.Checks[n-1].Status, r.Checks[n-1].Detail = StatusSkipped, detail
}

// finish records the outcome and writes the summary.
func (r *EvidenceReport) finish(err error) {
	var ce *CheckError
	if err != nil {
		r.Verified, r.Outcome = false, OutcomeFailed
		if errors.As(err, &ce) {
			r.Failure = ce
			r.Checks[ce.Check-1].Status = StatusFailed
			r.Checks[ce.Check-1].Detail = capitalize(ce.inWords())
		}
		r.Summary = r.failureSummary(ce, err)
		return
	}
	r.Verified = true
	d := r.Decision
	noun, verb := countEntries(len(r.Entries))
	entries := fmt.Sprintf("%s %s in the checkpoint of size %d (root %s) signed by %s",
		noun, verb, r.Checkpoint.Size, shortHex(r.Checkpoint.Root), r.Checkpoint.KeyName)
	switch r.Outcome {
	case OutcomeConsent:
		g := r.Grant
		granted := g.RecordedAt
		if g.OccurredAt != nil {
			granted = *g.OccurredAt
		}
		method := g.Method
		if method == "" {
			method = "an unstated method"
		}
		var details []string
		if g.NoticeVersion != "" {
			details = append(details, "privacy notice "+g.NoticeVersion)
		}
		switch {
		case g.ConfirmedAt != nil && g.ConfirmedBy != nil && *g.ConfirmedBy != g.Index:
			details = append(details, fmt.Sprintf("double opt-in confirmed on %s, entry #%d", g.ConfirmedAt.Format(dayLayout), *g.ConfirmedBy))
		case g.ConfirmedAt != nil:
			details = append(details, "double opt-in confirmed at the opt-in")
		default:
			details = append(details, "without double opt-in")
		}
		r.Summary = fmt.Sprintf("Consent for %s %s was granted on %s by %s (%s), entry #%d, and had not been withdrawn when send decision #%d was made on %s; policy %s (entry #%d) allowed it; %s.",
			channelTitle(d.channel), d.ConsentPurpose, granted.Format(dayLayout), method, strings.Join(details, ", "), g.Index,
			d.Index, fmtGoTime(d.RecordedAt), d.PolicyDigest, d.PolicyIndex, entries)
	case OutcomeDenial:
		r.Summary = fmt.Sprintf("Send decision #%d (%s %s, made on %s) was a denial, recorded as the policy made it: policy %s (entry #%d) denied it (%s), and replaying the recorded input gives the same denial; %s. This bundle proves the denial, not any consent.",
			d.Index, channelTitle(d.channel), d.Purpose, fmtGoTime(d.RecordedAt), d.PolicyDigest, d.PolicyIndex, reasonCodes(d.Reasons), entries)
	}
}

func (r *EvidenceReport) failureSummary(ce *CheckError, err error) string {
	if ce == nil {
		return "The bundle could not be verified: " + err.Error() + "."
	}
	s := fmt.Sprintf("The bundle proves nothing: %s.", ce.headline())
	if ce.Check == CheckGrant && r.Decision != nil && len(r.Decision.ConsentIndexes) == 0 && r.Decision.Allow {
		s = fmt.Sprintf("Send decision #%d is authentic (signed and included in the log), but it is NOT a proof of consent: it was allowed without relying on any opt-in for %s/%s. The policy's grounds were: %s.",
			r.Decision.Index, r.Decision.Channel, r.Decision.ConsentPurpose, strings.Join(r.Decision.Reasons, "; "))
	}
	return s
}

// countEntries says "the entry", "both entries" or "all 5 entries", and
// the verb that goes with it.
func countEntries(n int) (string, string) {
	switch n {
	case 1:
		return "the entry", "is"
	case 2:
		return "both entries", "are"
	}
	return fmt.Sprintf("all %d entries", n), "are"
}

// shortHex abbreviates a hash for sentences: the first 16 hex digits.
func shortHex(h []byte) string {
	s := hex.EncodeToString(h)
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// inWords is the failure as a sentence for the check list.
func (e *CheckError) inWords() string {
	s := e.Message
	if e.HasIndex && !strings.Contains(s, fmt.Sprintf("#%d", e.Index)) {
		s = fmt.Sprintf("entry #%d: %s", e.Index, s)
	}
	return s + "."
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// reasonCodes lists the codes of "code: sentence" reasons.
func reasonCodes(reasons []string) string {
	codes := make([]string, len(reasons))
	for i, r := range reasons {
		code, _, _ := strings.Cut(r, ":")
		codes[i] = code
	}
	if len(codes) == 0 {
		return "no reasons given"
	}
	return strings.Join(codes, ", ")
}

func decisionFacts(p *proven, d *pb.SendDecision) *DecisionFacts {
	req := d.Request
	f := &DecisionFacts{
		Index: p.index, RecordedAt: timeOf(p.e.RecordedAt).UTC(), SubjectID: p.e.SubjectId, Actor: p.e.Actor,
		Channel: channelName(req.Channel), Purpose: req.Purpose, ConsentPurpose: consentPurpose(req), Category: req.Category,
		Provider: req.GetProvider().GetName(), ProviderRegion: req.GetProvider().GetRegion(), SubjectTimezone: req.SubjectTimezone,
		MessageRef: req.MessageRef, Allow: d.Allow, Reasons: d.Reasons, PolicyIndex: d.PolicyIndex, PolicyDigest: d.PolicyDigest,
		ConsentIndexes: d.ConsentIndexes, ConsentHeadIndex: p.e.ConsentHeadIndex, channel: req.Channel,
	}
	if f.Reasons == nil {
		f.Reasons = []string{}
	}
	return f
}

func chainEvent(p *proven) ChainEvent {
	return ChainEvent{Index: p.index, Kind: eventKind(p.e), Description: describeEvent(p.e), RecordedAt: timeOf(p.e.RecordedAt).UTC()}
}

func policyFacts(p *proven, pp *pb.PolicyPublished) *PolicyFacts {
	f := &PolicyFacts{Index: p.index, RecordedAt: timeOf(p.e.RecordedAt).UTC(), Digest: pp.Digest, Note: pp.Note, Files: []string{}}
	for _, file := range pp.Files {
		f.Files = append(f.Files, file.GetName())
	}
	return f
}

// Text returns the report for people: the verdict, the summary, each check
// with ✓ (passed), ✗ (failed), – (not applicable) or · (not checked), and
// the verified facts.
func (r *EvidenceReport) Text() string {
	var b strings.Builder
	switch {
	case r.Witness != nil && r.Witness.Failure != "":
		b.WriteString("NOT VERIFIED: the witness check failed\n\n")
	case r.Verified && r.Outcome == OutcomeConsent:
		fmt.Fprintf(&b, "VERIFIED: proof of consent for send decision #%d\n\n", r.Decision.Index)
	case r.Verified:
		fmt.Fprintf(&b, "VERIFIED: recorded denial, send decision #%d\n\n", r.Decision.Index)
	case r.Failure != nil:
		fmt.Fprintf(&b, "NOT VERIFIED: check %d (%s) failed\n\n", r.Failure.Check, r.Failure.Name)
	default:
		b.WriteString("NOT VERIFIED\n\n")
	}
	b.WriteString(wrap(r.Summary, 78, 0, ""))
	if f := r.Failure; f != nil && (f.Got != "" || f.Want != "") {
		fmt.Fprintf(&b, "  computed: %s\n  expected: %s\n", orNone(f.Got), orNone(f.Want))
	}
	b.WriteString("\nChecks:\n")
	for _, c := range r.Checks {
		mark := map[string]string{StatusPassed: "✓", StatusFailed: "✗", StatusSkipped: "–", StatusNotRun: "·"}[c.Status]
		head := fmt.Sprintf("  %s %d %-10s ", mark, c.Check, c.Name)
		b.WriteString(head)
		b.WriteString(wrap(c.Detail, 78, len([]rune(head)), strings.Repeat(" ", len([]rune(head)))))
	}
	if len(r.NotProven) > 0 {
		b.WriteString("\nWhat this bundle cannot prove on its own:\n")
		for _, n := range r.NotProven {
			b.WriteString("  - " + wrap(n, 78, 4, "    "))
		}
	}
	if d := r.Decision; d != nil {
		verdict := "deny"
		if d.Allow {
			verdict = "allow"
		}
		fmt.Fprintf(&b, "\nSend decision #%d, recorded %s by %s\n", d.Index, fmtGoTime(d.RecordedAt), orNone(d.Actor))
		req := fmt.Sprintf("%s/%s", d.Channel, d.Purpose)
		if d.Category != "" {
			req += ", category " + d.Category
		}
		if d.Provider != "" || d.ProviderRegion != "" {
			req += fmt.Sprintf(", provider %s (%s)", orNone(d.Provider), orNone(d.ProviderRegion))
		}
		if d.SubjectTimezone != "" {
			req += ", zone " + d.SubjectTimezone
		}
		if d.MessageRef != "" {
			req += ", message " + d.MessageRef
		}
		fmt.Fprintf(&b, "  request:  %s\n", req)
		fmt.Fprintf(&b, "  subject:  %s (pseudonymous)\n", orNone(d.SubjectID))
		fmt.Fprintf(&b, "  result:   %s\n", verdict)
		for i, reason := range d.Reasons {
			label := "  reasons:  "
			if i > 0 {
				label = "            "
			}
			b.WriteString(label + reason + "\n")
		}
	}
	if len(r.Chain) > 0 {
		b.WriteString("\nConsent chain, oldest first:\n")
		for _, c := range r.Chain {
			fmt.Fprintf(&b, "  #%-6d %s  %s\n", c.Index, fmtGoTime(c.RecordedAt), c.Description)
		}
	}
	b.WriteString(r.noticeText())
	if p := r.Policy; p != nil {
		fmt.Fprintf(&b, "\nPolicy #%d, published %s: %s\n", p.Index, fmtGoTime(p.RecordedAt), p.Digest)
		if p.Note != "" {
			fmt.Fprintf(&b, "  note:  %s\n", p.Note)
		}
		fmt.Fprintf(&b, "  files: %s\n", strings.Join(p.Files, ", "))
	}
	if cp := r.Checkpoint; cp != nil {
		fmt.Fprintf(&b, "\nCheckpoint: %s, size %d, root %s\n  signed by the pinned key %s+%s", cp.Origin, cp.Size, cp.RootHex(), cp.KeyName, cp.KeyHash)
		if len(cp.Cosigners) > 0 {
			fmt.Fprintf(&b, "; also signed by (not verified) %s", strings.Join(cp.Cosigners, ", "))
		}
		b.WriteString("\n")
	}
	if r.Witness != nil {
		b.WriteString(r.Witness.Text("this decision"))
	}
	return EscapeControls(b.String())
}

// wrap breaks text into lines of at most width runes, the first starting
// at column col (longer words stand alone); lines after the first are
// indented by indent. The result ends in a newline.
func wrap(text string, width, col int, indent string) string {
	var b strings.Builder
	start := col
	for _, w := range strings.Fields(text) {
		n := len([]rune(w))
		switch {
		case col > start && col+1+n > width:
			b.WriteString("\n" + indent)
			col = len([]rune(indent))
			start = col
		case col > start:
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += n
	}
	b.WriteString("\n")
	return b.String()
}

// marshalJSON encodes v without escaping <, > and &.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
