package rpc

import (
	"context"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// MaxTimelineEvents bounds GetTimeline.
const MaxTimelineEvents = 1000

// GetTimeline follows the subject's consent chain (subject_prev_index) back
// from its head, so it reads one entry per event and never scans the log.
func (h *consentHandler) GetTimeline(ctx context.Context, r *connect.Request[pb.GetTimelineRequest]) (*connect.Response[pb.GetTimelineResponse], error) {
	id, err := checkSubject(r.Msg.Subject)
	if err != nil {
		return nil, err
	}
	limit := int(r.Msg.Limit)
	if limit == 0 {
		limit = 100
	}
	if limit > MaxTimelineEvents {
		return nil, invalid("limit", "%d is more than %d", limit, MaxTimelineEvents)
	}
	sid, st, found, err := h.s.l.LookupSubject(ctx, id)
	if err != nil {
		return nil, toConnect(err)
	}
	resp := &pb.GetTimelineResponse{}
	if !found {
		return connect.NewResponse(resp), nil
	}
	resp.SubjectId, resp.Consents = sid, st.GetConsents()
	next, ok := st.GetHead().GetIndex(), st.GetHead() != nil
	for ok {
		if len(resp.Events) == limit {
			resp.Truncated = true
			break
		}
		data, err := h.s.l.Entry(ctx, next)
		if err != nil {
			return nil, toConnect(err)
		}
		e, err := ledger.DecodeEntry(data)
		if err != nil {
			return nil, toConnect(err)
		}
		ev := timelineEvent(e)
		ev.Entry = &pb.EntryRef{Index: next, LeafHash: ledger.LeafHash(data), RecordedAt: e.RecordedAt}
		resp.Events = append(resp.Events, ev)
		next, ok = e.GetSubjectPrevIndex(), e.SubjectPrevIndex != nil
	}
	return connect.NewResponse(resp), nil
}

// timelineEvent is the API view of one consent event.
func timelineEvent(e *pb.Entry) *pb.TimelineEvent {
	ev := &pb.TimelineEvent{Actor: e.Actor}
	switch x := e.Event.(type) {
	case *pb.Entry_ConsentGranted:
		g := x.ConsentGranted
		ev.Kind, ev.Channel, ev.Purposes, ev.Method, ev.OccurredAt, ev.NoticeVersion = "granted", g.Channel, g.Purposes, g.Method, g.OccurredAt, g.NoticeVersion
	case *pb.Entry_ConsentConfirmed:
		c := x.ConsentConfirmed
		ev.Kind, ev.Channel, ev.Purposes, ev.OccurredAt = "confirmed", c.Channel, c.Purposes, c.OccurredAt
	case *pb.Entry_ConsentWithdrawn:
		w := x.ConsentWithdrawn
		ev.Kind, ev.Channel, ev.Purposes, ev.Method, ev.OccurredAt, ev.Scope = "withdrawn", w.Channel, w.Purposes, w.Method, w.OccurredAt, w.Scope
		if ev.Scope == "" {
			ev.Scope = "channel"
		}
	case *pb.Entry_SubjectErased:
		ev.Kind, ev.OccurredAt = "erased", x.SubjectErased.ErasedAt
	default:
		ev.Kind = "other"
	}
	return ev
}
