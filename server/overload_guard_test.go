package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
	"github.com/consentledger/consentledger/rpc"
)

// h2cServer serves h over HTTP/1.1 and h2c and returns its URL and a client
// speaking h2c (gRPC needs HTTP/2).
func h2cServer(t *testing.T, h http.Handler) (string, *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return srv.URL, &http.Client{Transport: tr}
}

// retryDelay returns the RetryInfo delay of a Connect error, 0 if none.
func retryDelay(err error) time.Duration {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return 0
	}
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if ri, ok := v.(*errdetails.RetryInfo); ok {
				return ri.GetRetryDelay().AsDuration()
			}
		}
	}
	return 0
}

func testOverload(maxInFlight int, wait time.Duration, principals []PrincipalConfig) *overload {
	ol := newOverload(maxInFlight, wait, principals, newMetrics(nil, slog.New(slog.DiscardHandler)))
	ol.unary = unaryProcedures([]string{consentledgerv1connect.SendServiceName, consentledgerv1connect.LogServiceName})
	return ol
}

// Issue 17.1: past the bound, the guard refuses a call from its headers —
// without reading its body or reaching the API — with resource_exhausted
// and a RetryInfo hint, in the shape of each protocol: Connect, gRPC and
// gRPC-Web; a plain HTTP request gets 429 and Retry-After.
func TestGuardRefusesPastTheBoundBeforeTheBody(t *testing.T) {
	ol := testOverload(1, 30*time.Millisecond, nil)
	defer ol.stop()
	var reached atomic.Int64
	entered, hold := make(chan struct{}), make(chan struct{})
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reached.Add(1) == 1 {
			close(entered)
			<-hold
		}
		http.Error(w, "the API", http.StatusTeapot)
	})
	url, hc := h2cServer(t, guard(api, nil, ol, time.Second, time.Second))

	// The one slot is taken by a call that does not finish.
	first := make(chan struct{})
	go func() {
		defer close(first)
		resp, err := hc.Post(url+"/consentledger.v1.SendService/Decide", "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	defer func() { close(hold); <-first }()

	req := connect.NewRequest(&pb.DecideRequest{})
	for _, tc := range []struct {
		name string
		opts []connect.ClientOption
	}{
		{"connect+proto", nil},
		{"connect+json", []connect.ClientOption{connect.WithProtoJSON()}},
		{"grpc", []connect.ClientOption{connect.WithGRPC()}},
		{"grpc-web", []connect.ClientOption{connect.WithGRPCWeb()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := consentledgerv1connect.NewSendServiceClient(hc, url, tc.opts...)
			_, err := c.Decide(context.Background(), req)
			if connect.CodeOf(err) != connect.CodeResourceExhausted || retryDelay(err) < time.Second {
				t.Fatalf("past the bound: %v (retry hint %v), want resource_exhausted with a hint of at least 1s", err, retryDelay(err))
			}
			if !strings.Contains(err.Error(), "overloaded") {
				t.Errorf("the refusal does not say why: %v", err)
			}
		})
	}
	// A body that never comes is not waited for.
	pr, pw := io.Pipe()
	defer pw.Close()
	began := time.Now()
	resp, err := hc.Post(url+"/consentledger.v1.LogService/GetEntries", "text/plain", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("plain HTTP past the bound: %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("the refusal waited %v for a body", d)
	}
	if n := reached.Load(); n != 1 {
		t.Errorf("%d calls reached the API, want only the one admitted", n)
	}
	// Health and the streams are not bounded.
	resp, err = hc.Post(url+healthPrefix+"Check", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Errorf("health past the bound: %d, want it served", resp.StatusCode)
	}
}

// Issue 17.1: a waiting call gets the slot a finished call frees, within
// the wait; calls are admitted in the order they came.
func TestOverloadAdmitsWaitersInOrder(t *testing.T) {
	const slots = 3
	ol := testOverload(slots, 10*time.Second, nil)
	defer ol.stop()
	var held []func()
	for range slots {
		release, err := ol.admit(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, release)
	}
	order := make(chan int, slots)
	for i := range slots {
		go func() {
			rel, err := ol.admit(context.Background(), "")
			if err != nil {
				t.Errorf("waiter %d: %v", i, err)
				order <- -1
				return
			}
			order <- i
			rel()
		}()
		deadline := time.Now().Add(10 * time.Second)
		for ol.waiting.Load() != int64(i+1) { // queue them one after another
			if time.Now().After(deadline) {
				t.Fatalf("waiter %d is not queued", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	held[0]() // one slot frees: each waiter, in turn, takes it and frees it
	for want := range slots {
		if got := <-order; got != want {
			t.Fatalf("admitted %d, want %d (first come, first served)", got, want)
		}
	}
	// A call past a full queue is refused at once, not after the wait.
	ol2 := testOverload(1, 10*time.Second, nil)
	defer ol2.stop()
	rel, _ := ol2.admit(context.Background(), "")
	defer rel()
	go ol2.admit(context.Background(), "") // fills the one-place queue
	for ol2.waiting.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	began := time.Now()
	if _, err := ol2.admit(context.Background(), ""); connect.CodeOf(err) != connect.CodeResourceExhausted || time.Since(began) > 5*time.Second {
		t.Errorf("past a full queue: %v after %v, want resource_exhausted at once", err, time.Since(began))
	}
	for _, r := range held[1:] {
		r()
	}
}

// Issue 17.1: a principal over its rate is refused with the time its bucket
// refills; other principals are not affected.
func TestGuardRateLimitsPerPrincipal(t *testing.T) {
	hash := func(tok string) string { h := sha256.Sum256([]byte(tok)); return hex.EncodeToString(h[:]) }
	principals := []PrincipalConfig{
		{Name: "shop", Role: rpc.RoleSender, TokenSHA256: hash("shop-token"), RatePerSecond: 0.5, Burst: 2},
		{Name: "crm", Role: rpc.RoleSender, TokenSHA256: hash("crm-token")},
	}
	var ps []rpc.Principal
	for _, p := range principals {
		ps = append(ps, rpc.Principal{Name: p.Name, Role: p.Role, TokenSHA256: p.TokenSHA256})
	}
	auth, err := rpc.NewAuthenticator(ps)
	if err != nil {
		t.Fatal(err)
	}
	ol := testOverload(8, 20*time.Millisecond, principals)
	defer ol.stop()
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"allow":true}`)
	})
	url, hc := h2cServer(t, guard(api, auth, ol, time.Second, time.Second))
	as := func(tok string) consentledgerv1connect.SendServiceClient {
		return consentledgerv1connect.NewSendServiceClient(hc, url, connect.WithProtoJSON(), connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("Authorization", "Bearer "+tok)
				return next(ctx, req)
			}
		})))
	}
	ctx := context.Background()
	shop, crm := as("shop-token"), as("crm-token")
	for i := range 2 { // the burst
		if _, err := shop.Decide(ctx, connect.NewRequest(&pb.DecideRequest{})); err != nil {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
	}
	_, err = shop.Decide(ctx, connect.NewRequest(&pb.DecideRequest{}))
	if connect.CodeOf(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), `"shop"`) {
		t.Fatalf("over the rate: %v, want resource_exhausted naming the principal", err)
	}
	if d := retryDelay(err); d < time.Second || d > 2*time.Second {
		t.Errorf("retry hint %v, want the ~2s the bucket takes to refill one token at 0.5/s", d)
	}
	for i := range 5 {
		if _, err := crm.Decide(ctx, connect.NewRequest(&pb.DecideRequest{})); err != nil {
			t.Fatalf("another principal's call %d: %v", i, err)
		}
	}
}

// A panic in the API, which runs on one of the overload's workers, reaches
// net/http in the request's goroutine (which aborts the response), and the
// worker goes on serving.
func TestOverloadWorkerPanicReachesTheRequest(t *testing.T) {
	ol := testOverload(1, time.Second, nil)
	defer ol.stop()
	var calls atomic.Int64
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			panic(http.ErrAbortHandler)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	url, hc := h2cServer(t, guard(api, nil, ol, time.Second, time.Second))
	if resp, err := hc.Post(url+"/consentledger.v1.SendService/Decide", "application/json", strings.NewReader("{}")); err == nil {
		resp.Body.Close()
		t.Fatalf("a call whose handler panicked: %d, want the stream reset", resp.StatusCode)
	}
	resp, err := hc.Post(url+"/consentledger.v1.SendService/Decide", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("the next call: %d, want it served", resp.StatusCode)
	}
}

// TestOverloadQueueLength: the calls that may wait for a slot are those
// the slots can serve within the wait — the wait over an admitted call's
// time in flight, times the slots —, the slots themselves before any call
// completed, at least one, and at most maxQueuePerSlot per slot.
func TestOverloadQueueLength(t *testing.T) {
	for _, tc := range []struct {
		slots   int
		latency time.Duration
		want    int64
	}{
		{slots: 4, latency: 0, want: 4},                                  // nothing measured yet
		{slots: 4, latency: 5 * time.Millisecond, want: 16},              // fast calls: more than the slots may wait
		{slots: 4, latency: 40 * time.Millisecond, want: 2},              // slow calls: fewer
		{slots: 4, latency: time.Second, want: 1},                        // at least one
		{slots: 4, latency: time.Microsecond, want: maxQueuePerSlot * 4}, // capped
		{slots: 16, latency: 20 * time.Millisecond, want: 16},            // latency = wait
		{slots: 16, latency: 6 * time.Millisecond, want: 20 * 16 / 6},    // the case measured in docs/operations.md
	} {
		ol := testOverload(tc.slots, 20*time.Millisecond, nil)
		ol.latency = tc.latency
		var n int64
		for ol.queue() {
			n++
			if n > 10000 {
				break
			}
		}
		ol.stop()
		if n != tc.want {
			t.Errorf("%d slots, %v in flight: %d may wait, want %d", tc.slots, tc.latency, n, tc.want)
		}
	}
}

// TestOverloadAdaptiveBound: while calls are refused for want of a slot,
// the bound shrinks to minSlots (fewer calls in flight, each done sooner);
// it stays there until no call was refused for quietPeriod, then grows back
// by an eighth of the slots per step.
func TestOverloadAdaptiveBound(t *testing.T) {
	const slots = 16
	ol := newOverloadFixed(slots, 20*time.Millisecond, nil, newMetrics(nil, slog.New(slog.DiscardHandler)))
	defer ol.stop()
	low := ol.minSlots
	if low >= slots || low < 2 {
		t.Fatalf("minSlots = %d, want 2 ≤ it < %d", low, slots)
	}
	now := time.Now()
	ol.adapt(now)
	if ol.limit() != slots {
		t.Fatalf("without refusals the bound is %d, want %d", ol.limit(), slots)
	}
	ol.refusals.Add(1) // a call was refused
	now = now.Add(controlTick)
	ol.adapt(now)
	if ol.limit() != low {
		t.Fatalf("after a refusal the bound is %d, want %d", ol.limit(), low)
	}
	ctx := context.Background()
	var held []func()
	for range low {
		rel, err := ol.admit(ctx, "")
		if err != nil {
			t.Fatalf("call within the shrunk bound: %v", err)
		}
		held = append(held, rel)
	}
	if ol.inFlight() != low {
		t.Errorf("in flight = %d, want %d (ballast not counted)", ol.inFlight(), low)
	}
	if _, err := ol.admit(ctx, ""); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("call past the shrunk bound: %v, want resource_exhausted", err)
	}
	for _, r := range held {
		r()
	}
	// That refusal keeps it low; quiet for less than quietPeriod: still low.
	now = now.Add(controlTick)
	ol.adapt(now)
	now = now.Add(quietPeriod - controlTick)
	ol.adapt(now)
	if ol.limit() != low {
		t.Fatalf("%v after the last refusal the bound is %d, want %d", quietPeriod-controlTick, ol.limit(), low)
	}
	steps := 0
	for prev := ol.limit(); ol.limit() < slots; prev = ol.limit() {
		now = now.Add(controlTick)
		ol.adapt(now)
		if steps++; steps > 20 || ol.limit() <= prev {
			t.Fatalf("step %d: the bound went from %d to %d, want it to grow back", steps, prev, ol.limit())
		}
	}
	if want := (slots - low + slots/8 - 1) / (slots / 8); steps != want {
		t.Errorf("grew back in %d steps, want %d", steps, want)
	}
}
