package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/server"
)

// The console's reads: a subject's timeline follows its consent chain,
// newest first, with the current consent and its last allowed send.
func TestGetTimeline(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	grant := optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	d := decide(t, s, waMarketing(anna))
	if !d.Allow {
		t.Fatalf("decision denied: %v", d.Reasons)
	}
	out, err := s.consent().RecordOptOut(ctx, connect.NewRequest(&pb.RecordOptOutRequest{
		Subject: phone(anna), Channel: pb.Channel_CHANNEL_WHATSAPP, Method: "keyword",
	}))
	if err != nil {
		t.Fatal(err)
	}
	optIn(t, s, "+49 170 7654321", pb.Channel_CHANNEL_SMS, false, "marketing") // someone else

	r, err := s.consent().GetTimeline(ctx, connect.NewRequest(&pb.GetTimelineRequest{Subject: phone("+491701234567")}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range r.Msg.Events {
		got = append(got, e.Kind)
	}
	if strings.Join(got, ",") != "withdrawn,granted" {
		t.Fatalf("events %v, want withdrawn,granted", got)
	}
	if r.Msg.Events[0].Entry.Index != out.Msg.Entry.Index || r.Msg.Events[1].Entry.Index != grant.Index {
		t.Errorf("indexes %d,%d, want %d,%d", r.Msg.Events[0].Entry.Index, r.Msg.Events[1].Entry.Index, out.Msg.Entry.Index, grant.Index)
	}
	if e := r.Msg.Events[1]; e.NoticeVersion != "2026-01" || e.Method != "checkout" || e.Actor != "local" || e.Channel != pb.Channel_CHANNEL_WHATSAPP {
		t.Errorf("grant event %v", e)
	}
	if r.Msg.Events[0].Scope != "channel" {
		t.Errorf("withdrawal scope %q, want channel", r.Msg.Events[0].Scope)
	}
	if len(r.Msg.Consents) != 1 || r.Msg.Consents[0].LastAllowedSend.GetIndex() != d.Decision.Index {
		t.Errorf("consents %v, want the last allowed send %d", r.Msg.Consents, d.Decision.Index)
	}
	r, err = s.consent().GetTimeline(ctx, connect.NewRequest(&pb.GetTimelineRequest{Subject: phone(anna), Limit: 1}))
	if err != nil || len(r.Msg.Events) != 1 || !r.Msg.Truncated {
		t.Errorf("limit 1: %v, %v", r, err)
	}
	r, err = s.consent().GetTimeline(ctx, connect.NewRequest(&pb.GetTimelineRequest{Subject: phone("+49 170 0000000")}))
	if err != nil || r.Msg.SubjectId != "" || len(r.Msg.Events) != 0 {
		t.Errorf("unknown subject: %v, %v", r, err)
	}
	for _, req := range []*pb.GetTimelineRequest{{Subject: phone("not a number")}, {Subject: phone(anna), Limit: 1001}} {
		if _, err := s.consent().GetTimeline(ctx, connect.NewRequest(req)); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("%v: %v, want invalid_argument", req, err)
		}
	}
}

// Decisions are counted per hour of the window, allowed and denied by reason
// code; hours without decisions are present, older decisions are not counted.
func TestGetDecisionStats(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	decide(t, s, waMarketing(anna)) // denied: no consent, two hours before the rest
	s.clock.Add(2 * time.Hour)
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	decide(t, s, waMarketing(anna))
	decide(t, s, waMarketing(anna))
	decide(t, s, waMarketing("+49 170 7654321"))

	r, err := s.logs().GetDecisionStats(ctx, connect.NewRequest(&pb.GetDecisionStatsRequest{Hours: 3}))
	if err != nil {
		t.Fatal(err)
	}
	h := r.Msg.Hours
	if len(h) != 3 || !h[2].Start.AsTime().Equal(s.clock.Now().Truncate(time.Hour)) {
		t.Fatalf("hours %v", h)
	}
	if h[0].Allowed+h[0].Denied != 1 || h[0].DeniedByReason["no_consent"] != 1 {
		t.Errorf("first hour %v, want one no_consent denial", h[0])
	}
	if h[1].Allowed+h[1].Denied != 0 {
		t.Errorf("middle hour %v, want empty", h[1])
	}
	if h[2].Allowed != 2 || h[2].Denied != 1 || h[2].DeniedByReason["no_consent"] != 1 {
		t.Errorf("last hour %v, want 2 allowed, 1 no_consent denial", h[2])
	}
	r, err = s.logs().GetDecisionStats(ctx, connect.NewRequest(&pb.GetDecisionStatsRequest{Hours: 1}))
	if err != nil || len(r.Msg.Hours) != 1 || r.Msg.Hours[0].Allowed != 2 {
		t.Errorf("one hour: %v, %v", r, err)
	}
	if _, err := s.logs().GetDecisionStats(ctx, connect.NewRequest(&pb.GetDecisionStatsRequest{Hours: 169})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("169 hours: %v, want invalid_argument", err)
	}
}

func TestListCheckpoints(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	var sizes []uint64
	for i := range 3 {
		optIn(t, s, anna, pb.Channel_CHANNEL_SMS, false, "marketing", "p"+string(rune('a'+i)))
		c, err := s.logs().GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{Sign: true}))
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, c.Msg.Size)
	}
	r, err := s.logs().ListCheckpoints(ctx, connect.NewRequest(&pb.ListCheckpointsRequest{StartSize: sizes[1], Count: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Msg.Checkpoints) != 1 || r.Msg.Checkpoints[0].Size != sizes[1] {
		t.Fatalf("from size %d, count 1: %v", sizes[1], r.Msg.Checkpoints)
	}
	r, err = s.logs().ListCheckpoints(ctx, connect.NewRequest(&pb.ListCheckpointsRequest{StartSize: sizes[1]}))
	if err != nil || len(r.Msg.Checkpoints) != 2 || r.Msg.Checkpoints[1].Size != sizes[2] {
		t.Fatalf("from size %d: %v, %v; want sizes %v", sizes[1], r, err, sizes[1:])
	}
	if _, err := s.logs().ListCheckpoints(ctx, connect.NewRequest(&pb.ListCheckpointsRequest{Count: 1001})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("count 1001: %v, want invalid_argument", err)
	}
	if !strings.Contains(r.Msg.Checkpoints[0].Checkpoint, "\n— ") {
		t.Errorf("checkpoint is not a signed note: %q", r.Msg.Checkpoints[0].Checkpoint)
	}
}

// A request with a foreign Host is refused before it reaches the API, and
// appends nothing: a DNS-rebinding page cannot drive EraseSubject.
func TestForeignHostRefused(t *testing.T) {
	s := start(t, server.Config{})
	optIn(t, s, anna, pb.Channel_CHANNEL_SMS, false, "marketing")
	size := func() uint64 {
		r, err := s.logs().GetCheckpoint(context.Background(), connect.NewRequest(&pb.GetCheckpointRequest{Sign: true}))
		if err != nil {
			t.Fatal(err)
		}
		return r.Msg.Size
	}
	before := size()
	for _, path := range []string{"/consentledger.v1.ConsentService/EraseSubject", "/console/"} {
		req, _ := http.NewRequest(http.MethodPost, s.url+path, strings.NewReader(`{"subject":{"phone":"+491701234567"}}`))
		req.Host = "rebind.attacker.example:7420"
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("%s with a foreign Host: status %d, want 421", path, resp.StatusCode)
		}
	}
	for _, host := range []string{"localhost", "127.0.0.1"} {
		req, _ := http.NewRequest(http.MethodGet, s.url+"/console/", nil)
		req.Host = host
		resp, err := s.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("Host %s: status %d, want 200", host, resp.StatusCode)
		}
	}
	if after := size(); after != before {
		t.Errorf("log grew from %d to %d on refused requests", before, after)
	}
}
