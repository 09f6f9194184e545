package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
	"github.com/consentledger/consentledger/rpc"
)

// apiClients are the generated Connect clients, calling the server's API
// handler in process.
type apiClients struct {
	consent consentledgerv1connect.ConsentServiceClient
	breach  consentledgerv1connect.BreachServiceClient
	policy  consentledgerv1connect.PolicyServiceClient
	log     consentledgerv1connect.LogServiceClient
}

// apiBase is the base URL of in-process calls; it never reaches a network.
const apiBase = "http://in-process.console.invalid"

func newAPIClients(api http.Handler) *apiClients {
	hc := &http.Client{Transport: inProcess{h: api, ew: connect.NewErrorWriter()}}
	return &apiClients{
		consent: consentledgerv1connect.NewConsentServiceClient(hc, apiBase),
		breach:  consentledgerv1connect.NewBreachServiceClient(hc, apiBase),
		policy:  consentledgerv1connect.NewPolicyServiceClient(hc, apiBase),
		log:     consentledgerv1connect.NewLogServiceClient(hc, apiBase),
	}
}

// callCtx is the context of an API call on behalf of the signed-in p;
// without authentication the API acts as "local".
func (c *Console) callCtx(r *http.Request, p rpc.Principal) context.Context {
	if c.o.Auth == nil {
		return r.Context()
	}
	return rpc.WithPrincipal(rpc.WithInProcessCaller(r.Context(), p), p)
}

// inProcess is an http.RoundTripper that serves a request with a handler
// in this process, so the console's calls pass the API's interceptors. It
// also refuses, itself, a procedure the caller's role may not call (the
// API's own table, rpc.Allowed): authorisation holds even if the API's
// interceptors change shape.
type inProcess struct {
	h  http.Handler
	ew *connect.ErrorWriter
}

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	in := req.Clone(req.Context())
	w := &memResponse{header: http.Header{}}
	if p := rpc.PrincipalFrom(req.Context()); !rpc.Allowed(p.Role, req.URL.Path) {
		err := connect.NewError(connect.CodePermissionDenied, fmt.Errorf("principal %q (role %s) may not call %s", p.Name, p.Role, req.URL.Path))
		if werr := t.ew.Write(w, in, err); werr != nil {
			return nil, werr
		}
		return w.response(req), nil
	}
	in.Proto, in.ProtoMajor, in.ProtoMinor = "HTTP/1.1", 1, 1
	in.RequestURI = req.URL.RequestURI()
	if in.Body == nil {
		in.Body = http.NoBody
	}
	t.h.ServeHTTP(w, in)
	return w.response(req), nil
}

func (w *memResponse) response(req *http.Request) *http.Response {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return &http.Response{
		Status: http.StatusText(w.code), StatusCode: w.code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.header, Body: io.NopCloser(&w.body), ContentLength: int64(w.body.Len()), Request: req,
	}
}

// memResponse collects a response in memory.
type memResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (m *memResponse) Header() http.Header { return m.header }
func (m *memResponse) Write(b []byte) (int, error) {
	if m.code == 0 {
		m.code = http.StatusOK
	}
	return m.body.Write(b)
}
func (m *memResponse) WriteHeader(code int) {
	if m.code == 0 {
		m.code = code
	}
}
func (m *memResponse) Flush() {}

// apiError is an API error as a page shows it: the field it names (for
// invalid_argument, the text before ": "), the message, and the HTTP status.
type apiError struct {
	Field, Message string
	Status         int
}

func asAPIError(err error) apiError {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return apiError{Message: err.Error(), Status: http.StatusInternalServerError}
	}
	e := apiError{Message: ce.Message(), Status: http.StatusBadGateway}
	switch ce.Code() {
	case connect.CodeInvalidArgument:
		e.Status = http.StatusUnprocessableEntity
		if f, msg, ok := strings.Cut(ce.Message(), ": "); ok && !strings.ContainsAny(f, " ") {
			e.Field, e.Message = f, msg
		}
	case connect.CodeFailedPrecondition, connect.CodeAlreadyExists, connect.CodeOutOfRange:
		e.Status = http.StatusConflict
	case connect.CodeNotFound:
		e.Status = http.StatusNotFound
	case connect.CodePermissionDenied:
		e.Status = http.StatusForbidden
	case connect.CodeUnauthenticated:
		e.Status = http.StatusUnauthorized
	case connect.CodeResourceExhausted, connect.CodeUnavailable:
		e.Status = http.StatusServiceUnavailable
	}
	return e
}

// forbidden reports whether err is the API's permission_denied.
func forbidden(err error) bool { return connect.CodeOf(err) == connect.CodePermissionDenied }
