package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
	"github.com/consentledger/consentledger/server"
)

// clock is the servers' settable clock.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// A Wednesday, 13:00 in Berlin: outside every quiet-hours window.
var noon = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type testServer struct {
	url     string
	dataDir string
	clock   *clock
	http    *http.Client
	stop    func()
}

// start runs the real server on a loopback port with a temporary data directory.
func start(t *testing.T, cfg server.Config) *testServer {
	t.Helper()
	return startLogging(t, cfg, io.Discard, slog.LevelInfo)
}

// startLogging is start with the server's log written to w from level on.
func startLogging(t *testing.T, cfg server.Config, w io.Writer, level slog.Level) *testServer {
	t.Helper()
	c := &clock{}
	c.Set(noon)
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	withBackend(t, &cfg)
	cfg.Addr = "127.0.0.1:0"
	cfg.Now = c.Now
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
	go func() { done <- server.Run(ctx, cfg, log, func(addr string) { ready <- addr }) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start in 30 s")
	}
	tr := &http.Transport{}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	tr.Protocols.SetHTTP1(true)
	s := &testServer{url: "http://" + addr, dataDir: cfg.DataDir, clock: c, http: &http.Client{Transport: tr}}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server stopped with %v", err)
			}
		})
	}
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) consent(opts ...connect.ClientOption) consentledgerv1connect.ConsentServiceClient {
	return consentledgerv1connect.NewConsentServiceClient(s.http, s.url, opts...)
}
func (s *testServer) send(opts ...connect.ClientOption) consentledgerv1connect.SendServiceClient {
	return consentledgerv1connect.NewSendServiceClient(s.http, s.url, opts...)
}
func (s *testServer) breach(opts ...connect.ClientOption) consentledgerv1connect.BreachServiceClient {
	return consentledgerv1connect.NewBreachServiceClient(s.http, s.url, opts...)
}
func (s *testServer) logs(opts ...connect.ClientOption) consentledgerv1connect.LogServiceClient {
	return consentledgerv1connect.NewLogServiceClient(s.http, s.url, opts...)
}

func phone(n string) *pb.Subject { return &pb.Subject{Id: &pb.Subject_Phone{Phone: n}} }

const anna = "+49 170 1234567"

func optIn(t *testing.T, s *testServer, who string, ch pb.Channel, doubleOptIn bool, purposes ...string) *pb.EntryRef {
	t.Helper()
	r, err := s.consent().RecordOptIn(context.Background(), connect.NewRequest(&pb.RecordOptInRequest{
		Subject: phone(who), Channel: ch, Purposes: purposes, Method: "checkout", NoticeVersion: "2026-01",
		DoubleOptInConfirmed: doubleOptIn,
	}))
	if err != nil {
		t.Fatalf("RecordOptIn: %v", err)
	}
	return r.Msg.Entry
}

func decide(t *testing.T, s *testServer, req *pb.DecideRequest) *pb.DecideResponse {
	t.Helper()
	r, err := s.send().Decide(context.Background(), connect.NewRequest(req))
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if r.Msg.Decision == nil || r.Msg.Policy == nil {
		t.Fatalf("Decide answered without decision or policy entry: %v", r.Msg)
	}
	return r.Msg
}

func waMarketing(who string) *pb.DecideRequest {
	return &pb.DecideRequest{
		Subject: phone(who), Channel: pb.Channel_CHANNEL_WHATSAPP, Purpose: "marketing", Category: "marketing",
		Provider: &pb.Provider{Name: "eu-bsp", Region: "EU"}, SubjectTimezone: "Europe/Berlin",
	}
}

func hasReason(reasons []string, code string) bool {
	for _, r := range reasons {
		if strings.HasPrefix(r, code+":") {
			return true
		}
	}
	return false
}

func wantDecision(t *testing.T, d *pb.DecideResponse, allow bool, code string) {
	t.Helper()
	if d.Allow != allow || !hasReason(d.Reasons, code) {
		t.Fatalf("decision allow=%v reasons=%q, want allow=%v with %s", d.Allow, d.Reasons, allow, code)
	}
}

func logSize(t *testing.T, s *testServer) uint64 {
	t.Helper()
	r, err := s.logs().GetEntries(context.Background(), connect.NewRequest(&pb.GetEntriesRequest{Start: 0, Count: 1}))
	if err != nil {
		t.Fatal(err)
	}
	return r.Msg.Size
}

// Rule 3: no message without a prior active opt-in (WhatsApp, SMS, RCS).
func TestRuleOptInRequired(t *testing.T) {
	s := start(t, server.Config{})
	wantDecision(t, decide(t, s, waMarketing(anna)), false, "no_consent")
	grant := optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, false, "marketing")
	wantDecision(t, decide(t, s, waMarketing(anna)), false, "double_opt_in_required")
	if _, err := s.consent().ConfirmOptIn(context.Background(), connect.NewRequest(&pb.ConfirmOptInRequest{
		Subject: phone("+491701234567"), Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing"},
	})); err != nil {
		t.Fatal(err)
	}
	d := decide(t, s, waMarketing("0049 170 1234567"))
	wantDecision(t, d, true, "consent")
	if len(d.Consents) == 0 || d.Consents[0].Index != grant.Index {
		t.Errorf("decision relies on %v, want the grant %d first", d.Consents, grant.Index)
	}
	// SMS and RCS need their own opt-in.
	sms := &pb.DecideRequest{Subject: phone(anna), Channel: pb.Channel_CHANNEL_SMS, Purpose: "order_updates", Category: "utility"}
	wantDecision(t, decide(t, s, sms), false, "no_consent")
	optIn(t, s, anna, pb.Channel_CHANNEL_SMS, false, "order_updates")
	wantDecision(t, decide(t, s, sms), true, "consent")
	rcs := &pb.DecideRequest{Subject: phone(anna), Channel: pb.Channel_CHANNEL_RCS, Purpose: "order_updates", Category: "utility"}
	wantDecision(t, decide(t, s, rcs), false, "no_consent")
	// Confirming an opt-in that was never given is a failed precondition.
	_, err := s.consent().ConfirmOptIn(context.Background(), connect.NewRequest(&pb.ConfirmOptInRequest{
		Subject: phone("+33 6 12 34 56 78"), Channel: pb.Channel_CHANNEL_SMS, Purposes: []string{"marketing"},
	}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("confirming an unknown opt-in: %v, want failed_precondition", err)
	}
}

// Rule 4: opt-out at any time, by API and by inbound keyword.
func TestRuleOptOut(t *testing.T) {
	s := start(t, server.Config{})
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	wantDecision(t, decide(t, s, waMarketing(anna)), true, "consent")
	if _, err := s.consent().RecordOptOut(context.Background(), connect.NewRequest(&pb.RecordOptOutRequest{
		Subject: phone(anna), Channel: pb.Channel_CHANNEL_WHATSAPP,
	})); err != nil {
		t.Fatal(err)
	}
	wantDecision(t, decide(t, s, waMarketing(anna)), false, "consent_withdrawn")

	const ben = "+49 151 2345678"
	optIn(t, s, ben, pb.Channel_CHANNEL_SMS, true, "marketing")
	sms := &pb.DecideRequest{Subject: phone(ben), Channel: pb.Channel_CHANNEL_SMS, Purpose: "marketing", SubjectTimezone: "Europe/Berlin"}
	wantDecision(t, decide(t, s, sms), true, "consent")
	for _, tc := range []struct{ text, action string }{{"Wie geht's?", "none"}, {"hilfe", "help"}, {" Stopp ", "opt_out"}} {
		r, err := s.consent().HandleInbound(context.Background(), connect.NewRequest(&pb.HandleInboundRequest{
			Subject: phone(ben), Channel: pb.Channel_CHANNEL_SMS, Text: tc.text,
		}))
		if err != nil {
			t.Fatal(err)
		}
		if r.Msg.Action != tc.action || (tc.action == "opt_out") != (r.Msg.Entry != nil) {
			t.Fatalf("HandleInbound(%q) = %v, want action %s", tc.text, r.Msg, tc.action)
		}
	}
	wantDecision(t, decide(t, s, sms), false, "consent_withdrawn")
	// The recorded withdrawal holds the keyword, never the message text.
	entries, err := s.logs().GetEntries(context.Background(), connect.NewRequest(&pb.GetEntriesRequest{Count: 1000}))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries.Msg.Entries {
		if strings.Contains(e.Json, "Wie geht") || strings.Contains(e.Json, "151") {
			t.Errorf("entry %d holds message text or the phone number: %s", e.Index, e.Json)
		}
	}
}

// Rule 1: WhatsApp through an EU provider only.
func TestRuleEUProvider(t *testing.T) {
	s := start(t, server.Config{})
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	req := waMarketing(anna)
	req.Provider = &pb.Provider{Name: "us-bsp", Region: "US"}
	wantDecision(t, decide(t, s, req), false, "provider_region_not_allowed")
	req.Provider.Region = "eea"
	wantDecision(t, decide(t, s, req), true, "consent")
}

// Rule 2: breaches reported, the 72-hour deadline tracked, sends frozen.
func TestRuleBreach(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	optIn(t, s, anna, pb.Channel_CHANNEL_SMS, true, "marketing")
	sms := &pb.DecideRequest{Subject: phone(anna), Channel: pb.Channel_CHANNEL_SMS, Purpose: "marketing", SubjectTimezone: "Europe/Berlin"}
	wantDecision(t, decide(t, s, sms), true, "consent")
	rep, err := s.breach().ReportBreach(ctx, connect.NewRequest(&pb.ReportBreachRequest{
		Description: "SMS gateway credentials leaked", Channels: []pb.Channel{pb.Channel_CHANNEL_SMS}, Risk: "high",
		DataCategories: []string{"phone numbers"}, SubjectsEstimate: 1200,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Msg.Deadline.AsTime().Equal(noon.Add(72*time.Hour)) || rep.Msg.BreachId == "" {
		t.Fatalf("ReportBreach = %v, want a breach id and deadline %v", rep.Msg, noon.Add(72*time.Hour))
	}
	wantDecision(t, decide(t, s, sms), false, "breach_freeze")
	s.clock.Add(80 * time.Hour)
	list, err := s.breach().ListBreaches(ctx, connect.NewRequest(&pb.ListBreachesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	b := list.Msg.Breaches[0]
	if !b.Overdue || b.HoursRemaining != -8 || b.Status != "open" || b.NotifiedInTime {
		t.Errorf("ListBreaches after 80 h: %v, want overdue with -8 hours remaining", b)
	}
	// Late notification needs a reason (Art. 33(1)).
	_, err = s.breach().RecordAuthorityNotification(ctx, connect.NewRequest(&pb.RecordAuthorityNotificationRequest{BreachId: rep.Msg.BreachId, Authority: "BfDI"}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "delay_reason") {
		t.Fatalf("late notification without reason: %v, want invalid_argument naming delay_reason", err)
	}
	n, err := s.breach().RecordAuthorityNotification(ctx, connect.NewRequest(&pb.RecordAuthorityNotificationRequest{
		BreachId: rep.Msg.BreachId, Authority: "BfDI", DelayReason: "forensics needed to size the breach",
	}))
	if err != nil || n.Msg.NotifiedInTime {
		t.Fatalf("late notification: %v %v, want recorded and not in time", n, err)
	}
	if _, err := s.breach().CloseBreach(ctx, connect.NewRequest(&pb.CloseBreachRequest{BreachId: rep.Msg.BreachId})); err != nil {
		t.Fatal(err)
	}
	s.clock.Set(noon.Add(7 * 24 * time.Hour)) // again a Wednesday noon
	wantDecision(t, decide(t, s, sms), true, "consent")
	if _, err := s.breach().CloseBreach(ctx, connect.NewRequest(&pb.CloseBreachRequest{BreachId: "nope"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("closing an unknown breach: %v, want not_found", err)
	}
}

func TestQuietHours(t *testing.T) {
	s := start(t, server.Config{})
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	s.clock.Set(time.Date(2026, 11, 25, 22, 30, 0, 0, time.UTC)) // 23:30 in Berlin
	wantDecision(t, decide(t, s, waMarketing(anna)), false, "quiet_hours")
}

func TestIdempotentRetries(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	req := &pb.RecordOptInRequest{Subject: phone(anna), Channel: pb.Channel_CHANNEL_SMS, Purposes: []string{"marketing"}, Method: "web_form", DoubleOptInConfirmed: true, IdempotencyKey: "signup-1"}
	a, err := s.consent().RecordOptIn(ctx, connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	size := logSize(t, s)
	b, err := s.consent().RecordOptIn(ctx, connect.NewRequest(req))
	if err != nil || b.Msg.Entry.Index != a.Msg.Entry.Index || !bytes.Equal(b.Msg.Entry.LeafHash, a.Msg.Entry.LeafHash) {
		t.Fatalf("retry = %v, %v; want entry %d", b, err, a.Msg.Entry.Index)
	}
	if logSize(t, s) != size {
		t.Error("a retry appended")
	}
	req.Purposes = []string{"news"}
	if _, err := s.consent().RecordOptIn(ctx, connect.NewRequest(req)); connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Errorf("reusing a key for another request: %v, want already_exists", err)
	}
	d := &pb.DecideRequest{Subject: phone(anna), Channel: pb.Channel_CHANNEL_SMS, Purpose: "marketing", SubjectTimezone: "Europe/Berlin", IdempotencyKey: "msg-9"}
	first := decide(t, s, d)
	s.clock.Add(23 * time.Hour / 2) // 23:30 Berlin: a fresh evaluation would deny
	again := decide(t, s, d)
	if again.Decision.Index != first.Decision.Index || again.Allow != first.Allow {
		t.Errorf("retried Decide = %v, want the recorded decision %v", again, first)
	}
}

func TestBadInputAppendsNothing(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	size := logSize(t, s)
	for _, tc := range []struct {
		name  string
		call  func() error
		field string
	}{
		{"no subject", func() error {
			_, err := s.consent().RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{Channel: pb.Channel_CHANNEL_SMS, Purposes: []string{"marketing"}}))
			return err
		}, "subject"},
		{"local phone number", func() error {
			_, err := s.consent().RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{Subject: phone("0170 1234567"), Channel: pb.Channel_CHANNEL_SMS, Purposes: []string{"marketing"}}))
			return err
		}, "subject.phone"},
		{"no channel", func() error {
			_, err := s.consent().RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{Subject: phone(anna), Purposes: []string{"marketing"}}))
			return err
		}, "channel"},
		{"bad purpose", func() error {
			_, err := s.consent().RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{Subject: phone(anna), Channel: pb.Channel_CHANNEL_SMS, Purposes: []string{"Marketing Mails"}}))
			return err
		}, "purposes"},
		{"bad method", func() error {
			_, err := s.consent().RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{Subject: phone(anna), Channel: pb.Channel_CHANNEL_SMS, Purposes: []string{"marketing"}, Method: "telepathy"}))
			return err
		}, "method"},
		{"future consent", func() error {
			_, err := s.consent().RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{Subject: phone(anna), Channel: pb.Channel_CHANNEL_SMS, Purposes: []string{"marketing"}, OccurredAt: timestamppb.New(noon.Add(time.Hour))}))
			return err
		}, "occurred_at"},
		{"decide bad zone", func() error {
			req := waMarketing(anna)
			req.SubjectTimezone = "Mars/Olympus"
			_, err := s.send().Decide(ctx, connect.NewRequest(req))
			return err
		}, "subject_timezone"},
		{"decide bad category", func() error {
			req := waMarketing(anna)
			req.Category = "spam"
			_, err := s.send().Decide(ctx, connect.NewRequest(req))
			return err
		}, "category"},
		{"breach without description", func() error {
			_, err := s.breach().ReportBreach(ctx, connect.NewRequest(&pb.ReportBreachRequest{}))
			return err
		}, "description"},
	} {
		err := tc.call()
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("%s: %v, want invalid_argument naming %s", tc.name, err, tc.field)
		}
	}
	if got := logSize(t, s); got != size {
		t.Errorf("rejected requests appended %d entries", got-size)
	}
}

// TestOptOutLinearizable: once RecordOptOut has returned, no Decide that
// starts later allows, while other goroutines keep deciding concurrently.
func TestOptOutLinearizable(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	const subjects = 8
	who := func(i int) string { return "+4917012340" + string(rune('0'+i)) + "0" }
	for i := 0; i < subjects; i++ {
		optIn(t, s, who(i), pb.Channel_CHANNEL_SMS, true, "marketing")
	}
	var optedOut [subjects]atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var violations atomic.Int64
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := (w + n) % subjects
				before := optedOut[i].Load()
				r, err := s.send().Decide(ctx, connect.NewRequest(&pb.DecideRequest{Subject: phone(who(i)), Channel: pb.Channel_CHANNEL_SMS, Purpose: "marketing", SubjectTimezone: "Europe/Berlin"}))
				if err != nil {
					t.Error(err)
					return
				}
				if before && r.Msg.Allow {
					violations.Add(1)
				}
			}
		}(w)
	}
	for i := 0; i < subjects; i++ {
		time.Sleep(20 * time.Millisecond)
		if _, err := s.consent().RecordOptOut(ctx, connect.NewRequest(&pb.RecordOptOutRequest{Subject: phone(who(i)), Channel: pb.Channel_CHANNEL_SMS})); err != nil {
			t.Fatal(err)
		}
		optedOut[i].Store(true)
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	if v := violations.Load(); v > 0 {
		t.Fatalf("%d decisions started after an opt-out returned still allowed the send", v)
	}
}

// TestProtocols drives the server with Connect JSON over plain HTTP (as curl
// does), the gRPC protocol through connect-go, grpc-go, and checks health.
func TestProtocols(t *testing.T) {
	s := start(t, server.Config{})
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	body := `{"subject":{"phone":"+491701234567"},"channel":"CHANNEL_WHATSAPP","purpose":"marketing","category":"marketing","provider":{"name":"eu-bsp","region":"EU"},"subjectTimezone":"Europe/Berlin"}`
	resp, err := http.Post(s.url+"/consentledger.v1.SendService/Decide", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out struct {
		Allow    bool     `json:"allow"`
		Reasons  []string `json:"reasons"`
		Decision struct {
			Index    string `json:"index"`
			LeafHash string `json:"leafHash"`
		} `json:"decision"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || resp.StatusCode != 200 || !out.Allow || out.Decision.LeafHash == "" {
		t.Fatalf("Connect JSON Decide: %d %s (%v)", resp.StatusCode, raw, err)
	}
	// A bad JSON request gets a Connect error naming the field.
	resp, err = http.Post(s.url+"/consentledger.v1.SendService/Decide", "application/json", strings.NewReader(`{"subject":{"email":"not-an-address"},"channel":"CHANNEL_SMS","purpose":"marketing"}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(raw), `"invalid_argument"`) || !strings.Contains(string(raw), "subject.email") {
		t.Errorf("bad JSON request: %d %s, want 400 invalid_argument naming subject.email", resp.StatusCode, raw)
	}
	// gRPC through connect-go (HTTP/2 cleartext).
	g := decideWith(t, s.send(connect.WithGRPC()), waMarketing(anna))
	if !g.Allow {
		t.Errorf("gRPC Decide denied: %v", g.Reasons)
	}
	// grpc-go, with the raw method name.
	conn, err := grpc.NewClient(strings.TrimPrefix(s.url, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var gr pb.DecideResponse
	if err := conn.Invoke(context.Background(), "/consentledger.v1.SendService/Decide", waMarketing(anna), &gr); err != nil || !gr.Allow {
		t.Fatalf("grpc-go Decide: %v %v", gr.Reasons, err)
	}
	// Health over Connect JSON.
	resp, err = http.Post(s.url+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), "SERVING_STATUS_SERVING") {
		t.Errorf("health: %s", raw)
	}
	// Metrics.
	resp, err = http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"consentledger_decisions_total{reason=\"consent\",result=\"allow\"}", "consentledger_log_size", "consentledger_requests_total"} {
		if !strings.Contains(string(raw), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

func decideWith(t *testing.T, c consentledgerv1connect.SendServiceClient, req *pb.DecideRequest) *pb.DecideResponse {
	t.Helper()
	r, err := c.Decide(context.Background(), connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	return r.Msg
}

func TestAuthentication(t *testing.T) {
	tokenHash := func(tok string) string { h := sha256.Sum256([]byte(tok)); return hex.EncodeToString(h[:]) }
	s := start(t, server.Config{Principals: []server.PrincipalConfig{
		{Name: "shop-backend", Role: "sender", TokenSHA256: tokenHash("s3cret-sender")},
		{Name: "dpo", Role: "auditor", TokenSHA256: tokenHash("s3cret-auditor")},
	}})
	bearer := func(tok string) connect.ClientOption {
		return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("Authorization", "Bearer "+tok)
				return next(ctx, req)
			}
		}))
	}
	ctx := context.Background()
	req := &pb.RecordOptInRequest{Subject: phone(anna), Channel: pb.Channel_CHANNEL_SMS, Purposes: []string{"marketing"}}
	if _, err := s.consent().RecordOptIn(ctx, connect.NewRequest(req)); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("no token: %v, want unauthenticated", err)
	}
	if _, err := s.consent(bearer("wrong")).RecordOptIn(ctx, connect.NewRequest(req)); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("unknown token: %v, want unauthenticated", err)
	}
	if _, err := s.consent(bearer("s3cret-auditor")).RecordOptIn(ctx, connect.NewRequest(req)); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("auditor writing consent: %v, want permission_denied", err)
	}
	r, err := s.consent(bearer("s3cret-sender")).RecordOptIn(ctx, connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.logs(bearer("s3cret-auditor")).GetEntries(ctx, connect.NewRequest(&pb.GetEntriesRequest{Start: r.Msg.Entry.Index, Count: 1}))
	if err != nil {
		t.Fatal(err)
	}
	var view map[string]any
	if err := json.Unmarshal([]byte(e.Msg.Entries[0].Json), &view); err != nil || view["actor"] != "shop-backend" {
		t.Errorf("entry's actor is not the principal (%v): %s", err, e.Msg.Entries[0].Json)
	}
}

func TestRefusesOpenAddressWithoutAuth(t *testing.T) {
	err := server.Run(context.Background(), server.Config{DataDir: t.TempDir(), Addr: "0.0.0.0:0"}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "without authentication") {
		t.Fatalf("Run on 0.0.0.0 without principals: %v", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Fatal("unexpected cancel")
	}
}
