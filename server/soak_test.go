package server_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/client"
	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/server"
	"github.com/consentledger/consentledger/verifier"
)

var soak = flag.Duration("soak", 0, "run the soak test for this long (e.g. 3m); 0 skips it")

// soakRSSBoundMiB bounds the soak test process's resident memory: the
// storage engine's configured caches (about 600 MiB) and memtables, the Go
// heap of the server and its 16 clients, and headroom.
const soakRSSBoundMiB = 1536

// TestSoak runs the real server under a mixed load — opt-ins, opt-outs,
// decisions, inbound keywords, evidence and exports — for -soak, sampling
// the process's resident memory and goroutines. It fails when memory grows
// past the bound of the storage engine's configured caches, when
// goroutines keep growing (or are not back near the start once the load
// stops), when checkpoints stop coming, or when the final export does not
// audit clean.
// `.ci/run` runs it for 3 minutes: go test -run TestSoak -soak 3m ./server/
func TestSoak(t *testing.T) {
	if *soak == 0 {
		t.Skip("requires -soak DURATION (.ci/run runs it with -soak 3m)")
	}
	s := start(t, server.Config{})
	c, err := client.New(s.url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// running ends the load; the calls themselves carry no deadline of it,
	// so a call in flight when the soak ends completes (a deadline shared
	// with the calls would reach the server as a timeout header and fail a
	// call a moment before the client saw its own context end).
	running, cancel := context.WithTimeout(context.Background(), *soak)
	defer cancel()
	ctx := context.Background()
	baseGoroutines := runtime.NumGoroutine()

	var ops, failures atomic.Int64
	var lastDecision atomic.Uint64
	fail := func(what string, err error) {
		if failures.Add(1) <= 5 {
			t.Errorf("%s: %v", what, err)
		}
	}
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for running.Err() == nil {
				who := &pb.Subject{Id: &pb.Subject_Phone{Phone: fmt.Sprintf("+49 170 %07d", rng.IntN(5000))}}
				switch n := rng.IntN(100); {
				case n < 20:
					_, err := c.Consent.RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{
						Subject: who, Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing"},
						Method: "checkout", NoticeVersion: "2026-01", DoubleOptInConfirmed: true,
					}))
					if err != nil {
						fail("RecordOptIn", err)
					}
				case n < 25:
					_, err := c.Consent.RecordOptOut(ctx, connect.NewRequest(&pb.RecordOptOutRequest{
						Subject: who, Channel: pb.Channel_CHANNEL_WHATSAPP, Method: "api",
					}))
					if err != nil {
						fail("RecordOptOut", err)
					}
				case n < 30:
					_, err := c.Consent.HandleInbound(ctx, connect.NewRequest(&pb.HandleInboundRequest{
						Subject: who, Channel: pb.Channel_CHANNEL_SMS, Text: []string{"STOP", "Stopp bitte", "HELP", "hello"}[rng.IntN(4)],
					}))
					if err != nil {
						fail("HandleInbound", err)
					}
				case n < 98:
					r, err := c.Send.Decide(ctx, connect.NewRequest(&pb.DecideRequest{
						Subject: who, Channel: pb.Channel_CHANNEL_WHATSAPP, Purpose: "marketing", Category: "marketing",
						Provider: &pb.Provider{Name: "eu-bsp", Region: "EU"}, SubjectTimezone: "Europe/Berlin",
					}))
					if err != nil {
						fail("Decide", err)
					} else {
						lastDecision.Store(r.Msg.Decision.Index)
					}
				default:
					if i := lastDecision.Load(); i > 0 {
						if _, err := c.Evidence(ctx, i); err != nil {
							fail("GetEvidence", err)
						}
					}
				}
				ops.Add(1)
			}
		}()
	}

	// Samples every 2 s; an export every 30 s.
	type sample struct {
		at         time.Duration
		rssMiB     float64
		goroutines int
		size, ckpt uint64
	}
	var samples []sample
	began := time.Now()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	nextExport := began.Add(30 * time.Second)
sampling:
	for {
		select {
		case <-running.Done():
			break sampling
		case <-tick.C:
		}
		cp, err := c.Log.GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{}))
		if err != nil {
			fail("GetCheckpoint", err)
			continue
		}
		samples = append(samples, sample{time.Since(began), rssMiB(t), runtime.NumGoroutine(), cp.Msg.Size, cp.Msg.Size})
		if time.Now().After(nextExport) {
			nextExport = nextExport.Add(30 * time.Second)
			if _, err := c.Export(ctx, new(bytes.Buffer), nil); err != nil {
				fail("Export", err)
			}
		}
	}
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d operations failed under the soak load", n)
	}
	if len(samples) < 9 {
		t.Fatalf("%d samples in %v: the soak needs at least 20 s", len(samples), *soak)
	}

	var curve strings.Builder
	for _, sm := range samples {
		fmt.Fprintf(&curve, "%6.0fs rss=%6.1f MiB goroutines=%4d checkpoint=%d\n", sm.at.Seconds(), sm.rssMiB, sm.goroutines, sm.ckpt)
	}
	t.Logf("%d operations in %v (%.0f/s); RSS and goroutines over time:\n%s", ops.Load(), *soak, float64(ops.Load())/soak.Seconds(), curve.String())
	if out := os.Getenv("SOAK_CURVE"); out != "" {
		os.WriteFile(out, []byte(curve.String()), 0o644)
	}

	third := len(samples) / 3
	// Memory: the storage engine's memory is bounded by configuration
	// (Badger: up to 5 memtables of 64 MiB, a 256 MiB block cache, the
	// index cache), and it fills those bounds at a pace set by the write
	// rate, so within minutes RSS climbs in steps towards them (see the
	// curve). A leak is growth past them: the process stays under
	// soakRSSBoundMiB, documented in docs/operations.md.
	peakRSS := 0.0
	for _, sm := range samples {
		peakRSS = max(peakRSS, sm.rssMiB)
	}
	if peakRSS > soakRSSBoundMiB {
		t.Errorf("RSS reached %.1f MiB, past the bound of %d MiB for the server and its load generator", peakRSS, soakRSSBoundMiB)
	}
	// Goroutines level off: none accumulates per request.
	maxG := func(ss []sample) int {
		m := 0
		for _, sm := range ss {
			m = max(m, sm.goroutines)
		}
		return m
	}
	if mid, last := maxG(samples[third:2*third]), maxG(samples[2*third:]); last > mid+10 {
		t.Errorf("goroutines keep growing: at most %d in the last third, %d in the middle third", last, mid)
	}
	for i := third; i < len(samples); i++ {
		if samples[i].ckpt <= samples[i-third].ckpt {
			t.Errorf("no new checkpoint between %v and %v (size %d)", samples[i-third].at, samples[i].at, samples[i].ckpt)
			break
		}
	}
	// Once the load stops, goroutines come back near the start (the
	// client's idle connections closed first: they are not the server's).
	c.HTTP.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseGoroutines+20 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseGoroutines+20 {
		var stacks strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		t.Errorf("%d goroutines after the load stopped, %d before it: a leak; goroutines now:\n%s", n, baseGoroutines, stacks.String())
	}

	var exp bytes.Buffer
	if _, err := c.Export(context.Background(), &exp, nil); err != nil {
		t.Fatal(err)
	}
	key, err := ledger.ReadVerifierKey(s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verifier.Audit(context.Background(), &exp, key, nil)
	if err != nil {
		t.Fatalf("the final audit failed: %v", err)
	}
	t.Logf("final audit: %d entries verified", rep.Entries)
}

// rssMiB reads this process's resident set size.
func rssMiB(t *testing.T) float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
