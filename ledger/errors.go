package ledger

import "errors"

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
	// ErrStaleHead: a SendDecision was evaluated against a consent head that
	// is no longer the subject's latest; evaluate again with fresh state.
	ErrStaleHead = errors.New("consent head changed since evaluation")
	// ErrClosed: the ledger is closed or has stopped after a storage failure.
	ErrClosed = errors.New("ledger closed")
	// ErrNoSpace: the data directory's file system is below the free-space
	// reserve; appends are refused until space is freed (see Options.DiskReserve).
	ErrNoSpace = errors.New("not enough free disk space")
)
