package ledger

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// TestKeyRotation: after RotateKeys, checkpoints carry a signature by the
// old and the new key, so a verifier pinning either accepts them; checkpoints
// signed before still verify; after RetireKeys only the new key signs, and
// the retired key still verifies the old checkpoints at open.
func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Origin: "rotate.example/ledger", CheckpointInterval: -1, DiskReserve: -1}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	appendRaw(t, l, 3)
	before, err := l.SignCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	oldKey := l.VerifierKey()
	l.Close()

	newKey, err := RotateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if newKey == oldKey || !strings.HasPrefix(newKey, "rotate.example/ledger+") {
		t.Fatalf("RotateKeys returned %q (old %q)", newKey, oldKey)
	}
	if fi, err := os.Stat(filepath.Join(dir, SigningKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing.key after rotation: %v, mode %v", err, fi.Mode())
	}
	pinned, err := ReadVerifierKey(dir)
	if err != nil || pinned != oldKey+"\n"+newKey {
		t.Fatalf("verifier.key after rotation = %q, %v; want both keys, oldest first", pinned, err)
	}

	l, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	appendRaw(t, l, 2)
	during, err := l.SignCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{oldKey, newKey} {
		if !verifiesWith(t, during.Note, k) {
			t.Errorf("a checkpoint signed during the rotation does not verify with %s", k)
		}
	}
	l.Close()

	retired, err := RetireKeys(dir)
	if err != nil || len(retired) != 1 || retired[0] != oldKey {
		t.Fatalf("RetireKeys = %q, %v; want the old key", retired, err)
	}
	if _, err := RetireKeys(dir); err == nil {
		t.Error("RetireKeys with one signing key left succeeded; want an error saying there is nothing to retire")
	}
	l, err = Open(dir, opts) // the old checkpoints, signed by the retired key, still verify at open
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendRaw(t, l, 1)
	after, err := l.SignCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if verifiesWith(t, after.Note, oldKey) || !verifiesWith(t, after.Note, newKey) {
		t.Error("after retirement, a new checkpoint must verify with the new key only")
	}
	if !verifiesWith(t, before.Note, oldKey) {
		t.Error("a checkpoint from before the rotation no longer verifies with the old key")
	}
	if bytes.Count(after.Note, []byte("\n— ")) != 1 {
		t.Errorf("a checkpoint after retirement has %d signatures, want 1:\n%s", bytes.Count(after.Note, []byte("\n— ")), after.Note)
	}
}

func verifiesWith(t *testing.T, signed []byte, vkey string) bool {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = log.ParseCheckpoint(signed, v.Name(), v)
	return err == nil
}
