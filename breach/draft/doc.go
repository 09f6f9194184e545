// Package draft writes, from what the log records about a breach, the
// notification to the supervisory authority (GDPR Art. 33) and the
// communication to the persons concerned (Art. 34(2)) as README.md: Privacy notices, breaches, reports asks:
// numbered plain-text blocks in the order of the German authorities'
// notification forms, every Art. 33(3) item, the timeline and the reasons
// for a delay where late; facts the log does not hold are listed first as
// "still to provide", never invented; entry indexes appear only in an
// appendix. A follow-up draft carries the authority's reference and only
// the facts recorded since the last notification. Output is Markdown, HTML
// (html/template) or PDF (github.com/go-pdf/fpdf); dates are ISO 8601 in
// every language.
package draft

import (
	"fmt"
	"slices"
	"strings"
	"time"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Doc is a draft: a title, lines before the blocks, the facts still to
// provide, the numbered blocks and the appendix of entry citations.
type Doc struct {
	Title    string
	Intro    []string
	Missing  []string
	Blocks   []Block
	Appendix []string
	// Labels of the sections around the blocks, in the draft's language.
	MissingHeading, AppendixHeading string
}

// Block is one numbered block of the draft.
type Block struct {
	No      int
	Heading string
	Lines   []string
	// Entries the block's facts come from; cited in the appendix only.
	Entries []uint64
}

// Options chooses the draft's language and its "as of" time.
type Options struct {
	Lang string    // "en" (default) or "de"
	Now  time.Time // the drafting time: decides lateness of an unnotified breach
}

func (o Options) tr(key string) string {
	m := texts[key]
	if o.Lang == "de" {
		return m[1]
	}
	return m[0]
}

// ts formats a time as ISO 8601 (UTC), the same in every language.
func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// facts is what the entries of one breach say, folded in log order.
type facts struct {
	detected      *pb.BreachDetected
	detectedIndex uint64
	reporter      string
	assessed      *pb.BreachAssessed
	assessedIndex uint64
	authority     []idx[*pb.BreachAuthorityNotified]
	subjects      []idx[*pb.BreachSubjectsNotified]
	steps         []idx[*pb.BreachStepCompleted]
	closed        *pb.BreachClosed
	closedIndex   uint64
}

type idx[T any] struct {
	i uint64
	v T
}

func fold(entries []*pb.BreachEntry) (facts, error) {
	var f facts
	for _, be := range entries {
		e, i := be.Entry, be.Index
		switch {
		case e.GetBreachDetected() != nil:
			f.detected, f.detectedIndex, f.reporter = e.GetBreachDetected(), i, e.Actor
		case e.GetBreachAssessed() != nil:
			f.assessed, f.assessedIndex = e.GetBreachAssessed(), i
		case e.GetBreachAuthorityNotified() != nil:
			f.authority = append(f.authority, idx[*pb.BreachAuthorityNotified]{i, e.GetBreachAuthorityNotified()})
		case e.GetBreachSubjectsNotified() != nil:
			f.subjects = append(f.subjects, idx[*pb.BreachSubjectsNotified]{i, e.GetBreachSubjectsNotified()})
		case e.GetBreachStepCompleted() != nil:
			f.steps = append(f.steps, idx[*pb.BreachStepCompleted]{i, e.GetBreachStepCompleted()})
		case e.GetBreachClosed() != nil:
			f.closed, f.closedIndex = e.GetBreachClosed(), i
		}
	}
	if f.detected == nil {
		return f, fmt.Errorf("the breach's entries hold no BreachDetected entry: fetch the breach with GetBreach")
	}
	return f, nil
}

// Notification drafts the notification to the supervisory authority (for
// a processor: to its controllers). When an authority notification is
// already recorded, it drafts the follow-up: the authority's reference and
// only the facts recorded since.
func Notification(b *pb.GetBreachResponse, o Options) (*Doc, error) {
	f, err := fold(b.Entries)
	if err != nil {
		return nil, err
	}
	if len(f.authority) > 0 {
		return followUp(b, f, o), nil
	}
	return initial(b, f, o), nil
}

type builder struct {
	o       Options
	doc     *Doc
	missing []string
}

func (w *builder) block(heading string, entries []uint64, lines ...string) {
	w.doc.Blocks = append(w.doc.Blocks, Block{No: len(w.doc.Blocks) + 1, Heading: heading, Lines: lines, Entries: entries})
}

// need returns v, or records the fact as missing and returns the
// "still to provide" marker.
func (w *builder) need(label, v string) string {
	if strings.TrimSpace(v) != "" {
		return v
	}
	w.missing = append(w.missing, label)
	return w.o.tr("tbd")
}

func (w *builder) finish() *Doc {
	w.doc.Missing = w.missing
	w.doc.MissingHeading, w.doc.AppendixHeading = w.o.tr("missing"), w.o.tr("appendix")
	for _, bl := range w.doc.Blocks {
		if len(bl.Entries) == 0 {
			continue
		}
		var refs []string
		for _, i := range bl.Entries {
			refs = append(refs, fmt.Sprintf("#%d", i))
		}
		w.doc.Appendix = append(w.doc.Appendix, fmt.Sprintf("%s %d (%s): %s", w.o.tr("block"), bl.No, bl.Heading, strings.Join(refs, ", ")))
	}
	return w.doc
}

func optTime(t interface{ AsTime() time.Time }, ok bool) string {
	if !ok {
		return ""
	}
	return ts(t.AsTime())
}

func count(n uint64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d", n)
}

func initial(b *pb.GetBreachResponse, f facts, o Options) *Doc {
	d := f.detected
	w := &builder{o: o, doc: &Doc{}}
	processor := b.Controller.GetRole() == "processor" || d.ControllerRole == "processor"
	w.doc.Title = o.tr("title")
	if processor {
		w.doc.Title = o.tr("title_processor")
	}
	to := b.Authority.GetName()
	if processor {
		to = o.tr("controllers")
	}
	w.doc.Intro = []string{
		o.tr("to") + ": " + w.need(o.tr("authority"), to),
		o.tr("breach_id") + ": " + d.BreachId,
		o.tr("drafted") + ": " + ts(o.Now),
	}
	detIdx := []uint64{f.detectedIndex}

	// 1. Controller and reporting person.
	c := b.Controller
	lines := []string{
		o.tr("controller") + ": " + w.need(o.tr("controller"), c.GetName()),
		o.tr("address") + ": " + w.need(o.tr("address"), c.GetAddress()),
	}
	if p := b.Contact; p != nil {
		label := o.tr("contact_point")
		if p.Kind == "dpo" {
			label = o.tr("dpo")
		}
		lines = append(lines, label+": "+joinNonEmpty(", ", p.Name, p.Email, p.Phone))
	} else {
		lines = append(lines, o.tr("dpo")+": "+w.need(o.tr("dpo_or_contact"), ""))
	}
	lines = append(lines, o.tr("reporter")+": "+w.need(o.tr("reporter"), f.reporter))
	w.block(o.tr("b_controller"), detIdx, lines...)

	// 2. Processor.
	if processor {
		w.block(o.tr("b_processor"), detIdx, o.tr("we_are_processor"))
	} else {
		w.block(o.tr("b_processor"), nil, o.tr("processor")+": "+w.need(o.tr("processor_involved"), ""))
	}

	// 3. Times and how found.
	lines = []string{
		o.tr("occurred_from") + ": " + w.need(o.tr("occurred_from"), optTime(d.OccurredFrom, d.OccurredFrom != nil)),
		o.tr("occurred_to") + ": " + orText(optTime(d.OccurredTo, d.OccurredTo != nil), o.tr("ongoing_or_unknown")),
		o.tr("discovered_at") + ": " + orText(optTime(d.DiscoveredAt, d.DiscoveredAt != nil), optTime(d.DetectedAt, true)),
		o.tr("detected_at") + ": " + ts(d.DetectedAt.AsTime()),
		o.tr("how_found") + ": " + w.need(o.tr("how_found"), d.HowFound),
		o.tr("description") + ": " + d.Description,
	}
	w.block(o.tr("b_times"), detIdx, lines...)

	// 4. Type.
	var types []string
	for _, t := range d.BreachTypes {
		types = append(types, o.tr(t))
	}
	w.block(o.tr("b_type"), detIdx, o.tr("type")+": "+w.need(o.tr("type"), strings.Join(types, ", ")))

	// 5. Data and subjects (Art. 33(3)(a)).
	special := o.tr("no")
	if d.SpecialCategories {
		special = o.tr("yes")
	}
	w.block(o.tr("b_data"), detIdx,
		o.tr("data_categories")+": "+w.need(o.tr("data_categories"), strings.Join(d.DataCategories, ", ")),
		o.tr("special")+": "+special,
		o.tr("subject_categories")+": "+w.need(o.tr("subject_categories"), strings.Join(d.SubjectCategories, ", ")),
		o.tr("subjects_estimate")+": "+w.need(o.tr("subjects_estimate"), count(d.SubjectsEstimate)),
		o.tr("records_estimate")+": "+w.need(o.tr("records_estimate"), count(d.RecordsEstimate)),
	)

	// 6. Safeguards.
	w.block(o.tr("b_safeguards"), detIdx, o.tr("safeguards")+": "+w.need(o.tr("safeguards"), d.Safeguards))

	// 7. Consequences and risk (Art. 33(3)(c)).
	riskIdx := detIdx
	level, reasoning := "", ""
	if f.assessed != nil {
		level, reasoning = o.tr(f.assessed.Level), f.assessed.Reasoning
		riskIdx = []uint64{f.detectedIndex, f.assessedIndex}
	}
	w.block(o.tr("b_risk"), riskIdx,
		o.tr("consequences")+": "+w.need(o.tr("consequences"), d.LikelyConsequences),
		o.tr("risk_level")+": "+w.need(o.tr("risk_assessment"), level),
		o.tr("reasoning")+": "+orText(reasoning, o.tr("tbd")),
	)

	// 8. Measures (Art. 33(3)(d)).
	mIdx := detIdx
	lines = []string{o.tr("measures") + ": " + w.need(o.tr("measures"), d.Measures)}
	for _, s := range f.steps {
		line := o.tr("step_done") + " " + s.v.StepId + " " + ts(s.v.CompletedAt.AsTime())
		if s.v.Note != "" {
			line += ": " + s.v.Note
		}
		lines = append(lines, line)
		mIdx = append(mIdx, s.i)
	}
	w.block(o.tr("b_measures"), mIdx, lines...)

	// 9. Persons informed, or why not (Art. 34).
	w.subjectsBlock(f)

	// 10. Other authorities.
	w.block(o.tr("b_other"), nil, o.tr("other_authorities")+": "+w.need(o.tr("other_authorities"), ""))

	// 11. Timeline, and the reasons for a delay (Art. 33(1)).
	w.timeline(b, f)
	return w.finish()
}

func (w *builder) subjectsBlock(f facts) {
	o := w.o
	var lines []string
	var ix []uint64
	for _, s := range f.subjects {
		ix = append(ix, s.i)
		if s.v.Exception != "" {
			lines = append(lines, fmt.Sprintf("%s (%s): %s", o.tr("exception"), o.tr("exception_"+s.v.Exception), s.v.ExceptionReason))
			continue
		}
		line := o.tr("informed_at") + " " + ts(s.v.NotifiedAt.AsTime())
		if s.v.Method != "" {
			line += ", " + s.v.Method
		}
		if s.v.SubjectsNotified > 0 {
			line += fmt.Sprintf(", %d %s", s.v.SubjectsNotified, o.tr("persons"))
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		switch {
		case f.assessed != nil && f.assessed.Level == "high_risk":
			lines = append(lines, o.tr("informed")+": "+w.need(o.tr("subjects_informed"), ""))
		case f.assessed != nil:
			lines = append(lines, o.tr("not_required"))
		default:
			lines = append(lines, o.tr("informed")+": "+w.need(o.tr("subjects_informed"), ""))
		}
	}
	w.block(o.tr("b_subjects"), ix, lines...)
}

func (w *builder) timeline(b *pb.GetBreachResponse, f facts) {
	o := w.o
	d := f.detected
	type ev struct {
		at   time.Time
		text string
		i    uint64
	}
	evs := []ev{{d.DetectedAt.AsTime(), o.tr("ev_detected"), f.detectedIndex}}
	if d.OccurredFrom != nil {
		evs = append(evs, ev{d.OccurredFrom.AsTime(), o.tr("ev_began"), f.detectedIndex})
	}
	if d.DiscoveredAt != nil && !d.DiscoveredAt.AsTime().Equal(d.DetectedAt.AsTime()) {
		evs = append(evs, ev{d.DiscoveredAt.AsTime(), o.tr("ev_discovered"), f.detectedIndex})
	}
	if f.assessed != nil {
		evs = append(evs, ev{f.assessed.AssessedAt.AsTime(), o.tr("ev_assessed") + " " + o.tr(f.assessed.Level), f.assessedIndex})
	}
	for _, s := range f.steps {
		evs = append(evs, ev{s.v.CompletedAt.AsTime(), o.tr("step_done") + " " + s.v.StepId, s.i})
	}
	for _, s := range f.subjects {
		evs = append(evs, ev{s.v.NotifiedAt.AsTime(), o.tr("ev_subjects"), s.i})
	}
	slices.SortStableFunc(evs, func(a, b ev) int { return a.at.Compare(b.at) })
	var lines []string
	var ix []uint64
	for _, e := range evs {
		lines = append(lines, ts(e.at)+" "+e.text)
		if !slices.Contains(ix, e.i) {
			ix = append(ix, e.i)
		}
	}
	deadline := b.Breach.GetDeadline()
	if deadline != nil {
		lines = append(lines, o.tr("deadline")+": "+ts(deadline.AsTime()))
		if o.Now.After(deadline.AsTime()) {
			lines = append(lines, o.tr("delay_reason")+": "+w.need(o.tr("delay_reason"), ""))
		}
	} else {
		lines = append(lines, o.tr("no_deadline"))
	}
	w.block(o.tr("b_timeline"), ix, lines...)
}

// followUp drafts a follow-up: the reference, and only the facts recorded
// after the last authority notification.
func followUp(b *pb.GetBreachResponse, f facts, o Options) *Doc {
	last := f.authority[len(f.authority)-1]
	w := &builder{o: o, doc: &Doc{Title: o.tr("title_followup")}}
	w.doc.Intro = []string{
		o.tr("to") + ": " + orText(last.v.Authority, b.Authority.GetName()),
		o.tr("reference") + ": " + w.need(o.tr("reference"), last.v.Reference),
		o.tr("breach_id") + ": " + f.detected.BreachId,
		o.tr("previous") + ": " + ts(last.v.NotifiedAt.AsTime()) + " (" + last.v.Phase + ")",
		o.tr("drafted") + ": " + ts(o.Now),
	}
	var lines []string
	var ix []uint64
	if f.assessed != nil && f.assessedIndex > last.i {
		lines = append(lines, o.tr("risk_level")+": "+o.tr(f.assessed.Level), o.tr("reasoning")+": "+f.assessed.Reasoning)
		ix = append(ix, f.assessedIndex)
	}
	for _, s := range f.steps {
		if s.i > last.i {
			line := o.tr("step_done") + " " + s.v.StepId + " " + ts(s.v.CompletedAt.AsTime())
			if s.v.Note != "" {
				line += ": " + s.v.Note
			}
			lines = append(lines, line)
			ix = append(ix, s.i)
		}
	}
	for _, s := range f.subjects {
		if s.i > last.i {
			if s.v.Exception != "" {
				lines = append(lines, fmt.Sprintf("%s (%s): %s", o.tr("exception"), o.tr("exception_"+s.v.Exception), s.v.ExceptionReason))
			} else {
				lines = append(lines, o.tr("informed_at")+" "+ts(s.v.NotifiedAt.AsTime()))
			}
			ix = append(ix, s.i)
		}
	}
	if f.closed != nil && f.closedIndex > last.i {
		lines = append(lines, o.tr("closed")+" "+ts(f.closed.ClosedAt.AsTime())+orText(prefix(": ", f.closed.Summary), ""))
		ix = append(ix, f.closedIndex)
	}
	if len(lines) == 0 {
		lines = []string{o.tr("nothing_new")}
	}
	w.block(o.tr("b_new"), ix, lines...)
	return w.finish()
}

func prefix(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func orText(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

func joinNonEmpty(sep string, vs ...string) string {
	var out []string
	for _, v := range vs {
		if v != "" {
			out = append(out, v)
		}
	}
	return strings.Join(out, sep)
}
