package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consentledger/ledger/storage/memstore"
	"github.com/consentledger/consentledger/ledger/subject"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// memRemote is an in-memory Remote with Trillian's observable behaviour:
// committed leaves become visible (Leaves, Integrated) only once
// integrated, which happens at every Integrated call unless held.
type memRemote struct {
	mu         sync.Mutex
	leaves     [][]byte
	integrated uint64
	hold       bool // do not integrate
	failAdd    error
	addDelay   time.Duration // AddLeaves takes this long (or until its context ends)
	badRoot    bool
	subjects   map[string][]byte
	ckpts      map[uint64][]byte
}

func newMemRemote() *memRemote {
	return &memRemote{subjects: map[string][]byte{}, ckpts: map[uint64][]byte{}}
}

func (m *memRemote) AddLeaves(ctx context.Context, first uint64, leaves [][]byte) error {
	m.mu.Lock()
	delay := m.addDelay
	m.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failAdd != nil {
		return m.failAdd
	}
	if first != uint64(len(m.leaves)) {
		return fmt.Errorf("index %d taken or not next (size %d)", first, len(m.leaves))
	}
	for _, v := range leaves {
		m.leaves = append(m.leaves, append([]byte(nil), v...))
	}
	return nil
}

func (m *memRemote) Integrated(context.Context) (uint64, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.hold {
		m.integrated = uint64(len(m.leaves))
	}
	r := rangeFactory.NewEmptyRange(0)
	for _, v := range m.leaves[:m.integrated] {
		if err := r.Append(hasher.HashLeaf(v), nil); err != nil {
			return 0, nil, err
		}
	}
	root := rootOf(r)
	if m.badRoot {
		root = bytes.Repeat([]byte{7}, 32)
	}
	return m.integrated, root, nil
}

func (m *memRemote) Leaves(_ context.Context, start uint64, count int) ([][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if start >= m.integrated {
		return nil, nil
	}
	end := min(start+uint64(count), uint64(len(m.leaves)))
	return append([][]byte(nil), m.leaves[start:end]...), nil
}

func (m *memRemote) PutSubjects(_ context.Context, rows []SubjectRow) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range rows {
		m.subjects[string(r.Key)] = append([]byte(nil), r.Value...)
	}
	return nil
}

func (m *memRemote) DeleteSubjects(_ context.Context, keys [][]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.subjects, string(k))
	}
	return nil
}

func (m *memRemote) Subject(_ context.Context, key []byte) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.subjects[string(key)]
	return v, ok, nil
}

func (m *memRemote) Subjects(_ context.Context, fn func(SubjectRow) error) error {
	m.mu.Lock()
	rows := make([]SubjectRow, 0, len(m.subjects))
	for k, v := range m.subjects {
		rows = append(rows, SubjectRow{Key: []byte(k), Value: v})
	}
	m.mu.Unlock()
	for _, r := range rows {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (m *memRemote) PutCheckpoint(_ context.Context, size uint64, note []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.ckpts[size]; ok {
		return old, nil
	}
	m.ckpts[size] = append([]byte(nil), note...)
	return note, nil
}

func (m *memRemote) Checkpoints(_ context.Context, after uint64, fn func(uint64, []byte) error) error {
	m.mu.Lock()
	var sizes []uint64
	for s := range m.ckpts {
		if s > after {
			sizes = append(sizes, s)
		}
	}
	m.mu.Unlock()
	sort.Slice(sizes, func(i, j int) bool { return sizes[i] < sizes[j] })
	for _, s := range sizes {
		m.mu.Lock()
		n := m.ckpts[s]
		m.mu.Unlock()
		if err := fn(s, n); err != nil {
			return err
		}
	}
	return nil
}

// TestRemoteRebuildFromEmptyDirectory writes through a remote, then opens a
// ledger with the same keys on an EMPTY store: it must catch up to the same
// root, consent state and idempotency answers, keep erasures, and carry the
// signed checkpoints over.
func TestRemoteRebuildFromEmptyDirectory(t *testing.T) {
	ctx := context.Background()
	rem := newMemRemote()
	keys, _, err := NewKeys("test.example/ledger")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Remote: rem, CheckpointInterval: -1}
	l1, err := New(memstore.New(), keys, opts)
	if err != nil {
		t.Fatal(err)
	}
	var rcpts []Receipt
	for i := range 300 {
		req := &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(i)}
		req.Entry.IdempotencyKey = fmt.Sprintf("opt-in-%d", i)
		rcpts = append(rcpts, mustAppend(t, l1, req))
	}
	mustAppend(t, l1, &Request{Entry: withdraw(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(5)})
	mustAppend(t, l1, &Request{Entry: erase(), Subject: phone(7)})
	if _, ok := rem.subjects[string(tableRowKey(keys, 7))]; ok {
		t.Fatal("the erased subject's row is still in the remote table")
	}
	c1, err := l1.SignCheckpoint(ctx)
	if err != nil || c1.Size != l1.Size() {
		t.Fatalf("SignCheckpoint = %+v, %v; want size %d", c1, err, l1.Size())
	}
	size, root := l1.Size(), l1.Root()
	st5, _ := l1.SubjectState(ctx, rcpts[5].SubjectID)
	if err := l1.Close(); err != nil {
		t.Fatal(err)
	}
	// A database restore brings the erased subject's row back.
	rem.subjects[string(tableRowKey(keys, 7))] = append(make([]byte, 32), rcpts[7].SubjectID...)

	l2, err := New(memstore.New(), keys, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.Size() != size || !bytes.Equal(l2.Root(), root) {
		t.Fatalf("rebuilt ledger: size %d root %x, want %d %x", l2.Size(), l2.Root(), size, root)
	}
	got5, err := l2.SubjectState(ctx, rcpts[5].SubjectID)
	if err != nil || got5.Consents[0].Status != st5.Consents[0].Status || !sameRef(got5.Head, st5.Head) {
		t.Errorf("rebuilt state of subject 5 = %v, %v; want %v", got5, err, st5)
	}
	if _, _, found, _ := l2.LookupSubject(ctx, *phone(7)); found {
		t.Error("the erased subject is found again after a database restore")
	}
	if _, ok := rem.subjects[string(tableRowKey(keys, 7))]; ok {
		t.Error("the restored row of the erased subject was not deleted at start")
	}
	if _, _, found, _ := l2.LookupSubject(ctx, *phone(9)); !found {
		t.Error("subject 9 is not found after the rebuild")
	}
	for _, i := range []int{0, 42, 299} {
		req := &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(i)}
		req.Entry.IdempotencyKey = fmt.Sprintf("opt-in-%d", i)
		r, err := l2.Append(ctx, req)
		if err != nil || !r.Duplicate || r.Index != rcpts[i].Index || !bytes.Equal(r.LeafHash, rcpts[i].LeafHash) {
			t.Errorf("retry of opt-in %d after rebuild = %+v, %v; want duplicate of %d", i, r, err, rcpts[i].Index)
		}
	}
	if c, err := l2.CheckpointAt(ctx, c1.Size); err != nil || !bytes.Equal(c.Note, c1.Note) {
		t.Errorf("checkpoint of size %d after rebuild: %v", c1.Size, err)
	}
	// It keeps appending where the first left off.
	r := mustAppend(t, l2, &Request{Entry: grant(pb.Channel_CHANNEL_WHATSAPP, "marketing"), Subject: phone(1)})
	if r.Index != size {
		t.Errorf("next index = %d, want %d", r.Index, size)
	}
	checkChains(t, l2)
}

// tableRowKey is subject n's row key in the remote table.
func tableRowKey(keys *Keys, n int) []byte {
	return tableKey(subject.TableKey(keys.SubjectKey, *phone(n)))[1:]
}

// TestRemoteFailureAcknowledgesNothing: when the remote refuses a batch,
// its appends fail as unavailable (ErrClosed), nothing is committed
// locally, and the ledger accepts no more writes.
func TestRemoteFailureAcknowledgesNothing(t *testing.T) {
	rem := newMemRemote()
	l, _, _ := newTestLedger(t, Options{Remote: rem})
	mustAppend(t, l, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(1)})
	rem.mu.Lock()
	rem.failAdd = errors.New("connection refused")
	rem.mu.Unlock()
	_, err := l.Append(context.Background(), &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(2)})
	if !errors.Is(err, ErrClosed) || !errors.Is(err, ErrRemote) {
		t.Fatalf("append while the remote fails: %v, want ErrClosed wrapping ErrRemote", err)
	}
	if l.Size() != 1 {
		t.Errorf("size = %d after a refused batch, want 1", l.Size())
	}
	if l.Failure() == nil {
		t.Error("Failure() is nil after the remote refused a batch")
	}
	rem.mu.Lock()
	rem.failAdd = nil
	rem.mu.Unlock()
	if _, err := l.Append(context.Background(), &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(3)}); !errors.Is(err, ErrClosed) {
		t.Errorf("append after a remote failure: %v, want ErrClosed until restart", err)
	}
}

// TestRemoteCheckpoints: checkpoints are signed only for sizes the remote
// has integrated, only when the roots agree, and are stored in the remote.
func TestRemoteCheckpoints(t *testing.T) {
	ctx := context.Background()
	rem := newMemRemote()
	l, _, _ := newTestLedger(t, Options{Remote: rem})
	mustAppend(t, l, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(1)})
	c, err := l.SignCheckpoint(ctx)
	if err != nil || c.Size != 1 {
		t.Fatalf("SignCheckpoint = %+v, %v", c, err)
	}
	if !bytes.Equal(rem.ckpts[1], c.Note) {
		t.Error("the checkpoint was not stored in the remote")
	}
	rem.mu.Lock()
	rem.hold = true
	rem.mu.Unlock()
	mustAppend(t, l, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(2)})
	ctxShort, cancel := context.WithTimeout(ctx, 200e6)
	defer cancel()
	if c, _ := l.SignCheckpoint(ctxShort); c == nil || c.Size != 1 {
		t.Errorf("checkpoint while the remote has not integrated: %+v, want size 1", c)
	}
	rem.mu.Lock()
	rem.hold, rem.badRoot = false, true
	rem.mu.Unlock()
	if _, err := l.SignCheckpoint(ctx); !errors.Is(err, ErrRemote) {
		t.Errorf("SignCheckpoint with a differing remote root: %v, want ErrRemote", err)
	}
	if got := l.RemoteStats().RootMismatches; got == 0 {
		t.Error("the root mismatch was not counted")
	}
	if _, ok := rem.ckpts[2]; ok {
		t.Error("a checkpoint was stored for a size whose roots differ")
	}
}

// TestRetryAfter: the catch-up loops' wait gives the timeout's error once the
// deadline has passed, the context's error when it ends first, and
// otherwise waits before the next reading.
func TestRetryAfter(t *testing.T) {
	timedOut := errors.New("timed out")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		deadline time.Time
		want     error
	}{
		{"deadline passed", context.Background(), time.Now().Add(-time.Millisecond), timedOut},
		{"context ended", canceled, time.Now().Add(time.Minute), context.Canceled},
		{"wait", context.Background(), time.Now().Add(time.Minute), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := retryAfter(tc.ctx, tc.deadline, func() error { return timedOut })
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("retryAfter: %v, want %v", err, tc.want)
			}
			if tc.want == nil && time.Since(start) < 200*time.Millisecond {
				t.Fatalf("retryAfter returned after %s, want a wait of 200 ms", time.Since(start))
			}
		})
	}
}
