package ledger

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/transparency-dev/merkle/compact"
)

func TestRFC6962KnownAnswers(t *testing.T) {
	var kat struct {
		Leaves, Roots, Level1 []string
	}
	raw, err := os.ReadFile("testdata/rfc6962.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &kat); err != nil {
		t.Fatal(err)
	}
	hx := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := newTreeBuilder()
	if v, _ := b.view(); !bytes.Equal(v.root, hx(kat.Roots[0])) {
		t.Errorf("empty root = %x, want %s", v.root, kat.Roots[0])
	}
	for i, leaf := range kat.Leaves {
		if err := b.appendLeaf(hasher.HashLeaf(hx(leaf))); err != nil {
			t.Fatal(err)
		}
		v, _ := b.view()
		if want := hx(kat.Roots[i+1]); !bytes.Equal(v.root, want) {
			t.Errorf("root of size %d = %x, want %x", i+1, v.root, want)
		}
	}
	v, _ := b.view()
	for j, want := range kat.Level1 {
		tid, row, pos := locate(compact.NewNodeID(1, uint64(j)))
		got, ok := v.edges[tid.level].node(row, pos)
		if !ok || !bytes.Equal(got, hx(want)) {
			t.Errorf("level-1 node %d = %x (present %v), want %s", j, got, ok, want)
		}
	}
}

func TestTileMarshalRoundTrip(t *testing.T) {
	b := newTreeBuilder()
	var stored []*tile
	for i := 0; i < 3*tileWidth+17; i++ {
		if err := b.appendLeaf(hasher.HashLeaf([]byte{byte(i), byte(i >> 8)})); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			_, ts := b.view()
			stored = append(stored, ts...)
		}
	}
	v, ts := b.view()
	stored = append(stored, ts...)
	// Each completed level-0 tile is stored once, and each completion adds
	// a node to the incomplete level-1 tile, which is stored again.
	var complete0, partial1 int
	for _, tl := range stored {
		switch {
		case tl.id.level == 0 && tl.complete():
			complete0++
		case tl.id.level == 1 && !tl.complete():
			partial1++
		default:
			t.Errorf("stored unexpected tile %v width %d", tl.id, tl.width)
		}
	}
	if complete0 != 3 || partial1 != 3 {
		t.Fatalf("stored %d complete level-0 and %d level-1 tiles, want 3 and 3", complete0, partial1)
	}
	stored = append(stored, v.edges[0], v.edges[1])
	for _, tl := range stored {
		got, err := unmarshalTile(tl.id, tl.marshal())
		if err != nil {
			t.Fatal(err)
		}
		if got.width != tl.width || !bytes.Equal(got.hashes, tl.hashes) {
			t.Errorf("tile %v does not round-trip", tl.id)
		}
	}
	if _, err := unmarshalTile(tileID{}, []byte{0, 0}); err == nil {
		t.Error("a tile of width 0 was accepted")
	}
	if _, err := unmarshalTile(tileID{}, append(stored[0].marshal(), 1)); err == nil {
		t.Error("a tile with trailing bytes was accepted")
	}
}

func TestLocate(t *testing.T) {
	for _, tc := range []struct {
		level uint
		index uint64
		tile  tileID
		row   uint
		pos   uint64
	}{
		{0, 0, tileID{0, 0}, 0, 0},
		{0, 255, tileID{0, 0}, 0, 255},
		{0, 256, tileID{0, 1}, 0, 0},
		{1, 127, tileID{0, 0}, 1, 127},
		{1, 128, tileID{0, 1}, 1, 0},
		{7, 3, tileID{0, 1}, 7, 1},
		{8, 0, tileID{1, 0}, 0, 0},
		{8, 300, tileID{1, 1}, 0, 44},
		{17, 5, tileID{2, 0}, 1, 5},
	} {
		tl, row, pos := locate(compact.NewNodeID(tc.level, tc.index))
		if tl != tc.tile || row != tc.row || pos != tc.pos {
			t.Errorf("locate(%d, %d) = %v row %d pos %d, want %v row %d pos %d", tc.level, tc.index, tl, row, pos, tc.tile, tc.row, tc.pos)
		}
	}
}
