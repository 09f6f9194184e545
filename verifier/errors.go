package verifier

import (
	"errors"
	"fmt"
	"strings"
)

// The two error classes. Every error the package returns wraps exactly one
// of them, so a caller (and consentverify's exit code) can tell "the
// evidence is false" from "the evidence could not be read".
var (
	// ErrInvalid is wrapped by every verification failure: a signature, a
	// proof, a chain, a grant, a policy replay or an audit finding that does
	// not hold. The input was readable, and it proves nothing (or proves a
	// problem). consentverify exits 1.
	ErrInvalid = errors.New("verification failed")
	// ErrMalformed is wrapped by every error about input that cannot be read
	// as what it claims to be: a verifier key that is not one, a bundle that
	// is not protojson of an EvidenceBundle, an export that is not in the
	// export format. Nothing was verified. consentverify exits 2.
	ErrMalformed = errors.New("malformed input")
)

// The six checks of an evidence bundle (docs/entry-format.md: Evidence bundles), by number.
const (
	CheckSignature = 1 // the checkpoint is signed by the pinned key
	CheckInclusion = 2 // every entry is included in that checkpoint
	CheckChain     = 3 // the consent chain is unbroken and withdraws nothing
	CheckGrant     = 4 // the grant covers the send and came before it
	CheckPolicy    = 5 // the policy is the one named and replays to the result
	CheckInput     = 6 // the recorded input agrees with what the bundle shows
)

// checkNames are the short names of the checks, as consentverify prints them.
var checkNames = [...]string{
	CheckSignature: "signature",
	CheckInclusion: "inclusion",
	CheckChain:     "chain",
	CheckGrant:     "grant",
	CheckPolicy:    "policy",
	CheckInput:     "input",
}

// CheckName returns the short name of check n ("signature", "inclusion",
// "chain", "grant", "policy", "input"), or "" for a number outside 1..6.
func CheckName(n int) string {
	if n < 1 || n >= len(checkNames) {
		return ""
	}
	return checkNames[n]
}

// CheckError is a failed check of an evidence bundle. It carries the
// evidence: which check, which entry, and what was computed against what was
// expected. It wraps [ErrInvalid] and, if set, Err (for instance a
// [*CheckpointError] for check 1).
type CheckError struct {
	Check int    // 1 to 6, see CheckSignature … CheckInput
	Name  string // the check's short name, see [CheckName]
	// Index is the log index of the entry the failure concerns; valid only
	// when HasIndex is true (a bad checkpoint concerns no entry).
	Index    uint64
	HasIndex bool
	Message  string // what does not hold, in words
	Got      string // what the verifier computed or found; may be empty
	Want     string // what it had to be; may be empty
	Err      error  // the underlying error, if any
}

func (e *CheckError) Error() string {
	s := e.headline()
	if e.Got != "" || e.Want != "" {
		s += fmt.Sprintf(": got %s, want %s", orNone(e.Got), orNone(e.Want))
	}
	return s
}

// headline is the error without got and want.
func (e *CheckError) headline() string {
	var b strings.Builder
	fmt.Fprintf(&b, "check %d (%s) failed", e.Check, e.Name)
	if e.HasIndex {
		fmt.Fprintf(&b, " for entry #%d", e.Index)
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	return b.String()
}

// Unwrap returns ErrInvalid and the underlying error.
func (e *CheckError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalid, e.Err}
	}
	return []error{ErrInvalid}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// failf returns a CheckError about no single entry.
func failf(check int, got, want, format string, args ...any) *CheckError {
	return &CheckError{Check: check, Name: CheckName(check), Message: fmt.Sprintf(format, args...), Got: got, Want: want}
}

// failAt returns a CheckError about the entry at index.
func failAt(check int, index uint64, got, want, format string, args ...any) *CheckError {
	e := failf(check, got, want, format, args...)
	e.Index, e.HasIndex = index, true
	return e
}

// malformedf returns an error wrapping ErrMalformed.
func malformedf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}
