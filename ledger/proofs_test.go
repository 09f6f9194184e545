package ledger

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/proof"
)

func checkInclusion(t *testing.T, l *Ledger, leaves [][]byte, index, size uint64) {
	t.Helper()
	p, err := l.InclusionProof(context.Background(), index, size)
	if err != nil {
		t.Fatalf("InclusionProof(%d, %d): %v", index, size, err)
	}
	root := referenceRoot(leaves[:size])
	if err := proof.VerifyInclusion(hasher, index, size, leaves[index], p, root); err != nil {
		t.Fatalf("inclusion proof (%d, %d) does not verify: %v", index, size, err)
	}
}

func checkConsistency(t *testing.T, l *Ledger, leaves [][]byte, size1, size2 uint64) {
	t.Helper()
	p, err := l.ConsistencyProof(context.Background(), size1, size2)
	if err != nil {
		t.Fatalf("ConsistencyProof(%d, %d): %v", size1, size2, err)
	}
	if err := proof.VerifyConsistency(hasher, size1, size2, p, referenceRoot(leaves[:size1]), referenceRoot(leaves[:size2])); err != nil {
		t.Fatalf("consistency proof (%d, %d) does not verify: %v", size1, size2, err)
	}
}

// TestInclusionProofsEverySize checks every inclusion proof for every index
// at every size 1..300, both while the tree is at that size (proofs from the
// incomplete edge tiles) and from the final tree (from stored tiles).
func TestInclusionProofsEverySize(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{})
	var leaves [][]byte
	for s := uint64(1); s <= 300; s++ {
		r := mustAppend(t, l, &Request{Entry: policyEntry(int(s))})
		leaves = append(leaves, r.LeafHash)
		if !bytes.Equal(l.Root(), referenceRoot(leaves)) {
			t.Fatalf("root at size %d = %x, want %x", s, l.Root(), referenceRoot(leaves))
		}
		for i := uint64(0); i < s; i++ {
			checkInclusion(t, l, leaves, i, s)
		}
	}
	for s := uint64(1); s <= 300; s++ {
		for i := uint64(0); i < s; i++ {
			checkInclusion(t, l, leaves, i, s)
		}
		root, err := l.RootAt(context.Background(), s)
		if err != nil || !bytes.Equal(root, referenceRoot(leaves[:s])) {
			t.Fatalf("RootAt(%d) = %x, %v; want %x", s, root, err, referenceRoot(leaves[:s]))
		}
	}
}

func TestConsistencyProofsAllPairs(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{})
	appendRaw(t, l, 120)
	leaves := allLeaves(t, l)
	for s2 := uint64(0); s2 <= 120; s2++ {
		for s1 := uint64(0); s1 <= s2; s1++ {
			checkConsistency(t, l, leaves, s1, s2)
		}
	}
}

func TestProofArgumentErrors(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{})
	appendRaw(t, l, 5)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"index beyond size", func() error { _, err := l.InclusionProof(ctx, 5, 5); return err }, ErrNotFound},
		{"size beyond log", func() error { _, err := l.InclusionProof(ctx, 0, 6); return err }, ErrNotFound},
		{"consistency beyond log", func() error { _, err := l.ConsistencyProof(ctx, 1, 9); return err }, ErrNotFound},
		{"size1 > size2", func() error { _, err := l.ConsistencyProof(ctx, 4, 3); return err }, ErrInvalid},
		{"root beyond log", func() error { _, err := l.RootAt(ctx, 6); return err }, ErrNotFound},
	} {
		if err := tc.call(); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestLargeTreeAcrossTileLevels grows the tree past one full level-1 tile
// (65,536 leaves) with concurrent appenders, checks random proofs, then
// reopens the ledger on the same store and checks that the restored tree
// (stored level-1 tile, level-0 edge recomputed from entries) is the same.
func TestLargeTreeAcrossTileLevels(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: skipping the 70,000-entry tree")
	}
	l, st, keys := newTestLedger(t, Options{})
	const n = 65536 + 300 + 7
	var wg sync.WaitGroup
	work := make(chan int, n)
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if _, err := l.Append(context.Background(), &Request{Entry: filler(100)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	leaves := allLeaves(t, l)
	if uint64(len(leaves)) != n || !bytes.Equal(l.Root(), referenceRoot(leaves)) {
		t.Fatalf("size %d root %x, want %d entries with root %x", len(leaves), l.Root(), n, referenceRoot(leaves))
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	check := func(l *Ledger) {
		for k := 0; k < 300; k++ {
			size := 1 + rnd.Uint64N(n)
			checkInclusion(t, l, leaves, rnd.Uint64N(size), size)
			checkConsistency(t, l, leaves, rnd.Uint64N(size+1), size)
		}
		checkInclusion(t, l, leaves, n-1, n)
		checkInclusion(t, l, leaves, 65535, n)
		checkConsistency(t, l, leaves, 65536, n)
	}
	check(l)
	root := l.Root()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := New(st, keys, Options{CheckpointInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.Size() != n || !bytes.Equal(l2.Root(), root) {
		t.Fatalf("reopened: size %d root %x, want %d %x", l2.Size(), l2.Root(), n, root)
	}
	check(l2)
	// The reopened ledger keeps growing the same tree.
	for i := 0; i < 300; i++ {
		r := mustAppend(t, l2, &Request{Entry: filler(100)})
		leaves = append(leaves, r.LeafHash)
	}
	if !bytes.Equal(l2.Root(), referenceRoot(leaves)) {
		t.Fatalf("after reopen and 300 appends: root %x, want %x", l2.Root(), referenceRoot(leaves))
	}
}
