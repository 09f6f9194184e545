package server

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
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
	// DefaultOverloadWait is how long a call waits for a slot before it is
	// refused with resource_exhausted.
	DefaultOverloadWait = 20 * time.Millisecond
	// overloadRetryAfter is the retry hint of a call refused for want of a
	// slot: long enough that refused clients do not keep the server busy
	// refusing them (each refusal costs a request's parsing).
	overloadRetryAfter = time.Second
)

// overload bounds the unary calls in flight and each principal's rate.
// Past the bound a call waits a short, bounded time for a slot and is then
// refused with resource_exhausted and a retry hint (a google.rpc.RetryInfo
// detail), never queued without bound; a principal over its rate is refused
// at once with the time its bucket refills. Health and the streams (which
// have limits of their own) are not counted.
type overload struct {
	slots chan struct{}
	wait  time.Duration
	rates map[string]*rate.Limiter // by principal name; nil: unlimited
	m     *metrics
}

func newOverload(maxInFlight int, wait time.Duration, principals []PrincipalConfig, m *metrics) *overload {
	if maxInFlight <= 0 {
		maxInFlight = DefaultMaxInFlightPerCPU * runtime.GOMAXPROCS(0)
	}
	if wait <= 0 {
		wait = DefaultOverloadWait
	}
	o := &overload{slots: make(chan struct{}, maxInFlight), wait: wait, rates: map[string]*rate.Limiter{}, m: m}
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

// WrapUnary implements connect.Interceptor.
func (o *overload) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if strings.HasPrefix(req.Spec().Procedure, healthPrefix) {
			return next(ctx, req)
		}
		if lim := o.rates[rpc.PrincipalFrom(ctx).Name]; lim != nil {
			r := lim.Reserve()
			if d := r.Delay(); d > 0 {
				r.Cancel()
				o.m.refused("rate")
				return nil, retryLater(fmt.Errorf("principal %q is over its rate limit of %g requests/s; retry in %v or ask the operator for a higher rate", rpc.PrincipalFrom(ctx).Name, float64(lim.Limit()), d.Round(time.Millisecond)), d)
			}
		}
		select {
		case o.slots <- struct{}{}:
		default:
			t := time.NewTimer(o.wait)
			select {
			case o.slots <- struct{}{}:
				t.Stop()
			case <-t.C:
				o.m.refused("in_flight")
				return nil, retryLater(fmt.Errorf("the server is overloaded: %d calls are in flight; retry in %v", cap(o.slots), overloadRetryAfter), overloadRetryAfter)
			case <-ctx.Done():
				t.Stop()
				return nil, connect.NewError(connect.CodeCanceled, ctx.Err())
			}
		}
		defer func() { <-o.slots }()
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
func (o *overload) inFlight() int { return len(o.slots) }

// retryLater is resource_exhausted with a RetryInfo detail that tells the
// client when to try again.
func retryLater(err error, after time.Duration) error {
	cerr := connect.NewError(connect.CodeResourceExhausted, err)
	if d, derr := connect.NewErrorDetail(&errdetails.RetryInfo{RetryDelay: durationpb.New(after)}); derr == nil {
		cerr.AddDetail(d)
	}
	return cerr
}
