package verifier_test

import (
	"crypto/rand"
	"errors"
	"testing"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/consentledger/consentledger/verifier"
)

// TestPinnedKeyRotation: during a signing-key rotation a checkpoint carries
// signatures by the old and the new key; a verifier pinning either, or both,
// accepts it, and one pinning both also accepts checkpoints signed by one of
// them only. Keys of two different logs cannot be pinned together.
func TestPinnedKeyRotation(t *testing.T) {
	const origin = "rotate.example/ledger"
	newKey := func() (note.Signer, string) {
		skey, vkey, err := note.GenerateKey(rand.Reader, origin)
		if err != nil {
			t.Fatal(err)
		}
		s, err := note.NewSigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		return s, vkey
	}
	oldS, oldV := newKey()
	newS, newV := newKey()
	_, otherV := newKey()
	body := log.Checkpoint{Origin: origin, Size: 3, Hash: make([]byte, 32)}.Marshal()
	sign := func(signers ...note.Signer) []byte {
		b, err := note.Sign(&note.Note{Text: string(body)}, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	both, onlyOld, onlyNew := sign(oldS, newS), sign(oldS), sign(newS)
	tests := []struct {
		pinned string
		cp     []byte
		ok     bool
	}{
		{oldV, both, true},
		{newV, both, true},
		{oldV + "\n" + newV, both, true},
		{oldV + "\n" + newV, onlyOld, true},
		{oldV + "\n" + newV, onlyNew, true},
		{newV, onlyOld, false},
		{otherV, both, false},
	}
	for i, tt := range tests {
		key, err := verifier.ParseKey(tt.pinned)
		if err != nil {
			t.Fatalf("%d: ParseKey: %v", i, err)
		}
		_, err = verifier.VerifyCheckpoint(tt.cp, key)
		if (err == nil) != tt.ok {
			t.Errorf("%d: VerifyCheckpoint = %v, want ok=%v", i, err, tt.ok)
		}
	}
	_, otherLog, err := note.GenerateKey(rand.Reader, "other.example/ledger")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifier.ParseKey(oldV + "\n" + otherLog); !errors.Is(err, verifier.ErrMalformed) {
		t.Errorf("pinning keys of two logs: %v, want ErrMalformed", err)
	}
}
