// Package trillianbaseline measures Trillian's own write throughput: a
// PREORDERED_LOG tree fed with AddSequencedLeaves calls of a fixed batch
// size, one call in flight. That is exactly the load consentledger's
// Trillian mode puts on Trillian (one call per group commit), without
// consentledger, so it is the figure the Trillian mode is compared with
// (target: Decide ≥ 0.8× it). Run writes random leaves of LeafSize bytes;
// RunValues writes given leaves — the side-by-side test (TestSideBySide)
// replays the very leaves consentledger wrote, read back with Leaves, at
// the group-commit size it used.
//
// BenchmarkTrillianAddSequencedLeaves (in this package's tests) runs it on a
// private MariaDB and Trillian started by internal/trilliantest:
//
//	go test -run '^$' -bench TrillianAddSequencedLeaves -benchtime 20x ./bench/trillianbaseline/
//
// Run, with a client of any Trillian, gives the same figure in another
// program (for a side-by-side run with consentledger's own benchmark).
package trillianbaseline

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/types"
	"google.golang.org/grpc/codes"
)

// LeafSize is the size of Run's leaf values: about a consentledger opt-in
// entry's. A send decision's entry is larger (about 1 KB: it holds the
// request and the policy's reasons), which is why the side-by-side test
// replays the real leaves instead.
const LeafSize = 300

// BatchSizes are the batch sizes the baseline is measured at.
var BatchSizes = []int{1, 64, 256, 1000}

// Result is one measured run.
type Result struct {
	Batch   int           // leaves per AddSequencedLeaves call
	Leaves  int           // leaves written
	Elapsed time.Duration // from the first call to the last call's answer
}

// LeavesPerSecond is the acknowledged (committed, not yet integrated)
// throughput.
func (r Result) LeavesPerSecond() float64 { return float64(r.Leaves) / r.Elapsed.Seconds() }

// Run writes n leaves of LeafSize random bytes to tree, from index first
// on, in AddSequencedLeaves calls of batch leaves (the last one smaller if
// n is not a multiple), one call in flight, and returns how long that took.
// Any per-leaf status other than OK stops it with an error, as it stops
// consentledger's writer.
func Run(ctx context.Context, c trillian.TrillianLogClient, tree, first int64, batch, n int) (Result, error) {
	// Values made before the clock starts, so only Trillian is measured
	// (RunValues checks batch and n).
	values := make([][]byte, max(n, 0))
	buf := make([]byte, len(values)*LeafSize)
	if _, err := rand.Read(buf); err != nil {
		return Result{}, err
	}
	for j := range values {
		values[j] = buf[j*LeafSize : (j+1)*LeafSize]
	}
	return RunValues(ctx, c, tree, first, batch, values)
}

// RunValues is Run with the leaf values given: values[j] goes to index
// first+j.
func RunValues(ctx context.Context, c trillian.TrillianLogClient, tree, first int64, batch int, values [][]byte) (Result, error) {
	n := len(values)
	if batch <= 0 || n <= 0 {
		return Result{}, fmt.Errorf("batch %d and leaves %d: both must be positive", batch, n)
	}
	start := time.Now()
	for done := 0; done < n; {
		k := min(batch, n-done)
		leaves := make([]*trillian.LogLeaf, k)
		for i := range leaves {
			leaves[i] = &trillian.LogLeaf{LeafIndex: first + int64(done+i), LeafValue: values[done+i]}
		}
		resp, err := c.AddSequencedLeaves(ctx, &trillian.AddSequencedLeavesRequest{LogId: tree, Leaves: leaves})
		if err != nil {
			return Result{}, fmt.Errorf("AddSequencedLeaves at index %d: %w", first+int64(done), err)
		}
		for i, r := range resp.Results {
			if code := codes.Code(r.Status.GetCode()); code != codes.OK {
				return Result{}, fmt.Errorf("AddSequencedLeaves: leaf %d: %v %s", first+int64(done+i), code, r.Status.GetMessage())
			}
		}
		done += k
	}
	return Result{Batch: batch, Leaves: n, Elapsed: time.Since(start)}, nil
}

// Leaves reads the values of the n integrated leaves of tree from index
// start on (GetLeavesByRange, in calls of at most 1,000; Trillian returns
// only integrated leaves, so call WaitIntegrated first).
func Leaves(ctx context.Context, c trillian.TrillianLogClient, tree, start int64, n int) ([][]byte, error) {
	values := make([][]byte, 0, n)
	for len(values) < n {
		want := min(1000, n-len(values))
		at := start + int64(len(values))
		resp, err := c.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{LogId: tree, StartIndex: at, Count: int64(want)})
		if err != nil {
			return nil, fmt.Errorf("GetLeavesByRange at index %d: %w", at, err)
		}
		if len(resp.Leaves) == 0 {
			return nil, fmt.Errorf("GetLeavesByRange at index %d: no leaves (is the tree integrated that far?)", at)
		}
		for _, l := range resp.Leaves {
			values = append(values, l.LeafValue)
		}
	}
	return values[:n], nil
}

// WaitIntegrated waits until Trillian's signer has integrated size leaves of
// tree (its latest root has that size), polling every 20 ms.
func WaitIntegrated(ctx context.Context, c trillian.TrillianLogClient, tree int64, size uint64) error {
	for {
		resp, err := c.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: tree})
		if err != nil {
			return fmt.Errorf("GetLatestSignedLogRoot: %w", err)
		}
		var root types.LogRootV1
		if err := root.UnmarshalBinary(resp.SignedLogRoot.GetLogRoot()); err != nil {
			return fmt.Errorf("unmarshal Trillian's log root: %w", err)
		}
		if root.TreeSize >= size {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the signer integrated %d of %d leaves: %w", root.TreeSize, size, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
