package ledger

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchLog is a ledger on disk with benchEntries() entries, built once per
// test process for the proof and reopen benchmarks.
var benchLog struct {
	once sync.Once
	dir  string
	err  error
}

// benchEntries is the size of the benchmark log: CONSENTLEDGER_BENCH_ENTRIES,
// default 1,000,000.
func benchEntries() uint64 {
	if v, err := strconv.ParseUint(os.Getenv("CONSENTLEDGER_BENCH_ENTRIES"), 10, 64); err == nil && v > 0 {
		return v
	}
	return 1_000_000
}

func openBenchLog(b *testing.B) *Ledger {
	b.Helper()
	benchLog.once.Do(func() {
		benchLog.dir, benchLog.err = os.MkdirTemp("", "consentledger-bench-")
		if benchLog.err != nil {
			return
		}
		l, err := Open(benchLog.dir, Options{CheckpointInterval: -1})
		if err != nil {
			benchLog.err = err
			return
		}
		n := int64(benchEntries())
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 64; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= n {
					if _, err := l.Append(context.Background(), &Request{Entry: filler(250)}); err != nil {
						benchLog.err = err
						return
					}
				}
			}()
		}
		wg.Wait()
		b.Logf("built a log of %d entries in %v", n, time.Since(start).Round(time.Millisecond))
		if err := l.Close(); err != nil && benchLog.err == nil {
			benchLog.err = err
		}
	})
	if benchLog.err != nil {
		b.Fatal(benchLog.err)
	}
	l, err := Open(benchLog.dir, Options{CheckpointInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

// BenchmarkInclusionProof builds inclusion proofs for random entries of the
// whole log (1,000,000 entries by default).
func BenchmarkInclusionProof(b *testing.B) {
	l := openBenchLog(b)
	size := l.Size()
	rnd := rand.New(rand.NewPCG(1, 1))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.InclusionProof(ctx, rnd.Uint64N(size), size); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsistencyProof builds consistency proofs from a random earlier
// size to the whole log.
func BenchmarkConsistencyProof(b *testing.B) {
	l := openBenchLog(b)
	size := l.Size()
	rnd := rand.New(rand.NewPCG(2, 2))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.ConsistencyProof(ctx, 1+rnd.Uint64N(size-1), size); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReopen measures opening the benchmark log (as after a crash:
// nothing is replayed).
func BenchmarkReopen(b *testing.B) {
	openBenchLog(b).Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		l, err := Open(benchLog.dir, Options{CheckpointInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/open")
		b.StopTimer()
		l.Close()
		b.StartTimer()
	}
}
