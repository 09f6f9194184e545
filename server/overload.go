package server

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/consentledger/consentledger/rpc"
)

// Defaults of the overload limits in Config.
const (
	// DefaultMaxInFlightPerCPU sizes the bound on unary calls in flight:
	// this many per CPU the process may use. Each call is a policy
	// evaluation, an append waiting for its group commit, or a read; more
	// in flight than this only lengthens queues.
	DefaultMaxInFlightPerCPU = 32
	// MinInFlightPerCPU is the bound under sustained overload: while calls
	// are being refused for want of a slot, the bound shrinks to this many
	// per CPU (a call's time in flight, and so every admitted call's
	// latency, shrinks with it — docs/operations.md, Overload), and grows
	// back once refusals stop.
	MinInFlightPerCPU = 4
	// DefaultOverloadWait is how long a call waits for a slot before it is
	// refused with resource_exhausted.
	DefaultOverloadWait = 20 * time.Millisecond
	// minRetryAfter is the shortest retry hint of a call refused for want
	// of a slot: long enough that refused clients do not keep the server
	// busy refusing them.
	minRetryAfter = time.Second
	// maxRetryAfter caps the retry hint.
	maxRetryAfter = 10 * time.Second
)

// overload bounds the unary calls in flight and each principal's rate.
// Past the bound a call waits a short, bounded time for a slot — waiters
// are admitted first come, first served — and is then refused with
// resource_exhausted and a retry hint (a google.rpc.RetryInfo detail),
// never queued without bound; a principal over its rate is refused at once
// with the time its bucket refills.
//
// Calls from the network are admitted by the HTTP guard, from the headers
// alone, before their body is read or decoded: a refusal then costs no
// parsing, and an admitted call carries no time spent in the server's
// buffers. Calls made inside the process (the console's) do not pass the
// guard's bound and are admitted by the interceptor instead. Health and the
// streams (which have limits of their own) are not counted.
type overload struct {
	slots chan struct{}
	wait  time.Duration
	rates map[string]*rate.Limiter // by principal name; nil: unlimited
	unary map[string]bool          // the paths the guard bounds: the unary procedures
	m     *metrics

	waiting atomic.Int64  // calls waiting for a slot
	jobs    chan job      // admitted calls, to the workers
	quit    chan struct{} // closed: the workers stop

	// The adaptive bound: the controller holds ballast slots (taken like a
	// call's, so the effective bound is the slots minus the ballast) while
	// calls are being refused, and gives them back when refusals stop.
	minSlots     int
	ballast      atomic.Int64
	refusals     atomic.Uint64 // calls refused for want of a slot
	seenRefusals uint64        // the controller's last reading of refusals
	quietSince   time.Time     // since when no call was refused (controller)

	mu      sync.Mutex
	latency time.Duration // moving average of an admitted call's time in flight
	tail    time.Time     // the latest retry time handed out
}

// admittedKey marks the context of a call the guard has admitted.
type admittedKey struct{}

// newOverload returns the bound (maxInFlight 0: DefaultMaxInFlightPerCPU
// per CPU; wait 0: DefaultOverloadWait) with its workers and the
// controller that adapts it.
func newOverload(maxInFlight int, wait time.Duration, principals []PrincipalConfig, m *metrics) *overload {
	o := newOverloadFixed(maxInFlight, wait, principals, m)
	go o.control()
	return o
}

// newOverloadFixed is newOverload without the controller that adapts the
// bound (tests step it with adapt).
func newOverloadFixed(maxInFlight int, wait time.Duration, principals []PrincipalConfig, m *metrics) *overload {
	if maxInFlight <= 0 {
		maxInFlight = DefaultMaxInFlightPerCPU * runtime.GOMAXPROCS(0)
	}
	if wait <= 0 {
		wait = DefaultOverloadWait
	}
	o := &overload{slots: make(chan struct{}, maxInFlight), wait: wait, rates: map[string]*rate.Limiter{}, m: m,
		jobs: make(chan job), quit: make(chan struct{}),
		minSlots: min(maxInFlight, max(2, MinInFlightPerCPU*runtime.GOMAXPROCS(0))), quietSince: time.Now()}
	for range maxInFlight {
		go o.work()
	}
	for _, p := range principals {
		if p.RatePerSecond > 0 {
			burst := p.Burst
			if burst <= 0 {
				burst = max(1, int(p.RatePerSecond))
			}
			o.rates[p.Name] = rate.NewLimiter(rate.Limit(p.RatePerSecond), burst)
		}
	}
	return o
}

// unaryProcedures returns the paths of the unary methods of the named
// services (as registered by their generated code).
func unaryProcedures(services []string) map[string]bool {
	paths := map[string]bool{}
	for _, name := range services {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			continue
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			continue
		}
		for i := 0; i < sd.Methods().Len(); i++ {
			if md := sd.Methods().Get(i); !md.IsStreamingClient() && !md.IsStreamingServer() {
				paths["/"+name+"/"+string(md.Name())] = true
			}
		}
	}
	return paths
}

// bounds reports whether calls to path are bounded.
func (o *overload) bounds(path string) bool { return o.unary[path] }

// admit takes a slot for one call of principal: at once if one is free,
// else after waiting up to o.wait behind the calls that came first. The
// error is resource_exhausted with a retry hint (or canceled if ctx ends).
// release gives the slot back.
func (o *overload) admit(ctx context.Context, principal string) (release func(), err *connect.Error) {
	if lim := o.rates[principal]; lim != nil {
		r := lim.Reserve()
		if d := r.Delay(); d > 0 {
			r.Cancel()
			o.m.refused("rate")
			return nil, retryLater(fmt.Errorf("principal %q is over its rate limit of %g requests/s; retry in %v or ask the operator for a higher rate", principal, float64(lim.Limit()), d.Round(time.Millisecond)), d)
		}
	}
	select {
	case o.slots <- struct{}{}:
		return o.admitted(), nil
	default:
	}
	// A call that could not get a slot within the wait even if every call
	// ahead of it finished on time is refused at once, without waiting.
	if !o.queue() {
		return nil, o.refuseInFlight()
	}
	defer o.waiting.Add(-1)
	// A full channel queues its blocked senders in order, and a freed slot
	// goes to the first of them: first come, first served.
	t := time.NewTimer(o.wait)
	defer t.Stop()
	select {
	case o.slots <- struct{}{}:
		return o.admitted(), nil
	case <-t.C:
		return nil, o.refuseInFlight()
	case <-ctx.Done():
		return nil, connect.NewError(connect.CodeCanceled, fmt.Errorf("the client went away while waiting for a slot: %w", ctx.Err()))
	}
}

// A job is one admitted call for a worker.
type job struct {
	h    http.Handler
	w    http.ResponseWriter
	r    *http.Request
	done chan any // the handler's panic, or nil
}

// serve runs h for an admitted call on one of the workers, one per slot,
// and waits for it. A worker keeps the stack it has grown from call to call:
// a policy evaluation recurses deeply, and growing a new goroutine's stack
// by copying it, call after call, cost about a quarter of the server's CPU
// (profile of TestOverload). A panic in h is raised again here, in the
// request's own goroutine, where net/http expects it.
func (o *overload) serve(h http.Handler, w http.ResponseWriter, r *http.Request) {
	j := job{h: h, w: w, r: r, done: make(chan any, 1)}
	select {
	case o.jobs <- j:
	case <-o.quit: // stopped: serve it here
		h.ServeHTTP(w, r)
		return
	}
	if p := <-j.done; p != nil {
		panic(p)
	}
}

// work runs jobs until the overload is stopped.
func (o *overload) work() {
	for {
		select {
		case j := <-o.jobs:
			if !j.run() {
				go o.work() // the handler called runtime.Goexit: replace this worker
				return
			}
		case <-o.quit:
			return
		}
	}
}

// run runs the job and reports whether it returned (rather than exited
// the goroutine).
func (j job) run() (returned bool) {
	defer func() {
		p := recover()
		j.done <- p
		returned = returned || p != nil
	}()
	j.h.ServeHTTP(j.w, j.r)
	return true
}

// stop ends the workers; calls admitted after it run in their own goroutine.
func (o *overload) stop() { close(o.quit) }

// refuseInFlight counts and returns the refusal of a call for want of a slot.
func (o *overload) refuseInFlight() *connect.Error {
	o.m.refused("in_flight")
	o.refusals.Add(1)
	after := o.retryAfter(time.Now())
	return retryLater(fmt.Errorf("the server is overloaded: %d calls are in flight; retry in %v", o.limit(), after.Round(time.Millisecond)), after)
}

// maxQueuePerSlot caps the calls waiting for a slot, per slot, however
// fast calls complete: each waiter holds a request's headers.
const maxQueuePerSlot = 16

// queue counts a call in the queue for a slot, unless the queue is as long
// as the slots that free up within the wait (the wait over an admitted
// call's time in flight, times the slots; the slots themselves before the
// first call completed).
func (o *overload) queue() bool {
	o.mu.Lock()
	lat := o.latency
	o.mu.Unlock()
	slots := int64(o.limit())
	limit := slots
	if lat > 0 {
		limit = min(max(1, int64(o.wait)*slots/int64(lat)), maxQueuePerSlot*slots)
	}
	if o.waiting.Add(1) > limit {
		o.waiting.Add(-1)
		return false
	}
	return true
}

// admitted returns the release of a slot taken now.
func (o *overload) admitted() (release func()) {
	start := time.Now()
	return func() { o.release(start) }
}

// release gives back the slot of a call admitted at start.
func (o *overload) release(start time.Time) {
	d := time.Since(start)
	<-o.slots
	o.mu.Lock()
	o.latency += (d - o.latency) / 16
	o.mu.Unlock()
}

// retryAfter paces the refused calls' retries: it tells each to come back
// one service interval after the one refused before it (an admitted call's
// time in flight over the slots: the interval at which slots free up), but
// not sooner than minRetryAfter, so refused clients return at about the
// rate the server can take them instead of all at once.
func (o *overload) retryAfter(now time.Time) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	if earliest := now.Add(minRetryAfter); o.tail.Before(earliest) {
		o.tail = earliest
	}
	o.tail = o.tail.Add(o.latency / time.Duration(o.limit()))
	return min(o.tail.Sub(now), maxRetryAfter)
}

// refuse answers an HTTP request that admit refused, in the shape its
// protocol expects — Connect, gRPC or gRPC-Web, with the RetryInfo detail
// and a Retry-After header — or, for anything else, 429 Too Many Requests;
// it reads nothing of the body.
func refuse(w http.ResponseWriter, r *http.Request, errw *connect.ErrorWriter, err *connect.Error) {
	if errw.IsSupported(r) {
		_ = errw.Write(w, r, err)
		return
	}
	for k, v := range err.Meta() {
		w.Header()[k] = v
	}
	http.Error(w, err.Message(), http.StatusTooManyRequests)
}

// WrapUnary implements connect.Interceptor: it admits the calls the guard
// has not (those made inside the process).
func (o *overload) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if ctx.Value(admittedKey{}) != nil {
			return next(ctx, req)
		}
		release, err := o.admit(ctx, rpc.PrincipalFrom(ctx).Name)
		if err != nil {
			return nil, err
		}
		defer release()
		return next(ctx, req)
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (o *overload) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (o *overload) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// inFlight returns the calls in flight now.
func (o *overload) inFlight() int { return max(0, len(o.slots)-int(o.ballast.Load())) }

// limit is the bound in force: the slots not held as ballast.
func (o *overload) limit() int { return cap(o.slots) - int(o.ballast.Load()) }

// Adapting the bound: every controlTick, if calls were refused for want
// of a slot since the last tick, the ballast grows to hold all slots but
// minSlots (taken as slots free up, first come, first served with the
// waiting calls); once none was refused for quietPeriod, it shrinks by an
// eighth of the slots per tick.
const (
	controlTick = 100 * time.Millisecond
	quietPeriod = 2 * time.Second
)

// control adapts the bound until the overload is stopped.
func (o *overload) control() {
	t := time.NewTicker(controlTick)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-o.quit:
			return
		}
		o.adapt(time.Now())
	}
}

// adapt is one step of control.
func (o *overload) adapt(now time.Time) {
	r := o.refusals.Load()
	refused := r != o.seenRefusals
	o.seenRefusals = r
	if refused {
		o.quietSince = now
	}
	target := int64(0)
	switch {
	case refused:
		target = int64(cap(o.slots) - o.minSlots)
	case now.Sub(o.quietSince) < quietPeriod:
		target = o.ballast.Load()
	default:
		target = max(0, o.ballast.Load()-int64(max(1, cap(o.slots)/8)))
	}
	for o.ballast.Load() > target {
		<-o.slots
		o.ballast.Add(-1)
	}
	// Take slots as they free up, within this tick.
	deadline := time.NewTimer(controlTick / 2)
	defer deadline.Stop()
	for o.ballast.Load() < target {
		select {
		case o.slots <- struct{}{}:
			o.ballast.Add(1)
		case <-deadline.C:
			return
		case <-o.quit:
			return
		}
	}
}

// retryLater is resource_exhausted with a RetryInfo detail that tells the
// client when to try again, and the same in a Retry-After header (whole
// seconds, rounded up) for HTTP clients.
func retryLater(err error, after time.Duration) *connect.Error {
	cerr := connect.NewError(connect.CodeResourceExhausted, err)
	if d, derr := connect.NewErrorDetail(&errdetails.RetryInfo{RetryDelay: durationpb.New(after)}); derr == nil {
		cerr.AddDetail(d)
	}
	cerr.Meta().Set("Retry-After", strconv.Itoa(int((after+time.Second-1)/time.Second)))
	return cerr
}
