package trillianbaseline_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consentledger/bench/trillianbaseline"
	"github.com/consentledger/consentledger/internal/trilliantest"
	"github.com/google/trillian"
)

func TestMain(m *testing.M) { os.Exit(trilliantest.Main(m)) }

// BenchmarkTrillianAddSequencedLeaves is Trillian's own throughput at each
// of BatchSizes, on a fresh tree each time: ns/op is one AddSequencedLeaves
// call, leaves/s the acknowledged leaves (every leaf's status OK; committed,
// not yet integrated), integration-lag-ms how long after the last call's
// answer the signer's root covered them all.
func BenchmarkTrillianAddSequencedLeaves(b *testing.B) {
	env := trilliantest.Shared(b)
	c := env.LogClient()
	for _, batch := range trillianbaseline.BatchSizes {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			tree := env.NewTree(b)
			ctx := context.Background()
			b.ResetTimer()
			r, err := trillianbaseline.Run(ctx, c, tree, 0, batch, b.N*batch)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			acked := time.Now()
			ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			if err := trillianbaseline.WaitIntegrated(ctx, c, tree, uint64(r.Leaves)); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.LeavesPerSecond(), "leaves/s")
			b.ReportMetric(float64(time.Since(acked).Milliseconds()), "integration-lag-ms")
		})
	}
}

// TestRun writes 10 leaves in batches of 4 and checks they are all there,
// and that a second run over the same indexes is stopped by Trillian's
// per-leaf refusal rather than counted.
func TestRun(t *testing.T) {
	env := trilliantest.Shared(t)
	c := env.LogClient()
	tree := env.NewTree(t)
	ctx := context.Background()
	r, err := trillianbaseline.Run(ctx, c, tree, 0, 4, 10)
	if err != nil {
		t.Fatal(err)
	}
	if r.Leaves != 10 || r.Batch != 4 || r.Elapsed <= 0 || r.LeavesPerSecond() <= 0 {
		t.Fatalf("result %+v", r)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := trillianbaseline.WaitIntegrated(ctx, c, tree, 10); err != nil {
		t.Fatal(err)
	}
	resp, err := c.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{LogId: tree, StartIndex: 0, Count: 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Leaves) != 10 {
		t.Fatalf("%d leaves in the tree, want 10", len(resp.Leaves))
	}
	for i, l := range resp.Leaves {
		if len(l.LeafValue) != trillianbaseline.LeafSize || l.LeafIndex != int64(i) {
			t.Errorf("leaf %d: index %d, %d bytes", i, l.LeafIndex, len(l.LeafValue))
		}
	}
	if _, err := trillianbaseline.Run(ctx, c, tree, 8, 4, 4); err == nil {
		t.Fatal("a run over indexes 8–11 of a tree of 10 succeeded, want the refusal of leaf 8")
	}
}

// TestRunValues writes given leaves of different sizes in batches of 3 and
// reads them back with Leaves, across its 1,000-leaf calls.
func TestRunValues(t *testing.T) {
	env := trilliantest.Shared(t)
	c := env.LogClient()
	tree := env.NewTree(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	values := make([][]byte, 1003)
	for i := range values {
		values[i] = []byte(fmt.Sprintf("leaf %d %s", i, strings.Repeat("x", i%97)))
	}
	r, err := trillianbaseline.RunValues(ctx, c, tree, 0, 3, values)
	if err != nil {
		t.Fatal(err)
	}
	if r.Leaves != len(values) || r.Batch != 3 {
		t.Fatalf("result %+v", r)
	}
	if err := trillianbaseline.WaitIntegrated(ctx, c, tree, uint64(len(values))); err != nil {
		t.Fatal(err)
	}
	got, err := trillianbaseline.Leaves(ctx, c, tree, 2, len(values)-2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(values)-2 {
		t.Fatalf("Leaves returned %d values, want %d", len(got), len(values)-2)
	}
	for i, v := range got {
		if !bytes.Equal(v, values[i+2]) {
			t.Fatalf("leaf %d: %q, want %q", i+2, v, values[i+2])
		}
	}
	if _, err := trillianbaseline.Leaves(ctx, c, tree, int64(len(values)), 1); err == nil {
		t.Fatal("Leaves past the integrated size succeeded, want an error")
	}
	if _, err := trillianbaseline.RunValues(ctx, c, tree, 0, 0, values); err == nil {
		t.Fatal("RunValues with batch 0 succeeded")
	}
}
