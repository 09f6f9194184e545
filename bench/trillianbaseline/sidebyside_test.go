package trillianbaseline_test

import (
	"bufio"
	"context"
	"flag"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/consentledger/consentledger/bench/trillianbaseline"
	"github.com/consentledger/consentledger/client"
	"github.com/consentledger/consentledger/internal/trilliantest"
	"github.com/consentledger/consentledger/ledger/trillianlog"
	"github.com/consentledger/consentledger/server"
)

var sideBySideRounds = flag.Int("rounds", 3, "TestSideBySide: how many rounds (the median ratio is printed)")

var sideBySide = flag.Duration("sidebyside", 0, "run TestSideBySide: Decide on Trillian for this long per round, then Trillian's own AddSequencedLeaves of the same leaves at the same batch size")

// TestSideBySide measures, in one run on one MariaDB and Trillian, the
// Decide throughput of consentledger serve on Trillian (64 callers) and
// Trillian's own AddSequencedLeaves throughput at the mean group-commit
// size consentledger used, writing the very leaves consentledger wrote
// (read back from its tree) into a fresh tree, and prints the ratio
// (target: ≥ 0.8), each round and the median of the rounds' ratios:
//
//	go test -run TestSideBySide -v ./bench/trillianbaseline/ -sidebyside 15s -rounds 5
func TestSideBySide(t *testing.T) {
	if *sideBySide <= 0 {
		t.Skip("requires -sidebyside DURATION (a benchmark, not a test)")
	}
	if *sideBySideRounds < 1 {
		t.Fatalf("-rounds %d: give at least 1", *sideBySideRounds)
	}
	env := trilliantest.Shared(t)
	var ratios []float64
	for round := 1; round <= *sideBySideRounds; round++ {
		id, err := trillianlog.Init(context.Background(), env.LogAddr, env.DSN)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ready, done := make(chan string, 1), make(chan error, 1)
		cfg := server.Config{DataDir: t.TempDir(), Addr: "127.0.0.1:0", PoliciesDir: "../../policies",
			Storage: server.StorageConfig{Trillian: env.LogAddr, Tree: id, SQL: env.DSN}}
		go func() {
			done <- server.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a string) { ready <- a })
		}()
		var url string
		select {
		case a := <-ready:
			url = "http://" + a
		case err := <-done:
			t.Fatal(err)
		}
		c, err := client.New(url, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		m0 := readMetrics(t, url)
		res, err := c.Bench(context.Background(), client.BenchOptions{Concurrency: 64, Duration: *sideBySide, Subjects: 2000})
		if err != nil {
			t.Fatal(err)
		}
		m1 := readMetrics(t, url)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		mean := (m1.entries - m0.entries) / math.Max(1, m1.batches-m0.batches)
		batch := max(1, int(math.Round(mean)))
		ours := float64(res.Decisions) / res.Elapsed.Seconds()

		// The baseline writes the leaves the server wrote last (its send
		// decisions), at least 20 calls' worth, into a fresh tree.
		bg := context.Background()
		size := int64(m1.size)
		n := int(min(size, max(int64(batch*20), res.Decisions)))
		if err := trillianbaseline.WaitIntegrated(bg, env.LogClient(), id, uint64(size)); err != nil {
			t.Fatal(err)
		}
		values, err := trillianbaseline.Leaves(bg, env.LogClient(), id, size-int64(n), n)
		if err != nil {
			t.Fatal(err)
		}
		bytes := 0
		for _, v := range values {
			bytes += len(v)
		}
		base, err := trillianbaseline.RunValues(bg, env.LogClient(), env.NewTree(t), 0, batch, values)
		if err != nil {
			t.Fatal(err)
		}
		ratio := ours / base.LeavesPerSecond()
		ratios = append(ratios, ratio)
		t.Logf("round %d: Decide on Trillian %.0f decisions/s (%s; mean group commit %.1f entries) — Trillian AddSequencedLeaves of the same %d leaves (mean %d bytes), batch %d, one call in flight: %.0f leaves/s — ratio %.2f (target ≥ 0.8)",
			round, ours, res, mean, n, bytes/n, batch, base.LeavesPerSecond(), ratio)
	}
	slices.Sort(ratios)
	k := len(ratios)
	median := (ratios[(k-1)/2] + ratios[k/2]) / 2
	t.Logf("median ratio of %d rounds: %.2f (target ≥ 0.8); all: %.2f", k, median, ratios)
}

// serverMetrics are the figures TestSideBySide reads from /metrics.
type serverMetrics struct {
	batches, entries float64 // group commits and entries appended since start
	size             float64 // the log's size
}

// readMetrics reads the server's group-commit counters and log size.
func readMetrics(t *testing.T, url string) serverMetrics {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m serverMetrics
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "consentledger_append_batches_total":
			m.batches = v
		case "consentledger_appended_entries_total":
			m.entries = v
		case "consentledger_log_size":
			m.size = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if m.size == 0 {
		t.Fatal("/metrics has no consentledger_log_size")
	}
	return m
}
