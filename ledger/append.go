package ledger

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/ledger/subject"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Request asks the ledger to append one entry.
type Request struct {
	// Entry carries the event, actor and idempotency key. The ledger sets
	// index, recorded_at, prev_hash and the subject fields and chain links,
	// overwriting whatever the caller put there. The ledger takes ownership.
	Entry *pb.Entry
	// Subject is the person the entry is about: required for consent events
	// and send decisions, absent otherwise. Its table row is created on the
	// first grant, withdrawal or decision.
	Subject *subject.Identifier
	// CheckHead makes a SendDecision conditional: it is appended only if
	// the subject's consent head is still ExpectedHead (nil: no consent
	// event), else Append returns ErrStaleHead and the caller evaluates again.
	CheckHead    bool
	ExpectedHead *pb.EntryRef
	// CheckInputs makes a SendDecision conditional on the rest of what its
	// policy input was built from (docs/guarantees.md): it is appended only if the
	// subject's table row still exists if and only if ExpectedKnown, the
	// active policy is still ExpectedPolicy, the latest breach event still
	// ExpectedBreaches and the subject's last allowed send still
	// ExpectedLastSend (nil: none), and if EvaluatedAt (the input's `now`)
	// is not more than state.MaxInputLag before the entry's recorded_at;
	// else Append returns an error wrapping ErrStale and the caller
	// evaluates again. recorded_at is never before EvaluatedAt.
	CheckInputs                                        bool
	ExpectedKnown                                      bool
	ExpectedPolicy, ExpectedBreaches, ExpectedLastSend *pb.EntryRef
	EvaluatedAt                                        time.Time
	// Fingerprint identifies the request behind an idempotency key (a
	// digest of the caller's request); a retry with the same key but another
	// fingerprint is refused with ErrConflict. At most 64 bytes.
	Fingerprint []byte
}

// Receipt tells where an entry was appended.
type Receipt struct {
	Index      uint64
	LeafHash   []byte
	RecordedAt time.Time
	// SubjectID is the entry's subject_id (empty for entries about no subject).
	SubjectID string
	// Duplicate is true when the request was a retry of an earlier one with
	// the same idempotency key: nothing new was appended, and the receipt is
	// the earlier entry's.
	Duplicate bool
}

// Ref returns the receipt as an EntryRef.
func (r Receipt) Ref() *pb.EntryRef {
	return &pb.EntryRef{Index: r.Index, LeafHash: r.LeafHash, RecordedAt: timestamppb.New(r.RecordedAt)}
}

// pending is one unit the sequencer takes from the queue: one Append's
// request, or all of one AppendBatch's requests (reqs), which land in one
// batch and are acknowledged by one commit.
type pending struct {
	req  *Request
	reqs []*Request
	size int // approximate bytes, for bounding a batch
	done chan result
}

type result struct {
	rcpt Receipt
	err  error
	// batch holds an AppendBatch's per-request outcomes, in request order.
	batch []BatchResult
}

// BatchResult is the outcome of one request of an AppendBatch: a receipt,
// or the error that refused that request (nothing was appended for it).
type BatchResult struct {
	Receipt Receipt
	Err     error
}

// Append sequences one entry and returns once it is durably committed.
// A refused request (the error wraps ErrInvalid, ErrNotFound,
// ErrPrecondition, ErrConflict or ErrStaleHead) appends nothing. Once the
// request is accepted, Append waits for the commit even if ctx ends, so
// that its answer is always true.
func (l *Ledger) Append(ctx context.Context, req *Request) (Receipt, error) {
	if err := checkRequest(req); err != nil {
		return Receipt{}, err
	}
	if err := ctx.Err(); err != nil {
		return Receipt{}, err
	}
	p := &pending{req: req, size: approxSize(req.Entry), done: make(chan result, 1)}
	if err := l.enqueue(p); err != nil {
		return Receipt{}, err
	}
	r := <-p.done
	return r.rcpt, r.err
}

// enqueue hands p to the sequencer, or says why the ledger takes no append.
func (l *Ledger) enqueue(p *pending) error {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return fmt.Errorf("%w: the ledger is shutting down", ErrClosed)
	}
	if l.role.standby.Load() {
		return l.notLeader()
	}
	if err := l.brokenErr(); err != nil {
		return err
	}
	if err := l.spaceErr(); err != nil {
		return err
	}
	l.queue <- p
	return nil
}

// MaxAppendBatch bounds the requests of one AppendBatch.
const MaxAppendBatch = 4096

// AppendBatch sequences reqs as one unit: they enter the sequencer
// together, in order, land in one batch (one transaction, one sync) and
// are acknowledged by its commit; it returns once that commit is durable.
//
// Each request is still checked on its own as Append checks it, against the
// state including the requests before it in reqs. A request that is refused
// when it is sequenced (stale inputs, an idempotency conflict, a failed
// precondition) gets its error in its BatchResult and appends nothing, while
// the others are appended and acknowledged: results are in request order,
// and each is either an acknowledged, durable receipt or an error for a
// request that appended nothing. A caller that wants all or nothing checks
// its requests before (see CheckIdempotencyKey); a caller whose decisions
// went stale evaluates those again and appends them in a new call.
//
// The returned error is not nil only when nothing was appended: a malformed
// request (ErrInvalid, for the whole batch), a closed or broken ledger, or
// a storage failure before the commit.
func (l *Ledger) AppendBatch(ctx context.Context, reqs []*Request) ([]BatchResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	if len(reqs) > MaxAppendBatch {
		return nil, fmt.Errorf("%w: %d requests in one batch, the limit is %d", ErrInvalid, len(reqs), MaxAppendBatch)
	}
	size := 0
	for i, r := range reqs {
		if err := checkRequest(r); err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		size += approxSize(r.Entry)
	}
	if size > maxBatchBytes {
		return nil, fmt.Errorf("%w: the batch's entries are about %d bytes, the limit is %d", ErrInvalid, size, maxBatchBytes)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := &pending{reqs: reqs, size: size, done: make(chan result, 1)}
	if err := l.enqueue(p); err != nil {
		return nil, err
	}
	r := <-p.done
	return r.batch, r.err
}

func approxSize(e *pb.Entry) int {
	if pp := e.GetPolicyPublished(); pp != nil {
		n := 0
		for _, f := range pp.Files {
			n += len(f.Name) + len(f.Content)
		}
		return n + 512
	}
	return 512
}

// sameRef reports whether two consent heads are the same entry (nil: none).
func sameRef(a, b *pb.EntryRef) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Index == b.Index && bytes.Equal(a.LeafHash, b.LeafHash)
}
