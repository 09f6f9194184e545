package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/consentledger/consentledger/ledger/storage"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// CheckIdempotencyKey reports, from the committed state, whether actor has
// already used key: for the same request (equal fingerprint, or none
// recorded) it returns the entry's index and true; for a different request
// an error wrapping [ErrConflict]. It lets a caller that appends several
// entries refuse a conflicting key before appending any of them; Append
// checks again when it sequences.
func (l *Ledger) CheckIdempotencyKey(ctx context.Context, actor, key string, fingerprint []byte) (uint64, bool, error) {
	if key == "" {
		return 0, false, nil
	}
	var index uint64
	var used bool
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		raw, err := tx.Get(idemKey(actor, key))
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		rec, err := unmarshalIdem(raw)
		if err != nil {
			return err
		}
		fp, err := tx.Get(fingerKey(actor, key))
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if len(fingerprint) > 0 && len(fp) > 0 && !bytes.Equal(fingerprint, fp) {
			return fmt.Errorf("%w: idempotency_key %q was already used for a different request (entry %d); use a new key for a new request", ErrConflict, key, rec.index)
		}
		index, used = rec.index, true
		return nil
	})
	return index, used, err
}

// deriveIdem records, while deriving state from stored entries (rebuild,
// catch-up from a remote), the idempotency record of e at index: the first
// entry with a key wins, as in the sequencer.
func deriveIdem(ov *overlay, e *pb.Entry, index uint64, leaf []byte, batchNo uint64) error {
	if e.IdempotencyKey == "" {
		return nil
	}
	ik := idemKey(e.Actor, e.IdempotencyKey)
	if _, seen, err := ov.get(ik); err != nil || seen {
		return err
	}
	rec := &idemRecord{index: index, leafHash: leaf, recordedAt: e.RecordedAt.AsTime(), subjectID: e.SubjectId}
	ov.put(ik, rec.marshal(), batchNo)
	return nil
}
