package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/consentledger/consentledger/ledger/storage"
)

// rebuildChunk is how many entries RebuildState applies per transaction.
const rebuildChunk = 4096

// RebuildState discards the state index (consent state, subject heads,
// breaches, the active policy, idempotency keys) and derives it again from
// the entries alone, with the same function the sequencer uses. The ledger
// must be quiescent: call it on a ledger no one is appending to. progress,
// if not nil, is called after each chunk with the entries done and the total.
func (l *Ledger) RebuildState(ctx context.Context, progress func(done, total uint64)) error {
	if err := l.Barrier(ctx); err != nil {
		return err
	}
	defer l.states.reset() // the cache holds the state index read before
	for _, tab := range stateTables {
		if err := deletePrefix(ctx, l.store, []byte{tab}); err != nil {
			return fmt.Errorf("clear state table %q: %w", tab, err)
		}
	}
	total := l.Size()
	for start := uint64(0); start < total; start += rebuildChunk {
		ov := newOverlay()
		w := stateWriter{o: ov, batchNo: 1}
		end := min(start+rebuildChunk, total)
		err := l.store.View(ctx, func(tx storage.ReadTx) error {
			ov.read = tx.Get
			return tx.Scan(entryKey(start), entryKey(end), func(k, data []byte) error {
				i := keyIndex(k)
				e, err := DecodeEntry(data)
				if err != nil {
					return fmt.Errorf("entry %d: %w", i, err)
				}
				ref := entryRef(e, data)
				if err := applyEntry(w, e, ref); err != nil {
					return fmt.Errorf("entry %d: %w", i, err)
				}
				return deriveIdem(ov, e, i, ref.LeafHash, 1)
			})
		})
		if err != nil {
			return fmt.Errorf("rebuild state: %w", err)
		}
		writes := ov.takeWrites()
		err = l.store.Update(ctx, func(tx storage.WriteTx) error {
			for _, w := range writes {
				if w.del {
					if err := tx.Delete(w.key); err != nil {
						return err
					}
				} else if err := tx.Set(w.key, w.val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("rebuild state: %w", err)
		}
		if progress != nil {
			progress(end, total)
		}
	}
	return nil
}

// deletePrefix deletes every key with the given prefix, in chunks.
func deletePrefix(ctx context.Context, st storage.Store, prefix []byte) error {
	for {
		var keys [][]byte
		err := st.View(ctx, func(tx storage.ReadTx) error {
			return tx.Scan(prefix, storage.PrefixEnd(prefix), func(k, _ []byte) error {
				keys = append(keys, append([]byte(nil), k...))
				if len(keys) == rebuildChunk {
					return errChunkFull
				}
				return nil
			})
		})
		if err != nil && err != errChunkFull {
			return err
		}
		if len(keys) == 0 {
			return nil
		}
		err = st.Update(ctx, func(tx storage.WriteTx) error {
			for _, k := range keys {
				if err := tx.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
}

var errChunkFull = errors.New("chunk full")
