package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// BenchOptions configures Bench. The zero value of each field means its default.
type BenchOptions struct {
	Concurrency int           // concurrent clients; 0 means 64
	Duration    time.Duration // 0 means 10 s
	Subjects    int           // subjects given consent first; 0 means 10,000
	Progress    io.Writer     // a line per second, if not nil
	// Batch, when above 1, sends Batch decisions per DecideBatch call
	// instead of one Decide per call; rates still count decisions.
	Batch int
	// OPA, if set, is the URL of an OPA server (`opa run --server`) loaded
	// with the same policies: the clients then ask it for
	// data.consentledger.send.decision with an input this server recorded
	// for a bench decision, with the same concurrency and timing — the
	// side-by-side comparison of the policy engine alone.
	OPA string
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
	call, err := c.benchCall(ctx, o)
	if err != nil {
		return BenchResult{}, err
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
			for n := 0; time.Now().Before(stop); n++ {
				t0 := time.Now()
				k, err := call(w, n)
				if err != nil {
					errs.Add(1)
					if ctx.Err() != nil {
						return
					}
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
				decisions.Add(int64(k))
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

// benchCall returns the function a bench client calls in a loop: one
// Decide, one DecideBatch of o.Batch, or one OPA query. It returns how many
// decisions the call made.
func (c *Client) benchCall(ctx context.Context, o BenchOptions) (func(w, n int) (int, error), error) {
	decide := func(w, n int) *pb.DecideRequest {
		return &pb.DecideRequest{
			Subject: benchSubject((w*7919 + n) % o.Subjects),
			Channel: pb.Channel_CHANNEL_WHATSAPP, Purpose: "marketing", Category: "marketing",
			Provider: &pb.Provider{Name: "bench-bsp", Region: "EU"}, SubjectTimezone: middayZone(time.Now()),
		}
	}
	switch {
	case o.OPA != "":
		return c.opaCall(ctx, o.OPA, decide(0, 0))
	case o.Batch > 1:
		return func(w, n int) (int, error) {
			reqs := make([]*pb.DecideRequest, o.Batch)
			for i := range reqs {
				reqs[i] = decide(w, n*o.Batch+i)
			}
			r, err := c.Send.DecideBatch(ctx, connect.NewRequest(&pb.DecideBatchRequest{Requests: reqs}))
			if err != nil {
				return 0, err
			}
			return len(r.Msg.Results), nil
		}, nil
	}
	return func(w, n int) (int, error) {
		_, err := c.Send.Decide(ctx, connect.NewRequest(decide(w, n)))
		return 1, err
	}, nil
}

// opaCall records one decision for req on this server, takes the policy
// input the server recorded with it, and returns a call that asks the OPA
// server at opaURL to evaluate the same decision on that input.
func (c *Client) opaCall(ctx context.Context, opaURL string, req *pb.DecideRequest) (func(w, n int) (int, error), error) {
	r, err := c.Send.Decide(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, fmt.Errorf("record the decision whose input OPA evaluates: %w", err)
	}
	idx := r.Msg.Decision.Index
	er, err := c.Log.GetEntries(ctx, connect.NewRequest(&pb.GetEntriesRequest{Start: idx, Count: 1}))
	if err != nil {
		return nil, fmt.Errorf("read decision %d: %w", idx, err)
	}
	if len(er.Msg.Entries) != 1 {
		return nil, fmt.Errorf("the server returned %d entries for decision %d", len(er.Msg.Entries), idx)
	}
	var e pb.Entry
	if err := proto.Unmarshal(er.Msg.Entries[0].Entry, &e); err != nil {
		return nil, fmt.Errorf("decode decision %d: %w", idx, err)
	}
	input := e.GetSendDecision().GetInput()
	if len(input) == 0 {
		return nil, fmt.Errorf("decision %d recorded no policy input", idx)
	}
	body := append(append([]byte(`{"input":`), input...), '}')
	u := strings.TrimSuffix(opaURL, "/") + "/v1/data/consentledger/send/decision"
	want := r.Msg.Allow
	return func(w, n int) (int, error) {
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		hr.Header.Set("Content-Type", "application/json")
		resp, err := c.HTTP.Do(hr)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var out struct {
			Result *struct {
				Allow bool `json:"allow"`
			} `json:"result"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return 0, fmt.Errorf("OPA answered %s: %w", resp.Status, err)
		}
		if resp.StatusCode != http.StatusOK || out.Result == nil || out.Result.Allow != want {
			return 0, fmt.Errorf("OPA answered %s with result %+v, want allow=%v", resp.Status, out.Result, want)
		}
		return 1, nil
	}, nil
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
