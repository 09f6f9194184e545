package trillianbaseline_test

import (
	"bufio"
	"context"
	"flag"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/consentledger/consentledger/bench/trillianbaseline"
	"github.com/consentledger/consentledger/client"
	"github.com/consentledger/consentledger/internal/trilliantest"
	"github.com/consentledger/consentledger/ledger/trillianlog"
	"github.com/consentledger/consentledger/server"
)

var sideBySide = flag.Duration("sidebyside", 0, "run TestSideBySide: Decide on Trillian for this long per round, then Trillian's own AddSequencedLeaves at the same batch size")

// TestSideBySide measures, in one run on one MariaDB and Trillian, the
// Decide throughput of consentledger serve on Trillian (64 callers) and
// Trillian's own AddSequencedLeaves throughput at the mean group-commit
// size consentledger used, and prints the ratio (target: ≥ 0.8):
//
//	go test -run TestSideBySide -v ./bench/trillianbaseline/ -sidebyside 15s
func TestSideBySide(t *testing.T) {
	if *sideBySide <= 0 {
		t.Skip("requires -sidebyside DURATION (a benchmark, not a test)")
	}
	env := trilliantest.Shared(t)
	for round := 1; round <= 2; round++ {
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
		b0, e0 := commitCounters(t, url)
		res, err := c.Bench(context.Background(), client.BenchOptions{Concurrency: 64, Duration: *sideBySide, Subjects: 2000})
		if err != nil {
			t.Fatal(err)
		}
		b1, e1 := commitCounters(t, url)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		mean := (e1 - e0) / math.Max(1, b1-b0)
		batch := max(1, int(math.Round(mean)))
		ours := float64(res.Decisions) / res.Elapsed.Seconds()

		tree := env.NewTree(t)
		n := max(batch*20, int(res.Decisions))
		base, err := trillianbaseline.Run(context.Background(), env.LogClient(), tree, 0, batch, n)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: Decide on Trillian %.0f decisions/s (%s; mean group commit %.1f entries) — Trillian AddSequencedLeaves, batch %d, one call in flight: %.0f leaves/s — ratio %.2f (target ≥ 0.8)",
			round, ours, res, mean, batch, base.LeavesPerSecond(), ours/base.LeavesPerSecond())
	}
}

// commitCounters reads the server's group-commit counters from /metrics.
func commitCounters(t *testing.T, url string) (batches, entries float64) {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "consentledger_append_batches_total":
			batches = v
		case "consentledger_appended_entries_total":
			entries = v
		}
	}
	return batches, entries
}
