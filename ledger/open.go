package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/consentledger/consentledger/ledger/storage"
)

// loadSequencer restores the sequencer from the store: the tree metadata,
// the incomplete tiles above level 0 as stored, and level 0's incomplete
// tile recomputed from its (at most 255) entries. Nothing else is replayed.
func (l *Ledger) loadSequencer(ctx context.Context) (*sequencer, error) {
	s := &sequencer{l: l, ov: newOverlay()}
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		meta := &treeMeta{}
		raw, err := tx.Get(metaKey)
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return fmt.Errorf("read tree metadata: %w", err)
		default:
			if meta, err = unmarshalMeta(raw); err != nil {
				return err
			}
		}
		rng, err := rangeFactory.NewRange(0, meta.size, meta.rangeNodes)
		if err != nil {
			return fmt.Errorf("tree metadata: %w", err)
		}
		tb := &treeBuilder{rng: rng}
		for _, id := range edgeTiles(meta.size) {
			if id.level > 0 {
				raw, err := tx.Get(tileKey(id))
				if err != nil {
					return fmt.Errorf("read incomplete tile %d/%d: %w", id.level, id.index, err)
				}
				t, err := unmarshalTile(id, raw)
				if err != nil {
					return err
				}
				tb.edges[id.level] = t
				continue
			}
			r := rangeFactory.NewEmptyRange(id.index * tileWidth)
			for i := id.index * tileWidth; i < meta.size; i++ {
				data, err := tx.Get(entryKey(i))
				if err != nil {
					return fmt.Errorf("read entry %d: %w", i, err)
				}
				if err := r.Append(hasher.HashLeaf(data), tb.visit); err != nil {
					return fmt.Errorf("recompute tile 0/%d: %w", id.index, err)
				}
			}
			if tb.err != nil {
				return tb.err
			}
		}
		if meta.size > 0 {
			data, err := tx.Get(entryKey(meta.size - 1))
			if err != nil {
				return fmt.Errorf("read last entry %d: %w", meta.size-1, err)
			}
			if !bytes.Equal(hasher.HashLeaf(data), meta.lastLeaf) {
				return fmt.Errorf("the store is inconsistent: entry %d does not hash to the recorded last leaf", meta.size-1)
			}
		}
		tb.completed = nil
		view, _ := tb.view()
		l.view.Store(view)
		s.tree, s.size, s.lastLeaf, s.lastTime = tb, meta.size, meta.lastLeaf, meta.lastTime
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	return s, nil
}
