package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
)

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signInHTTP signs in with a plain HTTP client (no browser) and returns it.
func signInHTTP(t *testing.T, s *consoleServer, role string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(s.url + "/console/signin")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfRE.FindSubmatch(body)
	if m == nil {
		t.Fatalf("sign-in page has no CSRF token:\n%s", body)
	}
	resp, err = c.PostForm(s.url+"/console/signin", url.Values{"csrf": {string(m[1])}, "token": {tokens[role]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/console/" || resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in as %s ended at %s with %d", role, resp.Request.URL, resp.StatusCode)
	}
	return c
}

// The auditor downloads the evidence bundle of a send decision; a sender
// may not (the API's roles), and the console says so.
func TestEvidenceDownload(t *testing.T) {
	s := startServer(t)
	send := consentledgerv1connect.NewSendServiceClient(http.DefaultClient, s.url, bearer(tokens["sender"]))
	d, err := send.Decide(t.Context(), connect.NewRequest(&pb.DecideRequest{
		Subject: &pb.Subject{Id: &pb.Subject_Phone{Phone: "+49 170 1234567"}}, Channel: pb.Channel_CHANNEL_SMS, Purpose: "order_updates", Category: "utility",
	}))
	if err != nil {
		t.Fatal(err)
	}
	path := s.url + "/console/evidence/" + strings.TrimSpace(jsonNumber(d.Msg.Decision.Index))

	resp, err := signInHTTP(t, s, "auditor").Get(path)
	if err != nil {
		t.Fatal(err)
	}
	var bundle map[string]any
	err = json.NewDecoder(resp.Body).Decode(&bundle)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("auditor: status %d, %v, disposition %q", resp.StatusCode, err, resp.Header.Get("Content-Disposition"))
	}
	if bundle["decision"] == nil || bundle["checkpoint"] == nil {
		t.Errorf("bundle lacks decision or checkpoint: %v", keys(bundle))
	}

	resp, err = signInHTTP(t, s, "sender").Get(path)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "may not call /consentledger.v1.LogService/GetEvidence") {
		t.Errorf("sender: status %d, body %s", resp.StatusCode, body)
	}
}

func jsonNumber(n uint64) string { b, _ := json.Marshal(n); return string(b) }

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// The audit page lists the newest checkpoints for the auditor; the legal
// role sees the chart, and the API keeps the checkpoint history from it.
func TestAuditPage(t *testing.T) {
	s := startServer(t)
	logs := consentledgerv1connect.NewLogServiceClient(http.DefaultClient, s.url, bearer(tokens["auditor"]))
	latest, err := logs.GetCheckpoint(t.Context(), connect.NewRequest(&pb.GetCheckpointRequest{Sign: true}))
	if err != nil {
		t.Fatal(err)
	}
	get := func(role string) string {
		resp, err := signInHTTP(t, s, role).Get(s.url + "/console/audit")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d\n%s", role, resp.StatusCode, b)
		}
		return string(b)
	}
	page := get("auditor")
	row := regexp.MustCompile(`<tr><td>(\d+)</td>`).FindAllStringSubmatch(page[strings.Index(page, `id="cp-h"`):], -1)
	if len(row) < 2 || row[0][1] != jsonNumber(latest.Msg.Size) || row[len(row)-1][1] != "0" {
		t.Errorf("checkpoint rows %v: want the newest (%d) first down to the first (0)", row, latest.Msg.Size)
	}
	if !strings.Contains(page, "<svg class=\"chart\"") || !strings.Contains(page, "denied: ") {
		t.Error("the audit page has no chart with denial reasons")
	}
	if page := get("legal"); !strings.Contains(page, "The checkpoint history is for the auditor role.") || !strings.Contains(page, `<svg class="chart"`) {
		t.Error("legal: want the chart and no checkpoint history")
	}
}
