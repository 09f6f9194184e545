package rpc

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/breach"
	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// freeText refuses free text that holds an e-mail address or a phone
// number (README.md: Privacy notices, breaches, reports: personal data must not enter the log).
func freeText(field, s string) error {
	if err := breach.CheckFreeText(s); err != nil {
		return invalid(field, "%v", err)
	}
	return nil
}

// breachFacts validates the §14 facts of a ReportBreach request and puts
// them, the plan in force and the organisation's role into d.
func (s *Service) breachFacts(ctx context.Context, m *pb.ReportBreachRequest, d *pb.BreachDetected) error {
	for f, v := range map[string]string{
		"description": m.Description, "likely_consequences": m.LikelyConsequences, "measures": m.Measures,
		"how_found": m.HowFound, "safeguards": m.Safeguards,
	} {
		if err := checkFree(f, v, maxLongText); err != nil {
			return err
		}
		if err := freeText(f, v); err != nil {
			return err
		}
	}
	for f, vs := range map[string][]string{"data_categories": m.DataCategories, "subject_categories": m.SubjectCategories} {
		if err := checkIdents(f, vs, MaxDataCategories, maxShortText); err != nil {
			return err
		}
		for _, v := range vs {
			if err := freeText(f, v); err != nil {
				return err
			}
		}
	}
	now := s.now()
	detected := d.DetectedAt.AsTime()
	optional := func(field string, t *timestamppb.Timestamp) (*timestamppb.Timestamp, error) {
		if t == nil {
			return nil, nil
		}
		return checkTime(field, t, now)
	}
	var err error
	if d.OccurredFrom, err = optional("occurred_from", m.OccurredFrom); err != nil {
		return err
	}
	if d.OccurredTo, err = optional("occurred_to", m.OccurredTo); err != nil {
		return err
	}
	if d.DiscoveredAt, err = optional("discovered_at", m.DiscoveredAt); err != nil {
		return err
	}
	if d.OccurredFrom != nil && d.OccurredTo != nil && d.OccurredTo.AsTime().Before(d.OccurredFrom.AsTime()) {
		return invalid("occurred_to", "is before occurred_from")
	}
	if d.OccurredFrom != nil && d.OccurredFrom.AsTime().After(detected) {
		return invalid("occurred_from", "is after detected_at: a breach is noticed after it begins")
	}
	if d.DiscoveredAt != nil && d.DiscoveredAt.AsTime().After(detected) {
		return invalid("discovered_at", "is after detected_at: detected_at is when the controller became aware, discovered_at when anyone first found it (at the latest then)")
	}
	if d.DiscoveredAt == nil {
		d.DiscoveredAt = d.DetectedAt
	}
	d.HowFound, d.SpecialCategories, d.SubjectCategories, d.Safeguards = m.HowFound, m.SpecialCategories, m.SubjectCategories, m.Safeguards
	d.ControllerRole = s.org.Role()
	d.PlanVersion = breach.DefaultPlanVersion
	if p, err := s.l.Plan(ctx); err == nil {
		idx := p.Entry.Index
		d.PlanIndex, d.PlanVersion = &idx, p.Version
	} else if !isNotFound(err) {
		return toConnect(err)
	}
	return nil
}

func isNotFound(err error) bool { return connect.CodeOf(toConnect(err)) == connect.CodeNotFound }

// planKey names a PlanPublished entry of one ledger.
type planKey struct {
	l     *ledger.Ledger
	index uint64
}

// plans holds the steps of published plans (entries never change).
var plans = struct {
	mu    sync.Mutex
	steps map[planKey][]*pb.PlanStep
}{steps: map[planKey][]*pb.PlanStep{}}

// planSteps returns the steps of the plan a breach follows (the default
// plan when it names none).
func (s *Service) planSteps(ctx context.Context, b *pb.BreachState) ([]*pb.PlanStep, error) {
	if b.PlanIndex == nil {
		return breach.DefaultSteps(), nil
	}
	idx := *b.PlanIndex
	key := planKey{s.l, idx}
	plans.mu.Lock()
	steps, ok := plans.steps[key]
	plans.mu.Unlock()
	if ok {
		return steps, nil
	}
	e, err := s.entryAt(ctx, idx)
	if err != nil {
		return nil, err
	}
	p := e.GetPlanPublished()
	if p == nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("breach %q names plan entry %d, which is no PlanPublished entry", b.BreachId, idx))
	}
	plans.mu.Lock()
	plans.steps[key] = p.Steps
	plans.mu.Unlock()
	return p.Steps, nil
}

// breachView is a breach with its Art. 33/34 status and plan steps at now.
func (s *Service) breachView(ctx context.Context, b *pb.BreachState, now time.Time) (*pb.Breach, error) {
	steps, err := s.planSteps(ctx, b)
	if err != nil {
		return nil, err
	}
	return breachViewWith(b, steps, now, s.org.Contact), nil
}

func breachViewWith(b *pb.BreachState, steps []*pb.PlanStep, now time.Time, contact *pb.ContactPerson) *pb.Breach {
	st := breach.Evaluate(b, steps, now)
	v := &pb.Breach{
		BreachId: b.BreachId, Status: b.Status, DetectedAt: b.DetectedAt,
		AuthorityNotifiedAt: b.AuthorityNotifiedAt, Channels: b.Channels, Risk: b.Risk, Description: b.Description,
		Entry: b.Detected, SubjectsNotifiedAt: b.SubjectsNotifiedAt, ClosedAt: b.ClosedAt,
		Assessment: b.Assessment, Notifiable: st.Notifiable, Obligation: st.Obligation, Overdue: st.Overdue,
		SubjectsOverdue: st.SubjectsOverdue, SubjectsException: b.SubjectsException, PlanVersion: b.PlanVersion,
		Steps: st.Steps, Contact: contact, ControllerRole: breachRole(b), HoursRemaining: st.HoursRemaining,
	}
	if v.PlanVersion == "" {
		v.PlanVersion = breach.DefaultPlanVersion
	}
	if !st.Deadline.IsZero() {
		v.Deadline = timestamppb.New(st.Deadline)
		if b.AuthorityNotifiedAt != nil {
			v.NotifiedInTime = !b.AuthorityNotifiedAt.AsTime().After(st.Deadline)
		}
	}
	return v
}

func breachRole(b *pb.BreachState) string {
	if breach.Processor(b) {
		return "processor"
	}
	return "controller"
}

func (h *breachHandler) AssessBreach(ctx context.Context, r *connect.Request[pb.AssessBreachRequest]) (*connect.Response[pb.AssessBreachResponse], error) {
	m := r.Msg
	if _, err := h.s.breachFor(ctx, m.BreachId); err != nil {
		return nil, err
	}
	level, err := oneOf("level", m.Level, "", breach.NoRisk, breach.Risk, breach.HighRisk)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(m.Reasoning) == "" {
		return nil, invalid("reasoning", "is required: say why (e.g. after the DSK's short paper 18: likelihood and severity)")
	}
	if err := checkText("reasoning", m.Reasoning, maxLongText); err != nil {
		return nil, err
	}
	if err := freeText("reasoning", m.Reasoning); err != nil {
		return nil, err
	}
	at, err := checkTime("assessed_at", m.AssessedAt, h.s.now())
	if err != nil {
		return nil, err
	}
	if err := checkKey(m.IdempotencyKey); err != nil {
		return nil, err
	}
	rcpt, err := h.s.appendBreach(ctx, m.IdempotencyKey, m, &pb.Entry{Event: &pb.Entry_BreachAssessed{BreachAssessed: &pb.BreachAssessed{
		BreachId: m.BreachId, Level: level, Reasoning: m.Reasoning, AssessedAt: at,
	}}})
	if err != nil {
		return nil, err
	}
	b, err := h.s.breachFor(ctx, m.BreachId)
	if err != nil {
		return nil, err
	}
	v, err := h.s.breachView(ctx, b, h.s.now())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.AssessBreachResponse{Entry: rcpt.Ref(), Breach: v}), nil
}

func (h *breachHandler) CompleteStep(ctx context.Context, r *connect.Request[pb.CompleteStepRequest]) (*connect.Response[pb.CompleteStepResponse], error) {
	m := r.Msg
	b, err := h.s.breachFor(ctx, m.BreachId)
	if err != nil {
		return nil, err
	}
	steps, err := h.s.planSteps(ctx, b)
	if err != nil {
		return nil, err
	}
	var ids []string
	known := false
	for _, s := range steps {
		ids = append(ids, s.Id)
		known = known || s.Id == m.StepId
	}
	if !known {
		return nil, invalid("step_id", "%q is not a step of plan %s: one of %s", m.StepId, cmpOr(b.PlanVersion, breach.DefaultPlanVersion), strings.Join(ids, ", "))
	}
	if err := checkText("note", m.Note, maxLongText); err != nil {
		return nil, err
	}
	if err := freeText("note", m.Note); err != nil {
		return nil, err
	}
	at, err := checkTime("completed_at", m.CompletedAt, h.s.now())
	if err != nil {
		return nil, err
	}
	if err := checkKey(m.IdempotencyKey); err != nil {
		return nil, err
	}
	rcpt, err := h.s.appendBreach(ctx, m.IdempotencyKey, m, &pb.Entry{Event: &pb.Entry_BreachStepCompleted{BreachStepCompleted: &pb.BreachStepCompleted{
		BreachId: m.BreachId, StepId: m.StepId, CompletedAt: at, Note: m.Note,
	}}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CompleteStepResponse{Entry: rcpt.Ref()}), nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (h *breachHandler) PublishPlan(ctx context.Context, r *connect.Request[pb.PublishPlanRequest]) (*connect.Response[pb.PublishPlanResponse], error) {
	m := r.Msg
	if strings.TrimSpace(m.Version) == "" {
		return nil, invalid("version", "is required, e.g. \"2026-11\"")
	}
	if err := checkText("version", m.Version, maxShortText); err != nil {
		return nil, err
	}
	steps := m.Steps
	if len(steps) == 0 {
		steps = breach.DefaultSteps()
	}
	if err := breach.CheckSteps(steps); err != nil {
		return nil, invalid("steps", "%v", err)
	}
	if err := checkText("note", m.Note, maxLongText); err != nil {
		return nil, err
	}
	if err := checkKey(m.IdempotencyKey); err != nil {
		return nil, err
	}
	rcpt, err := h.s.appendFor(ctx, nil, m.IdempotencyKey, m, &pb.Entry{Event: &pb.Entry_PlanPublished{PlanPublished: &pb.PlanPublished{
		Version: m.Version, Steps: steps, Note: m.Note,
	}}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.PublishPlanResponse{Entry: rcpt.Ref(), Steps: steps}), nil
}

func (h *breachHandler) GetBreach(ctx context.Context, r *connect.Request[pb.GetBreachRequest]) (*connect.Response[pb.GetBreachResponse], error) {
	b, err := h.s.breachFor(ctx, r.Msg.BreachId)
	if err != nil {
		return nil, err
	}
	v, err := h.s.breachView(ctx, b, h.s.now())
	if err != nil {
		return nil, err
	}
	out := &pb.GetBreachResponse{Breach: v, Controller: h.s.org.Controller, Contact: h.s.org.Contact, Authority: h.s.org.Authority}
	add := func(i uint64, e *pb.Entry) { out.Entries = append(out.Entries, &pb.BreachEntry{Index: i, Entry: e}) }
	if len(b.EntryIndexes) > 0 {
		for _, i := range b.EntryIndexes {
			e, err := h.s.entryAt(ctx, i)
			if err != nil {
				return nil, err
			}
			add(i, e)
		}
		return connect.NewResponse(out), nil
	}
	// A state written before it listed the breach's entries: scan from detection.
	err = h.s.l.Scan(ctx, b.Detected.GetIndex(), 0, func(i uint64, data []byte) error {
		e, err := ledger.DecodeEntry(data)
		if err != nil {
			return err
		}
		if breachIDOfEntry(e) == b.BreachId {
			add(i, e)
		}
		return nil
	})
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(out), nil
}

// breachIDOfEntry names the breach an entry is about, or "".
func breachIDOfEntry(e *pb.Entry) string {
	switch {
	case e.GetBreachDetected() != nil:
		return e.GetBreachDetected().BreachId
	case e.GetBreachAuthorityNotified() != nil:
		return e.GetBreachAuthorityNotified().BreachId
	case e.GetBreachSubjectsNotified() != nil:
		return e.GetBreachSubjectsNotified().BreachId
	case e.GetBreachClosed() != nil:
		return e.GetBreachClosed().BreachId
	case e.GetBreachAssessed() != nil:
		return e.GetBreachAssessed().BreachId
	case e.GetBreachStepCompleted() != nil:
		return e.GetBreachStepCompleted().BreachId
	}
	return ""
}

// checkException validates an Art. 34(3) exception of a subject notification.
func checkException(b *pb.BreachState, m *pb.RecordSubjectNotificationRequest) (string, error) {
	if m.Exception == "" {
		if m.ExceptionReason != "" {
			return "", invalid("exception", "is required with exception_reason: a, b or c (Art. 34(3))")
		}
		return "", nil
	}
	ex, err := oneOf("exception", m.Exception, "", "a", "b", "c")
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(m.ExceptionReason) == "" {
		return "", invalid("exception_reason", "is required: why exception (%s) of Art. 34(3) applies", ex)
	}
	if err := checkText("exception_reason", m.ExceptionReason, maxLongText); err != nil {
		return "", err
	}
	if err := freeText("exception_reason", m.ExceptionReason); err != nil {
		return "", err
	}
	if b.Assessment != breach.HighRisk {
		return "", precondition("exception", "an Art. 34(3) exception is recorded only for a breach assessed high_risk; breach %q is %s", b.BreachId, cmpOr(b.Assessment, "not assessed"))
	}
	return ex, nil
}
