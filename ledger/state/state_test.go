package state_test

import (
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/ledger/state"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func ref(i uint64) *pb.EntryRef {
	return &pb.EntryRef{Index: i, LeafHash: []byte{byte(i)}, RecordedAt: timestamppb.New(t0.Add(time.Duration(i) * time.Minute))}
}

const sub = "subj_a"

func grant(ch pb.Channel, doi bool, purposes ...string) *pb.Entry {
	return &pb.Entry{SubjectId: sub, Event: &pb.Entry_ConsentGranted{ConsentGranted: &pb.ConsentGranted{Channel: ch, Purposes: purposes, Method: "checkout", NoticeVersion: "v1", DoubleOptInConfirmed: doi}}}
}

func withdraw(ch pb.Channel, purposes ...string) *pb.Entry {
	return &pb.Entry{SubjectId: sub, Event: &pb.Entry_ConsentWithdrawn{ConsentWithdrawn: &pb.ConsentWithdrawn{Channel: ch, Purposes: purposes}}}
}

func confirm(ch pb.Channel, purposes ...string) *pb.Entry {
	return &pb.Entry{SubjectId: sub, Event: &pb.Entry_ConsentConfirmed{ConsentConfirmed: &pb.ConsentConfirmed{Channel: ch, Purposes: purposes}}}
}

func decision(allow bool, ch pb.Channel, purpose string) *pb.Entry {
	return &pb.Entry{SubjectId: sub, Event: &pb.Entry_SendDecision{SendDecision: &pb.SendDecision{Allow: allow, Request: &pb.SendRequest{Channel: ch, Purpose: purpose}}}}
}

// The fold, event by event, as the input a decision after it would list.
func TestFoldInput(t *testing.T) {
	wa, sms := pb.Channel_CHANNEL_WHATSAPP, pb.Channel_CHANNEL_SMS
	tests := []struct {
		name    string
		entries []*pb.Entry
		want    map[string]map[string]map[string]any // channel → purpose → fields
	}{
		{"nothing", nil, nil},
		{"grant", []*pb.Entry{grant(wa, false, "marketing")}, map[string]map[string]map[string]any{
			"whatsapp": {"marketing": {"status": "granted", "grant_index": 0.0, "double_opt_in": false}}}},
		{"grant then confirm", []*pb.Entry{grant(wa, false, "marketing"), confirm(wa, "marketing")}, map[string]map[string]map[string]any{
			"whatsapp": {"marketing": {"status": "granted", "grant_index": 0.0, "double_opt_in": true, "confirmation_index": 1.0}}}},
		{"withdraw all purposes of the channel", []*pb.Entry{grant(wa, true, "marketing", "support"), grant(sms, true, "marketing"), withdraw(wa)}, map[string]map[string]map[string]any{
			"whatsapp": {"marketing": {"status": "withdrawn", "withdrawal_index": 2.0}, "support": {"status": "withdrawn"}},
			"sms":      {"marketing": {"status": "granted", "grant_index": 1.0}}}},
		{"withdrawal of a purpose never granted", []*pb.Entry{withdraw(sms, "marketing")}, map[string]map[string]map[string]any{
			"sms": {"marketing": {"status": "withdrawn", "withdrawal_index": 0.0}}}},
		{"grant again after withdrawal", []*pb.Entry{grant(wa, true, "marketing"), withdraw(wa, "marketing"), grant(wa, false, "marketing")}, map[string]map[string]map[string]any{
			"whatsapp": {"marketing": {"status": "granted", "grant_index": 2.0, "double_opt_in": false, "withdrawal_index": nil}}}},
		{"last allowed send", []*pb.Entry{grant(wa, true, "marketing"), decision(true, wa, "marketing"), decision(false, wa, "marketing")}, map[string]map[string]map[string]any{
			"whatsapp": {"marketing": {"last_allowed_send_at": "2026-11-25T12:01:00Z"}}}},
		{"erasure", []*pb.Entry{grant(wa, true, "marketing"), {SubjectId: sub, Event: &pb.Entry_SubjectErased{SubjectErased: &pb.SubjectErased{}}}}, map[string]map[string]map[string]any{
			"whatsapp": {"marketing": {"status": "erased"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := state.New()
			for i, e := range tc.entries {
				s.Apply(e, ref(uint64(i)))
			}
			st := s.Subject(sub)
			in := state.Input(t0, &pb.SendRequest{Channel: wa, Purpose: "marketing", SubjectCountry: "DE"}, s.Known(sub), st, s.OpenBreaches())
			var doc struct {
				Subject struct {
					Known    bool                                 `json:"known"`
					Country  string                               `json:"country"`
					Consents map[string]map[string]map[string]any `json:"consents"`
				} `json:"subject"`
			}
			if err := json.Unmarshal(policies.AppendJSON(nil, in.Value()), &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Subject.Known != (len(tc.entries) > 0 && st.GetErased() == false) || doc.Subject.Country != "DE" {
				t.Errorf("subject known %v country %q", doc.Subject.Known, doc.Subject.Country)
			}
			if len(doc.Subject.Consents) != len(tc.want) {
				t.Fatalf("consents %v, want channels of %v", doc.Subject.Consents, tc.want)
			}
			for ch, ps := range tc.want {
				for p, fields := range ps {
					got := doc.Subject.Consents[ch][p]
					if got == nil {
						t.Fatalf("no consent %s/%s in %v", ch, p, doc.Subject.Consents)
					}
					for k, v := range fields {
						if gv, ok := got[k]; (v == nil && ok) || (v != nil && gv != v) {
							t.Errorf("%s/%s %s = %v, want %v", ch, p, k, gv, v)
						}
					}
				}
			}
		})
	}
}

func TestBreachesAndPolicy(t *testing.T) {
	s := state.New()
	det := func(id string, ch pb.Channel) *pb.Entry {
		return &pb.Entry{Event: &pb.Entry_BreachDetected{BreachDetected: &pb.BreachDetected{BreachId: id, Channels: []pb.Channel{ch}, DetectedAt: timestamppb.New(t0)}}}
	}
	s.Apply(&pb.Entry{Event: &pb.Entry_PolicyPublished{PolicyPublished: &pb.PolicyPublished{Digest: "sha256:a"}}}, ref(0))
	s.Apply(det("b2", pb.Channel_CHANNEL_SMS), ref(1))
	s.Apply(det("b1", pb.Channel_CHANNEL_WHATSAPP), ref(2))
	s.Apply(&pb.Entry{Event: &pb.Entry_BreachClosed{BreachClosed: &pb.BreachClosed{BreachId: "b2"}}}, ref(3))
	s.Apply(&pb.Entry{Event: &pb.Entry_BreachClosed{BreachClosed: &pb.BreachClosed{BreachId: "unknown"}}}, ref(4))
	s.Apply(&pb.Entry{Event: &pb.Entry_PolicyPublished{PolicyPublished: &pb.PolicyPublished{Digest: "sha256:b"}}}, ref(5))
	open := s.OpenBreaches()
	if len(open) != 1 || open[0].BreachId != "b1" {
		t.Fatalf("open breaches %v, want b1 only", open)
	}
	if s.Breach("unknown") != nil {
		t.Error("a closure of an unknown breach made a breach")
	}
	if p := s.Policy(); p.GetEntry().GetIndex() != 5 || p.Digest != "sha256:b" {
		t.Errorf("policy %v, want entry 5", p)
	}
}

func TestReliedOn(t *testing.T) {
	s := state.New()
	wa := pb.Channel_CHANNEL_WHATSAPP
	s.Apply(grant(wa, false, "marketing", "order_updates"), ref(0))
	s.Apply(confirm(wa, "marketing"), ref(1))
	st := s.Subject(sub)
	tests := []struct {
		allow bool
		req   *pb.SendRequest
		want  []uint64
	}{
		{true, &pb.SendRequest{Channel: wa, Purpose: "marketing"}, []uint64{0, 1}},
		{true, &pb.SendRequest{Channel: wa, Purpose: "order_updates", Category: "marketing"}, []uint64{0, 1}},
		{true, &pb.SendRequest{Channel: wa, Purpose: "order_updates"}, []uint64{0}},
		{true, &pb.SendRequest{Channel: pb.Channel_CHANNEL_RCS, Purpose: "marketing"}, nil},
		{false, &pb.SendRequest{Channel: wa, Purpose: "marketing"}, nil},
	}
	for _, tc := range tests {
		var got []uint64
		for _, r := range state.ReliedOn(tc.allow, tc.req, st) {
			got = append(got, r.Index)
		}
		if len(got) != len(tc.want) || (len(got) > 0 && (got[0] != tc.want[0] || got[len(got)-1] != tc.want[len(tc.want)-1])) {
			t.Errorf("ReliedOn(%v, %v) = %v, want %v", tc.allow, tc.req, got, tc.want)
		}
	}
}
