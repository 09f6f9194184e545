package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
	"github.com/consentledger/consentledger/rpc"
	"github.com/consentledger/consentledger/server/console"
)

// Defaults of the limits in Config.
const (
	// DefaultBodyReadTimeout bounds reading one request's body.
	DefaultBodyReadTimeout = 10 * time.Second
	// DefaultWatchPerPrincipal bounds the WatchEntries streams of one principal.
	DefaultWatchPerPrincipal = 16
	// DefaultWatchPerConnection bounds the WatchEntries streams of one connection.
	DefaultWatchPerConnection = 4
	// DefaultWatchSendTimeout is how long a WatchEntries stream may take to
	// accept one entry before it is dropped (a client that does not read).
	DefaultWatchSendTimeout = 30 * time.Second
)

// watchProcedure is the one server stream.
const watchProcedure = "/" + consentledgerv1connect.LogServiceName + "/WatchEntries"

// healthPrefix is open to everyone: load balancers probe it without a token.
const healthPrefix = "/" + grpchealth.HealthV1ServiceName + "/"

// guard authenticates a request from its headers before anything reads its
// body (so an unauthenticated caller can neither have its body parsed nor
// hold a connection by sending it slowly), admits a unary call under the
// overload bound and its principal's rate (ol; nil: no bound) — also before
// the body is read, so a refusal costs no parsing and an admitted call
// carries no queueing behind refused ones —, bounds the time to read the
// body, and drops a WatchEntries stream whose client stops reading. auth
// nil means no authentication (loopback only); health is always open.
func guard(next http.Handler, auth *rpc.Authenticator, ol *overload, bodyTimeout, watchTimeout time.Duration) http.Handler {
	errw := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := rpc.PrincipalFrom(r.Context())
		if auth != nil && !strings.HasPrefix(r.URL.Path, healthPrefix) && !console.Owns(r.URL.Path) {
			var err error
			if p, err = auth.Authenticate(r.Header.Get("Authorization")); err != nil {
				// Read nothing of the body, and do not wait for it: close
				// an HTTP/1 connection rather than draining it.
				_ = http.NewResponseController(w).SetReadDeadline(time.Now())
				w.Header().Set("Connection", "close")
				cerr := connect.NewError(connect.CodeUnauthenticated, err)
				if errw.IsSupported(r) {
					errw.Write(w, r, cerr)
				} else {
					w.Header().Set("WWW-Authenticate", `Bearer realm="consentledger"`)
					http.Error(w, err.Error(), http.StatusUnauthorized)
				}
				return
			}
		}
		rc := http.NewResponseController(w)
		if r.Body != nil && r.Body != http.NoBody {
			if err := rc.SetReadDeadline(time.Now().Add(bodyTimeout)); err == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		// A call the principal may not make is left to the authorisation
		// that follows: it takes neither a slot nor a token of its rate.
		if ol != nil && ol.bounds(r.URL.Path) && rpc.Allowed(p.Role, r.URL.Path) {
			start := time.Now()
			release, err := ol.admit(r.Context(), p.Name)
			if err != nil {
				ol.m.observe(r.URL.Path, start, err)
				refuse(w, r, errw, err)
				return
			}
			defer release()
			ol.serve(next, w, r.WithContext(context.WithValue(r.Context(), admittedKey{}, true)))
			return
		}
		if r.URL.Path == watchProcedure {
			w = &deadlineWriter{ResponseWriter: w, rc: rc, timeout: watchTimeout}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody clears the read deadline once the body is read, so that a
// long server stream is not cut by it.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// deadlineWriter gives every write of a server stream a deadline: a client
// that stops reading blocks the write, and the deadline then ends the
// stream and frees what it holds.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (d *deadlineWriter) arm() { _ = d.rc.SetWriteDeadline(time.Now().Add(d.timeout)) }

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.arm()
	return d.ResponseWriter.Write(p)
}

// Flush implements http.Flusher, which streaming needs.
func (d *deadlineWriter) Flush() {
	d.arm()
	_ = d.rc.Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

// connKey carries a connection's identity in request contexts.
type connKey struct{}

var connIDs atomic.Uint64

// withConnID is the http.Server's ConnContext: each connection gets an id.
func withConnID(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, connIDs.Add(1))
}

// watchLimiter bounds WatchEntries streams per principal and per connection.
type watchLimiter struct {
	perPrincipal, perConn int
	mu                    sync.Mutex
	byPrincipal           map[string]int
	byConn                map[uint64]int
}

func newWatchLimiter(perPrincipal, perConn int) *watchLimiter {
	return &watchLimiter{perPrincipal: perPrincipal, perConn: perConn, byPrincipal: map[string]int{}, byConn: map[uint64]int{}}
}

func (l *watchLimiter) acquire(principal string, conn uint64) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byConn[conn] >= l.perConn {
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("this connection already has %d WatchEntries streams, the limit; close one or open another connection", l.perConn))
	}
	if l.byPrincipal[principal] >= l.perPrincipal {
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("principal %q already has %d WatchEntries streams, the limit; close one first", principal, l.perPrincipal))
	}
	l.byConn[conn]++
	l.byPrincipal[principal]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.byConn[conn]--; l.byConn[conn] == 0 {
			delete(l.byConn, conn)
		}
		if l.byPrincipal[principal]--; l.byPrincipal[principal] == 0 {
			delete(l.byPrincipal, principal)
		}
	}, nil
}

// WrapUnary implements connect.Interceptor; unary calls are not limited here.
func (l *watchLimiter) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc { return next }

// WrapStreamingClient implements connect.Interceptor.
func (l *watchLimiter) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler takes a slot for each WatchEntries stream; it runs
// inside authentication, so the principal is known.
func (l *watchLimiter) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if conn.Spec().Procedure != watchProcedure {
			return next(ctx, conn)
		}
		id, _ := ctx.Value(connKey{}).(uint64)
		release, err := l.acquire(rpc.PrincipalFrom(ctx).Name, id)
		if err != nil {
			return err
		}
		defer release()
		return next(ctx, conn)
	}
}
