package rpc

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base32"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/breach"
	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
)

// NotificationDeadline is the GDPR Art. 33(1) deadline for notifying the
// supervisory authority, counted from awareness of the breach.
const NotificationDeadline = 72 * time.Hour

type breachHandler struct {
	consentledgerv1connect.UnimplementedBreachServiceHandler
	s *Service
}

// appendBreach appends a breach event and refreshes the open-breach cache.
func (s *Service) appendBreach(ctx context.Context, key string, req proto.Message, e *pb.Entry) (ledger.Receipt, error) {
	rcpt, err := s.appendFor(ctx, nil, key, req, e)
	if err != nil {
		return rcpt, err
	}
	if err := s.refreshBreaches(ctx); err != nil {
		return rcpt, toConnect(err)
	}
	return rcpt, nil
}

func newBreachID() string {
	b := make([]byte, 10)
	rand.Read(b)
	return "brc_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

func (h *breachHandler) ReportBreach(ctx context.Context, r *connect.Request[pb.ReportBreachRequest]) (*connect.Response[pb.ReportBreachResponse], error) {
	m := r.Msg
	if strings.TrimSpace(m.Description) == "" {
		return nil, invalid("description", "is required: say what happened")
	}
	if err := checkFree("description", m.Description, maxLongText); err != nil {
		return nil, err
	}
	detected, err := h.s.checkPast("detected_at", m.DetectedAt)
	if err != nil {
		return nil, err
	}
	risk, err := oneOf("risk", m.Risk, "unknown", "low", "medium", "high", "unknown")
	if err != nil {
		return nil, err
	}
	var types []string
	for _, t := range m.BreachTypes {
		v, err := oneOf("breach_types", t, "", "confidentiality", "integrity", "availability")
		if err != nil {
			return nil, err
		}
		if slices.Contains(types, v) {
			return nil, invalid("breach_types", "%q is listed twice", v)
		}
		types = append(types, v)
	}
	if err := checkChannels("channels", m.Channels); err != nil {
		return nil, err
	}
	if err := checkIdents("data_categories", m.DataCategories, MaxDataCategories, maxShortText); err != nil {
		return nil, err
	}
	for f, v := range map[string]string{"likely_consequences": m.LikelyConsequences, "measures": m.Measures} {
		if err := checkFree(f, v, maxLongText); err != nil {
			return nil, err
		}
	}
	if err := checkIdent("breach_id", m.BreachId, 128); err != nil {
		return nil, err
	}
	if err := checkKey(m.IdempotencyKey); err != nil {
		return nil, err
	}
	id := m.BreachId
	if id == "" {
		id = newBreachID()
	}
	d := &pb.BreachDetected{
		BreachId: id, DetectedAt: detected, Description: m.Description, BreachTypes: types,
		DataCategories: slices.Clone(m.DataCategories), Channels: slices.Clone(m.Channels), SubjectsEstimate: m.SubjectsEstimate,
		RecordsEstimate: m.RecordsEstimate, LikelyConsequences: m.LikelyConsequences, Measures: m.Measures, Risk: risk,
	}
	if err := h.s.breachFacts(ctx, m, d); err != nil {
		return nil, err
	}
	rcpt, err := h.s.appendBreach(ctx, m.IdempotencyKey, m, &pb.Entry{Event: &pb.Entry_BreachDetected{BreachDetected: d}})
	if err != nil {
		return nil, err
	}
	if rcpt.Duplicate { // a retry: answer with the breach first recorded
		e, err := h.s.entryAt(ctx, rcpt.Index)
		if err != nil {
			return nil, err
		}
		if d := e.GetBreachDetected(); d != nil {
			id, detected = d.BreachId, d.DetectedAt
		}
	}
	st := &pb.BreachState{DetectedAt: detected, ControllerRole: d.ControllerRole, PlanIndex: d.PlanIndex}
	steps, err := h.s.planSteps(ctx, st)
	if err != nil {
		return nil, err
	}
	deadline := breach.Evaluate(st, steps, h.s.now()).Deadline
	return connect.NewResponse(&pb.ReportBreachResponse{
		BreachId: id, Entry: rcpt.Ref(), Deadline: timestamppb.New(deadline),
	}), nil
}

// checkAfterDetection checks a time of a breach's handling (notification,
// closure): not in the future, and not before the breach was detected.
func checkAfterDetection(field string, t *timestamppb.Timestamp, now time.Time, b *pb.BreachState) (*timestamppb.Timestamp, error) {
	at, err := checkTime(field, t, now)
	if err != nil {
		return nil, err
	}
	if d := b.GetDetectedAt(); d != nil && at.AsTime().Before(d.AsTime()) {
		return nil, invalid(field, "%s is before the breach was detected (%s); give the time it happened, which is after detection",
			at.AsTime().UTC().Format(time.RFC3339), d.AsTime().UTC().Format(time.RFC3339))
	}
	return at, nil
}

// breachFor returns the committed state of a breach named in a request.
func (s *Service) breachFor(ctx context.Context, id string) (*pb.BreachState, error) {
	if id == "" {
		return nil, invalid("breach_id", "is required")
	}
	if err := checkIdent("breach_id", id, 128); err != nil {
		return nil, err
	}
	b, err := s.l.Breach(ctx, id)
	if err != nil {
		return nil, toConnect(err)
	}
	return b, nil
}

func (h *breachHandler) RecordAuthorityNotification(ctx context.Context, r *connect.Request[pb.RecordAuthorityNotificationRequest]) (*connect.Response[pb.RecordAuthorityNotificationResponse], error) {
	m := r.Msg
	b, err := h.s.breachFor(ctx, m.BreachId)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(m.Authority) == "" {
		return nil, invalid("authority", "is required: name the supervisory authority notified")
	}
	for f, v := range map[string]string{"authority": m.Authority, "reference": m.Reference} {
		if err := checkIdent(f, v, maxShortText); err != nil {
			return nil, err
		}
	}
	if err := checkFree("delay_reason", m.DelayReason, maxLongText); err != nil {
		return nil, err
	}
	if err := freeText("delay_reason", m.DelayReason); err != nil {
		return nil, err
	}
	phase, err := oneOf("phase", m.Phase, "preliminary", "preliminary", "ongoing", "concluding")
	if err != nil {
		return nil, err
	}
	at, err := checkAfterDetection("notified_at", m.NotifiedAt, h.s.now(), b)
	if err != nil {
		return nil, err
	}
	if err := checkKey(m.IdempotencyKey); err != nil {
		return nil, err
	}
	// The deadline of the plan the breach follows (README.md: Privacy notices, breaches, reports): none for a
	// breach assessed no_risk, the controllers' for a processor.
	st := breach.Evaluate(b, nil, at.AsTime())
	if steps, err := h.s.planSteps(ctx, b); err == nil {
		st = breach.Evaluate(b, steps, at.AsTime())
	}
	deadline := st.Deadline
	inTime := !st.Notifiable || !at.AsTime().After(deadline)
	if b.AuthorityNotifiedAt == nil && !inTime && strings.TrimSpace(m.DelayReason) == "" {
		late := at.AsTime().Sub(b.DetectedAt.AsTime()).Round(time.Minute)
		return nil, invalid("delay_reason", "is required: the notification comes %v after the breach was detected, after its deadline %s (%s)", late, deadline.UTC().Format(time.RFC3339), st.Obligation)
	}
	rcpt, err := h.s.appendBreach(ctx, m.IdempotencyKey, m, &pb.Entry{Event: &pb.Entry_BreachAuthorityNotified{BreachAuthorityNotified: &pb.BreachAuthorityNotified{
		BreachId: m.BreachId, Authority: m.Authority, Reference: m.Reference, Phase: phase, NotifiedAt: at, DelayReason: m.DelayReason,
	}}})
	if err != nil {
		return nil, err
	}
	if b.AuthorityNotifiedAt != nil { // a later phase: timeliness is the first notification's
		inTime = !st.Notifiable || !b.AuthorityNotifiedAt.AsTime().After(deadline)
	}
	return connect.NewResponse(&pb.RecordAuthorityNotificationResponse{Entry: rcpt.Ref(), NotifiedInTime: inTime}), nil
}

func (h *breachHandler) RecordSubjectNotification(ctx context.Context, r *connect.Request[pb.RecordSubjectNotificationRequest]) (*connect.Response[pb.RecordSubjectNotificationResponse], error) {
	m := r.Msg
	b, err := h.s.breachFor(ctx, m.BreachId)
	if err != nil {
		return nil, err
	}
	if err := checkIdent("method", m.Method, maxShortText); err != nil {
		return nil, err
	}
	exception, err := checkException(b, m)
	if err != nil {
		return nil, err
	}
	at, err := checkAfterDetection("notified_at", m.NotifiedAt, h.s.now(), b)
	if err != nil {
		return nil, err
	}
	if err := checkKey(m.IdempotencyKey); err != nil {
		return nil, err
	}
	rcpt, err := h.s.appendBreach(ctx, m.IdempotencyKey, m, &pb.Entry{Event: &pb.Entry_BreachSubjectsNotified{BreachSubjectsNotified: &pb.BreachSubjectsNotified{
		BreachId: m.BreachId, NotifiedAt: at, Method: m.Method, SubjectsNotified: m.SubjectsNotified,
		Exception: exception, ExceptionReason: m.ExceptionReason,
	}}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.RecordSubjectNotificationResponse{Entry: rcpt.Ref()}), nil
}

func (h *breachHandler) CloseBreach(ctx context.Context, r *connect.Request[pb.CloseBreachRequest]) (*connect.Response[pb.CloseBreachResponse], error) {
	m := r.Msg
	b, err := h.s.breachFor(ctx, m.BreachId)
	if err != nil {
		return nil, err
	}
	if err := checkFree("summary", m.Summary, maxLongText); err != nil {
		return nil, err
	}
	if err := freeText("summary", m.Summary); err != nil {
		return nil, err
	}
	at, err := checkAfterDetection("closed_at", m.ClosedAt, h.s.now(), b)
	if err != nil {
		return nil, err
	}
	if err := checkKey(m.IdempotencyKey); err != nil {
		return nil, err
	}
	rcpt, err := h.s.appendBreach(ctx, m.IdempotencyKey, m, &pb.Entry{Event: &pb.Entry_BreachClosed{BreachClosed: &pb.BreachClosed{
		BreachId: m.BreachId, ClosedAt: at, Summary: m.Summary,
	}}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CloseBreachResponse{Entry: rcpt.Ref()}), nil
}

// Paging of ListBreaches.
const (
	defaultBreachPage = 100
	// MaxBreachPage bounds ListBreaches.page_size.
	MaxBreachPage = 1000
)

func (h *breachHandler) ListBreaches(ctx context.Context, r *connect.Request[pb.ListBreachesRequest]) (*connect.Response[pb.ListBreachesResponse], error) {
	if err := h.s.waitApplied(ctx, r.Msg.MinIndex); err != nil {
		return nil, err
	}
	size := int(r.Msg.PageSize)
	if size == 0 {
		size = defaultBreachPage
	}
	if size > MaxBreachPage {
		return nil, invalid("page_size", "%d is more than %d", size, MaxBreachPage)
	}
	var after uint64 // the detection entry of the previous page's last breach, plus one
	if t := r.Msg.PageToken; t != "" {
		n, err := strconv.ParseUint(t, 10, 64)
		if err != nil {
			return nil, invalid("page_token", "%q is not a token this server gave; pass next_page_token of the previous page", t)
		}
		after = n
	}
	all, err := h.s.l.Breaches(ctx)
	if err != nil {
		return nil, toConnect(err)
	}
	// In the order they were reported: by the index of the detection entry.
	slices.SortFunc(all, func(a, b *pb.BreachState) int {
		return cmp.Compare(a.GetDetected().GetIndex(), b.GetDetected().GetIndex())
	})
	start, _ := slices.BinarySearchFunc(all, after, func(b *pb.BreachState, i uint64) int { return cmp.Compare(b.GetDetected().GetIndex(), i) })
	page := all[start:]
	out := &pb.ListBreachesResponse{}
	if len(page) > size {
		page = page[:size]
		out.NextPageToken = strconv.FormatUint(page[size-1].GetDetected().GetIndex()+1, 10)
	}
	now := h.s.now()
	for _, b := range page {
		v, err := h.s.breachView(ctx, b, now)
		if err != nil {
			return nil, err
		}
		out.Breaches = append(out.Breaches, v)
	}
	return connect.NewResponse(out), nil
}

// BreachView computes a breach's Art. 33 deadline and timeliness at now
// under the default plan (README.md: Privacy notices, breaches, reports: none for a no_risk breach).
func BreachView(b *pb.BreachState, now time.Time) *pb.Breach {
	return breachViewWith(b, breach.DefaultSteps(), now, nil)
}
