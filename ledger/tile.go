package ledger

import (
	"encoding/binary"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// The tree's node hashes are stored in tiles, as in C2SP tlog-tiles: a tile
// at tile level T with index N holds the nodes of tree levels 8T..8T+7 below
// the level-(8T+8) node N. Unlike tlog-tiles, a stored tile keeps all 510
// hashes of its eight rows (not only the bottom one), so any node is one key
// read and a slice, and an inclusion proof at ten million entries reads three
// tiles.
const (
	tileHeight = 8
	tileWidth  = 1 << tileHeight // bottom-row hashes in a full tile
	tileNodes  = 2*tileWidth - 2 // hashes in a full tile: 256+128+…+2
	hashSize   = 32
	// maxTileLevels covers trees of up to 2^64 leaves.
	maxTileLevels = 64 / tileHeight
)

var hasher = rfc6962.DefaultHasher

// tileID names a tile: its tile level and its index at that level.
type tileID struct {
	level uint8
	index uint64
}

// tile holds the hashes of one tile. width is the number of bottom-row hashes
// present; row l then has width>>l complete nodes.
type tile struct {
	id     tileID
	width  int
	hashes []byte // tileNodes*hashSize bytes
}

func newTile(id tileID) *tile {
	return &tile{id: id, hashes: make([]byte, tileNodes*hashSize)}
}

func (t *tile) clone() *tile {
	c := *t
	c.hashes = append([]byte(nil), t.hashes...)
	return &c
}

func (t *tile) complete() bool { return t.width == tileWidth }

// rowOffset is the position of row l's first hash among a tile's hashes.
func rowOffset(l uint) int { return 2*tileWidth - (2*tileWidth)>>l }

// locate returns the tile holding the node id, and its row and position in
// that tile.
func locate(id compact.NodeID) (tileID, uint, uint64) {
	l := id.Level % tileHeight
	rowLen := uint64(tileWidth >> l)
	return tileID{level: uint8(id.Level / tileHeight), index: id.Index / rowLen}, l, id.Index % rowLen
}

// node returns the hash at row l, position j, or false if not yet known.
func (t *tile) node(l uint, j uint64) ([]byte, bool) {
	if j >= uint64(t.width>>l) {
		return nil, false
	}
	off := (rowOffset(l) + int(j)) * hashSize
	return t.hashes[off : off+hashSize : off+hashSize], true
}

// set stores the hash at row l, position j. Bottom-row hashes must be set in
// order, as a compact range visitor reports them.
func (t *tile) set(l uint, j uint64, hash []byte) {
	off := (rowOffset(l) + int(j)) * hashSize
	copy(t.hashes[off:off+hashSize], hash)
	if l == 0 && int(j) >= t.width {
		t.width = int(j) + 1
	}
}

// marshal encodes the tile: a 2-byte width, then the hashes of every row,
// each row cut to its complete nodes.
func (t *tile) marshal() []byte {
	out := make([]byte, 2, 2+tileNodes*hashSize)
	binary.BigEndian.PutUint16(out, uint16(t.width))
	for l := uint(0); l < tileHeight; l++ {
		n := t.width >> l
		off := rowOffset(l) * hashSize
		out = append(out, t.hashes[off:off+n*hashSize]...)
	}
	return out
}

func unmarshalTile(id tileID, b []byte) (*tile, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("tile %d/%d: %d bytes, want at least 2", id.level, id.index, len(b))
	}
	t := newTile(id)
	t.width = int(binary.BigEndian.Uint16(b))
	if t.width < 1 || t.width > tileWidth {
		return nil, fmt.Errorf("tile %d/%d: width %d out of range", id.level, id.index, t.width)
	}
	b = b[2:]
	for l := uint(0); l < tileHeight; l++ {
		n := (t.width >> l) * hashSize
		if len(b) < n {
			return nil, fmt.Errorf("tile %d/%d: truncated at row %d", id.level, id.index, l)
		}
		copy(t.hashes[rowOffset(l)*hashSize:], b[:n])
		b = b[n:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("tile %d/%d: %d trailing bytes", id.level, id.index, len(b))
	}
	return t, nil
}
