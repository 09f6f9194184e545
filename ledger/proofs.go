package ledger

import (
	"context"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/consentledger/consentledger/ledger/storage"
)

// InclusionProof returns the RFC 6962 audit path for entry index in the tree
// of the given size (index < size <= Size()), leaf to root. It reads
// O(log n) node hashes and no entries.
func (l *Ledger) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	v := l.view.Load()
	if size > v.size {
		return nil, fmt.Errorf("%w: tree size %d is beyond the log's size %d", ErrNotFound, size, v.size)
	}
	if index >= size {
		return nil, fmt.Errorf("%w: entry %d is not in the tree of size %d", ErrNotFound, index, size)
	}
	n, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return l.rehash(ctx, v, n)
}

// ConsistencyProof returns the RFC 6962 proof that the tree of size2
// extends the tree of size1 (size1 <= size2 <= Size()).
func (l *Ledger) ConsistencyProof(ctx context.Context, size1, size2 uint64) ([][]byte, error) {
	v := l.view.Load()
	if size2 > v.size {
		return nil, fmt.Errorf("%w: tree size %d is beyond the log's size %d", ErrNotFound, size2, v.size)
	}
	if size1 > size2 {
		return nil, fmt.Errorf("%w: size1 %d is larger than size2 %d", ErrInvalid, size1, size2)
	}
	n, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return l.rehash(ctx, v, n)
}

// RootAt returns the Merkle root of the first size entries (size <= Size()).
func (l *Ledger) RootAt(ctx context.Context, size uint64) ([]byte, error) {
	v := l.view.Load()
	if size > v.size {
		return nil, fmt.Errorf("%w: tree size %d is beyond the log's size %d", ErrNotFound, size, v.size)
	}
	if size == v.size {
		return append([]byte(nil), v.root...), nil
	}
	hashes, err := l.nodeHashes(ctx, v, compact.RangeNodes(0, size, nil))
	if err != nil {
		return nil, err
	}
	r, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, err
	}
	return rootOf(r), nil
}

func (l *Ledger) rehash(ctx context.Context, v *treeView, n proof.Nodes) ([][]byte, error) {
	hashes, err := l.nodeHashes(ctx, v, n.IDs)
	if err != nil {
		return nil, err
	}
	return n.Rehash(hashes, hasher.HashChildren)
}

// nodeHashes returns copies of the hashes of complete nodes of the tree v.
func (l *Ledger) nodeHashes(ctx context.Context, v *treeView, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	var need []int
	for i, id := range ids {
		tid, row, j := locate(id)
		t := v.edges[tid.level]
		if t == nil || t.id != tid {
			if t = l.tiles.get(tid); t == nil {
				need = append(need, i)
				continue
			}
		}
		h, ok := t.node(row, j)
		if !ok {
			return nil, fmt.Errorf("node %d/%d is not in the tree of size %d", id.Level, id.Index, v.size)
		}
		out[i] = append([]byte(nil), h...)
	}
	if len(need) == 0 {
		return out, nil
	}
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		for _, i := range need {
			tid, row, j := locate(ids[i])
			t := l.tiles.get(tid)
			if t == nil {
				raw, err := tx.Get(tileKey(tid))
				if err != nil {
					return fmt.Errorf("read tile %d/%d: %w", tid.level, tid.index, err)
				}
				if t, err = unmarshalTile(tid, raw); err != nil {
					return err
				}
				if t.complete() {
					l.tiles.add(t)
				}
			}
			h, ok := t.node(row, j)
			if !ok {
				return fmt.Errorf("node %d/%d is missing from tile %d/%d", ids[i].Level, ids[i].Index, tid.level, tid.index)
			}
			out[i] = append([]byte(nil), h...)
		}
		return nil
	})
	return out, err
}
