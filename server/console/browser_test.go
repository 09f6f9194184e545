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
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
	"github.com/consentledger/consentledger/server"
)

// chromiumPath is Debian's headless-capable Chromium (DESIGN §12).
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
	t.Skip(msg)
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

// pagesOf are the pages each role can open (the API's roles decide).
var pagesOf = map[string][]string{
	"sender":  {"/console/", "/console/subject"},
	"auditor": {"/console/", "/console/breaches", "/console/subject", "/console/policy", "/console/audit"},
	"legal":   {"/console/", "/console/breaches", "/console/policy", "/console/audit"},
	"breach":  {"/console/", "/console/breaches"},
	"admin":   {"/console/", "/console/breaches", "/console/subject", "/console/policy", "/console/audit"},
}

func TestBrowserRoles(t *testing.T) {
	needBrowser(t)
	s := startServer(t)
	shots := screenshotDir(t)
	for _, role := range []string{"sender", "auditor", "legal", "breach", "admin"} {
		t.Run(role, func(t *testing.T) {
			ctx := browser(t)
			signIn(t, ctx, s, role)
			nav, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("nav a")].map(a => a.getAttribute("href"))`))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(nav, " ") != strings.Join(pagesOf[role], " ") {
				t.Errorf("navigation %v, want %v", nav, pagesOf[role])
			}
			for _, page := range pagesOf[role] {
				navigate(t, ctx, s.url+page)
				if h1 := text(t, ctx, "h1"); h1 == "Not for your role" || h1 == "The request failed" {
					t.Errorf("%s: %q", page, h1)
				}
				checkA11y(t, ctx, page)
				name := role + strings.ReplaceAll(strings.TrimSuffix(page, "/"), "/", "-")
				screenshot(t, ctx, shots, name)
			}
		})
	}
	t.Logf("screenshots in %s", shots)
}

// The breach role records the authority's notification; the countdown is
// replaced by "notified in time".
func TestBrowserBreachNotification(t *testing.T) {
	needBrowser(t)
	s := startServer(t)
	ctx := browser(t)
	signIn(t, ctx, s, "breach")
	navigate(t, ctx, s.url+"/console/breaches/"+s.breachID)
	before := text(t, ctx, "#deadline-status")
	size := s.logSize(t)
	// An empty authority: the API's message next to the field, nothing recorded.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("notify-submit")), chromedp.WaitVisible(chromedp.ID("authority-error"))); err != nil {
		t.Fatal(err)
	}
	errText := text(t, ctx, "#authority-error")
	if after := s.logSize(t); after != size {
		t.Errorf("a rejected form appended: the log grew from %d to %d", size, after)
	}
	if !strings.HasSuffix(before, "left") || !strings.HasPrefix(before, "6") {
		t.Errorf("countdown %q, want about 62h left", before)
	}
	if !strings.Contains(errText, "is required: name the supervisory authority notified") {
		t.Errorf("authority error %q", errText)
	}
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("authority"), "BfDI"),
		chromedp.SendKeys(chromedp.ID("reference"), "AZ-2026-0042"),
		chromedp.Click(chromedp.ID("notify-submit")),
		chromedp.WaitVisible(chromedp.CSS("[role=status]")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if after := text(t, ctx, "#deadline-status"); after != "notified in time" {
		t.Errorf("after the notification: %q, want notified in time", after)
	}
	navigate(t, ctx, s.url+"/console/")
	overview := text(t, ctx, "main")
	if !strings.Contains(overview, s.breachID) || !strings.Contains(overview, "notified in time") {
		t.Errorf("overview does not show %s notified in time:\n%s", s.breachID, overview)
	}
}

// The breach role reports a breach on the form: a rejected form shows the
// API's message next to the field and appends nothing; a valid one starts
// the 72-hour countdown.
func TestBrowserReportBreach(t *testing.T) {
	needBrowser(t)
	s := startServer(t)
	ctx := browser(t)
	signIn(t, ctx, s, "breach")
	navigate(t, ctx, s.url+"/console/breaches")
	size := s.logSize(t)
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("subjects_estimate"), "1200"),
		chromedp.Click(chromedp.ID("report-submit")),
		chromedp.WaitVisible(chromedp.ID("description-error")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if msg := text(t, ctx, "#description-error"); !strings.Contains(msg, "is required: say what happened") {
		t.Errorf("empty description: %q", msg)
	}
	if v, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("subjects_estimate"))); err != nil || v != "1200" {
		t.Errorf("the rejected form lost its input: %q %v", v, err)
	}
	if after := s.logSize(t); after != size {
		t.Errorf("a rejected form appended: the log grew from %d to %d", size, after)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("description"), "Newsletter list sent to the wrong recipient"),
		chromedp.Click(chromedp.CSS(`input[value=CHANNEL_EMAIL]`)),
		chromedp.Click(chromedp.ID("report-submit")),
		chromedp.WaitVisible(chromedp.ID("deadline-status")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, "#deadline-status"); !strings.HasPrefix(got, "71h") && !strings.HasPrefix(got, "72h") {
		t.Errorf("a new breach: countdown %q, want about 72h left", got)
	}
	if got := text(t, ctx, "main"); !strings.Contains(got, "email") || !strings.Contains(got, "The breach was recorded") {
		t.Errorf("breach page after reporting:\n%s", got)
	}
}

func TestBrowserRefusals(t *testing.T) {
	needBrowser(t)
	s := startServer(t)
	ctx := browser(t)
	signIn(t, ctx, s, "sender")
	// A sender is refused the policy page.
	navigate(t, ctx, s.url+"/console/policy")
	if h1 := text(t, ctx, "h1"); h1 != "Not for your role" {
		t.Errorf("sender on /console/policy: h1 %q, want Not for your role", h1)
	}
	// A form whose CSRF token was removed is refused.
	navigate(t, ctx, s.url+"/console/subject")
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("input[name=csrf]").forEach(e => e.remove()); 0`)); err != nil {
		t.Fatal(err)
	}
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("value"), "+49 170 1234567"),
		chromedp.Submit(chromedp.ID("value")),
		chromedp.WaitVisible(chromedp.CSS("[role=alert]")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if h1 := text(t, ctx, "h1"); h1 != "Form refused" {
		t.Errorf("form without CSRF token: h1 %q, want Form refused", h1)
	}
	// With the token the same form works, and shows the timeline.
	err = chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/console/subject"),
		chromedp.SendKeys(chromedp.ID("value"), "+49 170 1234567"),
		chromedp.Submit(chromedp.ID("value")),
		chromedp.WaitVisible(chromedp.ID("tl-h")),
	)
	if err != nil {
		t.Fatal(err)
	}
	timeline := text(t, ctx, "main")
	for _, want := range []string{"granted", "withdrawn", "checkout", "2026-01"} {
		if !strings.Contains(timeline, want) {
			t.Errorf("timeline lacks %q", want)
		}
	}
	// A page reached by another name (DNS rebinding) is refused.
	navigate(t, ctx, "http://rebind.attacker.test:"+s.port+"/console/")
	body := text(t, ctx, "body")
	if !strings.Contains(body, "does not answer to the host") {
		t.Errorf("foreign Host: %q", body)
	}
}

// TestScreenshots takes the admin's view of every page; with -update it
// rewrites docs/console-overview.png, which the README shows.
func TestScreenshots(t *testing.T) {
	needBrowser(t)
	s := startServer(t)
	shots := screenshotDir(t)
	ctx := browser(t)
	signIn(t, ctx, s, "admin")
	for _, page := range pagesOf["admin"] {
		navigate(t, ctx, s.url+page)
		name := "page" + strings.ReplaceAll(strings.TrimSuffix(page, "/"), "/", "-")
		png := screenshot(t, ctx, shots, name)
		if page == "/console/" && *update {
			if err := os.WriteFile("../../docs/console-overview.png", png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A look-up's timeline and a breach's detail page.
	err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/console/subject"),
		chromedp.SendKeys(chromedp.ID("value"), "+49 170 1234567"+kb.Enter),
		chromedp.WaitVisible(chromedp.ID("tl-h")),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, shots, "page-console-subject-timeline")
	navigate(t, ctx, s.url+"/console/breaches/"+s.breachID)
	screenshot(t, ctx, shots, "page-console-breach")
	t.Logf("screenshots in %s", shots)
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

// The legal role dry-runs a send (a bad phone number is answered next to
// the field) and uploads a draft policy for an impact report.
func TestBrowserPolicy(t *testing.T) {
	needBrowser(t)
	s := startServer(t)
	ctx := browser(t)
	signIn(t, ctx, s, "legal")
	navigate(t, ctx, s.url+"/console/policy")
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("dr-value"), "not a phone number"),
		chromedp.Submit(chromedp.ID("dr-value")),
		chromedp.WaitVisible(chromedp.ID("dr-value-error")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if msg := text(t, ctx, "#dr-value-error"); !strings.Contains(msg, "phone") {
		t.Errorf("dry run with a bad phone: %q", msg)
	}
	err = chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("dr-value"), "+49 170 1234567"),
		chromedp.Submit(chromedp.ID("dr-value")),
		chromedp.WaitVisible(chromedp.ID("dryrun-result")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if res := text(t, ctx, "#dryrun-result"); !strings.Contains(res, "allowed") && !strings.Contains(res, "denied") {
		t.Errorf("dry run result %q", res)
	}
	files, err := filepath.Glob("../../policies/*.rego")
	if err != nil || len(files) == 0 {
		t.Fatalf("policy files: %v %v", files, err)
	}
	for i, f := range files { // the file chooser needs absolute paths
		files[i], _ = filepath.Abs(f)
	}
	data, _ := filepath.Abs("../../policies/data.json")
	err = chromedp.Do(ctx,
		chromedp.SetUploadFiles(chromedp.ID("files"), append(files, data)),
		chromedp.Submit(chromedp.ID("files")),
		chromedp.WaitVisible(chromedp.CSS(".result")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if res := text(t, ctx, ".result"); !strings.Contains(res, "decisions replayed against draft") || !strings.Contains(res, "0 would change") {
		t.Errorf("impact report of the active policy: %q", res)
	}
}

// Every page works without JavaScript: sign in, record a notification of
// the authority, look a subject up, with script execution off.
func TestBrowserWithoutJavaScript(t *testing.T) {
	needBrowser(t)
	s := startServer(t)
	ctx := browser(t)
	noScript := func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return chromedp.Void{}, err
	}
	if err := chromedp.Do(ctx, noScript); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, s, "admin")
	navigate(t, ctx, s.url+"/console/breaches/"+s.breachID)
	if got := text(t, ctx, "#deadline-status"); !strings.HasSuffix(got, "left") {
		t.Errorf("server-rendered countdown %q", got)
	}
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("authority"), "BfDI"),
		chromedp.Click(chromedp.ID("notify-submit")),
		chromedp.WaitVisible(chromedp.CSS("[role=status]")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, "#deadline-status"); got != "notified in time" {
		t.Errorf("without JavaScript, after the notification: %q", got)
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/console/subject"),
		chromedp.SendKeys(chromedp.ID("value"), "+49 170 1234567"+kb.Enter),
		chromedp.WaitVisible(chromedp.ID("tl-h")),
	)
	if err != nil {
		t.Fatal(err)
	}
}
