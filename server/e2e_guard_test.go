package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/server"
)

func tokenHash(tok string) string { h := sha256.Sum256([]byte(tok)); return hex.EncodeToString(h[:]) }

func withAuth(cfg server.Config) server.Config {
	cfg.Principals = []server.PrincipalConfig{{Name: "dpo", Role: "auditor", TokenSHA256: tokenHash("s3cret-auditor")}}
	return cfg
}

// post sends body to path over the test server's h2c client.
func (s *testServer) post(t *testing.T, ctx context.Context, path, contentType, token string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err.Error()
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(raw)
}

// Issue 11.9: authentication comes from the headers, before the body is read.
func TestAuthenticateBeforeBody(t *testing.T) {
	s := start(t, withAuth(server.Config{BodyReadTimeout: 500 * time.Millisecond}))
	ctx := context.Background()
	resp, raw := s.post(t, ctx, "/consentledger.v1.LogService/GetEntries", "application/json", "", strings.NewReader("{not json"))
	if resp == nil || resp.StatusCode != http.StatusUnauthorized || !strings.Contains(raw, `"unauthenticated"`) {
		t.Errorf("malformed body without a token: %v %s, want 401 unauthenticated", resp, raw)
	}

	// A body that never comes: without a token the answer does not wait for it.
	pr, pw := io.Pipe()
	defer pw.Close()
	began := time.Now()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	resp, raw = s.post(t, tctx, "/consentledger.v1.LogService/GetEntries", "application/json", "", pr)
	if resp == nil || resp.StatusCode != http.StatusUnauthorized || time.Since(began) > 5*time.Second {
		t.Errorf("slow body without a token: %v %s after %v, want 401 at once", resp, raw, time.Since(began))
	}

	// With a token, the body has BodyReadTimeout to arrive, over HTTP/1.1
	// and HTTP/2.
	for _, c := range []*testServer{s, h2cOnly(s)} {
		pr2, pw2 := io.Pipe()
		defer pw2.Close()
		go pw2.Write([]byte("{"))
		began = time.Now()
		resp, raw = c.post(t, tctx, "/consentledger.v1.LogService/GetEntries", "application/json", "s3cret-auditor", pr2)
		if resp != nil && resp.StatusCode == http.StatusOK {
			t.Errorf("slow body with a token answered 200: %s", raw)
		}
		if took := time.Since(began); took > 5*time.Second {
			t.Errorf("slow body with a token held the request %v, the body read timeout is 500ms", took)
		}
	}
}

// Issue 11.10: metrics and reflection need a token (or --metrics-addr),
// health does not.
func TestMetadataNeedsToken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ln.Addr().String()
	ln.Close()
	s := start(t, withAuth(server.Config{MetricsAddr: metricsAddr}))
	ctx := context.Background()
	get := func(url, token string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := s.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if code, _ := get(s.url+"/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %d, want 401", code)
	}
	if code, body := get(s.url+"/metrics", "s3cret-auditor"); code != http.StatusOK || !strings.Contains(body, "consentledger_log_size") {
		t.Errorf("/metrics with a token: %d", code)
	}
	if code, body := get("http://"+metricsAddr+"/metrics", ""); code != http.StatusOK || !strings.Contains(body, "consentledger_log_size") {
		t.Errorf("/metrics on --metrics-addr: %d", code)
	}
	resp, raw := s.post(t, ctx, "/grpc.health.v1.Health/Check", "application/json", "", strings.NewReader("{}"))
	if resp == nil || resp.StatusCode != http.StatusOK || !strings.Contains(raw, "SERVING") {
		t.Errorf("health without a token: %v %s, want SERVING", resp, raw)
	}
	resp, _ = s.post(t, ctx, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "application/grpc", "", strings.NewReader(""))
	if resp == nil || (resp.Header.Get("Grpc-Status") != "16" && resp.Trailer.Get("Grpc-Status") != "16") {
		t.Errorf("reflection without a token: %v, want grpc-status 16 (unauthenticated)", resp)
	}
}

// Issue 11.13: principals on a non-loopback address need TLS, or
// --insecure-no-tls.
func TestRefusesTokensWithoutTLS(t *testing.T) {
	err := server.Run(context.Background(), withAuth(server.Config{DataDir: t.TempDir(), Addr: "0.0.0.0:0"}), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "--insecure-no-tls") {
		t.Fatalf("Run on 0.0.0.0 with principals and no TLS: %v, want a refusal naming --insecure-no-tls", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfg := withAuth(server.Config{DataDir: t.TempDir(), Addr: "0.0.0.0:0", InsecureNoTLS: true})
	var logs strings.Builder
	if err := server.Run(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil)), func(string) { cancel() }); err != nil {
		t.Fatalf("Run with --insecure-no-tls: %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN msg=\"INSECURE: --insecure-no-tls") {
		t.Errorf("no loud warning at start with --insecure-no-tls:\n%s", logs.String())
	}
}

// h2cOnly returns s with a client of its own that speaks only HTTP/2, so
// that all its calls share one connection.
func h2cOnly(s *testServer) *testServer {
	c := *s
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	c.http = &http.Client{Transport: tr}
	return &c
}

// Issue 11.2: WatchEntries streams are limited per connection and per principal.
func TestWatchLimits(t *testing.T) {
	s := h2cOnly(start(t, server.Config{WatchPerConnection: 2, WatchPerPrincipal: 3}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := func(c *testServer) (func(), error) {
		sctx, scancel := context.WithCancel(ctx)
		stream, err := c.logs().WatchEntries(sctx, connect.NewRequest(&pb.WatchEntriesRequest{Start: 0}))
		if err != nil {
			scancel()
			return nil, err
		}
		if !stream.Receive() {
			scancel()
			return nil, stream.Err()
		}
		return func() { scancel(); stream.Close() }, nil
	}
	closeA, err := open(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(s); err != nil {
		t.Fatal(err)
	}
	if _, err := open(s); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Errorf("third stream on one connection: %v, want resource_exhausted", err)
	}
	// Another connection, the same principal ("local" without a config).
	other := h2cOnly(s)
	if _, err := open(other); err != nil {
		t.Fatalf("first stream on a second connection: %v", err)
	}
	if _, err := open(other); connect.CodeOf(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), "principal") {
		t.Errorf("fourth stream of one principal: %v, want resource_exhausted naming the principal", err)
	}
	closeA()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := open(s)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed stream's slot was not freed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Issue 11.2: a WatchEntries stream whose client does not read is dropped
// after the send deadline, and its slot is free again.
func TestWatchStreamNotReadIsDropped(t *testing.T) {
	s := h2cOnly(start(t, server.Config{WatchPerConnection: 1, WatchSendTimeout: 500 * time.Millisecond}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	began := time.Now()
	// About 6 MB of entries: more than the client's 4 MB stream window.
	big := strings.Repeat("# padding padding padding padding padding padding padding padding\n", 11000)
	for i := range 4 {
		files := append(pbFiles(policies.Default()),
			&pb.PolicyFile{Name: "pad1.rego", Content: fmt.Sprintf("package pad\n# %d\n%s", i, big)},
			&pb.PolicyFile{Name: "pad2.rego", Content: fmt.Sprintf("package pad\n# %d\n%s", i, big)})
		if _, err := s.policy().PublishPolicy(ctx, connect.NewRequest(&pb.PublishPolicyRequest{Files: files})); err != nil {
			t.Fatal(err)
		}
	}
	stuck, err := s.logs().WatchEntries(ctx, connect.NewRequest(&pb.WatchEntriesRequest{Start: 0}))
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	if !stuck.Receive() { // the stream runs; from now on it is not read
		t.Fatal(stuck.Err())
	}
	t.Logf("published and stuck after %v", time.Since(began))
	deadline := time.Now().Add(20 * time.Second)
	for {
		sctx, scancel := context.WithCancel(ctx)
		next, err := s.logs().WatchEntries(sctx, connect.NewRequest(&pb.WatchEntriesRequest{Start: 0}))
		if err == nil && next.Receive() {
			scancel()
			break
		}
		if err == nil {
			err = next.Err()
		}
		scancel()
		if connect.CodeOf(err) != connect.CodeResourceExhausted {
			t.Fatalf("second stream: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the stream that was not read still holds its slot after 20 s (send deadline 500ms)")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
