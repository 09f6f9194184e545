package console

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/rpc"
)

func tokenHash(tok string) string { h := sha256.Sum256([]byte(tok)); return hex.EncodeToString(h[:]) }

var testKey = []byte("0123456789abcdef0123456789abcdef")

func newTestConsole(t *testing.T, auth bool, key []byte, now func() time.Time) *Console {
	t.Helper()
	o := Options{API: http.NotFoundHandler(), Key: key, Now: now}
	if auth {
		a, err := rpc.NewAuthenticator([]rpc.Principal{
			{Name: "dpo", Role: rpc.RoleAuditor, TokenSHA256: tokenHash("tok-auditor")},
			{Name: "breach-team", Role: rpc.RoleBreach, TokenSHA256: tokenHash("tok-breach")},
		})
		if err != nil {
			t.Fatal(err)
		}
		o.Auth = a
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// get fetches path and returns the response and the CSRF cookie and token
// its forms carry.
func get(t *testing.T, h http.Handler, path string, cookies ...*http.Cookie) (*http.Response, *http.Cookie, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	resp := w.Result()
	var csrf *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == CSRFCookie {
			csrf = c
		}
	}
	body := w.Body.String()
	tok := ""
	if i := strings.Index(body, `name="csrf" value="`); i >= 0 {
		rest := body[i+len(`name="csrf" value="`):]
		tok = rest[:strings.Index(rest, `"`)]
	}
	return resp, csrf, tok
}

func post(h http.Handler, path string, form url.Values, cookies ...*http.Cookie) *http.Response {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		if c != nil {
			req.AddCookie(c)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Result()
}

func TestSecurityHeaders(t *testing.T) {
	c := newTestConsole(t, true, testKey, nil)
	for _, path := range []string{"/console/signin", "/console/", "/console/static/console.css", "/console/nope"} {
		resp, _, _ := get(t, c, path)
		for k, want := range map[string]string{
			"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Referrer-Policy":         "no-referrer",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", path, k, got, want)
			}
		}
	}
	resp, csrf, tok := get(t, c, "/console/signin")
	if resp.StatusCode != http.StatusOK || csrf == nil || tok == "" {
		t.Fatalf("sign-in page: status %d, csrf cookie %v, token %q", resp.StatusCode, csrf, tok)
	}
	if !csrf.HttpOnly || csrf.SameSite != http.SameSiteStrictMode || csrf.Path != "/console/" {
		t.Errorf("CSRF cookie %+v: want HttpOnly, SameSite=Strict, Path=/console/", csrf)
	}
	// A page needing a session sends the browser to sign in.
	if resp, _, _ := get(t, c, "/console/breaches"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/signin" {
		t.Errorf("no session: %d %s, want 303 to /console/signin", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// Every form needs the token, in every mode: with authentication, and on
// loopback without it (where there is no session cookie to protect).
func TestCSRF(t *testing.T) {
	for _, auth := range []bool{true, false} {
		c := newTestConsole(t, auth, testKey, nil)
		formPage := "/console/signin" // without authentication: no sign-in form, but the subject form
		if !auth {
			formPage = "/console/subject"
		}
		_, csrf, tok := get(t, c, formPage)
		other := newTestConsole(t, auth, []byte("another key, another deployment!"), nil)
		_, _, foreignTok := get(t, other, formPage)
		if csrf == nil || tok == "" || foreignTok == "" {
			t.Fatalf("auth=%v: %s has no CSRF cookie or token", auth, formPage)
		}
		for _, tc := range []struct {
			name   string
			form   url.Values
			cookie *http.Cookie
			ok     bool
		}{
			{"no token", url.Values{"token": {"tok-auditor"}}, csrf, false},
			{"garbage token", url.Values{"token": {"tok-auditor"}, "csrf": {"x"}}, csrf, false},
			{"token without its cookie", url.Values{"token": {"tok-auditor"}, "csrf": {tok}}, nil, false},
			{"token of another cookie", url.Values{"token": {"tok-auditor"}, "csrf": {foreignTok}}, csrf, false},
			{"valid", url.Values{"token": {"tok-auditor"}, "csrf": {tok}}, csrf, true},
		} {
			for _, path := range []string{"/console/signin", "/console/subject", "/console/breaches/b1/notify"} {
				resp := post(c, path, tc.form, tc.cookie)
				if refused := resp.StatusCode == http.StatusForbidden; refused == tc.ok {
					t.Errorf("auth=%v %s %s: status %d", auth, tc.name, path, resp.StatusCode)
				}
			}
		}
	}
}

func TestSessionCookie(t *testing.T) {
	now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	c := newTestConsole(t, true, testKey, clock)
	c.o.Secure = true
	_, csrf, tok := get(t, c, "/console/signin")

	resp := post(c, "/console/signin", url.Values{"token": {"wrong"}, "csrf": {tok}}, csrf)
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("unknown token: status %d, cookies %v; want 401 and no session", resp.StatusCode, resp.Cookies())
	}
	resp = post(c, "/console/signin", url.Values{"token": {"tok-breach"}, "csrf": {tok}}, csrf)
	var sess *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == SessionCookie {
			sess = ck
		}
	}
	if resp.StatusCode != http.StatusSeeOther || sess == nil {
		t.Fatalf("sign-in: status %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	if !sess.HttpOnly || !sess.Secure || sess.SameSite != http.SameSiteStrictMode || sess.MaxAge != int(DefaultSessionTTL.Seconds()) {
		t.Errorf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict, Max-Age %v", sess, DefaultSessionTTL)
	}
	if strings.Contains(sess.Value, "tok-breach") || strings.Contains(sess.Value, tokenHash("tok-breach")) {
		t.Errorf("the session cookie carries the token or its hash: %s", sess.Value)
	}
	principal := func(c *Console, v string) (rpc.Principal, bool) {
		req := httptest.NewRequest(http.MethodGet, "/console/", nil)
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: v})
		return c.principalOf(req)
	}
	if p, ok := principal(c, sess.Value); !ok || p.Name != "breach-team" || p.Role != rpc.RoleBreach {
		t.Errorf("session: %v %v, want breach-team", p, ok)
	}
	// Another node of the deployment (same key) accepts it.
	if _, ok := principal(newTestConsole(t, true, testKey, clock), sess.Value); !ok {
		t.Error("a second node with the same key refused the session")
	}
	parts := strings.Split(sess.Value, ".")
	for name, v := range map[string]string{
		"other key":     "",
		"tampered name": b64.EncodeToString([]byte("dpo")) + "." + parts[1] + "." + parts[2],
		"extended":      parts[0] + "." + "9999999999" + "." + parts[2],
		"truncated":     parts[0] + "." + parts[1],
		"garbage":       "x.y.z",
	} {
		cc := c
		if name == "other key" {
			cc, v = newTestConsole(t, true, []byte("another key, another deployment!"), clock), sess.Value
		}
		if _, ok := principal(cc, v); ok {
			t.Errorf("%s: session accepted", name)
		}
	}
	now = now.Add(DefaultSessionTTL)
	if _, ok := principal(c, sess.Value); ok {
		t.Error("expired session accepted")
	}
	now = now.Add(-time.Hour)
	// A new token for the principal ends its sessions.
	a, _ := rpc.NewAuthenticator([]rpc.Principal{{Name: "breach-team", Role: rpc.RoleBreach, TokenSHA256: tokenHash("rotated")}})
	rotated := newTestConsole(t, true, testKey, clock)
	rotated.o.Auth = a
	if _, ok := principal(rotated, sess.Value); ok {
		t.Error("session accepted after the token was rotated")
	}
}

func TestHostGuard(t *testing.T) {
	h := HostGuard([]string{"ledger.example.com", ""}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for host, want := range map[string]int{
		"127.0.0.1:7420":          200,
		"[::1]:7420":              200,
		"10.1.2.3":                200,
		"localhost:7420":          200,
		"LOCALHOST.":              200,
		"ledger.example.com:443":  200,
		"Ledger.Example.COM":      200,
		"attacker.example:7420":   421,
		"ledger.example.com.evil": 421,
		"localhost.evil.example":  421,
		"":                        421,
	} {
		req := httptest.NewRequest(http.MethodGet, "/consentledger.v1.ConsentService/EraseSubject", nil)
		req.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != want {
			t.Errorf("Host %q: %d, want %d", host, w.Code, want)
		}
	}
}

func TestKeyFromDataDir(t *testing.T) {
	dir := t.TempDir()
	if _, err := KeyFromDataDir(dir); err == nil {
		t.Fatal("no subject key: no error")
	}
	if _, err := ledger.LoadOrCreateKeys(dir, "test/origin"); err != nil {
		t.Fatal(err)
	}
	k1, err := KeyFromDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := KeyFromDataDir(dir)
	raw, _ := os.ReadFile(filepath.Join(dir, ledger.SubjectKeyFile))
	if len(k1) != 32 || hex.EncodeToString(k1) != hex.EncodeToString(k2) || strings.Contains(string(raw), hex.EncodeToString(k1)) {
		t.Errorf("key %x: want 32 stable bytes, not the subject key itself", k1)
	}
}

// The console's in-process calls are authorised by the API's table before
// they reach the handler, whatever wraps the handler.
func TestInProcessAuthorisation(t *testing.T) {
	var reached []string
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = append(reached, rpc.PrincipalFrom(r.Context()).Name+" "+r.URL.Path)
		http.NotFound(w, r)
	})
	a, _ := rpc.NewAuthenticator([]rpc.Principal{
		{Name: "shop", Role: rpc.RoleSender, TokenSHA256: tokenHash("s")},
		{Name: "dpo", Role: rpc.RoleAuditor, TokenSHA256: tokenHash("a")},
	})
	c, err := New(Options{API: api, Key: testKey, Auth: a})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/console/", nil)
	shop, _ := a.ByName("shop")
	dpo, _ := a.ByName("dpo")
	_, err = c.api.log.GetEvidence(c.callCtx(req, shop), connect.NewRequest(&pb.GetEvidenceRequest{DecisionIndex: 1}))
	if connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), `principal "shop" (role sender) may not call /consentledger.v1.LogService/GetEvidence`) {
		t.Errorf("sender's GetEvidence: %v, want permission_denied", err)
	}
	if len(reached) != 0 {
		t.Errorf("a refused call reached the API: %v", reached)
	}
	_, err = c.api.log.GetEvidence(c.callCtx(req, dpo), connect.NewRequest(&pb.GetEvidenceRequest{DecisionIndex: 1}))
	if connect.CodeOf(err) == connect.CodePermissionDenied || len(reached) != 1 || reached[0] != "dpo /consentledger.v1.LogService/GetEvidence" {
		t.Errorf("auditor's GetEvidence: %v, reached %v", err, reached)
	}
}

func TestOwns(t *testing.T) {
	for path, want := range map[string]bool{"/console": true, "/console/": true, "/console/breaches/x": true, "/consoles": false, "/consentledger.v1.LogService/GetEntries": false, "/metrics": false} {
		if Owns(path) != want {
			t.Errorf("Owns(%q) = %v", path, !want)
		}
	}
}
