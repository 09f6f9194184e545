package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/client"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/server"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// startServer runs the real server on loopback with a settable clock.
func startServer(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var now atomic.Int64
	now.Store(t0.UnixNano())
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	cfg := server.Config{DataDir: t.TempDir(), Addr: "127.0.0.1:0", Now: func() time.Time { return time.Unix(0, now.Load()).UTC() },
		Controller: &server.ControllerConfig{Name: "Example Shop GmbH", Address: "Beispielstraße 1, Berlin"},
		DPO:        &server.PersonConfig{Name: "Dr. Dana Schutz", Email: "dpo@example.com"},
		Authority:  &server.AuthorityConfig{Name: "BlnBDI"}}
	go func() {
		done <- server.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a string) { ready <- a })
	}()
	var url string
	select {
	case a := <-ready:
		url = "http://" + a
	case err := <-done:
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-done })
	return url, &now
}

// runCmd runs the command line and returns its exit code, stdout and stderr.
func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	stdout, stderr = &out, &errb
	defer func() { stdout, stderr = os.Stdout, os.Stderr }()
	code := run(args)
	return code, out.String(), errb.String()
}

func sms(n string) *pb.Subject { return &pb.Subject{Id: &pb.Subject_Phone{Phone: n}} }

func TestReportConsents(t *testing.T) {
	url, now := startServer(t)
	c, err := client.New(url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	optIn := func(who string, ch pb.Channel, notice string) {
		must(c.Consent.RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{
			Subject: sms(who), Channel: ch, Purposes: []string{"marketing"}, Method: "web_form", NoticeVersion: notice,
			OccurredAt: timestamppb.New(t0.Add(-time.Hour)), DoubleOptInConfirmed: true,
		})))
	}
	optIn("+49 170 1111111", pb.Channel_CHANNEL_SMS, "2026-01")
	optIn("+49 170 2222222", pb.Channel_CHANNEL_WHATSAPP, "=1+1")
	optIn("+49 170 3333333", pb.Channel_CHANNEL_SMS, "2026-01")
	must(c.Consent.EraseSubject(ctx, connect.NewRequest(&pb.EraseSubjectRequest{Subject: sms("+49 170 3333333")})))
	// Anna opts out at t0+1h; it is recorded at t0+3h.
	now.Store(t0.Add(3 * time.Hour).UnixNano())
	must(c.Consent.RecordOptOut(ctx, connect.NewRequest(&pb.RecordOptOutRequest{
		Subject: sms("+49 170 1111111"), Channel: pb.Channel_CHANNEL_SMS, Method: "keyword", OccurredAt: timestamppb.New(t0.Add(time.Hour)),
	})))

	statuses := func(args ...string) (map[string]string, [][]string, string) {
		t.Helper()
		code, out, errs := runCmd(append([]string{"report", "consents", "--server", url}, args...)...)
		if code != 0 {
			t.Fatalf("report %v exited %d: %s", args, code, errs)
		}
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatalf("the report is not CSV: %v\n%s", err, out)
		}
		got := map[string]string{}
		for _, r := range recs[1:] {
			got[r[1]+"/"+r[2]+"/"+r[5]] = r[3]
		}
		return got, recs, out
	}
	got, recs, raw := statuses()
	if strings.Join(recs[0], ",") != "subject_id,channel,purpose,status,method,notice_version,notice_language,granted_occurred_at,granted_recorded_at,confirmed_occurred_at,confirmed_recorded_at,withdrawn_occurred_at,withdrawn_recorded_at,grant_index,last_event_index,erased" {
		t.Errorf("header = %v", recs[0])
	}
	if !strings.Contains(raw, "\r\n") {
		t.Error("the CSV lines do not end in CRLF (RFC 4180)")
	}
	if got["whatsapp/marketing/'=1+1"] != "granted" {
		t.Errorf("a formula cell was not neutralised with a leading apostrophe: %v", got)
	}
	var withdrawn, erased int
	for _, r := range recs[1:] {
		if r[3] == "withdrawn" {
			withdrawn++
			if r[11] != "2026-11-25T13:00:00Z" || r[12] != "2026-11-25T15:00:00Z" {
				t.Errorf("withdrawal occurred/recorded = %s / %s", r[11], r[12])
			}
		}
		if r[3] == "erased" && r[15] == "true" {
			erased++
		}
	}
	if withdrawn != 1 || erased != 1 {
		t.Errorf("%d withdrawn and %d erased rows, want 1 and 1:\n%s", withdrawn, erased, raw)
	}

	// Between the opt-out's occurred_at (t0+1h) and its recorded_at (t0+3h):
	// by occurred_at, Anna had withdrawn.
	_, recs, _ = statuses("--as-of", t0.Add(2*time.Hour).Format(time.RFC3339), "--channel", "sms")
	for _, r := range recs[1:] {
		if r[1] != "sms" {
			t.Errorf("--channel sms listed %v", r)
		}
	}
	if n := count(recs, "withdrawn"); n != 1 {
		t.Errorf("as of t0+2h: %d withdrawn, want 1: %v", n, recs)
	}
	_, recs, _ = statuses("--as-of", t0.Add(30*time.Minute).Format(time.RFC3339))
	if n := count(recs, "withdrawn"); n != 0 || count(recs, "granted") != 2 {
		t.Errorf("as of t0+30min: %v, want Anna still granted", recs)
	}
	_, recs, _ = statuses("--as-of", t0.Add(-2*time.Hour).Format(time.RFC3339))
	if len(recs) != 1 {
		t.Errorf("as of before every opt-in: %v, want only the header", recs)
	}

	// Every export is in the log.
	r, err := c.Log.GetEntries(ctx, connect.NewRequest(&pb.GetEntriesRequest{Start: 0, Count: 1}))
	if err != nil {
		t.Fatal(err)
	}
	es, err := c.Log.GetEntries(ctx, connect.NewRequest(&pb.GetEntriesRequest{Start: r.Msg.Size - 1, Count: 1}))
	if err != nil {
		t.Fatal(err)
	}
	e := new(pb.Entry)
	must(nil, proto.Unmarshal(es.Msg.Entries[0].Entry, e))
	if x := e.GetReportExported(); x == nil || x.Rows != 0 || x.Report != "consents" || len(x.Filters) != 1 || !strings.HasPrefix(x.Filters[0], "as_of=") {
		t.Errorf("last entry = %v, want the ReportExported of the last export (0 rows, as_of filter)", e)
	}

	code, out, _ := runCmd("report", "consents", "--json", "--purpose", "marketing", "--server", url)
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(out, `"status":"withdrawn"`) {
		t.Errorf("--json: exit %d\n%s", code, out)
	}
	if code, _, _ := runCmd("report", "consents", "--as-of", "yesterday", "--server", url); code != 2 {
		t.Errorf("a bad --as-of exited %d, want 2", code)
	}
}

func count(recs [][]string, status string) int {
	n := 0
	for _, r := range recs[1:] {
		if r[3] == status {
			n++
		}
	}
	return n
}

func TestBreachDrafts(t *testing.T) {
	url, now := startServer(t)
	c, err := client.New(url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rep, err := c.Breach.ReportBreach(ctx, connect.NewRequest(&pb.ReportBreachRequest{
		BreachId: "brc-1", Description: "An export of opt-in records was readable without login.", BreachTypes: []string{"confidentiality"},
		DataCategories: []string{"phone numbers"}, LikelyConsequences: "Unwanted messages.", Measures: "Access closed.",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Breach.AssessBreach(ctx, connect.NewRequest(&pb.AssessBreachRequest{BreachId: rep.Msg.BreachId, Level: "high_risk", Reasoning: "many persons"})); err != nil {
		t.Fatal(err)
	}
	now.Store(t0.Add(80 * time.Hour).UnixNano())
	code, md, errs := runCmd("breach", "notification", "brc-1", "--server", url)
	if code != 0 {
		t.Fatalf("breach notification exited %d: %s", code, errs)
	}
	for _, want := range []string{"## Still to provide", "## 1. Controller and reporting person", "Example Shop GmbH", "Dr. Dana Schutz", "## 11. Timeline", "## Appendix: log entries"} {
		if !strings.Contains(md, want) {
			t.Errorf("the draft lacks %q:\n%s", want, md)
		}
	}
	dir := t.TempDir()
	for _, f := range []string{"html", "pdf"} {
		path := filepath.Join(dir, "n."+f)
		if code, _, errs := runCmd("breach", "notification", "brc-1", "--format", f, "--lang", "de", "-o", path, "--server", url); code != 0 {
			t.Fatalf("--format %s exited %d: %s", f, code, errs)
		}
		b, _ := os.ReadFile(path)
		if (f == "pdf" && !bytes.HasPrefix(b, []byte("%PDF-"))) || (f == "html" && !bytes.Contains(b, []byte("Verantwortlicher und meldende Person"))) {
			t.Errorf("%s draft:\n%.300s", f, b)
		}
	}
	code, comm, _ := runCmd("breach", "communication", "brc-1", "--lang", "de", "--server", url)
	if code != 0 || !strings.Contains(comm, "Art. 34 DSGVO") || !strings.Contains(comm, "dpo@example.com") || strings.Contains(comm, "#") && strings.Contains(comm, "#0") {
		t.Errorf("communication: exit %d\n%s", code, comm)
	}
	if code, _, _ := runCmd("breach", "notification", "nope", "--server", url); code != 1 {
		t.Errorf("an unknown breach exited %d, want 1", code)
	}
	if code, _, _ := runCmd("breach", "notification", "brc-1", "--format", "doc", "--server", url); code != 2 {
		t.Errorf("--format doc exited %d, want 2", code)
	}
}
