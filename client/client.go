// Package client is the Go client of a consentledger server: the five
// Connect services over one HTTP/2-capable connection, with the bearer
// token of README.md: The API, plus the operations the CLI offers on top of them
// (evidence bundles, exports, the load generator). Writes refused by a
// standby node follow its leader hint to the leader (follow.go).
package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
)

// DefaultServer is the server address client commands use by default.
const DefaultServer = "http://127.0.0.1:7420"

// Client talks to one server.
type Client struct {
	Consent consentledgerv1connect.ConsentServiceClient
	Send    consentledgerv1connect.SendServiceClient
	Breach  consentledgerv1connect.BreachServiceClient
	Policy  consentledgerv1connect.PolicyServiceClient
	Log     consentledgerv1connect.LogServiceClient
	Admin   consentledgerv1connect.AdminServiceClient
	Notice  consentledgerv1connect.NoticeServiceClient
	Report  consentledgerv1connect.ReportServiceClient
	// HTTP is the underlying client (HTTP/2 cleartext for http:// URLs).
	HTTP *http.Client
	URL  string
}

// Options configures New.
type Options struct {
	// Token is the bearer token; empty sends none.
	Token string
	// GRPC uses the gRPC protocol instead of Connect.
	GRPC bool
	// MaxConns bounds connections per host; 0 means Go's default.
	MaxConns int
}

// New returns a client of the server at serverURL ("http://host:port" or
// "https://…"). Its unary calls follow a standby's leader hint once (see
// LeaderHint): writes sent to a standby land on the leader.
func New(serverURL string, opts Options) (*Client, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q must look like http://127.0.0.1:7420", serverURL)
	}
	rt := &routeTransport{basePath: strings.TrimSuffix(u.Path, "/"), opts: opts, byScheme: map[string]*http.Transport{}}
	hc := &http.Client{Transport: rt}
	base := strings.TrimSuffix(serverURL, "/")
	co := []connect.ClientOption{connect.WithInterceptors(followLeader{scheme: u.Scheme})}
	if opts.Token != "" {
		co = append(co, connect.WithInterceptors(bearer(opts.Token)))
	}
	if opts.GRPC {
		co = append(co, connect.WithGRPC())
	}
	return &Client{
		Consent: consentledgerv1connect.NewConsentServiceClient(hc, base, co...),
		Send:    consentledgerv1connect.NewSendServiceClient(hc, base, co...),
		Breach:  consentledgerv1connect.NewBreachServiceClient(hc, base, co...),
		Policy:  consentledgerv1connect.NewPolicyServiceClient(hc, base, co...),
		Log:     consentledgerv1connect.NewLogServiceClient(hc, base, co...),
		Admin:   consentledgerv1connect.NewAdminServiceClient(hc, base, co...),
		Notice:  consentledgerv1connect.NewNoticeServiceClient(hc, base, co...),
		Report:  consentledgerv1connect.NewReportServiceClient(hc, base, co...),
		HTTP:    hc,
		URL:     base,
	}, nil
}

// newTransport returns the HTTP transport New uses for URLs of scheme:
// HTTP/2 cleartext for http, HTTP/2 over TLS for https.
func newTransport(scheme string, opts Options) *http.Transport {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
		MaxConnsPerHost:     opts.MaxConns,
		MaxIdleConnsPerHost: 256,
	}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP1(true)
	if scheme == "http" {
		tr.Protocols.SetUnencryptedHTTP2(true)
	} else {
		tr.Protocols.SetHTTP2(true)
	}
	return tr
}

type bearerInterceptor struct{ header string }

func bearer(token string) connect.Interceptor { return bearerInterceptor{"Bearer " + token} }

func (b bearerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", b.header)
		return next(ctx, req)
	}
}

func (b bearerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", b.header)
		return conn
	}
}

func (b bearerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
