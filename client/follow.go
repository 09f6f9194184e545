package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"connectrpc.com/connect"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Following the leader. A standby node (README.md: The API) refuses a write
// with code unavailable and a LeaderHint detail naming the leader's
// advertised URL; it appended nothing. The followLeader interceptor, which
// New installs, then sends the same unary call once more, to the leader:
// the request goes through the client's routing transport, which sends it
// to the leader's base URL instead of the configured one (over a transport
// per URL scheme, kept for later calls). A second refusal is returned as it
// is: the client never follows more than one hint per call. A hint from an
// https server to an http URL is not followed (the bearer token would travel
// in clear). Streams (WatchEntries) are reads, which standbys serve, so they
// are never redirected.

// leaderKey carries, in a retried call's context, the leader's base URL
// the routing transport sends the request to.
type leaderKey struct{}

// LeaderHint returns the leader's URL that err, a refusal by a standby
// node, names (its LeaderHint error detail), or "".
func LeaderHint(err error) string {
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeUnavailable {
		return ""
	}
	for _, d := range ce.Details() {
		v, derr := d.Value()
		if derr != nil {
			continue
		}
		if h, ok := v.(*pb.LeaderHint); ok && h.GetLeaderUrl() != "" {
			return h.GetLeaderUrl()
		}
	}
	return ""
}

// followLeader retries a unary call refused by a standby once at the
// leader it names.
type followLeader struct {
	// scheme is the configured server's URL scheme.
	scheme string
}

// mayFollow reports whether a hint to leader may be followed: an http(s)
// URL with a host, and no downgrade from https to http.
func (f followLeader) mayFollow(leader string) bool {
	u, err := url.Parse(leader)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return !(f.scheme == "https" && u.Scheme == "http")
}

func (f followLeader) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		leader := LeaderHint(err)
		if leader == "" || !f.mayFollow(leader) || ctx.Value(leaderKey{}) != nil {
			return res, err
		}
		return next(context.WithValue(ctx, leaderKey{}, strings.TrimSuffix(leader, "/")), req)
	}
}

func (f followLeader) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (f followLeader) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// routeTransport sends requests to the configured server, and a request
// whose context names a leader (followLeader) to that leader's base URL,
// over the transport for the leader's scheme (made on first use, then
// kept: at most one each for http and https).
type routeTransport struct {
	basePath string // the configured URL's path, which procedure paths extend
	opts     Options

	mu       sync.Mutex
	byScheme map[string]*http.Transport
}

func (t *routeTransport) transport(scheme string) *http.Transport {
	if scheme != "http" {
		scheme = "https"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	tr, ok := t.byScheme[scheme]
	if !ok {
		tr = newTransport(scheme, t.opts)
		t.byScheme[scheme] = tr
	}
	return tr
}

func (t *routeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	leader, ok := r.Context().Value(leaderKey{}).(string)
	if !ok {
		return t.transport(r.URL.Scheme).RoundTrip(r)
	}
	u, err := url.Parse(leader)
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	path := strings.TrimPrefix(r.URL.Path, t.basePath)
	r.URL.Scheme, r.URL.Host, r.URL.Path, r.URL.RawPath = u.Scheme, u.Host, strings.TrimSuffix(u.Path, "/")+path, ""
	r.Host = ""
	return t.transport(u.Scheme).RoundTrip(r)
}

// CloseIdleConnections closes idle connections of every transport.
func (t *routeTransport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tr := range t.byScheme {
		tr.CloseIdleConnections()
	}
}
