package console

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/rpc"
)

// ContentSecurityPolicy is the console's policy, exactly as README.md: Console gives it.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

// Cookie and form field names.
const (
	SessionCookie = "cl_session"
	CSRFCookie    = "cl_csrf"
	CSRFField     = "csrf"
)

// maxForm bounds a form or an uploaded draft policy.
const maxForm = 4 << 20

// secureHeaders sets the headers every console response carries (after
// golang/pkgsite's secureheaders middleware).
func secureHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// KeyFromDataDir derives the console's cookie and CSRF key from the data
// directory's subject key (HKDF-SHA256 with a label of its own), so every
// node that shares the data directory's keys accepts the same sessions and
// the subject key itself is never used for anything else.
func KeyFromDataDir(dir string) ([]byte, error) {
	path := filepath.Join(dir, ledger.SubjectKeyFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("console key: %w", err)
	}
	secret, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(secret) < 32 {
		return nil, fmt.Errorf("console key: %s must hold 32 bytes in hex", path)
	}
	return hkdf.Key(sha256.New, secret, nil, "consentledger console session v1", 32)
}

// HostGuard refuses requests whose Host is not one this server answers to,
// so that a page on another site whose name was rebound to this server's
// address (DNS rebinding) cannot drive the console or the API. It allows
// IP literals (a rebinding attack needs a name of the attacker's),
// "localhost", and the names given (the configured address's host, the
// advertised URL's host, the config's hosts), compared without the port
// and case-insensitively.
func HostGuard(names []string, next http.Handler) http.Handler {
	allowed := map[string]bool{"localhost": true}
	for _, n := range names {
		if n != "" {
			allowed[strings.ToLower(strings.TrimSuffix(n, "."))] = true
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
		if net.ParseIP(host) == nil && !allowed[host] {
			http.Error(w, fmt.Sprintf("this server does not answer to the host %q: reach it by its configured name or address (list further names under hosts: in the config)", r.Host), http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// mac is the HMAC-SHA256 of the parts under the console key.
func (c *Console) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, c.o.Key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// b64 is strict: one encoding per byte string (no value with other padding
// bits decodes to the same signature, so a cookie is accepted only as signed).
var b64 = base64.RawURLEncoding.Strict()

// sessionValue is a signed session: name.expiry.mac, where the MAC also
// covers the principal's token hash, so a changed token ends its sessions.
func (c *Console) sessionValue(p rpc.Principal, exp time.Time) string {
	e := strconv.FormatInt(exp.Unix(), 10)
	return b64.EncodeToString([]byte(p.Name)) + "." + e + "." + b64.EncodeToString(c.mac("session", p.Name, e, p.TokenSHA256))
}

// principalOf returns the signed-in principal of r. Without authentication
// it is the zero Principal and ok (the API then acts as "local", admin).
func (c *Console) principalOf(r *http.Request) (p rpc.Principal, ok bool) {
	if c.o.Auth == nil {
		return rpc.Principal{}, true
	}
	ck, err := r.Cookie(SessionCookie)
	if err != nil {
		return p, false
	}
	parts := strings.Split(ck.Value, ".")
	if len(parts) != 3 {
		return p, false
	}
	name, err1 := b64.DecodeString(parts[0])
	exp, err2 := strconv.ParseInt(parts[1], 10, 64)
	sig, err3 := b64.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || c.o.Now().Unix() >= exp {
		return p, false
	}
	p, found := c.o.Auth.ByName(string(name))
	if !found || !hmac.Equal(sig, c.mac("session", p.Name, parts[1], p.TokenSHA256)) {
		return rpc.Principal{}, false
	}
	return p, true
}

// setCookie sets a console cookie with the attributes of §15.
func (c *Console) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/console/", MaxAge: maxAge,
		HttpOnly: true, Secure: c.o.Secure, SameSite: http.SameSiteStrictMode,
	})
}

// csrfToken returns the token the forms of r carry, setting the browser's
// CSRF cookie first if it has none. The token is the HMAC of that random
// cookie: a page on another site can neither read the cookie nor forge the
// token, and this holds without a session too (loopback mode).
func (c *Console) csrfToken(w http.ResponseWriter, r *http.Request) string {
	v := ""
	if ck, err := r.Cookie(CSRFCookie); err == nil && len(ck.Value) >= 22 {
		v = ck.Value
	} else {
		b := make([]byte, 18)
		rand.Read(b)
		v = b64.EncodeToString(b)
		c.setCookie(w, CSRFCookie, v, 0)
		r.AddCookie(&http.Cookie{Name: CSRFCookie, Value: v})
	}
	return b64.EncodeToString(c.mac("csrf", v))
}

// checkCSRF refuses a state-changing request without a valid CSRF token.
func (c *Console) checkCSRF(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	var err error
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		err = r.ParseMultipartForm(maxForm)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		http.Error(w, "the form could not be read: "+err.Error(), http.StatusBadRequest)
		return false
	}
	ck, cerr := r.Cookie(CSRFCookie)
	got, derr := b64.DecodeString(r.PostFormValue(CSRFField))
	if cerr != nil || derr != nil || !hmac.Equal(got, c.mac("csrf", ck.Value)) {
		c.render(w, r, "error", http.StatusForbidden, map[string]any{
			"Title": "Form refused", "Message": "The form carried no valid CSRF token. Reload the page and submit the form again.",
		})
		return false
	}
	return true
}
