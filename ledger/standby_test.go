package ledger

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consentledger/ledger/storage/memstore"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// TestStandbyFollowsAndTakesOver: a standby on the same remote refuses
// writes naming the leader, follows the leader's entries, state, subjects
// and checkpoints, and after Promote continues the log; an opt-out the old
// leader acknowledged is honoured by the new one.
func TestStandbyFollowsAndTakesOver(t *testing.T) {
	ctx := context.Background()
	rem, keys := remoteAndKeys(t)
	leader := onRemote(t, rem, keys, false)
	mustAppend(t, leader, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(1)})
	standby := onRemote(t, rem, keys, true)
	standby.SetLeaderURL("https://node-a.example")
	var nl *NotLeaderError
	if _, err := standby.Append(ctx, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(2)}); !errors.As(err, &nl) || nl.Leader != "https://node-a.example" {
		t.Fatalf("append on a standby: %v, want a NotLeaderError naming the leader", err)
	}
	// Entries, a new subject and an opt-out reach the standby.
	g := mustAppend(t, leader, &Request{Entry: grant(pb.Channel_CHANNEL_WHATSAPP, "marketing"), Subject: phone(3)})
	out := mustAppend(t, leader, &Request{Entry: withdraw(pb.Channel_CHANNEL_WHATSAPP, "marketing"), Subject: phone(3)})
	c, err := leader.SignCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the standby follows the leader", func() bool { return standby.Size() == leader.Size() })
	if !bytes.Equal(standby.Root(), leader.Root()) {
		t.Fatalf("standby root %x, leader %x", standby.Root(), leader.Root())
	}
	sid, st, found, err := standby.LookupSubject(ctx, *phone(3))
	if err != nil || !found || sid != g.SubjectID || !sameRef(st.GetHead(), out.Ref()) {
		t.Fatalf("standby lookup of a subject created after it started: %s %v %v %v", sid, st, found, err)
	}
	sc, err := standby.SignCheckpoint(ctx)
	if err != nil || sc.Size != c.Size || !bytes.Equal(sc.Note, c.Note) {
		t.Fatalf("standby checkpoint = %+v, %v; want the leader's of size %d", sc, err, c.Size)
	}
	size := leader.Size()
	if err := leader.Close(); err != nil {
		t.Fatal(err)
	}

	// Takeover.
	if err := standby.Promote(ctx, func() time.Time { return time.Now().Add(time.Minute) }); err != nil {
		t.Fatalf("Promote: %v", err)
	}
	if standby.IsStandby() || standby.Takeovers() != 1 {
		t.Fatalf("after Promote: standby %v, takeovers %d", standby.IsStandby(), standby.Takeovers())
	}
	d := mustAppend(t, standby, &Request{Entry: decision(pb.Channel_CHANNEL_WHATSAPP, "marketing", false), Subject: phone(3)})
	if d.Index != size {
		t.Errorf("first index of the new leader = %d, want %d", d.Index, size)
	}
	data, _ := standby.Entry(ctx, d.Index)
	e, _ := DecodeEntry(data)
	if e.ConsentHeadIndex == nil || *e.ConsentHeadIndex != out.Index {
		t.Errorf("the new leader's decision relies on consent head %v, want the acknowledged opt-out %d", e.ConsentHeadIndex, out.Index)
	}
	if _, err := standby.Append(ctx, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(1)}); err != nil {
		t.Errorf("the new leader resolves a subject the old one created: %v", err)
	}
	if c2, err := standby.SignCheckpoint(ctx); err != nil || c2.Size != standby.Size() {
		t.Errorf("the new leader signs: %+v, %v", c2, err)
	}
	checkChains(t, standby)
}

// TestLeaseFence: a leader whose lease is about to end sends nothing to
// the remote and stops writing.
func TestLeaseFence(t *testing.T) {
	ctx := context.Background()
	rem := newMemRemote()
	l, _, _ := newTestLedger(t, Options{Remote: rem, Standby: true})
	end := time.Now().Add(time.Minute)
	until := func() time.Time { return end }
	if err := l.Promote(ctx, until); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(1)})
	end = time.Now().Add(50 * time.Millisecond)
	_, err := l.Append(ctx, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(2)})
	if !errors.Is(err, ErrLeaseLost) || !errors.Is(err, ErrClosed) {
		t.Fatalf("append with 50 ms of lease left: %v, want ErrLeaseLost", err)
	}
	rem.mu.Lock()
	n := len(rem.leaves)
	rem.mu.Unlock()
	if n != 1 {
		t.Errorf("the remote holds %d leaves, want 1: a write went out past the fence", n)
	}
}

// TestDemotedLeaderRejoins: a leader whose lease ran short refuses the
// write (nothing reaches the remote), rejoins as a standby without a
// restart — what it sequenced but never committed is gone —, follows the
// new leader's entries written at the same indexes, and can lead again.
func TestDemotedLeaderRejoins(t *testing.T) {
	ctx := context.Background()
	rem, keys := remoteAndKeys(t)
	a := onRemote(t, rem, keys, true)
	lease := newTestLease(time.Minute)
	long := func() time.Time { return time.Now().Add(time.Minute) }
	if err := a.Promote(ctx, lease.until); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, a, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(1)})
	b := onRemote(t, rem, keys, true)

	lease.endIn(50 * time.Millisecond)
	_, err := a.Append(ctx, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(2)})
	if !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("append with 50 ms of lease left: %v, want ErrLeaseLost", err)
	}
	a.Demote(err)
	waitFor(t, "the demoted leader rejoins as a standby", func() bool { return a.Failure() == nil && a.IsStandby() })
	if _, _, found, err := a.LookupSubject(ctx, *phone(2)); err != nil || found {
		t.Fatalf("after the rejoin, the subject of a refused opt-in is found=%v (%v): state sequenced but never committed survived", found, err)
	}
	a.SetLeaderURL("https://b.example")
	var nl *NotLeaderError
	if _, err := a.Append(ctx, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(4)}); !errors.As(err, &nl) || nl.Leader != "https://b.example" {
		t.Fatalf("append on the rejoined standby: %v, want a NotLeaderError naming b", err)
	}

	// b leads and writes at the index a's refused entry had.
	if err := b.Promote(ctx, long); err != nil {
		t.Fatal(err)
	}
	out := mustAppend(t, b, &Request{Entry: withdraw(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(1)})
	if out.Index != 1 {
		t.Fatalf("the new leader's first index = %d, want 1", out.Index)
	}
	mustAppend(t, b, &Request{Entry: grant(pb.Channel_CHANNEL_WHATSAPP, "marketing"), Subject: phone(3)})
	waitFor(t, "the rejoined node follows the new leader", func() bool { return a.Size() == b.Size() })
	if !bytes.Equal(a.Root(), b.Root()) {
		t.Fatalf("rejoined root %x, leader %x", a.Root(), b.Root())
	}
	if _, st, found, err := a.LookupSubject(ctx, *phone(1)); err != nil || !found || !sameRef(st.GetHead(), out.Ref()) {
		t.Fatalf("the rejoined node's state of subject 1: %v %v %v, want the new leader's opt-out as head", st, found, err)
	}

	// And a leads again once b steps down.
	b.Demote(errors.New("test: b steps down"))
	waitFor(t, "b rejoins", func() bool { return b.Failure() == nil })
	if err := a.Promote(ctx, long); err != nil {
		t.Fatalf("Promote after a rejoin: %v", err)
	}
	e := mustAppend(t, a, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(2)})
	if e.Index != 3 {
		t.Errorf("index after leading again = %d, want 3", e.Index)
	}
	waitFor(t, "b follows a again", func() bool { return b.Size() == a.Size() })
	if a.Takeovers() != 2 {
		t.Errorf("a's takeovers = %d, want 2", a.Takeovers())
	}
	checkChains(t, a)
	checkChains(t, b)
}

// TestWriteCutOffByLeaseEnd: a leader paused past its lease wakes with a
// remote write in flight that its deadline (the lease's end) cut off. That
// is a lost lease, not a failed remote: the ledger rejoins as a standby
// instead of stopping until a restart.
func TestWriteCutOffByLeaseEnd(t *testing.T) {
	ctx := context.Background()
	rem := newMemRemote()
	l, _, _ := newTestLedger(t, Options{Remote: rem, Standby: true})
	lease := newTestLease(time.Minute)
	if err := l.Promote(ctx, lease.until); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(1)})
	lease.endIn(400 * time.Millisecond)
	rem.mu.Lock()
	rem.addDelay = 5 * time.Second // the write outlives the lease
	rem.mu.Unlock()
	_, err := l.Append(ctx, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(2)})
	if !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("append whose write the lease's end cut off: %v, want ErrLeaseLost", err)
	}
	rem.mu.Lock()
	rem.addDelay = 0
	rem.mu.Unlock()
	l.Demote(err)
	waitFor(t, "the ledger rejoins as a standby", func() bool { return l.Failure() == nil && l.IsStandby() })
	if l.Size() != 1 {
		t.Errorf("size after the rejoin = %d, want 1", l.Size())
	}
}

// TestStandbyStartsWhileLeaderWrites: a standby that starts while the
// leader keeps committing leaves the remote has not integrated yet (a
// busy leader: there are always some) starts at the integrated size and
// follows the rest, instead of waiting for a moment with none.
func TestStandbyStartsWhileLeaderWrites(t *testing.T) {
	rem, keys := remoteAndKeys(t)
	leader := onRemote(t, rem, keys, false)
	mustAppend(t, leader, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(1)})
	if _, _, err := rem.Integrated(context.Background()); err != nil { // integrates entry 0
		t.Fatal(err)
	}
	rem.mu.Lock()
	rem.hold = true // committed from here on, not integrated
	rem.mu.Unlock()
	mustAppend(t, leader, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(2)})
	began := time.Now()
	standby := onRemote(t, rem, keys, true)
	if took := time.Since(began); took > 10*time.Second || standby.Size() != 1 {
		t.Fatalf("standby started in %v at size %d, want at once at the integrated size 1", took, standby.Size())
	}
	rem.mu.Lock()
	rem.hold = false
	rem.mu.Unlock()
	waitFor(t, "the standby follows the committed leaf once integrated", func() bool { return standby.Size() == 2 })
}

// onRemote returns a ledger on rem signing with keys — a standby if
// standby —, closed when the test ends (Close is idempotent).
func onRemote(t *testing.T, rem *memRemote, keys *Keys, standby bool) *Ledger {
	t.Helper()
	l, err := New(memstore.New(), keys, Options{Remote: rem, CheckpointInterval: -1, Standby: standby})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// testLease is a leader lease whose end a test moves.
type testLease struct {
	mu  sync.Mutex
	end time.Time
}

func newTestLease(d time.Duration) *testLease { return &testLease{end: time.Now().Add(d)} }

// until is the lease's end, as Promote wants it.
func (l *testLease) until() time.Time { l.mu.Lock(); defer l.mu.Unlock(); return l.end }

// endIn moves the lease's end to d from now.
func (l *testLease) endIn(d time.Duration) { l.mu.Lock(); l.end = time.Now().Add(d); l.mu.Unlock() }

// remoteAndKeys returns an empty memory remote and the keys of a log on it.
func remoteAndKeys(t *testing.T) (*memRemote, *Keys) {
	t.Helper()
	keys, _, err := NewKeys("test.example/ledger")
	if err != nil {
		t.Fatal(err)
	}
	return newMemRemote(), keys
}
