package verifier

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Timeliness of a breach's notification to the supervisory authority
// (GDPR Art. 33(1)), as of the last entry of the log.
const (
	NotifiedInTime       = "in_time"             // first notification within 72 h of detection
	NotifiedLateReason   = "late_with_reason"    // later, with the reasons for the delay
	NotifiedLateNoReason = "late_without_reason" // later, without a reason: a finding
	NotNotifiedPending   = "pending"             // not notified, the deadline has not passed
	NotNotifiedOverdue   = "overdue"             // not notified, open, the deadline has passed: a finding
	ClosedUnnotified     = "closed_unnotified"   // closed without notifying the authority
	NotifiedBeforeDetect = "before_detection"    // first notification dated before detection: a finding
	NotNotifiable        = "not_notifiable"      // assessed no_risk: documented, not notified (Art. 33(5))
)

// BreachStatus is one breach as the log records it.
type BreachStatus struct {
	BreachID         string    `json:"breach_id"`
	DetectedIndex    uint64    `json:"detected_index"`
	DetectedAt       time.Time `json:"detected_at"`
	Deadline         time.Time `json:"deadline"`
	Description      string    `json:"description"`
	Types            []string  `json:"breach_types,omitempty"`
	Risk             string    `json:"risk,omitempty"`
	Channels         []string  `json:"channels,omitempty"`
	SubjectsEstimate uint64    `json:"subjects_estimate,omitempty"`
	// Notifications to the authority, in log order; the first decides
	// timeliness.
	Notifications []AuthorityNotification `json:"authority_notifications,omitempty"`
	Timeliness    string                  `json:"timeliness"`
	// Delay is how long after the deadline the first notification came
	// (0 when in time or not notified).
	Delay            time.Duration         `json:"delay_ns,omitempty"`
	SubjectsNotified []SubjectNotification `json:"subjects_notified,omitempty"`
	Closed           *BreachClosure        `json:"closed,omitempty"`
	// Assessment is the latest BreachAssessed level ("" when not assessed:
	// treated as notifiable).
	Assessment string `json:"assessment,omitempty"`
	// Processor: reported by a processor, which notifies its controllers
	// (Art. 33(2)); Deadline is then the plan's deadline for that.
	Processor bool `json:"processor,omitempty"`
}

// AuthorityNotification is one BreachAuthorityNotified entry.
type AuthorityNotification struct {
	Index       uint64    `json:"index"`
	Authority   string    `json:"authority"`
	Reference   string    `json:"reference,omitempty"`
	Phase       string    `json:"phase,omitempty"`
	NotifiedAt  time.Time `json:"notified_at"`
	DelayReason string    `json:"delay_reason,omitempty"`
}

// SubjectNotification is one BreachSubjectsNotified entry (Art. 34).
type SubjectNotification struct {
	Index      uint64    `json:"index"`
	NotifiedAt time.Time `json:"notified_at"`
	Method     string    `json:"method,omitempty"`
	Subjects   uint64    `json:"subjects_notified"`
}

// BreachClosure is the BreachClosed entry.
type BreachClosure struct {
	Index    uint64    `json:"index"`
	ClosedAt time.Time `json:"closed_at"`
	Summary  string    `json:"summary,omitempty"`
}

type breachRec = BreachStatus

// BreachReport is the result of [Breaches].
type BreachReport struct {
	// Verified is true when the log verified (signature, hash chain, root,
	// subject chains, policy digests) and no breach is late without a
	// reason or overdue.
	Verified   bool           `json:"verified"`
	Checkpoint *Checkpoint    `json:"checkpoint"`
	Entries    uint64         `json:"entries"`
	AsOf       time.Time      `json:"as_of"` // the last entry's recorded_at
	Breaches   []BreachStatus `json:"breaches"`
	Findings   []Finding      `json:"findings"`
	// FindingsTotal counts every finding; Findings lists at most MaxFindings.
	FindingsTotal int `json:"findings_total"`
}

// Breaches verifies an exported log as [Audit] does, except that it does
// not replay decisions, and reports each personal-data breach: when it was
// detected, its Art. 33 deadline (detected + 72 h), the authority
// notifications, whether the first came in time or late (and why), the
// notification of the subjects, and its closure. The error is as Audit's: a
// breach notified late without a delay reason, or open and unnotified past
// its deadline, is a finding.
func Breaches(ctx context.Context, r io.Reader, vkey string) (*BreachReport, error) {
	s, err := scan(ctx, r, vkey, false, nil, Options{})
	if err != nil {
		return nil, err
	}
	rep := &BreachReport{
		Verified: s.total == 0, Checkpoint: s.cp, Entries: s.n, AsOf: s.prevTime.UTC(),
		Breaches: s.breachList(), Findings: s.findings, FindingsTotal: s.total,
	}
	if rep.Findings == nil {
		rep.Findings = []Finding{}
	}
	return rep, s.err()
}

func (s *scanner) breachList() []BreachStatus {
	out := make([]BreachStatus, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, *s.breaches[id])
	}
	return out
}

// breach records a breach event.
func (s *scanner) breach(i uint64, e *pb.Entry) {
	at := func(t interface{ AsTime() time.Time }, isNil bool) time.Time {
		if isNil {
			return timeOf(e.RecordedAt).UTC()
		}
		return t.AsTime().UTC()
	}
	switch ev := e.Event.(type) {
	case *pb.Entry_BreachDetected:
		d := ev.BreachDetected
		if b := s.breaches[d.BreachId]; b != nil {
			s.find(AuditBreaches, i, "", "", "breach %q was already detected at entry #%d", d.BreachId, b.DetectedIndex)
			return
		}
		if d.DetectedAt == nil {
			s.find(AuditBreaches, i, "", "a detected_at", "breach %q has no detection time; its recording time is used", d.BreachId)
		}
		b := &breachRec{
			BreachID: d.BreachId, DetectedIndex: i, DetectedAt: at(d.DetectedAt, d.DetectedAt == nil), Description: d.Description,
			Types: d.BreachTypes, Risk: d.Risk, SubjectsEstimate: d.SubjectsEstimate,
		}
		b.Deadline = s.breachDeadline(d, b.DetectedAt)
		b.Processor = d.ControllerRole == "processor"
		for _, c := range d.Channels {
			b.Channels = append(b.Channels, channelName(c))
		}
		s.breaches[d.BreachId] = b
		s.order = append(s.order, d.BreachId)
	case *pb.Entry_BreachAuthorityNotified:
		n := ev.BreachAuthorityNotified
		if b := s.knownBreach(i, n.BreachId); b != nil {
			b.Notifications = append(b.Notifications, AuthorityNotification{
				Index: i, Authority: n.Authority, Reference: n.Reference, Phase: n.Phase,
				NotifiedAt: at(n.NotifiedAt, n.NotifiedAt == nil), DelayReason: n.DelayReason,
			})
		}
	case *pb.Entry_BreachSubjectsNotified:
		n := ev.BreachSubjectsNotified
		if b := s.knownBreach(i, n.BreachId); b != nil {
			b.SubjectsNotified = append(b.SubjectsNotified, SubjectNotification{
				Index: i, NotifiedAt: at(n.NotifiedAt, n.NotifiedAt == nil), Method: n.Method, Subjects: n.SubjectsNotified,
			})
		}
	case *pb.Entry_BreachAssessed:
		if b := s.knownBreach(i, ev.BreachAssessed.BreachId); b != nil {
			b.Assessment = ev.BreachAssessed.Level
		}
	case *pb.Entry_BreachClosed:
		c := ev.BreachClosed
		if b := s.knownBreach(i, c.BreachId); b != nil {
			if b.Closed != nil {
				s.find(AuditBreaches, i, "", "", "breach %q was already closed at entry #%d", c.BreachId, b.Closed.Index)
				return
			}
			b.Closed = &BreachClosure{Index: i, ClosedAt: at(c.ClosedAt, c.ClosedAt == nil), Summary: c.Summary}
		}
	}
}

func (s *scanner) knownBreach(i uint64, id string) *breachRec {
	b := s.breaches[id]
	if b == nil {
		s.find(AuditBreaches, i, "", "", "the entry names breach %q, which no earlier entry detected", id)
	}
	return b
}

// negativeIntervals reports every step of a breach dated before its
// detection: notifying or closing a breach precedes awareness of it only
// when a time was falsified or mistyped.
func (s *scanner) negativeIntervals(b *breachRec) {
	check := func(i uint64, what string, at time.Time) {
		if at.Before(b.DetectedAt) {
			s.find(AuditBreaches, i, fmtGoTime(at), "at or after "+fmtGoTime(b.DetectedAt),
				"breach %q: %s is dated %s BEFORE the breach was detected, a negative interval", b.BreachID, what, hours(b.DetectedAt.Sub(at)))
		}
	}
	for _, n := range b.Notifications {
		check(n.Index, "the authority notification", n.NotifiedAt)
	}
	for _, n := range b.SubjectsNotified {
		check(n.Index, "the subjects' notification", n.NotifiedAt)
	}
	if c := b.Closed; c != nil {
		check(c.Index, "the closure", c.ClosedAt)
	}
}

// finishBreaches decides each breach's timeliness as of the last entry.
func (s *scanner) finishBreaches() {
	asOf := s.prevTime
	for _, id := range s.order {
		b := s.breaches[id]
		s.negativeIntervals(b)
		switch {
		case len(b.Notifications) > 0:
			first := b.Notifications[0]
			if first.NotifiedAt.Before(b.DetectedAt) {
				b.Timeliness = NotifiedBeforeDetect
				break
			}
			if !first.NotifiedAt.After(b.Deadline) {
				b.Timeliness = NotifiedInTime
				break
			}
			b.Delay = first.NotifiedAt.Sub(b.Deadline)
			if strings.TrimSpace(first.DelayReason) != "" {
				b.Timeliness = NotifiedLateReason
				break
			}
			b.Timeliness = NotifiedLateNoReason
			s.find(AuditBreaches, first.Index, fmtGoTime(first.NotifiedAt), "by "+fmtGoTime(b.Deadline)+", or a delay reason",
				"breach %q was notified to the authority %s after detection, later than 72 hours, without the reasons for the delay (GDPR Art. 33(1))",
				id, hours(first.NotifiedAt.Sub(b.DetectedAt)))
		case b.Assessment == "no_risk":
			b.Timeliness = NotNotifiable
		case b.Closed != nil:
			b.Timeliness = ClosedUnnotified
		case asOf.After(b.Deadline):
			b.Timeliness = NotNotifiedOverdue
			s.find(AuditBreaches, b.DetectedIndex, "not notified as of "+fmtGoTime(asOf), "notified by "+fmtGoTime(b.Deadline),
				"breach %q is open and was not notified to the authority within 72 hours of its detection (GDPR Art. 33(1))", id)
		default:
			b.Timeliness = NotNotifiedPending
		}
	}
}

// hours formats a duration as "21 h" or "80 h 30 min".
func hours(d time.Duration) string {
	d = d.Round(time.Minute)
	h, m := int64(d/time.Hour), int64((d%time.Hour)/time.Minute)
	if m == 0 {
		return fmt.Sprintf("%d h", h)
	}
	return fmt.Sprintf("%d h %d min", h, m)
}

// Text returns the report for people.
func (r *BreachReport) Text() string {
	var b strings.Builder
	verdict := "VERIFIED"
	if !r.Verified {
		verdict = "NOT VERIFIED"
	}
	fmt.Fprintf(&b, "%s: breaches in the log %s (%d entries, checkpoint root %s), as of its last entry, %s\n",
		verdict, r.Checkpoint.Origin, r.Entries, r.Checkpoint.RootHex(), fmtGoTime(r.AsOf))
	if len(r.Breaches) == 0 {
		b.WriteString("\nThe log records no breach.\n")
	}
	for _, br := range r.Breaches {
		b.WriteString("\n")
		writeBreach(&b, br)
	}
	writeFindings(&b, r.Findings, r.FindingsTotal)
	return EscapeControls(b.String())
}

func writeBreach(b *strings.Builder, br BreachStatus) {
	fmt.Fprintf(b, "Breach %s, detected %s (entry #%d)", br.BreachID, fmtGoTime(br.DetectedAt), br.DetectedIndex)
	var facts []string
	if br.Risk != "" {
		facts = append(facts, "risk "+br.Risk)
	}
	if len(br.Types) > 0 {
		facts = append(facts, strings.Join(br.Types, ", "))
	}
	if len(br.Channels) > 0 {
		facts = append(facts, "channels "+strings.Join(br.Channels, ", "))
	}
	if br.SubjectsEstimate > 0 {
		facts = append(facts, fmt.Sprintf("about %d subjects", br.SubjectsEstimate))
	}
	if len(facts) > 0 {
		fmt.Fprintf(b, ": %s", strings.Join(facts, "; "))
	}
	b.WriteString("\n")
	if br.Description != "" {
		b.WriteString("  what:       " + wrap(br.Description, 78, 14, strings.Repeat(" ", 14)))
	}
	if br.Processor {
		fmt.Fprintf(b, "  deadline:   %s (notify the controllers, GDPR Art. 33(2))\n", fmtGoTime(br.Deadline))
	} else {
		fmt.Fprintf(b, "  deadline:   %s (detection + %s, GDPR Art. 33(1))\n", fmtGoTime(br.Deadline), hours(br.Deadline.Sub(br.DetectedAt)))
	}
	switch br.Timeliness {
	case NotifiedBeforeDetect:
		first := br.Notifications[0]
		fmt.Fprintf(b, "  authority:  notification dated %s BEFORE detection: the times cannot both be true (finding)\n", hours(br.DetectedAt.Sub(first.NotifiedAt)))
	case NotifiedInTime:
		first := br.Notifications[0]
		fmt.Fprintf(b, "  authority:  notified IN TIME, %s after detection\n", hours(first.NotifiedAt.Sub(br.DetectedAt)))
	case NotifiedLateReason:
		fmt.Fprintf(b, "  authority:  notified LATE, %s past the deadline, with the reason for the delay\n", hours(br.Delay))
	case NotifiedLateNoReason:
		fmt.Fprintf(b, "  authority:  notified LATE, %s past the deadline, WITHOUT a reason for the delay (finding)\n", hours(br.Delay))
	case NotNotifiedPending:
		b.WriteString("  authority:  not notified yet; the deadline has not passed\n")
	case NotNotifiedOverdue:
		b.WriteString("  authority:  NOT NOTIFIED and the deadline has passed (finding)\n")
	case ClosedUnnotified:
		b.WriteString("  authority:  not notified; the breach was closed without a notification\n")
	case NotNotifiable:
		b.WriteString("  authority:  not notifiable: assessed no_risk, documented (GDPR Art. 33(5))\n")
	}
	for _, n := range br.Notifications {
		line := fmt.Sprintf("#%d %s: %s", n.Index, fmtGoTime(n.NotifiedAt), orNone(n.Authority))
		if n.Reference != "" {
			line += ", reference " + n.Reference
		}
		if n.Phase != "" {
			line += ", " + n.Phase
		}
		if n.DelayReason != "" {
			line += fmt.Sprintf("; delay reason: %q", n.DelayReason)
		}
		b.WriteString("              " + wrap(line, 78, 14, strings.Repeat(" ", 16)))
	}
	if len(br.SubjectsNotified) == 0 {
		b.WriteString("  subjects:   not notified (Art. 34)\n")
	}
	for i, n := range br.SubjectsNotified {
		label := "  subjects:   "
		if i > 0 {
			label = "              "
		}
		fmt.Fprintf(b, "%snotified %s by %s, %d subjects (entry #%d)\n", label, fmtGoTime(n.NotifiedAt), orNone(n.Method), n.Subjects, n.Index)
	}
	if c := br.Closed; c != nil {
		line := fmt.Sprintf("closed %s (entry #%d)", fmtGoTime(c.ClosedAt), c.Index)
		if c.Summary != "" {
			line += ": " + c.Summary
		}
		b.WriteString("  status:     " + wrap(line, 78, 14, strings.Repeat(" ", 14)))
	} else {
		b.WriteString("  status:     open\n")
	}
}

func writeFindings(b *strings.Builder, findings []Finding, total int) {
	if total == 0 {
		return
	}
	fmt.Fprintf(b, "\nFindings (%d):\n", total)
	for _, f := range findings {
		head := "  (log)  "
		if f.HasIndex {
			head = fmt.Sprintf("  #%-5d ", f.Index)
		}
		b.WriteString(head + wrap(f.Check+": "+f.Message+".", 78, len(head), strings.Repeat(" ", len(head))))
		if f.Got != "" || f.Want != "" {
			pad := strings.Repeat(" ", len(head))
			fmt.Fprintf(b, "%scomputed: %s\n%sexpected: %s\n", pad, orNone(f.Got), pad, orNone(f.Want))
		}
	}
	if total > len(findings) {
		fmt.Fprintf(b, "  … and %d more\n", total-len(findings))
	}
}
