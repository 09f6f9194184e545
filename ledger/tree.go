package ledger

import (
	"fmt"

	"github.com/transparency-dev/merkle/compact"
)

var rangeFactory = &compact.RangeFactory{Hash: hasher.HashChildren}

// treeView is an immutable picture of the tree at one size, published after
// the batch that produced it has committed. Complete tiles are read from the
// store; the rightmost, incomplete tile of each level is held here.
type treeView struct {
	size  uint64
	root  []byte
	edges [maxTileLevels]*tile
}

// treeBuilder is the sequencer's growing tree: the compact range of the right
// edge and the incomplete tiles. It is used by one goroutine at a time.
type treeBuilder struct {
	rng       *compact.Range
	edges     [maxTileLevels]*tile
	owned     [maxTileLevels]bool // edge copied since the last view, safe to modify
	dirty     [maxTileLevels]bool // edge changed since the last view
	completed []*tile             // tiles completed since the last view
	err       error
}

func newTreeBuilder() *treeBuilder {
	return &treeBuilder{rng: rangeFactory.NewEmptyRange(0)}
}

// appendLeaf adds a leaf hash to the tree.
func (b *treeBuilder) appendLeaf(leafHash []byte) error {
	if err := b.rng.Append(leafHash, b.visit); err != nil {
		return fmt.Errorf("append leaf %d to compact range: %w", b.rng.End(), err)
	}
	return b.err
}

// visit records a node that has become complete in its tile.
func (b *treeBuilder) visit(id compact.NodeID, hash []byte) {
	tid, row, j := locate(id)
	lv := tid.level
	t := b.edges[lv]
	switch {
	case t == nil:
		t = newTile(tid)
		b.edges[lv], b.owned[lv] = t, true
	case t.id != tid:
		b.err = fmt.Errorf("node %d/%d falls in tile %d/%d, but the edge tile is %d/%d", id.Level, id.Index, tid.level, tid.index, t.id.level, t.id.index)
		return
	case !b.owned[lv]:
		t = t.clone()
		b.edges[lv], b.owned[lv] = t, true
	}
	t.set(row, j, hash)
	b.dirty[lv] = true
	if row == tileHeight-1 && j == 1 { // the last node of a full tile
		b.completed = append(b.completed, t)
		b.edges[lv], b.owned[lv] = nil, false
	}
}

// view returns the tree as it is now and starts a new round of copy-on-write.
// It also returns the tiles to store: every tile completed since the last
// view, and the changed incomplete tiles above level 0 (level 0's incomplete
// tile is recomputed from the entries when the ledger opens).
func (b *treeBuilder) view() (*treeView, []*tile) {
	v := &treeView{size: b.rng.End(), root: rootOf(b.rng), edges: b.edges}
	toStore := b.completed
	for lv, t := range b.edges {
		if t != nil && lv > 0 && b.dirty[lv] {
			toStore = append(toStore, t)
		}
	}
	b.completed = nil
	b.owned = [maxTileLevels]bool{}
	b.dirty = [maxTileLevels]bool{}
	return v, toStore
}

// rootOf returns the RFC 6962 root of a compact range that starts at 0.
func rootOf(r *compact.Range) []byte {
	if r.End() == 0 {
		return hasher.EmptyRoot()
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		panic(fmt.Sprintf("root of compact range [0, %d): %v", r.End(), err)) // begin is always 0
	}
	return root
}

// edgeTiles lists the incomplete tile at each level for a tree of the given size.
func edgeTiles(size uint64) []tileID {
	var ids []tileID
	for lv := uint8(0); lv < maxTileLevels; lv++ {
		count := size >> (uint(lv) * tileHeight) // nodes in the bottom row of level lv
		if count == 0 {
			break
		}
		if count%tileWidth != 0 {
			ids = append(ids, tileID{level: lv, index: count / tileWidth})
		}
	}
	return ids
}
