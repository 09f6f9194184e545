package trillianlog_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentledger/consentledger/internal/trilliantest"
	"github.com/consentledger/consentledger/ledger/trillianlog"
)

// leaseTTL keeps the lease tests fast.
const leaseTTL = time.Second

// newTreeConfig initialises a tree (and our tables, in a database of the
// test's own) on env.
func newTreeConfig(t *testing.T, env *trilliantest.Env) trillianlog.Config {
	t.Helper()
	dsn := env.NewDatabase(t)
	// Bounded: Trillian's client retries creating a tree for ever.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tree, err := trillianlog.Init(ctx, env.LogAddr, dsn)
	if err != nil {
		t.Fatalf("create a tree: %v\n%s", err, env.Logs())
	}
	return trillianlog.Config{Trillian: env.LogAddr, Tree: tree, SQL: dsn}
}

// openLog opens cfg as one node does; each node has its own Log.
func openLog(t *testing.T, cfg trillianlog.Config) *trillianlog.Log {
	t.Helper()
	l, err := trillianlog.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// node is a Lease of its own Log, with the test's TTL.
func node(t *testing.T, cfg trillianlog.Config, name string, now func() time.Time) *trillianlog.Lease {
	t.Helper()
	return openLog(t, cfg).Lease(name, "https://"+name+".example:8443", trillianlog.LeaseOptions{TTL: leaseTTL, Now: now})
}

func acquire(t *testing.T, s *trillianlog.Lease) trillianlog.AcquireResult {
	t.Helper()
	res, err := s.TryAcquire(context.Background())
	if err != nil {
		t.Fatalf("TryAcquire: %v", err)
	}
	return res
}

// TestLeaseOneHolder: of two nodes, one takes the lease; the other sees its
// name, URL and term, and cannot take it while the holder renews, even for
// several TTLs; the first leader has no fence to wait.
func TestLeaseOneHolder(t *testing.T) {
	env := trilliantest.Shared(t)
	cfg := newTreeConfig(t, env)
	ctx := context.Background()
	a, b := node(t, cfg, "a", nil), node(t, cfg, "b", nil)

	h, err := b.Holder(ctx)
	if err != nil || h.Node != "" || h.Term != 0 {
		t.Fatalf("Holder before any leader = %+v, %v; want none", h, err)
	}
	if d := a.Deadline(); !d.IsZero() {
		t.Errorf("Deadline before acquiring = %v, want zero (no write may start)", d)
	}
	ra := acquire(t, a)
	if !ra.Acquired || ra.Term != 1 || ra.HadPrevious() || ra.Holder.Node != "a" {
		t.Fatalf("first TryAcquire = %+v; want acquired, term 1, no previous holder", ra)
	}
	if f := ra.FenceUntil(time.Second, time.Second); !f.Equal(ra.LocalNow) {
		t.Errorf("FenceUntil for the first leader = %v, want LocalNow %v (no wait)", f, ra.LocalNow)
	}
	if got, want := ra.Holder.Expires.Sub(ra.DBNow), leaseTTL; got != want {
		t.Errorf("expiry − DBNow = %v, want the TTL %v", got, want)
	}
	// Deadline errs early: before the database's expiry, a third of the TTL
	// before the local estimate.
	if d := a.Deadline(); d.IsZero() || !d.Before(ra.LocalNow.Add(leaseTTL-leaseTTL/3)) || d.Before(ra.LocalNow.Add(-leaseTTL)) {
		t.Errorf("Deadline = %v, want about %v after the acquisition at %v", a.Deadline(), leaseTTL-leaseTTL/3, ra.LocalNow)
	}

	end := time.Now().Add(2 * leaseTTL)
	for time.Now().Before(end) {
		before := a.Deadline()
		exp, err := a.Renew(ctx)
		if err != nil {
			t.Fatalf("Renew: %v", err)
		}
		if !a.Deadline().After(before) || !a.Deadline().Equal(exp.Add(-leaseTTL/3)) {
			t.Errorf("after Renew: Deadline %v (was %v), expiry %v", a.Deadline(), before, exp)
		}
		rb := acquire(t, b)
		if rb.Acquired || rb.Holder.Node != "a" || rb.Holder.URL != "https://a.example:8443" || rb.Holder.Term != 1 || rb.Holder.Expired() {
			t.Fatalf("TryAcquire while a renews = %+v; want a holding, not expired", rb)
		}
		time.Sleep(leaseTTL / 4)
	}
	h, err = b.Holder(ctx)
	if err != nil || h.Node != "a" || h.URL != "https://a.example:8443" || h.Term != 1 || h.Expired() {
		t.Errorf("Holder = %+v, %v; want a, term 1, live", h, err)
	}
}

// TestLeaseTakeover: once the holder stops renewing, another node takes the
// lease only after it expired by the database's clock, with term+1 and the
// previous expiry; the old holder's Renew then fails with ErrLeaseLost, and
// its Release does not touch the new lease.
func TestLeaseTakeover(t *testing.T) {
	env := trilliantest.Shared(t)
	cfg := newTreeConfig(t, env)
	ctx := context.Background()
	a, b := node(t, cfg, "a", nil), node(t, cfg, "b", nil)
	acquire(t, a)
	lastRenew := time.Now()
	if _, err := a.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := a.Holder(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// a stops renewing: b polls.
	var rb trillianlog.AcquireResult
	for tries := 0; !rb.Acquired; tries++ {
		if tries > 200 {
			t.Fatalf("b did not take an expired lease: %+v", rb)
		}
		rb = acquire(t, b)
		if !rb.Acquired && (rb.Holder.Node != "a" || rb.Holder.Expired()) {
			t.Fatalf("TryAcquire refused with %+v; want a live lease of a", rb)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rb.LocalNow.Before(lastRenew.Add(leaseTTL)) {
		t.Errorf("b took the lease at %v, %v after a's last renewal: before the TTL %v", rb.LocalNow, rb.LocalNow.Sub(lastRenew), leaseTTL)
	}
	if !rb.DBNow.After(h.Expires) {
		t.Errorf("b took the lease at %v by the database's clock, not after a's expiry %v", rb.DBNow, h.Expires)
	}
	if rb.Term != 2 || !rb.HadPrevious() || rb.Previous.Node != "a" || rb.Previous.Term != 1 || !rb.Previous.Expires.Equal(h.Expires) {
		t.Errorf("takeover = %+v; want term 2, previous a (term 1) expiring at %v", rb, h.Expires)
	}
	// The fence: the previous expiry + TTL + write timeout + margin, in local time.
	wt, margin := 500*time.Millisecond, 250*time.Millisecond
	fence := rb.FenceUntil(wt, margin)
	if since := rb.DBNow.Sub(h.Expires); !fence.Equal(rb.LocalNow.Add(leaseTTL + wt + margin - since)) {
		t.Errorf("FenceUntil = %v; want LocalNow %v + %v", fence, rb.LocalNow, leaseTTL+wt+margin-since)
	}
	if fence.Before(lastRenew.Add(2*leaseTTL + wt + margin)) {
		t.Errorf("FenceUntil = %v, earlier than a's last renewal + 2 TTL + write timeout + margin (%v)", fence, lastRenew.Add(2*leaseTTL+wt+margin))
	}
	if long := (trillianlog.AcquireResult{Acquired: true, TTL: leaseTTL, Previous: trillianlog.Holder{Term: 1, Expires: rb.DBNow.Add(-time.Hour)}, DBNow: rb.DBNow, LocalNow: rb.LocalNow}); !long.FenceUntil(wt, margin).Equal(rb.LocalNow) {
		t.Errorf("FenceUntil after a lease that ended an hour ago = %v, want no wait", long.FenceUntil(wt, margin))
	}

	if _, err := a.Renew(ctx); !errors.Is(err, trillianlog.ErrLeaseLost) {
		t.Fatalf("the old holder's Renew = %v, want ErrLeaseLost", err)
	}
	if d := a.Deadline(); !d.IsZero() {
		t.Errorf("the old holder's Deadline = %v, want zero", d)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if h, err := b.Holder(ctx); err != nil || h.Node != "b" || h.Term != 2 || h.Expired() {
		t.Errorf("after the old holder's Release: %+v, %v; want b's live lease", h, err)
	}
	if _, err := b.Renew(ctx); err != nil {
		t.Errorf("the new holder's Renew: %v", err)
	}
}

// TestLeaseRelease: a released lease is taken at once (no TTL wait), and the
// previous expiry is the release's moment.
func TestLeaseRelease(t *testing.T) {
	env := trilliantest.Shared(t)
	cfg := newTreeConfig(t, env)
	ctx := context.Background()
	a, b := node(t, cfg, "a", nil), node(t, cfg, "b", nil)
	acquire(t, a)
	if rb := acquire(t, b); rb.Acquired {
		t.Fatal("b took a held lease")
	}
	released := time.Now()
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if d := a.Deadline(); !d.IsZero() {
		t.Errorf("Deadline after Release = %v, want zero", d)
	}
	rb := acquire(t, b)
	if !rb.Acquired || rb.Term != 2 || rb.Previous.Term != 1 || rb.Previous.Node != "" {
		t.Fatalf("TryAcquire right after Release = %+v; want acquired, term 2, previous term 1 released (holder cleared)", rb)
	}
	if f := rb.FenceUntil(time.Second, time.Second); !f.Equal(rb.LocalNow) {
		t.Errorf("fence after a clean release = %v, want none (%v): the released node's last write had returned", f, rb.LocalNow)
	}
	if took := time.Since(released); took > leaseTTL/2 {
		t.Errorf("the handover took %v; want well under the TTL %v", took, leaseTTL)
	}
	if !rb.Previous.Expires.Before(rb.DBNow) || rb.DBNow.Sub(rb.Previous.Expires) > leaseTTL/2 {
		t.Errorf("previous expiry %v, acquisition %v: want the release's moment", rb.Previous.Expires, rb.DBNow)
	}
	if _, err := a.Renew(ctx); !errors.Is(err, trillianlog.ErrLeaseLost) {
		t.Errorf("Renew after Release = %v, want ErrLeaseLost", err)
	}
}

// TestLeaseSameNodeOldTerm: a restarted process with the same node name
// takes over only after its earlier incarnation's lease expired, and the
// earlier incarnation (same name, old term) can then neither renew nor
// release the new lease.
func TestLeaseSameNodeOldTerm(t *testing.T) {
	env := trilliantest.Shared(t)
	cfg := newTreeConfig(t, env)
	ctx := context.Background()
	old, cur := node(t, cfg, "n", nil), node(t, cfg, "n", nil)
	acquire(t, old)
	if r := acquire(t, cur); r.Acquired || r.Holder.Node != "n" || r.Holder.Term != 1 {
		t.Fatalf("the new incarnation's TryAcquire during the old lease = %+v; want refused", r)
	}
	var r trillianlog.AcquireResult
	for tries := 0; !r.Acquired; tries++ {
		if tries > 200 {
			t.Fatal("the lease never expired")
		}
		time.Sleep(20 * time.Millisecond)
		r = acquire(t, cur)
	}
	if r.Term != 2 || r.Previous.Node != "n" || r.Previous.Term != 1 {
		t.Fatalf("takeover = %+v; want term 2 after n's term 1", r)
	}
	if _, err := old.Renew(ctx); !errors.Is(err, trillianlog.ErrLeaseLost) {
		t.Fatalf("Renew of term 1 = %v, want ErrLeaseLost", err)
	}
	if err := old.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if h, err := cur.Holder(ctx); err != nil || h.Term != 2 || h.Expired() {
		t.Errorf("after term 1's Release: %+v, %v; want term 2 live", h, err)
	}
	if _, err := cur.Renew(ctx); err != nil {
		t.Errorf("Renew of term 2: %v", err)
	}
}

// TestLeaseClockSkew: a node whose clock is 2 s off does not take the lease
// (ErrClockSkew, SkewRefused, with the holder reported), even when it is
// free; a node with a correct clock does.
func TestLeaseClockSkew(t *testing.T) {
	env := trilliantest.Shared(t)
	cfg := newTreeConfig(t, env)
	ctx := context.Background()
	h := node(t, cfg, "h", nil)
	hTerm := acquire(t, h).Term
	for _, off := range []time.Duration{2 * time.Second, -2 * time.Second} {
		skewed := node(t, cfg, "skewed", func() time.Time { return time.Now().Add(off) })
		r, err := skewed.TryAcquire(ctx)
		if !errors.Is(err, trillianlog.ErrClockSkew) || !r.SkewRefused || r.Acquired {
			t.Fatalf("clock %v off: TryAcquire = %+v, %v; want refused with ErrClockSkew", off, r, err)
		}
		if !strings.Contains(err.Error(), "NTP") {
			t.Errorf("the skew error does not say what to do: %v", err)
		}
		if d := (r.Skew + off).Abs(); d > 200*time.Millisecond {
			t.Errorf("clock %v off: measured skew %v", off, r.Skew)
		}
		if r.Holder.Node != "h" || r.Holder.URL != "https://h.example:8443" || r.Holder.Term != hTerm {
			t.Errorf("clock %v off: holder reported %+v, want h (term %d)", off, r.Holder, hTerm)
		}
		// Free, it is still refused.
		if err := h.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if r, err := skewed.TryAcquire(ctx); !errors.Is(err, trillianlog.ErrClockSkew) || r.Acquired {
			t.Fatalf("clock %v off, lease free: TryAcquire = %+v, %v; want refused", off, r, err)
		}
		if hh, err := h.Holder(ctx); err != nil || hh.Node != "" || hh.Term != hTerm || !hh.Expired() {
			t.Fatalf("after the skewed node's attempt: %+v, %v; want h's released lease untouched", hh, err)
		}
		r = acquire(t, h)
		if !r.Acquired {
			t.Fatalf("a correct clock could not take the free lease: %+v", r)
		}
		hTerm = r.Term
	}
	// Within the bound (100 ms off): accepted.
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	near := node(t, cfg, "near", func() time.Time { return time.Now().Add(100 * time.Millisecond) })
	if r := acquire(t, near); !r.Acquired || r.SkewRefused {
		t.Errorf("a clock 100 ms off: %+v; want acquired (MaxSkew is 500 ms)", r)
	}
}

// TestLeaseOneWinner: of many nodes trying at once on a free lease, exactly
// one takes it.
func TestLeaseOneWinner(t *testing.T) {
	env := trilliantest.Shared(t)
	cfg := newTreeConfig(t, env)
	log := openLog(t, cfg)
	const n = 8
	results := make([]trillianlog.AcquireResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		s := log.Lease(string(rune('a'+i)), "", trillianlog.LeaseOptions{TTL: leaseTTL})
		wg.Go(func() { results[i], errs[i] = s.TryAcquire(context.Background()) })
	}
	wg.Wait()
	winners := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Errorf("node %d: %v", i, errs[i])
		}
		if r.Acquired {
			winners++
			if r.Term != 1 {
				t.Errorf("winner's term %d, want 1", r.Term)
			}
		}
	}
	if winners != 1 {
		t.Errorf("%d nodes took the lease, want exactly 1", winners)
	}
}

// TestLeaseBadNode: a lease needs a node name that fits its column.
func TestLeaseBadNode(t *testing.T) {
	env := trilliantest.Shared(t)
	log := openLog(t, newTreeConfig(t, env))
	for _, name := range []string{"", strings.Repeat("n", 256)} {
		if r, err := log.Lease(name, "", trillianlog.LeaseOptions{}).TryAcquire(context.Background()); err == nil || r.Acquired {
			t.Errorf("node name of %d bytes: %+v, %v; want an error", len(name), r, err)
		}
	}
	if _, err := log.Lease("n", strings.Repeat("u", 1025), trillianlog.LeaseOptions{}).TryAcquire(context.Background()); err == nil {
		t.Error("a 1025-byte URL was accepted")
	}
	s := log.Lease("n", "", trillianlog.LeaseOptions{})
	if s.TTL() != trillianlog.DefaultLeaseTTL {
		t.Errorf("default TTL %v, want %v", s.TTL(), trillianlog.DefaultLeaseTTL)
	}
}

// TestLeaseTableOnOpen: Open adds the lease table to a database initialised
// before it existed.
func TestLeaseTableOnOpen(t *testing.T) {
	env := trilliantest.Shared(t)
	cfg := newTreeConfig(t, env)
	db, err := sql.Open("mysql", cfg.SQL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("DROP TABLE consentledger_lease"); err != nil {
		t.Fatal(err)
	}
	s := node(t, cfg, "a", nil)
	if r := acquire(t, s); !r.Acquired {
		t.Fatalf("TryAcquire on a database from before leases: %+v", r)
	}
}

// TestLeaseRenewWithMariaDBStopped: with the database down, Renew fails with
// ErrLeaseLost (never a success), the lease stays lost once the database is
// back, and TryAcquire takes a new term after the expiry.
func TestLeaseRenewWithMariaDBStopped(t *testing.T) {
	env := trilliantest.Start(t) // its own servers: this test stops MariaDB
	cfg := newTreeConfig(t, env)
	ctx := context.Background()
	a := node(t, cfg, "a", nil)
	acquire(t, a)
	if _, err := a.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	env.StopMariaDB()
	exp, err := a.Renew(ctx)
	if !errors.Is(err, trillianlog.ErrLeaseLost) || !exp.IsZero() {
		t.Fatalf("Renew with MariaDB stopped = %v, %v; want ErrLeaseLost", exp, err)
	}
	if d := a.Deadline(); !d.IsZero() {
		t.Errorf("Deadline after a failed renewal = %v, want zero", d)
	}
	if _, err := a.Holder(ctx); err == nil {
		t.Error("Holder with MariaDB stopped succeeded")
	}
	if r, err := a.TryAcquire(ctx); err == nil || r.Acquired {
		t.Errorf("TryAcquire with MariaDB stopped = %+v, %v; want an error", r, err)
	}
	env.StartMariaDB(t)
	if _, err := a.Renew(ctx); !errors.Is(err, trillianlog.ErrLeaseLost) {
		t.Errorf("Renew once MariaDB is back = %v; want ErrLeaseLost (lost stays lost)", err)
	}
	var r trillianlog.AcquireResult
	for tries := 0; !r.Acquired; tries++ {
		if tries > 200 {
			t.Fatalf("the lease was not taken again: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
		r = acquire(t, a)
	}
	if r.Term != 2 || r.Previous.Term != 1 {
		t.Errorf("re-acquired %+v; want term 2", r)
	}
}

// TestLeaseRenewAfterExpiry: a holder that did not renew within the TTL
// cannot renew any more, even when no other node took the lease; it must
// take a new term.
func TestLeaseRenewAfterExpiry(t *testing.T) {
	env := trilliantest.Shared(t)
	cfg := newTreeConfig(t, env)
	a := node(t, cfg, "a", nil)
	acquire(t, a)
	time.Sleep(leaseTTL + 100*time.Millisecond)
	if _, err := a.Renew(context.Background()); !errors.Is(err, trillianlog.ErrLeaseLost) {
		t.Fatalf("Renew after the expiry = %v, want ErrLeaseLost", err)
	}
	if r := acquire(t, a); !r.Acquired || r.Term != 2 || r.Previous.Node != "a" {
		t.Errorf("TryAcquire after the expiry = %+v; want term 2", r)
	}
}
