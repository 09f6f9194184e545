package rpc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// benchSubjects is how many subjects the Decide benchmark decides for.
const benchSubjects = 2000

func benchWho(i int) string { return fmt.Sprintf("+4917077%05d", i) }

// benchService returns a Service on a ledger in a temporary directory
// (Badger, synced commits) whose subjects opted in to WhatsApp marketing,
// with a clock that runs from a Wednesday noon in Berlin (outside quiet
// hours).
func benchService(b *testing.B, opts ledger.Options) *Service {
	b.Helper()
	start := time.Now()
	noon := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return noon.Add(time.Since(start)) }
	opts.Now = now
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := ledger.Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	ctx := context.Background()
	s, err := New(ctx, Options{Ledger: l, Now: now, Logger: opts.Logger})
	if err != nil {
		b.Fatal(err)
	}
	h := &consentHandler{s: s}
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := w; i < benchSubjects; i += 32 {
				_, err := h.RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{
					Subject: &pb.Subject{Id: &pb.Subject_Phone{Phone: benchWho(i)}}, Channel: pb.Channel_CHANNEL_WHATSAPP,
					Purposes: []string{"marketing"}, Method: "checkout", NoticeVersion: "2026-01", DoubleOptInConfirmed: true,
				}))
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return s
}

func benchRequest(i int) *pb.DecideRequest {
	return &pb.DecideRequest{
		Subject: &pb.Subject{Id: &pb.Subject_Phone{Phone: benchWho(i)}}, Channel: pb.Channel_CHANNEL_WHATSAPP,
		Purpose: "marketing", Category: "marketing", Provider: &pb.Provider{Name: "eu-bsp", Region: "EU"},
		SubjectTimezone: "Europe/Berlin",
	}
}

// benchDecide measures Decide in process (no network): validation, the
// subject's state, the policy's evaluation and the group-committed append,
// by 16 goroutines per core over benchSubjects opted-in subjects.
func benchDecide(b *testing.B, opts ledger.Options) {
	s := benchService(b, opts)
	ctx := context.Background()
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	b.RunParallel(func(p *testing.PB) {
		rnd := rand.New(rand.NewPCG(rand.Uint64(), 1))
		for p.Next() {
			r, err := s.decide(ctx, benchRequest(rnd.IntN(benchSubjects)), "")
			if err != nil {
				b.Error(err)
				return
			}
			if !r.Allow {
				b.Errorf("decision denied: %q", r.Reasons)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "decisions/s")
	// The process's CPU time per decision (handlers, sequencer, committer,
	// Badger, GC) depends less on other work on the machine than the rate.
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/decision")
}

// cpuTime returns the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDecide measures Decide in process on a ledger on disk, with the
// ledger's state cache (the default) and without.
func BenchmarkDecide(b *testing.B) {
	b.Run("cache=off", func(b *testing.B) { benchDecide(b, ledger.Options{StateCache: -1}) })
	b.Run("cache=on", func(b *testing.B) { benchDecide(b, ledger.Options{}) })
}

// BenchmarkEvaluate measures what Decide does before it appends, with the
// ledger's state cache and without: the subject's committed state, the
// policy input and the policy's evaluation.
func BenchmarkEvaluate(b *testing.B) {
	for _, tc := range []struct {
		name  string
		cache int
	}{{"cache=off", -1}, {"cache=on", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			s := benchService(b, ledger.Options{StateCache: tc.cache})
			ctx := context.Background()
			decisions := make([]*decision, benchSubjects)
			for i := range decisions {
				id, req, err := checkDecide(benchRequest(i), "")
				if err != nil {
					b.Fatal(err)
				}
				decisions[i] = &decision{m: benchRequest(i), id: id, req: req, actor: "bench"}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			for i := range b.N {
				c := decisions[i%benchSubjects]
				if err := s.evaluate(ctx, c); err != nil {
					b.Fatal(err)
				}
				if !c.dec.allow {
					b.Fatalf("decision denied: %q", c.dec.reasons)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
