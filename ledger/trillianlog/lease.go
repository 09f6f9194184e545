package trillianlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// The leader lease is one row per tree in consentledger_lease. Every
// comparison and every expiry is computed by the database with its own
// clock (UTC_TIMESTAMP(6): NOW(6) in UTC, so sessions with different
// time_zone settings, and daylight-saving changes, cannot disagree), and
// every change is one conditional UPDATE, so InnoDB's row lock decides who
// holds the lease: two nodes can never both take it.
const leaseSchema = `CREATE TABLE IF NOT EXISTS consentledger_lease (
		tree_id BIGINT NOT NULL PRIMARY KEY,
		holder VARCHAR(255) NOT NULL,
		url VARCHAR(1024) NOT NULL,
		term BIGINT NOT NULL,
		expires_at DATETIME(6) NOT NULL
	)`

// dbMicros reads a DATETIME(6) as microseconds since the Unix epoch,
// whatever the session's time zone and the driver's parseTime setting.
func dbMicros(col string) string {
	return "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', " + col + ")"
}

// fromMicros is the UTC time of a dbMicros value.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// ErrLeaseLost is returned by Renew when the lease is no longer this
// node's: another node took it, it expired by the database's clock, or the
// database could not be reached to extend it. The node must stop writing at
// once and become a standby; only TryAcquire (a new term) makes it leader
// again.
var ErrLeaseLost = errors.New("the leader lease is lost")

// ErrClockSkew is returned (wrapped, with the figures) by TryAcquire when
// the local clock may differ from the database's by more than
// LeaseOptions.MaxSkew: such a node must not lead, since the recorded_at of
// its entries and the policies' "now" would disagree with the log's order.
var ErrClockSkew = errors.New("the local clock differs from the database's")

// LeaseOptions configures a Lease. Every node of a tree must use the same
// TTL: a new leader's fence (AcquireResult.FenceUntil) assumes it.
type LeaseOptions struct {
	// TTL is the lease's length: a lease not renewed for TTL expires, by
	// the database's clock. Default 3 s; renew about every TTL/3.
	TTL time.Duration
	// MaxSkew is the largest difference between the local clock and the
	// database's that TryAcquire accepts (the measured skew plus its
	// uncertainty, half a round trip). Default 500 ms.
	MaxSkew time.Duration
	// Now is the local clock; default time.Now. Tests give a skewed one.
	Now func() time.Time
}

// Default lease settings (see LeaseOptions).
const (
	DefaultLeaseTTL     = 3 * time.Second
	DefaultLeaseMaxSkew = 500 * time.Millisecond
)

// maxNodeLen and maxURLLen are the lease columns' sizes.
const (
	maxNodeLen = 255
	maxURLLen  = 1024
)

// Lease is one node's handle on the tree's leader lease. Its methods are
// safe for concurrent use (a renewal loop and a writer checking Deadline).
//
// The lifecycle: a standby calls TryAcquire about every second; once it
// acquires, it waits until AcquireResult.FenceUntil before its first write,
// calls Renew about every TTL/3, and gives every write a deadline no later
// than Deadline. When Renew fails the node stops writing and goes back to
// TryAcquire. On a clean shutdown, after its last write returned, it calls
// Release.
type Lease struct {
	db   *sql.DB
	tree int64
	node string
	url  string
	ttl  time.Duration
	skew time.Duration
	now  func() time.Time

	mu      sync.Mutex
	term    int64     // the term held (or last held, for Release); 0: never acquired
	held    bool      // false once Renew failed or Release ran
	expires time.Time // local-clock estimate of the expiry, never later than the real one
}

// Lease returns node's handle on the tree's leader lease. node names the
// process (unique per running process: a restarted node may keep its name,
// since terms tell incarnations apart) and url is where other nodes and
// clients reach it (--advertise). It does not touch the database.
func (l *Log) Lease(node, url string, opts LeaseOptions) *Lease {
	if opts.TTL <= 0 {
		opts.TTL = DefaultLeaseTTL
	}
	if opts.MaxSkew <= 0 {
		opts.MaxSkew = DefaultLeaseMaxSkew
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Lease{db: l.db, tree: l.cfg.Tree, node: node, url: url, ttl: opts.TTL, skew: opts.MaxSkew, now: opts.Now}
}

// TTL is the lease's length (LeaseOptions.TTL with its default applied).
func (s *Lease) TTL() time.Duration { return s.ttl }

// Holder is the lease row as the database holds it.
type Holder struct {
	// Node is the holder's node name; empty when no node ever held the
	// lease of this tree.
	Node string
	// URL is the holder's advertised URL.
	URL string
	// Term counts the acquisitions of the lease; 0 when never held.
	Term int64
	// Expires is the lease's expiry by the database's clock (UTC).
	Expires time.Time
	// DBNow is the database's clock when the row was read (UTC).
	DBNow time.Time
}

// Expired reports whether the lease had expired, by the database's clock,
// when the row was read: the holder is then no longer the leader.
func (h Holder) Expired() bool { return h.Expires.Before(h.DBNow) }

// AcquireResult is what TryAcquire found and did.
type AcquireResult struct {
	// Acquired reports whether this node took the lease.
	Acquired bool
	// Term is the new term when Acquired.
	Term int64
	// Holder is the lease row after the attempt: this node when Acquired,
	// else the node holding (or last holding) the lease.
	Holder Holder
	// Previous is the row this node replaced when Acquired: Previous.Term
	// is 0 when no node held the lease before, and Previous.Expires is the
	// previous lease's expiry by the database's clock (a Release moves it
	// to the release's time).
	Previous Holder
	// DBNow is the database's clock when the lease was taken (or read).
	DBNow time.Time
	// LocalNow is the local clock when the database's answer arrived; it
	// is at or after the instant DBNow names.
	LocalNow time.Time
	// TTL is the lease's length.
	TTL time.Duration
	// Skew is the measured difference database clock − local clock, and
	// SkewUncertainty its uncertainty (half the round trip).
	Skew, SkewUncertainty time.Duration
	// SkewRefused reports that the lease was not tried because the clocks
	// may differ by more than LeaseOptions.MaxSkew (TryAcquire then also
	// returns an error wrapping ErrClockSkew).
	SkewRefused bool
}

// HadPrevious reports whether a node held the lease before this one took it.
func (r AcquireResult) HadPrevious() bool { return r.Acquired && r.Previous.Term > 0 }

// FenceUntil returns the local-clock time before which a new leader must
// not write: the previous lease's expiry (database clock) plus the lease's
// length plus writeTimeout (the longest an AddSequencedLeaves call may take,
// i.e. the gRPC deadline a leader gives each write) plus margin. The
// previous leader's last write had a deadline before its lease ended, but
// Trillian may still commit it a little later, and Trillian's index refusal
// is no fence (a stale writer's batch half-commits), so only waiting
// fences it out. It returns LocalNow (no wait) when no node held the lease
// before, or when the previous lease ended long enough ago.
//
// The database time is converted with the acquisition's own readings
// (LocalNow − DBNow), which does not depend on the skew between the clocks:
// LocalNow is taken after the database's answer arrived, so the result errs
// late, never early.
func (r AcquireResult) FenceUntil(writeTimeout, margin time.Duration) time.Time {
	if !r.HadPrevious() || r.Previous.Node == "" {
		// No previous holder, or one that released the lease after its
		// last write returned (Release clears the holder): no fence.
		return r.LocalNow
	}
	wait := r.Previous.Expires.Add(r.TTL + writeTimeout + margin).Sub(r.DBNow)
	if wait <= 0 {
		return r.LocalNow
	}
	return r.LocalNow.Add(wait)
}

// MeasureSkew measures the difference database clock − local clock, with
// its uncertainty (half the round trip), as the best of three readings.
func (s *Lease) MeasureSkew(ctx context.Context) (skew, uncertainty time.Duration, err error) {
	best := time.Duration(-1)
	for range 3 {
		var us int64
		t0 := s.now()
		if err := s.db.QueryRowContext(ctx, "SELECT "+dbMicros("UTC_TIMESTAMP(6)")).Scan(&us); err != nil {
			return 0, 0, fmt.Errorf("read the database's clock: %w", err)
		}
		t1 := s.now()
		rtt := t1.Sub(t0)
		if best < 0 || rtt < best {
			best = rtt
			mid := t0.Add(rtt / 2)
			skew = fromMicros(us).Sub(mid)
		}
	}
	return skew, best / 2, nil
}

// opContext bounds one lease operation by the lease's length.
func (s *Lease) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.ttl)
}

// TryAcquire takes the lease if it is free or expired by the database's
// clock, in one transaction: the row is locked, and one conditional UPDATE
// (WHERE expires_at < UTC_TIMESTAMP(6)) sets this node, term+1 and an
// expiry TTL from the database's now. Otherwise it reports the holder.
//
// First it measures the clocks' skew (MeasureSkew); when |skew| plus its
// uncertainty exceeds MaxSkew it does not try, and returns the result
// (SkewRefused, with the current holder) and an error wrapping
// ErrClockSkew. Call it only while not holding the lease (a holder renews).
func (s *Lease) TryAcquire(ctx context.Context) (AcquireResult, error) {
	res := AcquireResult{TTL: s.ttl}
	if s.node == "" || len(s.node) > maxNodeLen {
		return res, fmt.Errorf("the node name %q cannot hold the lease: give 1 to %d bytes", s.node, maxNodeLen)
	}
	if len(s.url) > maxURLLen {
		return res, fmt.Errorf("the advertised URL is %d bytes long; the lease stores at most %d", len(s.url), maxURLLen)
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	skew, unc, err := s.MeasureSkew(ctx)
	if err != nil {
		return res, fmt.Errorf("take the leader lease: %w", err)
	}
	res.Skew, res.SkewUncertainty = skew, unc
	if skew.Abs()+unc > s.skew {
		res.SkewRefused = true
		h, herr := s.Holder(ctx)
		res.Holder, res.DBNow, res.LocalNow = h, h.DBNow, s.now()
		return res, errors.Join(fmt.Errorf("%w by %v (±%v), more than the allowed %v: this node does not take the leader lease; synchronise its clock and the database server's (NTP)",
			ErrClockSkew, skew.Round(time.Millisecond), unc.Round(time.Millisecond), s.skew), herr)
	}
	// A tree initialised before leases has no row: add a free one.
	if _, err := s.db.ExecContext(ctx, `INSERT INTO consentledger_lease (tree_id, holder, url, term, expires_at)
		VALUES (?, '', '', 0, '1970-01-01 00:00:00') ON DUPLICATE KEY UPDATE tree_id = tree_id`, s.tree); err != nil {
		return res, fmt.Errorf("take the leader lease (is consentledger_lease there? run consentledger trillian init): %w", err)
	}
	t0 := s.now()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("take the leader lease: %w", err)
	}
	defer tx.Rollback()
	prev, err := readHolder(ctx, tx, s.tree, " FOR UPDATE")
	if err != nil {
		return res, fmt.Errorf("take the leader lease: %w", err)
	}
	res.Holder, res.DBNow = prev, prev.DBNow
	if !prev.Expired() {
		res.LocalNow = s.now()
		return res, nil
	}
	r, err := tx.ExecContext(ctx, `UPDATE consentledger_lease
		SET holder = ?, url = ?, term = term + 1, expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
		WHERE tree_id = ? AND expires_at < UTC_TIMESTAMP(6)`, s.node, s.url, s.ttl.Microseconds(), s.tree)
	if err != nil {
		return res, fmt.Errorf("take the leader lease: %w", err)
	}
	if n, err := r.RowsAffected(); err != nil || n != 1 {
		return res, fmt.Errorf("take the leader lease: the conditional update changed %d rows (%v), want 1", n, err)
	}
	now, err := readHolder(ctx, tx, s.tree, "")
	if err != nil {
		return res, fmt.Errorf("take the leader lease: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("take the leader lease: commit: %w", err)
	}
	// The UPDATE's own now is the new expiry minus the TTL.
	now.DBNow = now.Expires.Add(-s.ttl)
	res.Acquired, res.Term, res.Holder, res.Previous, res.DBNow = true, now.Term, now, prev, now.DBNow
	res.LocalNow = s.now()
	s.mu.Lock()
	s.term, s.held, s.expires = now.Term, true, t0.Add(s.ttl)
	s.mu.Unlock()
	return res, nil
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readHolder reads the tree's lease row; suffix is appended to the query.
func readHolder(ctx context.Context, q querier, tree int64, suffix string) (Holder, error) {
	var h Holder
	var exp, now int64
	err := q.QueryRowContext(ctx, "SELECT holder, url, term, "+dbMicros("expires_at")+", "+dbMicros("UTC_TIMESTAMP(6)")+
		" FROM consentledger_lease WHERE tree_id = ?"+suffix, tree).Scan(&h.Node, &h.URL, &h.Term, &exp, &now)
	if err != nil {
		return Holder{}, fmt.Errorf("read the lease row: %w", err)
	}
	h.Expires, h.DBNow = fromMicros(exp), fromMicros(now)
	return h, nil
}

// Renew extends the lease by TTL from the database's now, in one UPDATE
// that changes the row only while it is still this node's: same node, same
// term, not expired by the database's clock. It returns the new expiry as a
// local-clock estimate that errs early (the local time before the UPDATE
// was sent, plus TTL), so it does not depend on the clocks' skew.
//
// Any failure — another holder, an expired lease, the database unreachable
// or slower than TTL — returns an error wrapping ErrLeaseLost, and the
// lease stays lost (Deadline is zero) until TryAcquire takes a new term.
func (s *Lease) Renew(ctx context.Context) (time.Time, error) {
	s.mu.Lock()
	term, held := s.term, s.held
	s.mu.Unlock()
	if !held {
		return time.Time{}, fmt.Errorf("%w: this node does not hold it (take it with TryAcquire)", ErrLeaseLost)
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	t0 := s.now()
	r, err := s.db.ExecContext(ctx, `UPDATE consentledger_lease SET expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
		WHERE tree_id = ? AND holder = ? AND term = ? AND expires_at >= UTC_TIMESTAMP(6)`, s.ttl.Microseconds(), s.tree, s.node, term)
	var n int64
	if err == nil {
		n, err = r.RowsAffected()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.term != term || !s.held {
		// Released (or re-acquired) meanwhile: this renewal's answer is stale.
		return time.Time{}, fmt.Errorf("%w: released while renewing", ErrLeaseLost)
	}
	if err != nil || n != 1 {
		s.held, s.expires = false, time.Time{}
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: the database could not renew it (stop writing: another node may take it): %w", ErrLeaseLost, err)
		}
		return time.Time{}, fmt.Errorf("%w: term %d expired or was taken by another node", ErrLeaseLost, term)
	}
	s.expires = t0.Add(s.ttl)
	return s.expires, nil
}

// Release ends the lease at once if it is still this node's term (its
// expiry moves to the database's now, or stays if earlier), so that a
// standby takes over without waiting for the expiry; the new leader still
// fences from that moment (FenceUntil). Call it on a clean shutdown, after
// the last write returned. Releasing a lease another node took does
// nothing.
func (s *Lease) Release(ctx context.Context) error {
	s.mu.Lock()
	term := s.term
	s.held, s.expires = false, time.Time{}
	s.mu.Unlock()
	if term == 0 {
		return nil
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	// The holder is cleared too: a released lease needs no fence (the
	// node's last write returned before it released), see FenceUntil.
	_, err := s.db.ExecContext(ctx, `UPDATE consentledger_lease
		SET expires_at = LEAST(expires_at, UTC_TIMESTAMP(6) - INTERVAL 1 MICROSECOND), holder = '', url = ''
		WHERE tree_id = ? AND holder = ? AND term = ?`, s.tree, s.node, term)
	if err != nil {
		return fmt.Errorf("release the leader lease (it expires by itself after %v): %w", s.ttl, err)
	}
	return nil
}

// Holder reads the lease row: the holder's node name and URL (for a
// standby's answers to writes, and for /metrics), its term and its expiry.
// A tree whose lease was never taken returns a zero Holder (with DBNow).
func (s *Lease) Holder(ctx context.Context) (Holder, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	h, err := readHolder(ctx, s.db, s.tree, "")
	if errors.Is(err, sql.ErrNoRows) {
		var us int64
		if err := s.db.QueryRowContext(ctx, "SELECT "+dbMicros("UTC_TIMESTAMP(6)")).Scan(&us); err != nil {
			return Holder{}, fmt.Errorf("read the leader lease: %w", err)
		}
		return Holder{DBNow: fromMicros(us)}, nil
	}
	if err != nil {
		return Holder{}, fmt.Errorf("read the leader lease: %w", err)
	}
	return h, nil
}

// Held reports whether this node holds the lease as far as it knows (it
// acquired it and has not failed to renew or released it since), and the
// term.
func (s *Lease) Held() (term int64, held bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.term, s.held
}

// Deadline returns the local-clock time before which a write must have
// completed: the lease's expiry estimate (from the last TryAcquire or Renew;
// it errs early) minus a safety margin of TTL/3. A leader gives each
// AddSequencedLeaves call a gRPC deadline no later than this, and starts no
// write after it. It is the zero time when the lease is not held, so no
// write may start.
func (s *Lease) Deadline() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.held {
		return time.Time{}
	}
	return s.expires.Add(-s.ttl / 3)
}
