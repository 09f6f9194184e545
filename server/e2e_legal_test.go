package server_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/server"
)

// End-to-end tests of the corrections from the legal review (issue 9).

const (
	wa    = pb.Channel_CHANNEL_WHATSAPP
	sms   = pb.Channel_CHANNEL_SMS
	email = pb.Channel_CHANNEL_EMAIL
)

func entryAt(t *testing.T, s *testServer, index uint64) *pb.Entry {
	t.Helper()
	r, err := s.logs().GetEntries(context.Background(), connect.NewRequest(&pb.GetEntriesRequest{Start: index, Count: 1}))
	if err != nil || len(r.Msg.Entries) != 1 {
		t.Fatalf("GetEntries(%d) = %v, %v", index, r, err)
	}
	e := new(pb.Entry)
	if err := proto.Unmarshal(r.Msg.Entries[0].Entry, e); err != nil {
		t.Fatal(err)
	}
	return e
}

func inbound(t *testing.T, s *testServer, who string, ch pb.Channel, text, signal string) *pb.HandleInboundResponse {
	t.Helper()
	r, err := s.consent().HandleInbound(context.Background(), connect.NewRequest(&pb.HandleInboundRequest{
		Subject: phone(who), Channel: ch, Text: text, Signal: signal,
	}))
	if err != nil {
		t.Fatalf("HandleInbound(%q, %q): %v", text, signal, err)
	}
	return r.Msg
}

func wantInvalidField(t *testing.T, s *testServer, err error, field string) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || !strings.Contains(ce.Message(), field) {
		t.Fatalf("err = %v, want invalid_argument naming %s", err, field)
	}
}

func consentOf(t *testing.T, s *testServer, who string, ch pb.Channel, purpose string) *pb.ConsentState {
	t.Helper()
	r, err := s.consent().GetConsent(context.Background(), connect.NewRequest(&pb.GetConsentRequest{Subject: phone(who)}))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Msg.Consents {
		if c.Channel == ch && c.Purpose == purpose {
			return c
		}
	}
	return nil
}

// Point 1: a marketing message in the service window needs consent, and
// STOP wins.
func TestServiceWindowNeverWaivesMarketing(t *testing.T) {
	s := start(t, server.Config{})
	optIn(t, s, anna, wa, true, "marketing")
	inbound(t, s, anna, wa, "STOP", "")
	req := waMarketing(anna)
	req.Category, req.ServiceWindowOpen = "", true
	wantDecision(t, decide(t, s, req), false, "consent_withdrawn")
	reply := &pb.DecideRequest{Subject: phone(anna), Channel: wa, Purpose: "support", Category: "service", ServiceWindowOpen: true,
		Provider: &pb.Provider{Name: "eu-bsp", Region: "EU"}}
	wantDecision(t, decide(t, s, reply), true, "service_window")
}

// Point 2: an objection stops marketing on every channel, not other purposes.
func TestObjectionCoversAllChannels(t *testing.T) {
	s := start(t, server.Config{})
	optIn(t, s, anna, email, true, "marketing", "order_updates")
	optIn(t, s, anna, wa, true, "marketing")
	mail := &pb.DecideRequest{Subject: phone(anna), Channel: email, Purpose: "marketing", SubjectTimezone: "Europe/Berlin"}
	wantDecision(t, decide(t, s, mail), true, "consent")

	size := logSize(t, s)
	_, err := s.consent().RecordOptOut(context.Background(), connect.NewRequest(&pb.RecordOptOutRequest{
		Subject: phone(anna), Channel: wa, Scope: "everything",
	}))
	wantInvalidField(t, s, err, "scope")
	_, err = s.consent().RecordOptOut(context.Background(), connect.NewRequest(&pb.RecordOptOutRequest{
		Subject: phone(anna), Channel: wa, Scope: "all_marketing", Purposes: []string{"marketing"},
	}))
	wantInvalidField(t, s, err, "purposes")
	if got := logSize(t, s); got != size {
		t.Fatalf("rejected requests appended %d entries", got-size)
	}

	r, err := s.consent().RecordOptOut(context.Background(), connect.NewRequest(&pb.RecordOptOutRequest{
		Subject: phone(anna), Channel: wa, Scope: "all_marketing",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if w := entryAt(t, s, r.Msg.Entry.Index).GetConsentWithdrawn(); w.GetScope() != "all_marketing" {
		t.Errorf("recorded withdrawal %v, want scope all_marketing", w)
	}
	wantDecision(t, decide(t, s, mail), false, "objection")
	wantDecision(t, decide(t, s, waMarketing(anna)), false, "objection")
	order := &pb.DecideRequest{Subject: phone(anna), Channel: email, Purpose: "order_updates"}
	wantDecision(t, decide(t, s, order), true, "consent")
	g, err := s.consent().GetConsent(context.Background(), connect.NewRequest(&pb.GetConsentRequest{Subject: phone(anna)}))
	if err != nil || g.Msg.Objection.GetIndex() != r.Msg.Entry.Index {
		t.Fatalf("GetConsent objection = %v, %v; want entry %d", g.Msg.GetObjection(), err, r.Msg.Entry.Index)
	}
	// A new opt-in after the objection counts.
	optIn(t, s, anna, email, true, "marketing")
	wantDecision(t, decide(t, s, mail), true, "consent")
}

// Point 3: START restores only what the channel's last keyword opt-out withdrew.
func TestOptInKeywordRestoresOnlyKeywordOptOut(t *testing.T) {
	s := start(t, server.Config{})
	optIn(t, s, anna, sms, true, "marketing", "order_updates")
	inbound(t, s, anna, sms, "Stopp bitte!", "")
	optIn(t, s, anna, sms, true, "news")
	if _, err := s.consent().RecordOptOut(context.Background(), connect.NewRequest(&pb.RecordOptOutRequest{
		Subject: phone(anna), Channel: sms, Purposes: []string{"news"},
	})); err != nil {
		t.Fatal(err)
	}
	optIn(t, s, anna, wa, true, "marketing")
	if _, err := s.consent().RecordOptOut(context.Background(), connect.NewRequest(&pb.RecordOptOutRequest{Subject: phone(anna), Channel: wa})); err != nil {
		t.Fatal(err)
	}
	r := inbound(t, s, anna, sms, "START", "")
	g := entryAt(t, s, r.Entry.GetIndex()).GetConsentGranted()
	if r.Action != "opt_in" || g == nil || strings.Join(g.Purposes, ",") != "marketing,order_updates" || g.Channel != sms {
		t.Fatalf("START = %v, granted %v; want marketing,order_updates on sms", r, g)
	}
	if c := consentOf(t, s, anna, sms, "news"); c.GetStatus() != "withdrawn" {
		t.Errorf("news after START = %v, want still withdrawn (its opt-out was not a keyword)", c)
	}
	// START on WhatsApp restores nothing: its opt-out came by API.
	if r := inbound(t, s, anna, wa, "yes", ""); r.Action != "opt_in" || r.Entry != nil {
		t.Errorf("yes on WhatsApp = %v, want opt_in with no entry", r)
	}
}

// Point 4: double opt-in counts only on the consent's channel.
func TestDoubleOptInChannel(t *testing.T) {
	s := start(t, server.Config{})
	optIn(t, s, anna, sms, false, "marketing")
	confirm := func(via pb.Channel) uint64 {
		r, err := s.consent().ConfirmOptIn(context.Background(), connect.NewRequest(&pb.ConfirmOptInRequest{
			Subject: phone(anna), Channel: sms, Purposes: []string{"marketing"}, ConfirmedVia: via,
		}))
		if err != nil {
			t.Fatal(err)
		}
		return r.Msg.Entry.Index
	}
	i := confirm(email)
	if c := entryAt(t, s, i).GetConsentConfirmed(); c.GetConfirmedVia() != email {
		t.Fatalf("recorded confirmation %v, want confirmed_via email", c)
	}
	req := &pb.DecideRequest{Subject: phone(anna), Channel: sms, Purpose: "marketing", SubjectTimezone: "Europe/Berlin"}
	wantDecision(t, decide(t, s, req), false, "double_opt_in_wrong_channel")
	i = confirm(pb.Channel_CHANNEL_UNSPECIFIED)
	if c := entryAt(t, s, i).GetConsentConfirmed(); c.GetConfirmedVia() != sms {
		t.Fatalf("recorded confirmation %v, want confirmed_via defaulting to sms", c)
	}
	wantDecision(t, decide(t, s, req), true, "double_opt_in")
	_, err := s.consent().ConfirmOptIn(context.Background(), connect.NewRequest(&pb.ConfirmOptInRequest{
		Subject: phone(anna), Channel: sms, Purposes: []string{"marketing"}, ConfirmedVia: pb.Channel(99),
	}))
	wantInvalidField(t, s, err, "confirmed_via")
}

// Point 5: a US number without a time zone is not judged in Berlin's.
func TestMultiZoneCountryNeedsZone(t *testing.T) {
	s := start(t, server.Config{})
	const us = "+1 650 253 0000"
	optIn(t, s, us, sms, true, "marketing")
	req := &pb.DecideRequest{Subject: phone(us), Channel: sms, Purpose: "marketing"}
	wantDecision(t, decide(t, s, req), false, "timezone_required")
	req.SubjectTimezone = "America/Los_Angeles"
	s.clock.Set(noon.Add(8 * time.Hour)) // 12:00 in California
	wantDecision(t, decide(t, s, req), true, "consent")
}

// Point 6: legal bases other than consent.
func TestLegalBasis(t *testing.T) {
	s := start(t, server.Config{})
	otp := &pb.DecideRequest{Subject: phone(anna), Channel: sms, Purpose: "authentication", Category: "authentication", LegalBasis: "contract"}
	d := decide(t, s, otp)
	wantDecision(t, d, true, "legal_basis")
	if len(d.Consents) != 0 {
		t.Errorf("a send under contract relied on consents %v", d.Consents)
	}
	if r := entryAt(t, s, d.Decision.Index).GetSendDecision().GetRequest(); r.GetLegalBasis() != "contract" {
		t.Errorf("recorded request %v, want legal_basis contract", r)
	}
	otp.LegalBasis = ""
	d = decide(t, s, otp)
	wantDecision(t, d, false, "no_consent")
	if r := entryAt(t, s, d.Decision.Index).GetSendDecision().GetRequest(); r.GetLegalBasis() != "consent" {
		t.Errorf("recorded request %v, want legal_basis consent by default", r)
	}
	promo := waMarketing(anna)
	promo.LegalBasis = "contract"
	wantDecision(t, decide(t, s, promo), false, "legal_basis_not_for_marketing")

	size := logSize(t, s)
	otp.LegalBasis = "legitimate_interest"
	_, err := s.send().Decide(context.Background(), connect.NewRequest(otp))
	wantInvalidField(t, s, err, "legal_basis")
	if got := logSize(t, s); got != size {
		t.Fatalf("a rejected Decide appended %d entries", got-size)
	}

	// An Art. 34 notice during an open breach on the channel.
	if _, err := s.breach().ReportBreach(context.Background(), connect.NewRequest(&pb.ReportBreachRequest{
		Description: "lost laptop", Channels: []pb.Channel{wa},
	})); err != nil {
		t.Fatal(err)
	}
	notice := &pb.DecideRequest{Subject: phone(anna), Channel: wa, Purpose: "breach_notice", LegalBasis: "legal_obligation",
		Provider: &pb.Provider{Name: "eu-bsp", Region: "EU"}}
	wantDecision(t, decide(t, s, notice), true, "legal_basis")
}

// Points 7–9: keyword matching, review, help reply, WhatsApp signal.
func TestInboundReviewHelpSignal(t *testing.T) {
	s := start(t, server.Config{Contact: server.ContactConfig{
		SenderName: "Example Shop GmbH", SupportContact: "support@example.com",
		PrivacyNoticeURL: "https://example.com/privacy", DPOContact: "dpo@example.com",
	}})
	optIn(t, s, anna, wa, true, "marketing", "order_updates")
	if r := inbound(t, s, anna, sms, "STOP SMS", ""); r.Action != "opt_out" || r.Keyword != "STOP" {
		t.Errorf("STOP SMS = %v", r)
	}

	r := inbound(t, s, anna, wa, "Keine Werbung mehr, Anna Schmidt", "")
	if r.Action != "review" || r.Keyword != "KEINE WERBUNG" || r.Entry == nil {
		t.Fatalf("review message = %v", r)
	}
	lr, err := s.consent().ListReviews(context.Background(), connect.NewRequest(&pb.ListReviewsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(lr.Msg.Reviews) != 1 {
		t.Fatalf("ListReviews = %v, want one", lr.Msg.Reviews)
	}
	rv := lr.Msg.Reviews[0]
	if rv.Entry.Index != r.Entry.Index || rv.Channel != wa || rv.Keyword != "KEINE WERBUNG" ||
		!rv.ReceivedAt.AsTime().Equal(noon) || !rv.DueAt.AsTime().Equal(noon.Add(24*time.Hour)) || rv.SubjectId == "" {
		t.Errorf("review = %v", rv)
	}
	if j := entryAt(t, s, r.Entry.Index); strings.Contains(j.String(), "Schmidt") || strings.Contains(j.String(), "mehr") {
		t.Errorf("the review entry holds message text: %v", j)
	}
	// A review withdraws nothing: a person decides.
	if c := consentOf(t, s, anna, wa, "marketing"); c.GetStatus() != "granted" {
		t.Errorf("marketing after review = %v", c)
	}

	h := inbound(t, s, anna, wa, "Hilfe?", "")
	want := "Example Shop GmbH\nHelp: support@example.com\nTo stop these messages: reply STOP\nPrivacy notice: https://example.com/privacy\nData protection officer: dpo@example.com"
	if h.Action != "help" || h.Reply != want || h.Entry != nil {
		t.Errorf("help = %q (%v), want reply %q", h.Reply, h, want)
	}

	size := logSize(t, s)
	_, err = s.consent().HandleInbound(context.Background(), connect.NewRequest(&pb.HandleInboundRequest{
		Subject: phone(anna), Channel: sms, Signal: "whatsapp_stop_promotions",
	}))
	wantInvalidField(t, s, err, "channel")
	_, err = s.consent().HandleInbound(context.Background(), connect.NewRequest(&pb.HandleInboundRequest{
		Subject: phone(anna), Channel: wa, Signal: "block",
	}))
	wantInvalidField(t, s, err, "signal")
	if got := logSize(t, s); got != size {
		t.Fatalf("rejected requests appended %d entries", got-size)
	}
	sig := inbound(t, s, anna, wa, "", "whatsapp_stop_promotions")
	w := entryAt(t, s, sig.Entry.GetIndex()).GetConsentWithdrawn()
	if sig.Action != "opt_out" || w == nil || strings.Join(w.Purposes, ",") != "marketing" || w.Method != "whatsapp_stop_promotions" {
		t.Fatalf("stop promotions = %v, recorded %v", sig, w)
	}
	wantDecision(t, decide(t, s, waMarketing(anna)), false, "consent_withdrawn")
	if c := consentOf(t, s, anna, wa, "order_updates"); c.GetStatus() != "granted" {
		t.Errorf("order_updates after stop promotions = %v, want granted", c)
	}
}

// Point 2: a keyword the policy lists as an objection is recorded as one
// (scope all_marketing) and stops marketing on every channel; STOP stays
// channel-wide.
func TestInboundObjectionKeyword(t *testing.T) {
	dir := t.TempDir()
	for _, f := range policies.Default() {
		content := f.Content
		if f.Name == policies.DataFile {
			content = strings.Replace(content, `"objection_keywords": []`, `"objection_keywords": ["WIDERSPRUCH"]`, 1)
			content = strings.Replace(content, `"opt_out": ["STOPP",`, `"opt_out": ["WIDERSPRUCH", "STOPP",`, 1)
			if content == f.Content {
				t.Fatal("data.json did not change")
			}
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := start(t, server.Config{PoliciesDir: dir})
	optIn(t, s, anna, wa, true, "marketing", "order_updates")
	optIn(t, s, anna, email, true, "marketing")
	r := inbound(t, s, anna, sms, "Widerspruch!", "")
	w := entryAt(t, s, r.Entry.GetIndex()).GetConsentWithdrawn()
	if r.Action != "opt_out" || w.GetScope() != "all_marketing" || w.GetKeyword() != "WIDERSPRUCH" || len(w.GetPurposes()) != 0 {
		t.Fatalf("Widerspruch = %v, recorded %v; want an objection", r, w)
	}
	wantDecision(t, decide(t, s, waMarketing(anna)), false, "objection")
	wantDecision(t, decide(t, s, &pb.DecideRequest{Subject: phone(anna), Channel: email, Purpose: "marketing", SubjectTimezone: "Europe/Berlin"}), false, "objection")
	wantDecision(t, decide(t, s, &pb.DecideRequest{Subject: phone(anna), Channel: wa, Purpose: "order_updates",
		Provider: &pb.Provider{Name: "eu-bsp", Region: "EU"}}), true, "consent")
	if st := inbound(t, s, anna, sms, "STOP", ""); entryAt(t, s, st.Entry.GetIndex()).GetConsentWithdrawn().GetScope() != "channel" {
		t.Error("STOP was not recorded as a channel withdrawal")
	}
}
