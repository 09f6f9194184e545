// Package report builds the consent report of README.md: Privacy notices, breaches, reports: one row per
// subject pseudonym, channel and purpose with its status, the occurred_at
// and recorded_at of its events (a withdrawal takes effect when received),
// method, notice version and language, and the entry indexes — either from
// a subject's current state or, as of an earlier moment, from its consent
// events by occurred_at. It also writes the rows as CSV (RFC 4180, with
// spreadsheet formula injection neutralised) or JSON lines.
package report

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Statuses of a row.
const (
	Granted   = "granted"
	Withdrawn = "withdrawn"
	Erased    = "erased"
)

// Filter selects rows; the zero value selects every row.
type Filter struct {
	Channel pb.Channel // unspecified: every channel
	Purpose string     // empty: every purpose
}

// Keep reports whether r passes the filter.
func (f Filter) Keep(r *pb.ConsentRow) bool {
	return (f.Channel == pb.Channel_CHANNEL_UNSPECIFIED || r.Channel == f.Channel) && (f.Purpose == "" || r.Purpose == f.Purpose)
}

// FromState returns the rows of a subject's current state, in order of
// channel and purpose.
func FromState(st *pb.SubjectState) []*pb.ConsentRow {
	var out []*pb.ConsentRow
	for _, cs := range st.GetConsents() {
		r := &pb.ConsentRow{
			SubjectId: st.SubjectId, Channel: cs.Channel, Purpose: cs.Purpose, Status: cs.Status, Method: cs.Method,
			NoticeVersion: cs.NoticeVersion, NoticeLanguage: cs.NoticeLanguage, Erased: st.Erased,
			GrantedOccurredAt: cs.GrantedAt, GrantIndex: cs.Grant.GetIndex(), GrantedRecordedAt: cs.Grant.GetRecordedAt(),
		}
		if cs.ConfirmedAt != nil {
			r.ConfirmedOccurredAt = cs.ConfirmedAt
			// Confirmed in the grant itself, or by a ConsentConfirmed entry.
			r.ConfirmedRecordedAt = cs.Grant.GetRecordedAt()
			if cs.Confirmation != nil {
				r.ConfirmedRecordedAt = cs.Confirmation.RecordedAt
			}
		}
		if cs.Withdrawal != nil {
			r.WithdrawnOccurredAt, r.WithdrawnRecordedAt = cs.WithdrawnAt, cs.Withdrawal.RecordedAt
		}
		r.LastEventIndex = max(cs.Grant.GetIndex(), cs.Confirmation.GetIndex(), cs.Withdrawal.GetIndex())
		if st.Erased {
			r.Status = Erased
			r.LastEventIndex = max(r.LastEventIndex, st.Head.GetIndex())
		}
		out = append(out, r)
	}
	return out
}

// AsOf returns the rows of one subject as its consent stood at asOf, by
// occurred_at: the events (oldest first, as ledger.SubjectChain returns
// them) that occurred by then are applied in order of occurred_at, then of
// index. An opt-out received after asOf that occurred before it counts:
// the question is who had consented at that moment.
func AsOf(subjectID string, events []*pb.Entry, asOf time.Time) []*pb.ConsentRow {
	type ev struct {
		e  *pb.Entry
		at time.Time
	}
	var evs []ev
	for _, e := range events {
		at := occurredAt(e)
		if at.After(asOf) {
			continue
		}
		evs = append(evs, ev{e, at})
	}
	slices.SortStableFunc(evs, func(a, b ev) int { return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.e.Index, b.e.Index)) })
	var rows []*pb.ConsentRow
	find := func(ch pb.Channel, p string) *pb.ConsentRow {
		for _, r := range rows {
			if r.Channel == ch && r.Purpose == p {
				return r
			}
		}
		r := &pb.ConsentRow{SubjectId: subjectID, Channel: ch, Purpose: p}
		rows = append(rows, r)
		return r
	}
	erased := false
	for _, x := range evs {
		e := x.e
		ts := timestamppb.New(x.at)
		switch v := e.Event.(type) {
		case *pb.Entry_ConsentGranted:
			g := v.ConsentGranted
			for _, p := range g.Purposes {
				r := find(g.Channel, p)
				*r = pb.ConsentRow{
					SubjectId: subjectID, Channel: g.Channel, Purpose: p, Status: Granted, Method: g.Method,
					NoticeVersion: g.NoticeVersion, NoticeLanguage: g.NoticeLanguage, GrantedOccurredAt: ts,
					GrantedRecordedAt: e.RecordedAt, GrantIndex: e.Index, LastEventIndex: e.Index,
				}
				if g.DoubleOptInConfirmed {
					r.ConfirmedOccurredAt, r.ConfirmedRecordedAt = ts, e.RecordedAt
				}
			}
		case *pb.Entry_ConsentConfirmed:
			c := v.ConsentConfirmed
			for _, p := range c.Purposes {
				for _, r := range rows {
					if r.Channel == c.Channel && r.Purpose == p && r.Status == Granted {
						r.ConfirmedOccurredAt, r.ConfirmedRecordedAt, r.LastEventIndex = ts, e.RecordedAt, e.Index
					}
				}
			}
		case *pb.Entry_ConsentWithdrawn:
			w := v.ConsentWithdrawn
			if w.Scope == "all_marketing" {
				continue // an objection: the policy decides which purposes are marketing
			}
			withdraw := func(r *pb.ConsentRow) {
				r.Status, r.WithdrawnOccurredAt, r.WithdrawnRecordedAt, r.LastEventIndex = Withdrawn, ts, e.RecordedAt, e.Index
			}
			if len(w.Purposes) == 0 {
				for _, r := range rows {
					if r.Channel == w.Channel {
						withdraw(r)
					}
				}
			}
			for _, p := range w.Purposes {
				withdraw(find(w.Channel, p))
			}
		case *pb.Entry_SubjectErased:
			erased = true
			for _, r := range rows {
				r.Status, r.LastEventIndex = Erased, e.Index
			}
		}
	}
	for _, r := range rows {
		r.Erased = erased
	}
	slices.SortFunc(rows, func(a, b *pb.ConsentRow) int {
		return cmp.Or(cmp.Compare(a.Channel, b.Channel), strings.Compare(a.Purpose, b.Purpose))
	})
	return rows
}

// occurredAt is when a consent event happened as the caller reported it;
// the recording time for events that carry none.
func occurredAt(e *pb.Entry) time.Time {
	var t *timestamppb.Timestamp
	switch v := e.Event.(type) {
	case *pb.Entry_ConsentGranted:
		t = v.ConsentGranted.OccurredAt
	case *pb.Entry_ConsentConfirmed:
		t = v.ConsentConfirmed.OccurredAt
	case *pb.Entry_ConsentWithdrawn:
		t = v.ConsentWithdrawn.OccurredAt
	case *pb.Entry_SubjectErased:
		t = v.SubjectErased.ErasedAt
	}
	if t == nil {
		t = e.RecordedAt
	}
	return t.AsTime()
}
