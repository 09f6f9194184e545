package ledger

import (
	"bytes"
	"context"
	"errors"
	"math"
	"testing"

	"github.com/transparency-dev/merkle/proof"
)

// proofFixture is a ledger of about 40 entries with the leaf hash of every
// entry and the root at every size (roots[0] is the empty tree's).
type proofFixture struct {
	l       *Ledger
	entries [][]byte
	leaves  [][]byte
	roots   [][]byte
}

func newProofFixture(tb testing.TB) *proofFixture {
	tb.Helper()
	l, _ := fuzzLedger(tb, 40)
	fx := &proofFixture{l: l, entries: storedEntries(tb, l), leaves: allLeaves(tb, l)}
	for s := uint64(0); s <= l.Size(); s++ {
		root, err := l.RootAt(context.Background(), s)
		if err != nil {
			tb.Fatal(err)
		}
		if !bytes.Equal(root, referenceRoot(fx.leaves[:s])) {
			tb.Fatalf("RootAt(%d) = %x, want %x", s, root, referenceRoot(fx.leaves[:s]))
		}
		fx.roots = append(fx.roots, root)
	}
	return fx
}

func (fx *proofFixture) size() uint64 { return uint64(len(fx.leaves)) }

func isRangeErr(err error) bool { return errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) }

// FuzzInclusionProof checks that InclusionProof never panics, refuses
// out-of-range arguments with ErrNotFound or ErrInvalid, returns proofs that
// verify, and that no other path verifies: an audit path that verifies the
// real leaf against the real root is the ledger's own, hash for hash, and no
// path verifies another leaf at that index.
func FuzzInclusionProof(f *testing.F) {
	fx := newProofFixture(f)
	ctx := context.Background()
	n := fx.size()
	for _, c := range []struct{ index, size uint64 }{{0, 1}, {0, 2}, {1, 2}, {5, 8}, {12, 13}, {17, 25}, {0, n}, {31, 32}, {32, n}, {n - 1, n}} {
		p, err := fx.l.InclusionProof(ctx, c.index, c.size)
		if err != nil {
			f.Fatal(err)
		}
		raw := joinHashes(p)
		f.Add(c.index, c.size, raw, fx.entries[c.index])
		f.Add(c.index, c.size, raw, []byte("forged entry"))
		f.Add(c.index, c.size, append(bytes.Clone(raw), 1, 2, 3), []byte{}) // trailing partial hash
		if len(raw) > 0 {
			f.Add(c.index, c.size, flipByte(raw, len(raw)/2), fx.entries[c.index])
			f.Add(c.index, c.size, raw[:len(raw)-hashSize], fx.entries[c.index])
		}
		f.Add(c.index, c.size, append(bytes.Clone(raw), fx.leaves[0]...), fx.entries[c.index])
		f.Add(c.size, c.size, raw, fx.entries[c.index])    // index == size
		f.Add(c.index, c.size+1, raw, fx.entries[c.index]) // another size
	}
	f.Add(uint64(0), uint64(0), []byte{}, []byte{})
	f.Add(uint64(0), n+1, []byte{}, []byte{})
	f.Add(uint64(math.MaxUint64), uint64(math.MaxUint64), []byte{}, []byte{})
	f.Add(uint64(3), uint64(math.MaxUint64), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, index, size uint64, proofBytes, leafSeed []byte) {
		real, err := fx.l.InclusionProof(ctx, index, size)
		inRange := index < size && size <= n
		switch {
		case inRange && err != nil:
			t.Fatalf("InclusionProof(%d, %d) of a log of %d: %v", index, size, n, err)
		case !inRange && err == nil:
			t.Fatalf("InclusionProof(%d, %d) of a log of %d returned a proof", index, size, n)
		case !inRange && !isRangeErr(err):
			t.Fatalf("InclusionProof(%d, %d) of a log of %d: %v, want ErrNotFound or ErrInvalid", index, size, n, err)
		case inRange:
			if err := proof.VerifyInclusion(hasher, index, size, fx.leaves[index], real, fx.roots[size]); err != nil {
				t.Fatalf("the ledger's proof (%d, %d) does not verify: %v", index, size, err)
			}
		}
		if size < 1 || size > n {
			return // there is no real root to verify against
		}
		given := splitHashes(proofBytes)
		root := fx.roots[size]
		leaf := hasher.HashLeaf(leafSeed)
		if index < size {
			leaf = fx.leaves[index]
		}
		if proof.VerifyInclusion(hasher, index, size, leaf, given, root) == nil {
			if !inRange {
				t.Fatalf("a proof for index %d verified in a tree of size %d", index, size)
			}
			if !sameHashes(given, real) {
				t.Fatalf("a forged audit path for (%d, %d) verifies:\n%x\nthe ledger's:\n%x", index, size, given, real)
			}
		}
		if forged := hasher.HashLeaf(leafSeed); index < size && !bytes.Equal(forged, fx.leaves[index]) {
			if proof.VerifyInclusion(hasher, index, size, forged, given, root) == nil {
				t.Fatalf("a path proves leaf %x at index %d of size %d, where the ledger holds %x", forged, index, size, fx.leaves[index])
			}
		}
	})
}

// FuzzConsistencyProof checks that ConsistencyProof never panics, refuses
// out-of-range arguments with ErrNotFound or ErrInvalid, returns proofs that
// verify, and that no other proof verifies the real roots: a proof that
// verifies is the ledger's own, hash for hash.
//
// For size1 == size2 and for size1 == 0 the ledger's proof is empty and only
// the empty proof verifies (for size1 == 0 without looking at the roots), so
// there "the given proof equals the ledger's" holds trivially; the check
// below still asserts that the ledger accepts those sizes.
func FuzzConsistencyProof(f *testing.F) {
	fx := newProofFixture(f)
	ctx := context.Background()
	n := fx.size()
	for _, c := range []struct{ size1, size2 uint64 }{{1, 2}, {1, n}, {2, 3}, {3, 7}, {4, 8}, {5, 40}, {7, 8}, {13, 32}, {17, 33}, {32, n}, {n - 1, n}, {0, 5}, {6, 6}, {n, n}} {
		p, err := fx.l.ConsistencyProof(ctx, c.size1, c.size2)
		if err != nil {
			f.Fatal(err)
		}
		raw := joinHashes(p)
		f.Add(c.size1, c.size2, raw)
		f.Add(c.size1, c.size2, append(bytes.Clone(raw), 9, 9)) // trailing partial hash
		f.Add(c.size1, c.size2, append(bytes.Clone(raw), fx.leaves[1]...))
		if len(raw) > 0 {
			f.Add(c.size1, c.size2, flipByte(raw, len(raw)-1))
			f.Add(c.size1, c.size2, raw[hashSize:])
			f.Add(c.size2, c.size1, raw) // swapped
		}
	}
	f.Add(uint64(0), uint64(0), []byte{})
	f.Add(uint64(1), n+1, []byte{})
	f.Add(uint64(math.MaxUint64), uint64(math.MaxUint64), []byte{})
	f.Add(uint64(math.MaxUint64), uint64(4), []byte{})
	f.Fuzz(func(t *testing.T, size1, size2 uint64, proofBytes []byte) {
		real, err := fx.l.ConsistencyProof(ctx, size1, size2)
		inRange := size1 <= size2 && size2 <= n
		switch {
		case inRange && err != nil:
			t.Fatalf("ConsistencyProof(%d, %d) of a log of %d: %v", size1, size2, n, err)
		case !inRange && err == nil:
			t.Fatalf("ConsistencyProof(%d, %d) of a log of %d returned a proof", size1, size2, n)
		case !inRange && !isRangeErr(err):
			t.Fatalf("ConsistencyProof(%d, %d) of a log of %d: %v, want ErrNotFound or ErrInvalid", size1, size2, n, err)
		case inRange:
			if err := proof.VerifyConsistency(hasher, size1, size2, real, fx.roots[size1], fx.roots[size2]); err != nil {
				t.Fatalf("the ledger's proof (%d, %d) does not verify: %v", size1, size2, err)
			}
		}
		if size1 > n || size2 > n {
			return // there is no real root to verify against
		}
		given := splitHashes(proofBytes)
		if proof.VerifyConsistency(hasher, size1, size2, given, fx.roots[size1], fx.roots[size2]) == nil {
			if !inRange {
				t.Fatalf("a consistency proof from %d to %d verified", size1, size2)
			}
			if !sameHashes(given, real) {
				t.Fatalf("a forged consistency proof (%d, %d) verifies:\n%x\nthe ledger's:\n%x", size1, size2, given, real)
			}
		}
	})
}
