package console_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
	"github.com/consentledger/consentledger/server"
)

// chromiumPath is Debian's headless-capable Chromium (.ci/run).
const chromiumPath = "/usr/bin/chromium"

var update = flag.Bool("update", false, "rewrite docs/console-overview.png from the Overview screenshot")

// allocCtx is the one browser allocator of this test binary; nil without Chromium.
var allocCtx context.Context

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if _, err := os.Stat(chromiumPath); err != nil {
			return m.Run()
		}
		opts := []chromedp.ExecAllocatorOption{
			chromedp.ExecPath(chromiumPath),
			chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.Headless, chromedp.DisableGPU,
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("disable-default-apps", true),
			chromedp.Flag("disable-extensions", true),
			chromedp.Flag("disable-dev-shm-usage", true),
			chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
			chromedp.Flag("metrics-recording-only", true),
			// A name the tests reach the server by, as a DNS-rebinding page would.
			chromedp.Flag("host-resolver-rules", "MAP rebind.attacker.test 127.0.0.1"),
			chromedp.WindowSize(1280, 900),
		}
		if os.Geteuid() == 0 {
			opts = append(opts, chromedp.NoSandbox)
		}
		// Each browser gets a fresh temporary --user-data-dir from the allocator.
		ctx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
		defer cancel()
		allocCtx = ctx
		return m.Run()
	}()
	os.Exit(code)
}

// needBrowser skips without Chromium locally, and fails in CI (env CI=true).
func needBrowser(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("the browser tests are not short: run them without -short")
	}
	if allocCtx != nil {
		return
	}
	msg := chromiumPath + " is missing: install it (apt-get update && apt-get install -y chromium) to run the browser tests"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("requires chromium: " + msg)
}

var tokens = map[string]string{
	"sender": "tok-sender-1", "auditor": "tok-auditor-1", "legal": "tok-legal-1", "breach": "tok-breach-1", "admin": "tok-admin-1",
}

// consoleServer is the real server on loopback with a principal per role.
type consoleServer struct {
	url, port string
	breachID  string // an open breach detected 10 hours ago
}

func startServer(t *testing.T) *consoleServer {
	t.Helper()
	var ps []server.PrincipalConfig
	for role, tok := range tokens {
		h := sha256.Sum256([]byte(tok))
		ps = append(ps, server.PrincipalConfig{Name: role + "-user", Role: role, TokenSHA256: hex.EncodeToString(h[:])})
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	cfg := server.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Principals: ps}
	go func() {
		done <- server.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a string) { ready <- a })
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("server: %v", err)
	}
	t.Cleanup(func() { cancel(); <-done })
	_, port, _ := net.SplitHostPort(addr)
	s := &consoleServer{url: "http://" + addr, port: port}
	s.seed(t)
	return s
}

func bearer(tok string) connect.ClientOption {
	return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+tok)
			return next(ctx, req)
		}
	}))
}

// seed records consent, decisions and breaches through the API.
func (s *consoleServer) seed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	hc := http.DefaultClient
	consent := consentledgerv1connect.NewConsentServiceClient(hc, s.url, bearer(tokens["sender"]))
	send := consentledgerv1connect.NewSendServiceClient(hc, s.url, bearer(tokens["sender"]))
	breach := consentledgerv1connect.NewBreachServiceClient(hc, s.url, bearer(tokens["breach"]))
	anna := &pb.Subject{Id: &pb.Subject_Phone{Phone: "+49 170 1234567"}}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(consent.RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{Subject: anna, Channel: pb.Channel_CHANNEL_WHATSAPP,
		Purposes: []string{"marketing"}, Method: "checkout", NoticeVersion: "2026-01", DoubleOptInConfirmed: true})))
	for i := range 6 {
		who := anna
		if i%3 == 2 {
			who = &pb.Subject{Id: &pb.Subject_Email{Email: fmt.Sprintf("nobody%d@example.com", i)}}
		}
		must(send.Decide(ctx, connect.NewRequest(&pb.DecideRequest{Subject: who, Channel: pb.Channel_CHANNEL_WHATSAPP, Purpose: "marketing",
			Category: "marketing", Provider: &pb.Provider{Name: "eu-bsp", Region: "EU"}, SubjectTimezone: "UTC", ServiceWindowOpen: true})))
	}
	// Transactional messages are allowed at any hour; marketing at night is not.
	must(consent.RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{Subject: anna, Channel: pb.Channel_CHANNEL_SMS,
		Purposes: []string{"order_updates"}, Method: "checkout", NoticeVersion: "2026-01"})))
	for range 9 {
		must(send.Decide(ctx, connect.NewRequest(&pb.DecideRequest{Subject: anna, Channel: pb.Channel_CHANNEL_SMS, Purpose: "order_updates", Category: "utility"})))
	}
	must(consent.RecordOptOut(ctx, connect.NewRequest(&pb.RecordOptOutRequest{Subject: anna, Channel: pb.Channel_CHANNEL_SMS, Method: "keyword"})))
	r, err := breach.ReportBreach(ctx, connect.NewRequest(&pb.ReportBreachRequest{
		Description: "Export of the SMS contact list left on a public file share", DetectedAt: timestamppb.New(time.Now().Add(-10 * time.Hour)),
		Channels: []pb.Channel{pb.Channel_CHANNEL_SMS}, Risk: "high", DataCategories: []string{"phone numbers"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	s.breachID = r.Msg.BreachId
	must(breach.ReportBreach(ctx, connect.NewRequest(&pb.ReportBreachRequest{
		Description: "Lost laptop of the support team (encrypted)", DetectedAt: timestamppb.New(time.Now().Add(-80 * time.Hour)), Risk: "low",
	})))
	logs := consentledgerv1connect.NewLogServiceClient(hc, s.url, bearer(tokens["auditor"]))
	must(logs.GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{Sign: true})))
}

// logSize is the log's size now, read through the API.
func (s *consoleServer) logSize(t *testing.T) uint64 {
	t.Helper()
	logs := consentledgerv1connect.NewLogServiceClient(http.DefaultClient, s.url, bearer(tokens["auditor"]))
	r, err := logs.GetEntries(context.Background(), connect.NewRequest(&pb.GetEntriesRequest{Count: 1}))
	if err != nil {
		t.Fatal(err)
	}
	return r.Msg.Size
}

// browser returns a fresh browser (its own profile and cookies) for one user.
func browser(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	ctx, cancel2 := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel2)
	return ctx
}

// signIn signs in with the keyboard: type the token, press Enter.
func signIn(t *testing.T, ctx context.Context, s *consoleServer, role string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/console/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), tokens[role]+kb.Enter),
		chromedp.WaitVisible(chromedp.ID("log-h")),
	)
	if err != nil {
		t.Fatalf("sign in as %s: %v", role, err)
	}
	if h1 := text(t, ctx, "h1"); h1 != "Overview" {
		t.Fatalf("after sign-in as %s: h1 %q, want Overview", role, h1)
	}
}

// screenshotDir is where page screenshots go: $CONSOLE_SCREENSHOTS, or a
// temporary directory of the test.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("CONSOLE_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) []byte {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	return png
}

// a11yScript checks accessibility basics of the page and returns the
// problems found: inputs without a label, headings out of order, no lang,
// forms without a CSRF token or a submit button; and what the CSP would block.
const a11yScript = `(() => {
  const problems = [];
  if (!document.documentElement.lang) problems.push("html has no lang");
  const hs = [...document.querySelectorAll("h1,h2,h3,h4,h5,h6")].map(h => +h.tagName[1]);
  if (hs[0] !== 1) problems.push("the first heading is not h1");
  if (hs.filter(l => l === 1).length !== 1) problems.push("not exactly one h1");
  for (let i = 1; i < hs.length; i++) if (hs[i] > hs[i-1] + 1) problems.push("heading h" + hs[i] + " after h" + hs[i-1]);
  for (const el of document.querySelectorAll("input:not([type=hidden]),select,textarea")) {
    if (!(el.labels && el.labels.length) && !el.getAttribute("aria-label")) problems.push("unlabelled " + el.tagName + " " + (el.name || el.id));
  }
  for (const f of document.querySelectorAll("form")) {
    if (!f.querySelector("input[name=csrf]")) problems.push("form without a CSRF token: " + f.action);
    if (!f.querySelector("button[type=submit]")) problems.push("form without a submit button: " + f.action);
  }
  // What the Content-Security-Policy would block: inline styles and scripts, handlers, other origins.
  if (document.querySelector("[style]")) problems.push("an inline style attribute");
  for (const sc of document.scripts) if (!sc.src || new URL(sc.src).origin !== location.origin) problems.push("a script not from this origin");
  for (const el of document.querySelectorAll("*")) for (const a of el.getAttributeNames()) if (a.startsWith("on")) problems.push("an inline handler " + a);
  for (const l of document.querySelectorAll("link[href],img[src]")) if (new URL(l.href || l.src).origin !== location.origin) problems.push("a resource from elsewhere");
  return problems;
})()`

func checkA11y(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	problems, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](a11yScript))
	if err != nil {
		t.Fatalf("%s: %v", page, err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", page, p)
	}
}

func navigate(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate to %s: %v", url, err)
	}
}

// text is the visible text of the first element sel (CSS) matches.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}
