// Package console serves the web console of README.md: Console under /console/: a
// server-rendered page (html/template, embedded templates and assets, no
// JavaScript needed) for data-protection officers, legal teams and auditors.
//
// The console is a client of the Connect API, not a second path to the
// ledger: every page calls the generated clients over the server's own API
// handler in process, with the signed-in principal marked on the context
// (rpc.WithInProcessCaller), so the API's interceptors authorise each call
// exactly as they authorise a call from the network.
//
// Security, in one place (security.go): exactly the Content-Security-Policy
// of §15 and the usual hardening headers; a session cookie (HttpOnly,
// SameSite=Strict, Secure under TLS, expiring, HMAC-signed with a key
// derived from the data directory's subject key so every node of a
// deployment accepts it); a CSRF token on every form in every mode; and a
// Host allowlist (HostGuard) that the server applies to the API too, so a
// DNS-rebinding page cannot drive it.
package console

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/consentledger/consentledger/rpc"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// DefaultSessionTTL is how long a sign-in lasts when Options.SessionTTL is 0.
const DefaultSessionTTL = 8 * time.Hour

// Options configures a Console. The zero value of each optional field
// means its documented default.
type Options struct {
	// API is the server's Connect handler, with its interceptors; required.
	API http.Handler
	// Auth resolves sign-in tokens; nil means the server runs without
	// authentication (loopback only) and the console acts as "local" (admin).
	Auth *rpc.Authenticator
	// Key signs session cookies and CSRF tokens; at least 32 bytes, required.
	// KeyFromDataDir derives one every node of a deployment shares.
	Key []byte
	// Secure marks cookies Secure (the server speaks TLS).
	Secure bool
	// SessionTTL is how long a sign-in lasts; 0 means DefaultSessionTTL.
	SessionTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Console is the /console/ handler.
type Console struct {
	o     Options
	api   *apiClients
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// New returns the console for o.
func New(o Options) (*Console, error) {
	if o.API == nil {
		return nil, errors.New("console: Options.API is required")
	}
	if len(o.Key) < 32 {
		return nil, errors.New("console: Options.Key must hold at least 32 bytes")
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	c := &Console{o: o, api: newAPIClients(o.API), pages: map[string]*template.Template{}}
	for _, p := range []string{"signin", "overview", "breaches", "breach", "subject", "policy", "audit", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", p, err)
		}
		c.pages[p] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	m.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /console/signin", c.signinPage)
	m.HandleFunc("POST /console/signin", c.signin)
	m.HandleFunc("POST /console/signout", c.signout)
	m.HandleFunc("GET /console/{$}", c.page(c.overview))
	m.HandleFunc("GET /console/breaches", c.page(c.breaches))
	m.HandleFunc("GET /console/breaches/{id}", c.page(c.breach))
	m.HandleFunc("POST /console/breaches/{id}/notify", c.page(c.notify))
	m.HandleFunc("POST /console/breaches/{id}/close", c.page(c.closeBreach))
	m.HandleFunc("POST /console/breaches/{id}/subjects", c.page(c.notifySubjects))
	m.HandleFunc("POST /console/breaches", c.page(c.report))
	m.HandleFunc("GET /console/subject", c.page(c.subject))
	m.HandleFunc("POST /console/subject", c.page(c.subject))
	m.HandleFunc("GET /console/evidence/{index}", c.page(c.evidence))
	m.HandleFunc("GET /console/policy", c.page(c.policy))
	m.HandleFunc("POST /console/policy/dryrun", c.page(c.dryRun))
	m.HandleFunc("POST /console/policy/impact", c.page(c.impact))
	m.HandleFunc("GET /console/audit", c.page(c.audit))
	m.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
	})
	c.mux = m
	return c, nil
}

// Owns reports whether the console serves path (/console and below). A
// server that demands a bearer token on every request must let these
// through: the console authenticates browsers with its own session.
func Owns(path string) bool {
	return path == "/console" || strings.HasPrefix(path, "/console/")
}

// ServeHTTP serves /console/ with the security headers and CSRF checks.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	secureHeaders(w)
	if !c.checkCSRF(w, r) {
		return
	}
	c.mux.ServeHTTP(w, r)
}
