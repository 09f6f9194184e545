package server_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/client"
	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/server"
	"github.com/consentledger/consentledger/verifier"
)

// A log with every §14 entry (notice, plan, assessment, step, exception,
// report) audits, and consentverify breaches reports a no_risk breach as
// not notifiable rather than overdue.
func TestRule2LogAudits(t *testing.T) {
	ctx := context.Background()
	s := start(t, server.Config{})
	c, err := client.New(s.url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.notices().PublishNotice(ctx, connect.NewRequest(marketingNotice("2026-11", "en", noon.Add(-time.Hour)))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.consent().RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{
		Subject: phone(anna), Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing"}, Method: "web_form",
		NoticeVersion: "2026-11", DoubleOptInConfirmed: true,
	})); err != nil {
		t.Fatal(err)
	}
	wantDecision(t, decide(t, s, waMarketing(anna)), true, "consent")
	if _, err := s.breach().PublishPlan(ctx, connect.NewRequest(&pb.PublishPlanRequest{Version: "2026-11"})); err != nil {
		t.Fatal(err)
	}
	quiet := reportBreach(t, s, &pb.ReportBreachRequest{BreachId: "b-quiet"})
	assess(t, s, quiet, "no_risk")
	high := reportBreach(t, s, &pb.ReportBreachRequest{BreachId: "b-high"})
	assess(t, s, high, "high_risk")
	if _, err := s.breach().CompleteStep(ctx, connect.NewRequest(&pb.CompleteStepRequest{BreachId: high, StepId: "inform_dpo"})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.breach().RecordAuthorityNotification(ctx, connect.NewRequest(&pb.RecordAuthorityNotificationRequest{BreachId: high, Authority: "BfDI"})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.breach().RecordSubjectNotification(ctx, connect.NewRequest(&pb.RecordSubjectNotificationRequest{BreachId: high, Exception: "c", ExceptionReason: "no contact data; public notice on the website"})); err != nil {
		t.Fatal(err)
	}
	stream, err := c.Report.ExportConsents(ctx, connect.NewRequest(&pb.ExportConsentsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for stream.Receive() {
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	stream.Close()
	s.clock.Add(100 * time.Hour)
	wantDecision(t, decide(t, s, waMarketing(anna)), true, "consent")

	var exp bytes.Buffer
	if _, err := c.Export(ctx, &exp, nil); err != nil {
		t.Fatal(err)
	}
	key, err := ledger.ReadVerifierKey(s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifier.Audit(ctx, bytes.NewReader(exp.Bytes()), key, nil); err != nil {
		t.Fatalf("the audit of a log with §14 entries failed: %v", err)
	}
	rep, err := verifier.Breaches(ctx, bytes.NewReader(exp.Bytes()), key)
	if err != nil {
		t.Fatalf("consentverify breaches: %v", err)
	}
	got := map[string]string{}
	for _, b := range rep.Breaches {
		got[b.BreachID] = b.Timeliness
	}
	if got["b-quiet"] != verifier.NotNotifiable || got["b-high"] != verifier.NotifiedInTime {
		t.Errorf("timeliness %v, want b-quiet not_notifiable and b-high in_time", got)
	}
}

// consentverify breaches holds a processor to its controllers' deadline
// (Art. 33(2); 24 h in the default plan).
func TestProcessorBreachAudit(t *testing.T) {
	ctx := context.Background()
	s := start(t, server.Config{Controller: &server.ControllerConfig{Name: "SMS Relay GmbH", Role: "processor"}})
	c, err := client.New(s.url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reportBreach(t, s, &pb.ReportBreachRequest{BreachId: "b-proc"})
	s.clock.Add(25 * time.Hour)
	wantDecision(t, decide(t, s, waMarketing(anna)), false, "no_consent") // an entry after the deadline
	var exp bytes.Buffer
	if _, err := c.Export(ctx, &exp, nil); err != nil {
		t.Fatal(err)
	}
	key, err := ledger.ReadVerifierKey(s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	rep, _ := verifier.Breaches(ctx, bytes.NewReader(exp.Bytes()), key)
	if rep == nil || len(rep.Breaches) != 1 {
		t.Fatalf("Breaches = %v", rep)
	}
	b := rep.Breaches[0]
	if !b.Processor || !b.Deadline.Equal(noon.Add(24*time.Hour)) || b.Timeliness != verifier.NotNotifiedOverdue {
		t.Errorf("processor breach: %+v, want the controllers' deadline +24 h, overdue", b)
	}
	if !strings.Contains(rep.Text(), "notify the controllers") {
		t.Errorf("report:\n%s", rep.Text())
	}
}
