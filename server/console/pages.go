package console

import (
	"bytes"
	"html/template"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/rpc"
)

// navItem is one page in the navigation, shown to the roles the API lets
// call the page's gate procedures.
type navItem struct {
	Path, Label string
	gate        []string
}

var nav = []navItem{
	{"/console/", "Overview", nil},
	{"/console/breaches", "Breaches", []string{"/consentledger.v1.BreachService/ListBreaches"}},
	{"/console/subject", "Subject", []string{"/consentledger.v1.ConsentService/GetTimeline"}},
	{"/console/policy", "Policy", []string{"/consentledger.v1.PolicyService/DryRun", "/consentledger.v1.LogService/GetEntries"}},
	{"/console/audit", "Audit", []string{"/consentledger.v1.LogService/GetDecisionStats"}},
}

// role is p's role as the API sees it (admin without authentication).
func (c *Console) role(p rpc.Principal) string {
	if c.o.Auth == nil {
		return rpc.RoleAdmin
	}
	return p.Role
}

// mayOpen reports whether p's role may call one of the gate procedures of
// the page at path: the API's own authorisation table decides.
func (c *Console) mayOpen(p rpc.Principal, path string) bool {
	for _, n := range nav {
		if n.Path == path {
			if n.gate == nil {
				return true
			}
			for _, proc := range n.gate {
				if rpc.Allowed(c.role(p), proc) {
					return true
				}
			}
			return false
		}
	}
	return false
}

type pageFunc func(w http.ResponseWriter, r *http.Request, p rpc.Principal)

// page wraps a page handler: it needs a session (or loopback mode).
func (c *Console) page(h pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := c.principalOf(r)
		if !ok {
			http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
			return
		}
		r = r.WithContext(withViewer(r.Context(), p))
		h(w, r, p)
	}
}

// gate renders a 403 page when p may not open the page at path.
func (c *Console) gate(w http.ResponseWriter, r *http.Request, p rpc.Principal, path string) bool {
	if c.mayOpen(p, path) {
		return true
	}
	c.render(w, r, "error", http.StatusForbidden, map[string]any{
		"Title":   "Not for your role",
		"Message": "The principal " + p.Name + " (role " + c.role(p) + ") may not open this page: the API does not let this role call what it shows.",
	})
	return false
}

// render executes a page template with the layout's data and writes it
// with status.
func (c *Console) render(w http.ResponseWriter, r *http.Request, name string, status int, data map[string]any) {
	p, signedIn := viewerFrom(r.Context())
	data["CSRF"] = c.csrfToken(w, r)
	data["Path"] = r.URL.Path
	data["Auth"] = c.o.Auth != nil
	data["SignedIn"] = signedIn
	if signedIn {
		who := p.Name + " (" + p.Role + ")"
		if c.o.Auth == nil {
			who = "local (admin, no authentication on loopback)"
		}
		data["Who"] = who
		var items []navItem
		for _, n := range nav {
			if c.mayOpen(p, n.Path) {
				items = append(items, n)
			}
		}
		data["Nav"] = items
	}
	data["Now"] = c.o.Now().UTC()
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, data); err != nil {
		c.o.Logger.Error("console: render", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// failed renders an API error as a page.
func (c *Console) failed(w http.ResponseWriter, r *http.Request, err error) {
	e := asAPIError(err)
	c.render(w, r, "error", e.Status, map[string]any{"Title": "The request failed", "Message": e.Message})
}

var funcs = template.FuncMap{
	"ts": func(t *timestamppb.Timestamp) string {
		if t == nil {
			return "—"
		}
		return t.AsTime().UTC().Format("2006-01-02 15:04 UTC")
	},
	"rfc3339": func(t *timestamppb.Timestamp) string {
		if t == nil {
			return ""
		}
		return t.AsTime().UTC().Format(time.RFC3339)
	},
	"channel": func(ch pb.Channel) string {
		return strings.ToLower(strings.TrimPrefix(ch.String(), "CHANNEL_"))
	},
	"channels": func(chs []pb.Channel) string {
		var s []string
		for _, ch := range chs {
			s = append(s, strings.ToLower(strings.TrimPrefix(ch.String(), "CHANNEL_")))
		}
		if len(s) == 0 {
			return "—"
		}
		return strings.Join(s, ", ")
	},
	"join":     strings.Join,
	"list":     func(s ...string) []string { return s },
	"chanval":  func(name string) pb.Channel { return pb.Channel(pb.Channel_value[name]) },
	"hex":      func(b []byte) string { return hexString(b) },
	"deadline": deadlineView,
}
