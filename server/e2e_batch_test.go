package server_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/client"
	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/rpc"
	"github.com/consentledger/consentledger/server"
	"github.com/consentledger/consentledger/verifier"
)

// batchWho is the phone number of campaign subject i.
func batchWho(i int) string { return fmt.Sprintf("+49170555%04d", i) }

// A DecideBatch of MaxDecideBatch requests, several per subject (so some
// decisions go stale inside the batch and are evaluated again), answers in
// request order: result i is the decision recorded for request i, allowed
// exactly when its subject opted in; 1001 requests are refused; a retry of
// the batch with its idempotency keys appends nothing and answers the same
// decisions; and the audit of the export passes.
func TestDecideBatchCampaign(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	const subjects = 100
	for i := range subjects {
		if i%3 != 0 {
			optIn(t, s, batchWho(i), pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
		}
	}
	reqs := make([]*pb.DecideRequest, rpc.MaxDecideBatch)
	for i := range reqs {
		reqs[i] = waMarketing(batchWho((i * 7) % subjects))
		reqs[i].MessageRef = fmt.Sprintf("msg-%04d", i)
		reqs[i].IdempotencyKey = fmt.Sprintf("campaign-1/%04d", i)
	}
	size := logSize(t, s)
	tooMany := append(append([]*pb.DecideRequest(nil), reqs...), waMarketing(anna))
	if _, err := s.send().DecideBatch(ctx, connect.NewRequest(&pb.DecideBatchRequest{Requests: tooMany})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("a batch of %d: %v, want invalid_argument", len(tooMany), err)
	}
	if logSize(t, s) != size {
		t.Fatal("a refused batch appended entries")
	}

	start := time.Now()
	r, err := s.send().DecideBatch(ctx, connect.NewRequest(&pb.DecideBatchRequest{Requests: reqs}))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("DecideBatch of %d: %v", len(reqs), time.Since(start))
	if len(r.Msg.Results) != len(reqs) {
		t.Fatalf("%d results for %d requests", len(r.Msg.Results), len(reqs))
	}
	if got := logSize(t, s); got != size+uint64(len(reqs)) {
		t.Fatalf("log grew by %d, want %d", got-size, len(reqs))
	}
	seen := map[uint64]bool{}
	for i, res := range r.Msg.Results {
		if seen[res.Decision.Index] {
			t.Fatalf("result %d: decision %d answered twice", i, res.Decision.Index)
		}
		seen[res.Decision.Index] = true
		e := entry(t, s, res.Decision.Index)
		d := e.GetSendDecision()
		if d == nil || d.Request.MessageRef != reqs[i].MessageRef || e.IdempotencyKey != reqs[i].IdempotencyKey {
			t.Fatalf("result %d names entry %d, which is %v, not request %d", i, res.Decision.Index, e, i)
		}
		want := ((i*7)%subjects)%3 != 0
		if res.Allow != want || d.Allow != want {
			t.Errorf("result %d: allow %v (recorded %v), want %v", i, res.Allow, d.Allow, want)
		}
	}

	retry, err := s.send().DecideBatch(ctx, connect.NewRequest(&pb.DecideBatchRequest{Requests: reqs}))
	if err != nil {
		t.Fatal(err)
	}
	if got := logSize(t, s); got != size+uint64(len(reqs)) {
		t.Fatalf("the retried batch appended %d entries", got-size-uint64(len(reqs)))
	}
	for i, res := range retry.Msg.Results {
		if res.Decision.Index != r.Msg.Results[i].Decision.Index || res.Allow != r.Msg.Results[i].Allow {
			t.Fatalf("retried result %d: %v, want the first answer %v", i, res, r.Msg.Results[i])
		}
	}
	audit(t, s, uint64(len(reqs)))
}

// An opt-out acknowledged before a DecideBatch starts is honoured by every
// request in it, with batches and opt-outs racing; the audit of the export
// passes afterwards.
func TestDecideBatchOptOutLinearizable(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	const subjects = 8
	for i := range subjects {
		optIn(t, s, batchWho(i), pb.Channel_CHANNEL_SMS, true, "marketing")
	}
	var optedOut [subjects]atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var violations, decisions atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var before [subjects]bool
				for i := range subjects {
					before[i] = optedOut[i].Load()
				}
				reqs := make([]*pb.DecideRequest, 40)
				for k := range reqs {
					reqs[k] = &pb.DecideRequest{Subject: phone(batchWho((w + n + k) % subjects)), Channel: pb.Channel_CHANNEL_SMS, Purpose: "marketing", SubjectTimezone: "Europe/Berlin"}
				}
				r, err := s.send().DecideBatch(ctx, connect.NewRequest(&pb.DecideBatchRequest{Requests: reqs}))
				if err != nil {
					t.Error(err)
					return
				}
				for k, res := range r.Msg.Results {
					if before[(w+n+k)%subjects] && res.Allow {
						violations.Add(1)
					}
				}
				decisions.Add(int64(len(reqs)))
			}
		})
	}
	for i := range subjects {
		time.Sleep(30 * time.Millisecond)
		if _, err := s.consent().RecordOptOut(ctx, connect.NewRequest(&pb.RecordOptOutRequest{Subject: phone(batchWho(i)), Channel: pb.Channel_CHANNEL_SMS})); err != nil {
			t.Fatal(err)
		}
		optedOut[i].Store(true)
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	if v := violations.Load(); v > 0 {
		t.Fatalf("%d decisions of batches started after an opt-out returned still allowed the send", v)
	}
	audit(t, s, uint64(decisions.Load()))
}

// entry reads and decodes entry i.
func entry(t *testing.T, s *testServer, i uint64) *pb.Entry {
	t.Helper()
	r, err := s.logs().GetEntries(context.Background(), connect.NewRequest(&pb.GetEntriesRequest{Start: i, Count: 1}))
	if err != nil || len(r.Msg.Entries) != 1 {
		t.Fatalf("GetEntries(%d): %v", i, err)
	}
	e, err := ledger.DecodeEntry(r.Msg.Entries[0].Entry)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// audit exports the log and checks that the offline audit passes and sees
// decisions send decisions.
func audit(t *testing.T, s *testServer, decisions uint64) {
	t.Helper()
	ctx := context.Background()
	c, err := client.New(s.url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var exp bytes.Buffer
	if _, err := c.Export(ctx, &exp, nil); err != nil {
		t.Fatal(err)
	}
	vkey, err := ledger.ReadVerifierKey(s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verifier.Audit(ctx, &exp, vkey, nil)
	if err != nil {
		t.Fatalf("audit of the export: %v", err)
	}
	if got := rep.Allowed + rep.Denied; got != decisions {
		t.Errorf("audit saw %d decisions, want %d", got, decisions)
	}
}

// Batches race breaches and policy publications: decisions that go stale on
// the breach epoch or the active policy are evaluated again, and every
// recorded input equals the one the audit derives from the log.
func TestDecideBatchRacesStateChanges(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	const subjects, rounds = 20, 5
	for i := range subjects {
		optIn(t, s, batchWho(i), pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	var decisions atomic.Int64
	for w := range 3 {
		wg.Go(func() {
			for n := range 3 * rounds {
				reqs := make([]*pb.DecideRequest, 30)
				for k := range reqs {
					reqs[k] = waMarketing(batchWho((w*7 + n + k) % subjects))
				}
				r, err := s.send().DecideBatch(ctx, connect.NewRequest(&pb.DecideBatchRequest{Requests: reqs}))
				if err != nil {
					errs <- fmt.Errorf("DecideBatch: %w", err)
					return
				}
				decisions.Add(int64(len(r.Msg.Results)))
			}
		})
	}
	wg.Go(func() {
		for range rounds {
			rep, err := s.breach().ReportBreach(ctx, connect.NewRequest(&pb.ReportBreachRequest{
				Description: "gateway credentials leaked", Channels: []pb.Channel{pb.Channel_CHANNEL_WHATSAPP}, Risk: "high",
			}))
			if err != nil {
				errs <- fmt.Errorf("ReportBreach: %w", err)
				return
			}
			if _, err := s.breach().CloseBreach(ctx, connect.NewRequest(&pb.CloseBreachRequest{BreachId: rep.Msg.BreachId})); err != nil {
				errs <- fmt.Errorf("CloseBreach: %w", err)
				return
			}
		}
	})
	wg.Go(func() {
		for i := range rounds {
			files := pbFiles(policies.Default())
			for _, f := range files {
				if strings.HasSuffix(f.Name, ".rego") && !strings.HasSuffix(f.Name, "_test.rego") {
					f.Content += fmt.Sprintf("\n# batch publication %d\n", i)
					break
				}
			}
			if _, err := s.policy().PublishPolicy(ctx, connect.NewRequest(&pb.PublishPolicyRequest{Files: files})); err != nil {
				errs <- fmt.Errorf("PublishPolicy: %w", err)
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	audit(t, s, uint64(decisions.Load()))
}
