package console

import (
	"context"
	"net/http"

	"github.com/consentledger/consentledger/rpc"
)

type viewerKey struct{}

func withViewer(ctx context.Context, p rpc.Principal) context.Context {
	return context.WithValue(ctx, viewerKey{}, p)
}

// viewerFrom returns the signed-in principal a page renders for.
func viewerFrom(ctx context.Context) (rpc.Principal, bool) {
	p, ok := ctx.Value(viewerKey{}).(rpc.Principal)
	return p, ok
}

func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) {
	if p, ok := c.principalOf(r); ok && c.o.Auth != nil {
		r = r.WithContext(withViewer(r.Context(), p))
	}
	c.render(w, r, "signin", http.StatusOK, map[string]any{"Title": "Sign in"})
}

// signin exchanges a principal's bearer token for a session cookie.
func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	if c.o.Auth == nil {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
		return
	}
	p, err := c.o.Auth.Authenticate("Bearer " + r.PostFormValue("token"))
	if err != nil {
		c.render(w, r, "signin", http.StatusUnauthorized, map[string]any{"Title": "Sign in", "Error": "That token is not known to this server: paste the bearer token of your principal (the config lists only its SHA-256)."})
		return
	}
	exp := c.o.Now().Add(c.o.SessionTTL)
	c.setCookie(w, SessionCookie, c.sessionValue(p, exp), int(c.o.SessionTTL.Seconds()))
	c.o.Logger.Info("console sign-in", "principal", p.Name, "role", p.Role)
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func (c *Console) signout(w http.ResponseWriter, r *http.Request) {
	c.setCookie(w, SessionCookie, "", -1)
	http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
}
