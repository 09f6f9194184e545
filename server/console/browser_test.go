package console_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

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
