package ledger

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/consentledger/consentledger/ledger/storage"
	"github.com/consentledger/consentledger/ledger/storage/memstore"
	"github.com/consentledger/consentledger/ledger/subject"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// countingStore counts the reads of subjects' records (table rows, states,
// last sends); the sequencer reads them only while it sequences appends.
type countingStore struct {
	storage.Store
	gets atomic.Int64
}

func (c *countingStore) View(ctx context.Context, fn func(storage.ReadTx) error) error {
	return c.Store.View(ctx, func(tx storage.ReadTx) error { return fn(countingTx{tx, &c.gets}) })
}

type countingTx struct {
	storage.ReadTx
	n *atomic.Int64
}

func (t countingTx) Get(key []byte) ([]byte, error) {
	if len(key) > 0 && (key[0] == tabTable || key[0] == tabSubject || key[0] == tabLastSend) {
		t.n.Add(1)
	}
	return t.ReadTx.Get(key)
}

// newCountingLedger is newTestLedger on a store that counts its reads.
func newCountingLedger(t testing.TB, opts Options) (*Ledger, *countingStore) {
	t.Helper()
	keys, _, err := NewKeys("test.example/ledger")
	if err != nil {
		t.Fatal(err)
	}
	st := &countingStore{Store: memstore.New()}
	opts.CheckpointInterval = -1
	l, err := New(st, keys, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, st
}

// storeLookup is LookupSubject read from the store, bypassing the cache.
func storeLookup(t testing.TB, l *Ledger, id subject.Identifier) (string, *pb.SubjectState, bool) {
	t.Helper()
	var sid string
	var st *pb.SubjectState
	var found bool
	err := l.store.View(context.Background(), func(tx storage.ReadTx) error {
		raw, err := tx.Get(tableKey(subject.TableKey(l.keys.SubjectKey, id)))
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		sid, found = string(raw[32:]), true
		st, err = readSubject(tx, sid)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sid, st, found
}

// sameAsStore fails the test unless LookupSubject (and SubjectState) answer
// what the store holds.
func sameAsStore(t testing.TB, l *Ledger, id subject.Identifier, what string) {
	t.Helper()
	ctx := context.Background()
	sid, st, found, err := l.LookupSubject(ctx, id)
	if err != nil {
		t.Fatalf("%s: LookupSubject: %v", what, err)
	}
	wsid, wst, wfound := storeLookup(t, l, id)
	if sid != wsid || found != wfound || !proto.Equal(st, wst) {
		t.Fatalf("%s: LookupSubject = %s %v %v\nthe store holds %s %v %v", what, sid, found, st, wsid, wfound, wst)
	}
	if !found {
		return
	}
	byID, err := l.SubjectState(ctx, sid)
	if wst == nil {
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: SubjectState of a subject without state: %v, %v", what, byID, err)
		}
		return
	}
	if err != nil || !proto.Equal(byID, wst) {
		t.Fatalf("%s: SubjectState = %v, %v\nthe store holds %v", what, byID, err, wst)
	}
}

// Every step of a subject's life — a first decision, grants, allowed sends
// on two purposes, a withdrawal, a confirmation, erasure and a new opt-in —
// is seen by the next read exactly as the store holds it, whether the
// subject was cached before the step, cached only by subject_id, or not at
// all.
func TestStateCacheMatchesStore(t *testing.T) {
	sms, wa := pb.Channel_CHANNEL_SMS, pb.Channel_CHANNEL_WHATSAPP
	steps := []struct {
		name  string
		entry func() *pb.Entry
	}{
		{"a decision for an unknown subject", func() *pb.Entry { return decision(sms, "marketing", false) }},
		{"an allowed service send without consent", func() *pb.Entry { return decision(wa, "service", true) }},
		{"grant sms marketing", func() *pb.Entry { return grant(sms, "marketing") }},
		{"allowed sms marketing send", func() *pb.Entry { return decision(sms, "marketing", true) }},
		{"grant whatsapp service", func() *pb.Entry { return grant(wa, "service") }},
		{"allowed whatsapp service send", func() *pb.Entry { return decision(wa, "service", true) }},
		{"confirm sms marketing", func() *pb.Entry { return confirm(sms, "marketing") }},
		{"denied sms marketing send", func() *pb.Entry { return decision(sms, "marketing", false) }},
		{"withdraw sms", func() *pb.Entry { return withdraw(sms) }},
		{"erase", erase},
		{"grant again after erasure", func() *pb.Entry { return grant(sms, "marketing") }},
		{"allowed send after the new grant", func() *pb.Entry { return decision(sms, "marketing", true) }},
	}
	for _, mode := range []string{"cached", "by subject_id", "cold"} {
		t.Run(mode, func(t *testing.T) {
			l, _, _ := newTestLedger(t, Options{})
			ctx := context.Background()
			id := *phone(1)
			for _, s := range steps {
				switch mode {
				case "cached":
					l.LookupSubject(ctx, id)
				case "by subject_id":
					l.states.reset()
					if sid, _, found := storeLookup(t, l, id); found {
						l.SubjectState(ctx, sid)
					}
				case "cold":
					l.states.reset()
				}
				mustAppend(t, l, &Request{Entry: s.entry(), Subject: &id})
				sameAsStore(t, l, id, s.name)
				sameAsStore(t, l, id, s.name+", read again")
			}
		})
	}
}

// A subject whose state is cached is read without reading the store.
func TestStateCacheNoStoreRead(t *testing.T) {
	l, st := newCountingLedger(t, Options{})
	ctx := context.Background()
	const n = 50
	for i := range n {
		mustAppend(t, l, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(i)})
		mustAppend(t, l, &Request{Entry: decision(pb.Channel_CHANNEL_SMS, "marketing", true), Subject: phone(i)})
	}
	before := st.gets.Load()
	for range 3 {
		for i := range n {
			_, s, found, err := l.LookupSubject(ctx, *phone(i))
			if err != nil || !found || s.GetLastAllowedSend() == nil || s.Consents[0].LastAllowedSend == nil {
				t.Fatalf("subject %d: %v %v %v", i, s, found, err)
			}
		}
	}
	if got := st.gets.Load() - before; got != 0 {
		t.Errorf("%d reads of subject records for %d lookups of subjects created while the cache watched, want 0", got, 3*n)
	}

	// Subjects read once from the store are then served from the cache.
	l.states.reset()
	before = st.gets.Load()
	for range 3 {
		for i := range n {
			l.LookupSubject(ctx, *phone(i))
		}
	}
	// One read each: table row, state, the consent's and the subject's
	// last send.
	if got := st.gets.Load() - before; got != 4*n {
		t.Errorf("%d reads of subject records for %d lookups of %d subjects, want 4 each, once", got, 3*n, n)
	}

	// Without the cache every lookup reads the store.
	nc, st2 := newCountingLedger(t, Options{StateCache: -1})
	mustAppend(t, nc, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(1)})
	before = st2.gets.Load()
	for range 3 {
		nc.LookupSubject(ctx, *phone(1))
	}
	if got := st2.gets.Load() - before; got != 3*4 {
		t.Errorf("StateCache -1: %d reads of subject records for 3 lookups, want 4 each", got)
	}
}

// A value read from the store before a commit that the cache has applied
// is not installed: it would be older than an acknowledged entry.
func TestStateCacheRefusesStaleFill(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{})
	ctx := context.Background()
	id := *phone(3)
	mustAppend(t, l, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: &id})
	l.states.reset()

	// A reader misses and reads the store: the subject is opted in.
	tk := tableKey(subject.TableKey(l.keys.SubjectKey, id))
	gen, _, _, ok := l.states.lookup(tk, "")
	if ok {
		t.Fatal("the subject is cached after reset")
	}
	sid, _, _ := storeLookup(t, l, id)
	var stale *cachedSubject
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		stale, err = loadSubject(tx, sid)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	stale.table = string(tk)

	// The opt-out is acknowledged before the reader fills the cache.
	out := mustAppend(t, l, &Request{Entry: withdraw(pb.Channel_CHANNEL_SMS), Subject: &id})
	l.states.install(gen, stale, DefaultStateCache)

	_, st, _, err := l.LookupSubject(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Head.GetIndex() != out.Index || st.Consents[0].Status != StatusWithdrawn {
		t.Fatalf("after an acknowledged opt-out (entry %d) the state read is %v", out.Index, st)
	}
}

// Erasure removes the subject from the cache: nothing links the person's
// table key to the subject_id any more.
func TestStateCacheErasure(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{})
	ctx := context.Background()
	id := *phone(4)
	g := mustAppend(t, l, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: &id})
	if _, _, found, _ := l.LookupSubject(ctx, id); !found {
		t.Fatal("granted subject not found")
	}
	mustAppend(t, l, &Request{Entry: erase(), Subject: &id})
	tk := tableKey(subject.TableKey(l.keys.SubjectKey, id))
	l.states.mu.RLock()
	_, byTable := l.states.byTable[string(tk)]
	_, bySID := l.states.bySID[g.SubjectID]
	l.states.mu.RUnlock()
	if byTable || bySID {
		t.Errorf("after erasure the cache still holds the subject (by table key: %v, by subject_id: %v)", byTable, bySID)
	}
	if _, _, found, _ := l.LookupSubject(ctx, id); found {
		t.Error("the erased subject is found by its phone number")
	}
	sameAsStore(t, l, id, "after erasure")
}

// The cache holds at most StateCache subjects and still answers every
// subject as the store holds it.
func TestStateCacheBounded(t *testing.T) {
	const max, n = 40, 300
	l, _, _ := newTestLedger(t, Options{StateCache: max})
	ctx := context.Background()
	for i := range n {
		mustAppend(t, l, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(i)})
		if got := l.states.len(); got > max {
			t.Fatalf("%d subjects cached, the bound is %d", got, max)
		}
	}
	for i := range n {
		mustAppend(t, l, &Request{Entry: decision(pb.Channel_CHANNEL_SMS, "marketing", true), Subject: phone(i)})
		sameAsStore(t, l, *phone((i * 7) % n), fmt.Sprintf("subject %d", (i*7)%n))
		if got := l.states.len(); got > max {
			t.Fatalf("%d subjects cached, the bound is %d", got, max)
		}
	}
	if _, _, found, _ := l.LookupSubject(ctx, *phone(n - 1)); !found {
		t.Fatal("last subject not found")
	}
}

// RebuildState empties the cache; reads then match the rebuilt index.
func TestStateCacheRebuild(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{})
	ctx := context.Background()
	for i := range 10 {
		mustAppend(t, l, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(i)})
		mustAppend(t, l, &Request{Entry: decision(pb.Channel_CHANNEL_SMS, "marketing", true), Subject: phone(i)})
		l.LookupSubject(ctx, *phone(i))
	}
	if err := l.RebuildState(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := l.states.len(); n != 0 {
		t.Errorf("%d subjects cached after RebuildState, want none", n)
	}
	for i := range 10 {
		sameAsStore(t, l, *phone(i), fmt.Sprintf("subject %d after rebuild", i))
	}
}

// A read right after an acknowledged opt-out, grant or allowed send sees
// it, while other goroutines append decisions for the same subjects and
// read them (with a cache small enough that subjects are evicted and read
// from the store again all the time, and with the default bound). Run it
// with -race.
func TestStateCacheReadAfterAck(t *testing.T) {
	for _, size := range []int{3, 0} {
		t.Run(fmt.Sprintf("StateCache=%d", size), func(t *testing.T) {
			l, _, _ := newTestLedger(t, Options{StateCache: size})
			ctx := context.Background()
			const owners, perOwner = 4, 4
			for i := range owners * perOwner {
				mustAppend(t, l, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(i)})
			}
			stop := make(chan struct{})
			var bg sync.WaitGroup
			// Background: allowed decisions and reads on every subject.
			for w := range 4 {
				bg.Go(func() {
					rnd := rand.New(rand.NewPCG(uint64(w), 7))
					for {
						select {
						case <-stop:
							return
						default:
						}
						p := phone(rnd.IntN(owners * perOwner))
						if w%2 == 0 {
							r, err := l.Append(ctx, &Request{Entry: decision(pb.Channel_CHANNEL_SMS, "marketing", true), Subject: p})
							if err != nil {
								t.Error(err)
								return
							}
							_, st, _, err := l.LookupSubject(ctx, *p)
							if err != nil || st.GetLastAllowedSend().GetIndex() < r.Index {
								t.Errorf("after the allowed send at %d was acknowledged, the last allowed send read is %v (%v)", r.Index, st.GetLastAllowedSend(), err)
								return
							}
						} else if _, _, _, err := l.LookupSubject(ctx, *p); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			// Owners: each alone changes its subjects' consent, and reads
			// right after each acknowledgement.
			var wg sync.WaitGroup
			for o := range owners {
				wg.Go(func() {
					rnd := rand.New(rand.NewPCG(uint64(o), 11))
					for n := range 150 {
						p := phone(o*perOwner + rnd.IntN(perOwner))
						e, want := withdraw(pb.Channel_CHANNEL_SMS), StatusWithdrawn
						if n%2 == 1 {
							e, want = grant(pb.Channel_CHANNEL_SMS, "marketing"), StatusGranted
						}
						r, err := l.Append(ctx, &Request{Entry: e, Subject: p})
						if err != nil {
							t.Error(err)
							return
						}
						_, st, _, err := l.LookupSubject(ctx, *p)
						if err != nil {
							t.Error(err)
							return
						}
						if st.GetHead().GetIndex() != r.Index || st.Consents[0].Status != want {
							t.Errorf("right after entry %d (%s) was acknowledged, the subject's head is %d and its status %q", r.Index, want, st.GetHead().GetIndex(), st.Consents[0].Status)
							return
						}
					}
				})
			}
			wg.Wait()
			close(stop)
			bg.Wait()
			for i := range owners * perOwner {
				sameAsStore(t, l, *phone(i), fmt.Sprintf("subject %d at the end", i))
			}
		})
	}
}

// BenchmarkLookupSubject reads the state of 10,000 subjects, each with a
// consent and an allowed send, from a ledger on disk, with the state cache
// and without.
func BenchmarkLookupSubject(b *testing.B) {
	const n = 10000
	for _, tc := range []struct {
		name  string
		cache int
	}{{"cache=off", -1}, {"cache=on", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			l, err := Open(b.TempDir(), Options{StateCache: tc.cache, CheckpointInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ctx := context.Background()
			for i := 0; i < n; i += 100 {
				var reqs []*Request
				for j := i; j < i+100; j++ {
					reqs = append(reqs, &Request{Entry: grant(pb.Channel_CHANNEL_WHATSAPP, "marketing"), Subject: phone(j)},
						&Request{Entry: benchDecision(), Subject: phone(j)})
				}
				if _, err := l.AppendBatch(ctx, reqs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			defer func() {
				b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
			}()
			b.RunParallel(func(p *testing.PB) {
				rnd := rand.New(rand.NewPCG(rand.Uint64(), 3))
				for p.Next() {
					if _, _, found, err := l.LookupSubject(ctx, *phone(rnd.IntN(n))); err != nil || !found {
						b.Errorf("LookupSubject: %v %v", found, err)
						return
					}
				}
			})
		})
	}
}

// cpuTime returns the process's user and system CPU time so far: on a
// machine shared with other work, a steadier figure than the elapsed time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
