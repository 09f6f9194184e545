package client

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// BenchOptions configures Bench. The zero value of each field means its default.
type BenchOptions struct {
	Concurrency int           // concurrent clients; 0 means 64
	Duration    time.Duration // 0 means 10 s
	Subjects    int           // subjects given consent first; 0 means 10,000
	Progress    io.Writer     // a line per second, if not nil
}

// BenchResult is what Bench measured.
type BenchResult struct {
	Decisions int64
	Errors    int64
	Elapsed   time.Duration
	P50, P99  time.Duration
}

// String is the line `consentledger bench` ends with.
func (r BenchResult) String() string {
	rate := float64(r.Decisions) / r.Elapsed.Seconds()
	return fmt.Sprintf("%.0f decisions/s p50=%v p99=%v errors=%d", rate, r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Errors)
}

func benchSubject(i int) *pb.Subject {
	return &pb.Subject{Id: &pb.Subject_Phone{Phone: fmt.Sprintf("+4915%09d", i)}}
}

// Bench gives Subjects subjects a double-opt-in WhatsApp marketing consent,
// then has Concurrency clients call Decide for Duration, each decision
// evaluated and durably recorded by the server.
func (c *Client) Bench(ctx context.Context, o BenchOptions) (BenchResult, error) {
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Subjects <= 0 {
		o.Subjects = 10000
	}
	say := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, format+"\n", args...)
		}
	}
	say("giving %d subjects consent…", o.Subjects)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < o.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < o.Subjects; i = int(next.Add(1)) - 1 {
				_, err := c.Consent.RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{
					Subject: benchSubject(i), Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing"},
					Method: "checkout", NoticeVersion: "bench", DoubleOptInConfirmed: true,
					IdempotencyKey: fmt.Sprintf("bench-optin-%d", i),
				}))
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return BenchResult{}, fmt.Errorf("record bench opt-ins: %w", err)
	}
	say("deciding with %d clients for %v…", o.Concurrency, o.Duration)
	var decisions, errs atomic.Int64
	lat := make([][]time.Duration, o.Concurrency)
	stop := time.Now().Add(o.Duration)
	start := time.Now()
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var prev int64
		for {
			select {
			case <-done:
				return
			case <-t.C:
				n := decisions.Load()
				say("%6.0fs  %d decisions (%d/s)  errors=%d", time.Since(start).Seconds(), n, n-prev, errs.Load())
				prev = n
			}
		}
	}()
	for w := 0; w < o.Concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			req := &pb.DecideRequest{
				Channel: pb.Channel_CHANNEL_WHATSAPP, Purpose: "marketing", Category: "marketing",
				Provider: &pb.Provider{Name: "bench-bsp", Region: "EU"}, SubjectTimezone: middayZone(time.Now()),
			}
			for n := 0; time.Now().Before(stop); n++ {
				req.Subject = benchSubject((w*7919 + n) % o.Subjects)
				t0 := time.Now()
				_, err := c.Send.Decide(ctx, connect.NewRequest(req))
				if err != nil {
					errs.Add(1)
					if ctx.Err() != nil {
						return
					}
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
				decisions.Add(1)
			}
		}(w)
	}
	wg.Wait()
	close(done)
	res := BenchResult{Decisions: decisions.Load(), Errors: errs.Load(), Elapsed: time.Since(start)}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	if len(all) > 0 {
		res.P50, res.P99 = all[len(all)/2], all[len(all)*99/100]
	}
	return res, nil
}

// middayZone returns an Etc/GMT zone where it is about midday at t, so the
// benchmark's marketing sends fall outside quiet hours and are allowed.
func middayZone(t time.Time) string {
	off := 12 - t.UTC().Hour() // hours east of UTC
	if off > 12 {
		off -= 24
	}
	if off < -12 {
		off += 24
	}
	if off == 0 {
		return "Etc/GMT"
	}
	return fmt.Sprintf("Etc/GMT%+d", -off) // POSIX sign: Etc/GMT-2 is two hours east
}
