package rpc

import (
	"context"
	"slices"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/ledger/subject"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Methods recorded for inbound opt-outs and opt-ins.
const (
	methodKeyword = "keyword"
	methodSignal  = policies.SignalWhatsAppStopPromotions
)

func (h *consentHandler) HandleInbound(ctx context.Context, r *connect.Request[pb.HandleInboundRequest]) (*connect.Response[pb.HandleInboundResponse], error) {
	m := r.Msg
	id, err := checkSubject(m.Subject)
	if err != nil {
		return nil, err
	}
	if err := checkChannel("channel", m.Channel); err != nil {
		return nil, err
	}
	if err := checkText("text", m.Text, maxLongText); err != nil {
		return nil, err
	}
	switch m.Signal {
	case "":
	case policies.SignalWhatsAppStopPromotions:
		if m.Channel != pb.Channel_CHANNEL_WHATSAPP {
			return nil, invalid("channel", "the signal %s comes from WhatsApp; channel must be CHANNEL_WHATSAPP", m.Signal)
		}
		if m.Text != "" {
			return nil, invalid("text", "must be empty with a signal (the webhook carries no message)")
		}
	default:
		return nil, invalid("signal", "%q is not one of \"\", %q", m.Signal, policies.SignalWhatsAppStopPromotions)
	}
	at, err := h.s.checkPast("received_at", m.ReceivedAt)
	if err != nil {
		return nil, err
	}
	if err := checkKey(m.IdempotencyKey); err != nil {
		return nil, err
	}
	set, _ := h.s.Active()
	res, err := set.InboundMessage(ctx, policies.InboundMessage{Text: m.Text, Signal: m.Signal, Contact: h.s.contact})
	if err != nil {
		return nil, toConnect(err)
	}
	resp := &pb.HandleInboundResponse{Action: res.Action, Keyword: res.Keyword, Reply: res.Reply}
	// The text itself is never recorded: the fingerprint covers it, keyed.
	var e *pb.Entry
	switch res.Action {
	case policies.ActionOptOut:
		w := &pb.ConsentWithdrawn{Channel: m.Channel, Method: methodKeyword, OccurredAt: at, Keyword: res.Keyword, Purposes: res.Purposes, Scope: ledger.ScopeChannel}
		if m.Signal != "" {
			w.Method = methodSignal
		}
		if res.Scope == policies.ScopeAllMarketing {
			w.Scope, w.Purposes = ledger.ScopeAllMarketing, nil
		}
		e = &pb.Entry{Event: &pb.Entry_ConsentWithdrawn{ConsentWithdrawn: w}}
	case policies.ActionOptIn:
		purposes, err := h.s.keywordWithdrawn(ctx, id, m.Channel)
		if err != nil {
			return nil, err
		}
		if len(purposes) == 0 {
			return connect.NewResponse(resp), nil
		}
		e = &pb.Entry{Event: &pb.Entry_ConsentGranted{ConsentGranted: &pb.ConsentGranted{
			Channel: m.Channel, Purposes: purposes, Method: methodKeyword, OccurredAt: at,
		}}}
	case policies.ActionReview:
		due := at.AsTime().Add(time.Duration(res.ReviewDueHours) * time.Hour)
		e = &pb.Entry{Event: &pb.Entry_InboundReview{InboundReview: &pb.InboundReview{
			Channel: m.Channel, Keyword: res.Keyword, ReceivedAt: at, DueAt: timestamppb.New(due),
		}}}
	default:
		return connect.NewResponse(resp), nil
	}
	rcpt, err := h.s.appendFor(ctx, &id, m.IdempotencyKey, m, e)
	if err != nil {
		return nil, err
	}
	resp.Entry = rcpt.Ref()
	return connect.NewResponse(resp), nil
}

// keywordWithdrawn returns what an inbound opt-in keyword restores: the
// purposes on ch that the channel's last keyword opt-out withdrew and that
// are still withdrawn by it — nothing else (GDPR Art. 4(11): consent is
// specific; policies/README.md). An opt-out by API, form or signal is never undone
// by a keyword.
func (s *Service) keywordWithdrawn(ctx context.Context, id subject.Identifier, ch pb.Channel) ([]string, error) {
	_, st, _, err := s.l.LookupSubject(ctx, id)
	if err != nil {
		return nil, toConnect(err)
	}
	var indexes []uint64
	for _, cs := range st.GetConsents() {
		if cs.Channel == ch && cs.Status == ledger.StatusWithdrawn && cs.Withdrawal != nil {
			indexes = append(indexes, cs.Withdrawal.Index)
		}
	}
	slices.Sort(indexes)
	indexes = slices.Compact(indexes)
	for i := len(indexes) - 1; i >= 0; i-- {
		e, err := s.entryAt(ctx, indexes[i])
		if err != nil {
			return nil, err
		}
		if w := e.GetConsentWithdrawn(); w == nil || w.Method != methodKeyword {
			continue
		}
		var purposes []string
		for _, cs := range st.GetConsents() {
			if cs.Channel == ch && cs.Status == ledger.StatusWithdrawn && cs.Withdrawal.GetIndex() == indexes[i] {
				purposes = append(purposes, cs.Purpose)
			}
		}
		return purposes, nil
	}
	return nil, nil
}

func (h *consentHandler) ListReviews(ctx context.Context, _ *connect.Request[pb.ListReviewsRequest]) (*connect.Response[pb.ListReviewsResponse], error) {
	refs, err := h.s.l.Reviews(ctx)
	if err != nil {
		return nil, toConnect(err)
	}
	resp := &pb.ListReviewsResponse{Reviews: make([]*pb.Review, 0, len(refs))}
	for _, ref := range refs {
		e, err := h.s.entryAt(ctx, ref.Index)
		if err != nil {
			return nil, err
		}
		r := e.GetInboundReview()
		if r == nil {
			continue
		}
		resp.Reviews = append(resp.Reviews, &pb.Review{
			Entry: ref, Channel: r.Channel, Keyword: r.Keyword, ReceivedAt: r.ReceivedAt, DueAt: r.DueAt, SubjectId: e.SubjectId,
		})
	}
	return connect.NewResponse(resp), nil
}
