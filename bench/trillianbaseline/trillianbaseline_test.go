package trillianbaseline_test

import (
	"context"
	"fmt"
	"os"
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
