package console

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/consentledger/consentledger/rpc"
)

// FuzzSessionCookie: the session parser never panics, and accepts only a
// value the console signed for a known principal.
func FuzzSessionCookie(f *testing.F) {
	now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	a, err := rpc.NewAuthenticator([]rpc.Principal{{Name: "dpo", Role: rpc.RoleAuditor, TokenSHA256: tokenHash("tok")}})
	if err != nil {
		f.Fatal(err)
	}
	c, err := New(Options{API: http.NotFoundHandler(), Key: testKey, Auth: a, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	p, _ := a.ByName("dpo")
	valid := c.sessionValue(p, now.Add(time.Hour))
	f.Add(valid)
	f.Add("ZHBv.1798000000.AAAA")
	f.Add("..")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		req := httptest.NewRequest(http.MethodGet, "/console/", nil)
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: v})
		// AddCookie drops bytes a cookie may not hold: compare what the
		// console receives, not what the fuzzer made.
		sent := ""
		if ck, err := req.Cookie(SessionCookie); err == nil {
			sent = ck.Value
		}
		if _, ok := c.principalOf(req); ok && sent != valid {
			t.Fatalf("accepted a session the console did not sign: %q (sent as %q)", v, sent)
		}
	})
}
