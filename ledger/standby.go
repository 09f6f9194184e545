package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Standby nodes (the log on a remote, several ledgers on one tree): exactly
// one ledger — the leader, holding a lease kept by its caller — sequences
// and writes; the others are standbys. A standby refuses appends with a
// *NotLeaderError naming the leader, and follows the remote: every
// followInterval it applies the leaves the remote has integrated, through
// the same derivation as the sequencer, so it serves every read within
// about a second of the leader. Promote turns a standby into the leader.
//
// Fencing is by time, never by the remote's index refusal (a stale
// writer's batch half-commits): the leader's caller gives Promote a
// function returning the time its lease is good until, and the committer
// sends a batch to the remote only with a deadline before it; a batch that
// cannot finish before then is not sent, and the ledger stops writing.

// followInterval is how often a standby reads new leaves from the remote.
const followInterval = 200 * time.Millisecond

// minWriteWindow is the least time left on the lease for a remote write.
const minWriteWindow = 200 * time.Millisecond

// LeaderWriteTimeout is the longest one remote write of a leader may take
// (its deadline is also never after the lease's end). A new leader's fence
// waits for it: every node of a tree must use the same value.
const LeaderWriteTimeout = 2 * time.Second

// ErrLeaseLost: the leader's lease ended (or is about to) before a batch
// could be written; the ledger stops writing.
var ErrLeaseLost = errors.New("the leader lease ended")

// roleState is the ledger's role on a remote with standbys.
type roleState struct {
	standby   atomic.Bool
	leaderURL atomic.Pointer[string]
	until     atomic.Pointer[func() time.Time] // the leader's lease end; nil: no lease (single node)
	promote   chan promoteReq
	rejoin    chan struct{} // Demote asks the sequencer to rejoin as a standby
	takeovers atomic.Uint64
}

type promoteReq struct {
	ctx   context.Context
	until func() time.Time
	done  chan error
}

// IsStandby reports whether the ledger is a standby (refuses appends).
func (l *Ledger) IsStandby() bool { return l.role.standby.Load() }

// SetLeaderURL records the leader's advertised URL, named in the
// NotLeaderError a standby answers writes with.
func (l *Ledger) SetLeaderURL(url string) { l.role.leaderURL.Store(&url) }

func (l *Ledger) notLeader() error {
	url := ""
	if p := l.role.leaderURL.Load(); p != nil {
		url = *p
	}
	return &NotLeaderError{Leader: url}
}

// Takeovers counts the times this ledger became the leader.
func (l *Ledger) Takeovers() uint64 { return l.role.takeovers.Load() }

// Promote makes a standby the leader: it applies every leaf committed to
// the remote (not only the integrated ones: it waits until the remote has
// integrated them all), copies the subject table and checkpoints, and then
// accepts appends. until returns the time the caller's lease is good until;
// no remote write is started that could end after it. The caller waits
// out the previous leader's fence before calling Promote.
func (l *Ledger) Promote(ctx context.Context, until func() time.Time) error {
	if !l.IsStandby() {
		return errors.New("the ledger is already the leader")
	}
	req := promoteReq{ctx: ctx, until: until, done: make(chan error, 1)}
	select {
	case l.role.promote <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-l.done:
		return ErrClosed
	}
	select {
	case err := <-req.done:
		return err
	case <-l.done:
		return ErrClosed
	}
}

// Demote stops the leader writing at once (a lease that could not be
// renewed) and makes it a standby again. Appends are refused from the
// call on; the sequencer then answers the appends it holds with an error
// (none was acknowledged), waits until the committer has finished every
// batch handed to it (a batch the remote accepted is still committed and
// acknowledged: it is durable), drops what it sequenced beyond the last
// committed batch, reloads its state from the store and follows the
// remote like any standby (rejoin). Reads keep working throughout; a
// later Promote makes it the leader again.
func (l *Ledger) Demote(reason error) {
	l.role.standby.Store(true)
	l.setBroken(fmt.Errorf("%w: %w", ErrLeaseLost, reason))
	select {
	case l.role.rejoin <- struct{}{}:
	default: // already asked
	}
}

// rejoin runs in the sequencer goroutine, outside its read transaction,
// after Demote: see there.
func (s *sequencer) rejoin() error {
	l := s.l
	err := l.brokenErr()
	if err == nil || !errors.Is(err, ErrLeaseLost) {
		return nil // not demoted for the lease (a storage failure stays fail-stop)
	}
	s.answerHeld(err)
	// Every batch handed to the committer is finished (committed or
	// answered with the error) before the state is reloaded.
	for target := l.handedOff.Load(); l.finished.Load() < target; {
		ch := l.changed()
		if l.finished.Load() >= target {
			break
		}
		select {
		case <-ch:
		case <-l.done:
			return ErrClosed
		}
	}
	ns, err := l.loadSequencer(context.Background())
	if err != nil {
		return err
	}
	s.tree, s.ov, s.size, s.lastLeaf, s.lastTime = ns.tree, ns.ov, ns.size, ns.lastLeaf, ns.lastTime
	s.lastBatch = 0
	// What was sequenced and not committed is gone: the counters say so,
	// so that Barrier and the follower's batches start from here.
	l.sequenced.Store(s.batchNo)
	l.handedOff.Store(s.batchNo)
	l.finished.Store(s.batchNo)
	l.committed.Store(s.batchNo)
	l.role.until.Store(nil)
	l.clearLeaseLost()
	l.broadcast()
	l.opts.Logger.Info("rejoined as a standby: following the distributed log", "size", s.size)
	return nil
}

// writeDeadline returns the deadline for a remote write of the leader, or
// an error if the lease leaves too little time.
func (l *Ledger) writeDeadline() (time.Time, error) {
	if l.IsStandby() {
		return time.Time{}, fmt.Errorf("%w: this node is a standby", ErrLeaseLost)
	}
	f := l.role.until.Load()
	if f == nil {
		return time.Now().Add(remoteTimeout), nil
	}
	until := (*f)()
	if time.Until(until) < minWriteWindow {
		return time.Time{}, fmt.Errorf("%w: %s left on the lease, a write needs %s", ErrLeaseLost, time.Until(until).Round(time.Millisecond), minWriteWindow)
	}
	return minTime(until, time.Now().Add(LeaderWriteTimeout)), nil
}

// leaseEnded reports whether the leader's lease has ended by now (false
// without a lease).
func (l *Ledger) leaseEnded() bool {
	f := l.role.until.Load()
	return f != nil && !time.Now().Before((*f)())
}

// follow applies the leaves the remote has integrated beyond the local
// log into the open batch (a standby's batches hold only such entries).
func (s *sequencer) follow(ctx context.Context) error {
	r := s.l.opts.Remote
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	size, _, err := r.Integrated(ctx)
	if err != nil || size <= s.size {
		if err != nil {
			s.l.opts.Logger.Warn("standby cannot read the distributed log; retrying", "err", err)
		}
		return nil
	}
	leaves, err := r.Leaves(ctx, s.size, int(min(size-s.size, 1000)))
	if err != nil {
		s.l.opts.Logger.Warn("standby cannot read the distributed log; retrying", "err", err)
		return nil
	}
	if s.open == nil {
		s.openBatch()
	}
	for _, data := range leaves {
		if err := s.ingestOne(data); err != nil {
			return fmt.Errorf("%w: follow the distributed log: %v", errFatal, err)
		}
	}
	s.open.replicated = true
	s.l.sequenced.Store(s.open.no)
	return nil
}

// promoteNow runs in the sequencer goroutine, outside its read
// transaction, once every replicated batch is committed: it catches up
// to every committed leaf and makes the ledger the leader.
func (s *sequencer) promoteNow(req promoteReq) error {
	l := s.l
	if err := l.catchUp(req.ctx, s, true); err != nil {
		return err
	}
	if err := l.loadLatestCheckpoint(req.ctx); err != nil {
		return err
	}
	if err := l.loadActivePolicyRef(req.ctx); err != nil {
		return err
	}
	l.role.until.Store(&req.until)
	l.role.standby.Store(false)
	l.role.takeovers.Add(1)
	l.opts.Logger.Info("this node is now the leader", "size", s.size)
	// A leader always has a checkpoint to serve (a new tree has none yet).
	if l.latest.Load() == nil {
		if _, err := l.signCheckpoint(req.ctx, true); err != nil {
			l.opts.Logger.Warn("sign the first checkpoint", "err", err)
		}
	}
	return nil
}

// waitCommitted waits until the committer has committed every batch handed
// to it (the sequencer calls it before promoting).
func (l *Ledger) waitCommitted(ctx context.Context) error {
	target := l.handedOff.Load()
	for {
		ch := l.changed()
		if l.committed.Load() >= target || l.brokenErr() != nil {
			return l.brokenErr()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// promote cuts the standby's open batch, waits until the committer has
// committed everything, then promotes (outside any read transaction).
func (s *sequencer) promote(req promoteReq) error {
	if s.open != nil && s.open.entries > 0 {
		select {
		case <-s.l.ready:
		case <-req.ctx.Done():
			return req.ctx.Err()
		}
		s.l.commits <- s.cut()
	}
	s.open = nil
	if err := s.l.waitCommitted(req.ctx); err != nil {
		return err
	}
	return s.promoteNow(req)
}

// ActivePolicyRef returns the PolicyPublished entry of the policy in force
// as of the last committed batch (nil before any), without a store read:
// the committer keeps it, for entries sequenced here and for entries a
// standby applied from the remote alike, so a caller that caches the
// compiled policy sees when another node published one.
func (l *Ledger) ActivePolicyRef() *pb.EntryRef { return l.activePolicy.Load() }

// loadActivePolicyRef reads the active policy's entry from the store.
func (l *Ledger) loadActivePolicyRef(ctx context.Context) error {
	st, err := l.ActivePolicy(ctx)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	l.activePolicy.Store(st.GetEntry())
	return nil
}

// notePolicy updates ActivePolicyRef from a committed batch's writes.
func (l *Ledger) notePolicy(b *batch) {
	for _, w := range b.writes {
		if len(w.key) != 1 || w.key[0] != tabPolicy || w.del {
			continue
		}
		st := new(pb.PolicyState)
		if err := proto.Unmarshal(w.val, st); err == nil {
			l.activePolicy.Store(st.GetEntry())
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
