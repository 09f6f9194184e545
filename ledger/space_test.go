package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentledger/consentledger/ledger/storage"
	"github.com/consentledger/consentledger/ledger/storage/memstore"
)

// TestDiskWatermarks drives the watermark state machine with a fake free
// space: below the reserve appends are refused with ErrNoSpace and nothing
// is appended; reads keep working; between the reserve and the resume mark
// they stay refused (hysteresis); above it they resume by themselves.
func TestDiskWatermarks(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 30)
	const reserve = 100 << 20
	l, _, _ := newTestLedger(t, Options{
		SpaceDir: "/fake", DiskReserve: reserve,
		FreeSpace: func(dir string) (uint64, error) {
			if dir != "/fake" {
				return 0, fmt.Errorf("watched %q, want /fake", dir)
			}
			return free.Load(), nil
		},
	})
	ctx := context.Background()
	appendRaw(t, l, 3)

	free.Store(reserve - 1)
	waitFor(t, "appends refused", func() bool { return l.Space().Low })
	size := l.Size()
	_, err := l.Append(ctx, &Request{Entry: policyEntry(100)})
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Append below the reserve: err = %v, want ErrNoSpace", err)
	}
	for _, want := range []string{"/fake", "free", "reserve"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if l.Size() != size {
		t.Fatalf("size %d after a refused append, want %d", l.Size(), size)
	}
	if _, err := l.Entry(ctx, 0); err != nil {
		t.Fatalf("a read while the disk is low: %v", err)
	}
	if _, err := l.InclusionProof(ctx, 1, size); err != nil {
		t.Fatalf("a proof while the disk is low: %v", err)
	}

	free.Store(reserve + 1) // above the reserve, below reserve+hysteresis
	time.Sleep(3 * spaceCheckInterval)
	if !l.Space().Low {
		t.Fatal("appends resumed just above the reserve; want them to wait for the hysteresis")
	}
	free.Store(reserve + reserve/8 + 1)
	waitFor(t, "appends resumed", func() bool { return !l.Space().Low })
	mustAppend(t, l, &Request{Entry: policyEntry(101)})
	if l.Size() != size+1 {
		t.Fatalf("size %d after resuming, want %d", l.Size(), size+1)
	}
}

// TestFullDiskTmpfs fills a real file system (a tmpfs mounted by the test)
// under a real Badger store while appenders run: appends are refused before
// Badger can fault, the process stays up, and once space is freed appends
// resume; after a reopen every acknowledged entry is there and the root
// matches the entries. Mounting needs root; CI runs as root, so there the
// test fails instead of skipping.
func TestFullDiskTmpfs(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: the full-disk test fills a 256 MiB tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", mnt).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a tmpfs for the full-disk test (CI runs as root, so this must work): %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs here (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	dir := filepath.Join(mnt, "data")
	const reserve = 48 << 20
	opts := Options{Origin: "test.example/ledger", DiskReserve: reserve, CheckpointInterval: -1}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	appendRaw(t, l, 10)

	// Leave a few MiB above the reserve.
	free, err := FreeSpace(mnt)
	if err != nil {
		t.Fatal(err)
	}
	fill := filepath.Join(mnt, "fill")
	if err := writeZeros(fill, int64(free)-reserve-6<<20); err != nil {
		t.Fatal(err)
	}

	// Appenders run until the ledger refuses them for space.
	var (
		mu    sync.Mutex
		acked = map[uint64][]byte{}
		wg    sync.WaitGroup
		full  atomic.Bool
	)
	deadline := time.Now().Add(60 * time.Second)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !full.Load() && time.Now().Before(deadline); i++ {
				r, err := l.Append(context.Background(), &Request{Entry: filler(2000)})
				switch {
				case errors.Is(err, ErrNoSpace):
					full.Store(true)
				case err != nil:
					t.Errorf("Append: %v", err)
					return
				default:
					mu.Lock()
					acked[r.Index] = r.LeafHash
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if !full.Load() {
		t.Fatalf("no append was refused in 60 s with %s free above the reserve", mib(6<<20))
	}
	st := l.Space()
	t.Logf("refused at %s free (reserve %s) after %d acknowledged appends", mib(st.Free), mib(st.Reserve), len(acked))
	if _, err := l.Entry(context.Background(), 0); err != nil {
		t.Fatalf("a read while the disk is full: %v", err)
	}

	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "appends resumed after freeing space", func() bool { return !l.Space().Low })
	r := mustAppend(t, l, &Request{Entry: filler(2000)})
	acked[r.Index] = r.LeafHash
	root, size := l.Root(), l.Size()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Size() != size || !bytes.Equal(l.Root(), root) {
		t.Fatalf("after reopen: size %d root %x, want %d %x", l.Size(), l.Root(), size, root)
	}
	leaves := allLeaves(t, l)
	if got := referenceRoot(leaves); !bytes.Equal(got, root) {
		t.Fatalf("root of the stored entries %x, want %x", got, root)
	}
	for i, h := range acked {
		if !bytes.Equal(leaves[i], h) {
			t.Fatalf("acknowledged entry %d has leaf %x after reopen, want %x", i, leaves[i], h)
		}
	}
}

func writeZeros(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			f.Close()
			return err
		}
		n -= k
	}
	return f.Close()
}

// failingStore is a store whose writes fail once fail is set, as a failed
// fsync does.
type failingStore struct {
	storage.Store
	fail atomic.Bool
}

var errInjectedSync = errors.New("injected: fsync: input/output error")

func (f *failingStore) Update(ctx context.Context, fn func(storage.WriteTx) error) error {
	if f.fail.Load() {
		return errInjectedSync
	}
	return f.Store.Update(ctx, fn)
}

// TestFsyncFailureStopsWrites: after a failed commit the ledger refuses
// every append until it is restarted (fail-stop: the page cache can no
// longer be trusted), answers the appends of the failed batch with an
// error, never acknowledges them, and keeps serving reads.
func TestFsyncFailureStopsWrites(t *testing.T) {
	keys, _, err := NewKeys("test.example/ledger")
	if err != nil {
		t.Fatal(err)
	}
	st := &failingStore{Store: memstore.New()}
	l, err := New(st, keys, Options{CheckpointInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	appendRaw(t, l, 5)
	size := l.Size()

	st.fail.Store(true)
	if _, err := l.Append(ctx, &Request{Entry: policyEntry(50)}); err == nil || !errors.Is(err, ErrClosed) {
		t.Fatalf("append whose commit fails: err = %v, want ErrClosed", err)
	}
	st.fail.Store(false) // the disk "recovers": the ledger must still refuse
	_, err = l.Append(ctx, &Request{Entry: policyEntry(51)})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("append after a failed sync: err = %v, want ErrClosed until restart", err)
	}
	if msg := err.Error(); !bytes.Contains([]byte(msg), []byte("restart")) {
		t.Errorf("error %q does not tell the operator to restart", msg)
	}
	if l.Size() != size {
		t.Fatalf("size %d after the failure, want %d (nothing acknowledged)", l.Size(), size)
	}
	if err := l.Failure(); err == nil {
		t.Fatal("Failure() = nil after a failed sync, want the error (for health and metrics)")
	}
	if _, err := l.Entry(ctx, size-1); err != nil {
		t.Fatalf("a read after the failure: %v", err)
	}

	// A restart on the same store serves the committed log again.
	l.Close()
	l2, err := New(st.Store, keys, Options{CheckpointInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.Size() != size {
		t.Fatalf("size after restart %d, want %d", l2.Size(), size)
	}
	mustAppend(t, l2, &Request{Entry: policyEntry(52)})
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
