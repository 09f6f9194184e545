package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/ledger/trillianlog"
)

// Standby nodes on Trillian: every node starts as a standby and tries to
// take the tree's leader lease (a row in the SQL database, timed by the
// database's clock). The node that holds it is the leader: it waits out
// the previous leader's fence, catches up to every committed leaf and
// sequences; it renews the lease every half second and, when a renewal
// fails (or the ledger refused a write for lack of lease), stops writing at
// once and rejoins as a standby (ledger.Demote), which may take the lease
// again later, after the fence. The others follow the log and answer
// writes with the leader's URL.

// leaseTick is how often the lease is renewed or tried: a sixth of its
// 3 s length, so a renewal delayed by a busy machine (a late tick, a slow
// database round trip) still has 2.5 s before the leader must stop writing.
const leaseTick = 500 * time.Millisecond

// fenceMargin is added to the new leader's wait before its first write.
const fenceMargin = 500 * time.Millisecond

// node runs the lease loop of one consentledger serve on Trillian.
type node struct {
	l     *ledger.Ledger
	lease *trillianlog.Lease
	url   string
	log   *slog.Logger

	remote    *trillianlog.Log
	mu        sync.Mutex
	holder    trillianlog.Holder
	leader    atomic.Bool
	lastError atomic.Pointer[string]
}

// nodeName names this process in the lease row.
func nodeName(advertise string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), advertise)
}

func newNode(l *ledger.Ledger, remote *trillianlog.Log, advertise string, clock func() time.Time, log *slog.Logger) *node {
	return &node{l: l, url: advertise, log: log, remote: remote,
		lease: remote.Lease(nodeName(advertise), advertise, trillianlog.LeaseOptions{Now: clock})}
}

// writeTimeout is the longest one remote write of a leader may take: its
// deadline is the earlier of the lease's Deadline and
// ledger.LeaderWriteTimeout from its start.
func (n *node) writeTimeout() time.Duration {
	return min(n.lease.TTL(), ledger.LeaderWriteTimeout)
}

// run keeps the lease until ctx ends; it releases it on the way out.
func (n *node) run(ctx context.Context) {
	t := time.NewTicker(leaseTick)
	defer t.Stop()
	for {
		n.step(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// release hands the lease over on a clean shutdown (after the ledger
// closed, so its last write has returned).
func (n *node) release() {
	if !n.leader.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.lease.Release(ctx); err != nil {
		n.log.Warn("release the leader lease", "err", err)
	}
}

func (n *node) step(ctx context.Context) {
	if err := n.l.Failure(); err != nil {
		if errors.Is(err, ledger.ErrLeaseLost) {
			// The ledger refused a write for lack of lease: it stops
			// leading (the lease runs out unrenewed) and rejoins.
			if n.leader.Swap(false) {
				n.log.Error("ALARM: the leader's lease ran too short for a write; this node stops writing and rejoins as a standby", "err", err)
			}
			n.l.Demote(err) // asks for the rejoin if not already under way
		}
		return // other failures stop writing until a restart
	}
	if n.leader.Load() {
		if _, err := n.lease.Renew(ctx); err != nil {
			n.leader.Store(false)
			n.log.Error("ALARM: the leader lease could not be renewed; this node stops writing and rejoins as a standby", "err", err)
			n.l.Demote(err)
		}
		return
	}
	res, err := n.lease.TryAcquire(ctx)
	n.mu.Lock()
	n.holder = res.Holder
	n.mu.Unlock()
	if err != nil {
		msg := err.Error()
		n.lastError.Store(&msg)
		if errors.Is(err, trillianlog.ErrClockSkew) {
			n.log.Error("this node does not take the leader lease: its clock differs from the database's", "err", err)
		} else {
			n.log.Warn("leader lease", "err", err)
		}
		return
	}
	if !res.Acquired {
		n.l.SetLeaderURL(res.Holder.URL)
		return
	}
	fence := res.FenceUntil(n.writeTimeout(), fenceMargin)
	n.log.Info("took the leader lease; waiting out the previous leader's fence", "term", res.Term, "wait", time.Until(fence).Round(time.Millisecond))
	for time.Now().Before(fence) {
		if _, err := n.lease.Renew(ctx); err != nil {
			n.log.Warn("lost the leader lease while fencing", "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(time.Until(fence), leaseTick/2)):
		}
	}
	if _, err := n.lease.Renew(ctx); err != nil {
		n.log.Warn("lost the leader lease while fencing", "err", err)
		return
	}
	if err := n.l.Promote(ctx, n.lease.Deadline); err != nil {
		n.log.Error("take over as leader", "err", err)
		n.l.Demote(err)
		return
	}
	n.leader.Store(true)
	n.l.SetLeaderURL(n.url)
	n.log.Info("this node is the leader", "term", res.Term, "size", n.l.Size())
}

// Holder returns the lease holder last seen.
func (n *node) Holder() trillianlog.Holder {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.holder
}

// lag is how far this node is behind Trillian, from one reading of
// Trillian's integrated size: the entries it has integrated that this node
// has not applied yet, and, while that is not zero, how long ago the last
// entry the node applied was recorded (the age of what it serves, as
// database replicas report it). Both are 0 when Trillian cannot be read.
func (n *node) lag() (entries uint64, seconds float64) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	size, _, err := n.remote.Integrated(ctx)
	local := n.l.Size()
	if err != nil || size <= local {
		return 0, 0
	}
	entries = size - local
	if local == 0 {
		return entries, 0
	}
	data, err := n.l.Entry(ctx, local-1)
	if err != nil {
		return entries, 0
	}
	e, err := ledger.DecodeEntry(data)
	if err != nil {
		return entries, 0
	}
	return entries, max(0, time.Since(e.GetRecordedAt().AsTime()).Seconds())
}
