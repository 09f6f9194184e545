package ledger

import (
	"errors"
	"fmt"
)

// Error classes. Every error the ledger returns for a request it refuses
// wraps exactly one of these, with a message that says what to change; the
// refused request appended nothing. rpc maps them to Connect codes.
var (
	// ErrInvalid: the request itself is malformed (a missing or bad field).
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: the request names something that does not exist (an
	// entry beyond the log, an unknown breach or subject).
	ErrNotFound = errors.New("not found")
	// ErrPrecondition: the request is well-formed but the ledger's state does
	// not allow it (confirming an opt-in that was never given, notifying
	// about a closed breach).
	ErrPrecondition = errors.New("failed precondition")
	// ErrConflict: an idempotency key was reused for a different request, or
	// an id that must be unique already exists.
	ErrConflict = errors.New("conflict")
	// ErrStale: a SendDecision was evaluated against state that changed
	// before it could be sequenced; evaluate again with fresh state. The
	// errors below wrap it and say what changed.
	ErrStale = errors.New("state changed since evaluation")
	// ErrStaleHead: the consent head is no longer the subject's latest.
	ErrStaleHead = fmt.Errorf("consent head changed since evaluation: %w", ErrStale)
	// ErrStalePolicy: another policy was published.
	ErrStalePolicy = fmt.Errorf("active policy changed since evaluation: %w", ErrStale)
	// ErrStaleBreaches: a breach was reported, notified or closed.
	ErrStaleBreaches = fmt.Errorf("breaches changed since evaluation: %w", ErrStale)
	// ErrStaleKnown: the subject became known (its first entry was appended).
	ErrStaleKnown = fmt.Errorf("the subject became known since evaluation: %w", ErrStale)
	// ErrStaleSend: another send to the subject was allowed.
	ErrStaleSend = fmt.Errorf("the subject's last allowed send changed since evaluation: %w", ErrStale)
	// ErrStaleClock: the input's time is too far before the sequencer's clock.
	ErrStaleClock = fmt.Errorf("evaluated too long before sequencing: %w", ErrStale)
	// ErrClosed: the ledger is closed or has stopped after a storage failure.
	ErrClosed = errors.New("ledger closed")
	// ErrNoSpace: the data directory's file system is below the free-space
	// reserve; appends are refused until space is freed (see Options.DiskReserve).
	ErrNoSpace = errors.New("not enough free disk space")
	// ErrNotLeader: this node is a standby (the log on Trillian with
	// several nodes); writes go to the leader, named by a NotLeaderError.
	ErrNotLeader = errors.New("this node is a standby, not the leader")
)

// NotLeaderError refuses a write on a standby and names the leader's
// advertised URL (empty when no node holds the lease right now).
type NotLeaderError struct {
	// Leader is the leader's advertised URL, or empty.
	Leader string
}

func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return "this node is a standby and no leader holds the lease right now; retry in a few seconds"
	}
	return "this node is a standby; send writes to the leader at " + e.Leader
}

// Unwrap makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }
