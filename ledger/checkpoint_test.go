package ledger

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

func TestCheckpointHistory(t *testing.T) {
	l, _, keys := newTestLedger(t, Options{})
	ctx := context.Background()
	v, err := note.NewVerifier(keys.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	var signed []*Checkpoint
	for i := 0; i < 5; i++ {
		appendRaw(t, l, i+1)
		c, err := l.SignCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		again, err := l.SignCheckpoint(ctx)
		if err != nil || !bytes.Equal(again.Note, c.Note) {
			t.Fatalf("signing again at the same size gave another checkpoint: %q vs %q (%v)", again.Note, c.Note, err)
		}
		cp, _, _, err := log.ParseCheckpoint(c.Note, l.Origin(), v)
		if err != nil {
			t.Fatalf("checkpoint does not verify with the verifier key: %v", err)
		}
		if cp.Size != l.Size() || !bytes.Equal(cp.Hash, l.Root()) || cp.Size != c.Size {
			t.Fatalf("checkpoint says size %d root %x, log has %d %x", cp.Size, cp.Hash, l.Size(), l.Root())
		}
		signed = append(signed, c)
	}
	var kept []*Checkpoint
	if err := l.Checkpoints(ctx, func(c *Checkpoint) error { kept = append(kept, c); return nil }); err != nil {
		t.Fatal(err)
	}
	// The size-0 checkpoint signed at open, then the five.
	if len(kept) != 6 || kept[0].Size != 0 {
		t.Fatalf("kept %d checkpoints (first size %d), want 6 from size 0", len(kept), kept[0].Size)
	}
	for i, c := range signed {
		if !bytes.Equal(kept[i+1].Note, c.Note) {
			t.Errorf("kept checkpoint %d differs from the signed one", i+1)
		}
		at, err := l.CheckpointAt(ctx, c.Size)
		if err != nil || !bytes.Equal(at.Note, c.Note) {
			t.Errorf("CheckpointAt(%d) = %v, %v", c.Size, at, err)
		}
		root, _ := l.RootAt(ctx, c.Size)
		if !bytes.Equal(root, c.Root) {
			t.Errorf("checkpoint %d root %x, RootAt %x", c.Size, c.Root, root)
		}
	}
	if _, err := l.CheckpointAt(ctx, 4); !errors.Is(err, ErrNotFound) {
		t.Errorf("CheckpointAt(unsigned size): %v, want ErrNotFound", err)
	}
	// A checkpoint does not verify under another log's key.
	other, _, _ := NewKeys("other.example/log")
	ov, _ := note.NewVerifier(other.VerifierKey)
	if _, _, _, err := log.ParseCheckpoint(signed[0].Note, "other.example/log", ov); err == nil {
		t.Error("checkpoint verified with another log's key")
	}
}

func TestBackgroundCheckpoints(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{CheckpointInterval: 20 * 1e6})
	appendRaw(t, l, 3)
	for i := 0; i < 200 && l.LatestCheckpoint().Size != 3; i++ {
		if _, err := l.WaitForSize(context.Background(), 2); err != nil {
			t.Fatal(err)
		}
		sleep(10)
	}
	if got := l.LatestCheckpoint().Size; got != 3 {
		t.Fatalf("no background checkpoint of size 3 after 2 s (latest %d)", got)
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{Origin: "shop.example/consent", CheckpointInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	vkey := l.VerifierKey()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{SigningKeyFile: 0o600, SubjectKeyFile: 0o600, VerifierKeyFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	got, err := ReadVerifierKey(dir)
	if err != nil || got != vkey || !strings.HasPrefix(got, "shop.example/consent+") {
		t.Errorf("ReadVerifierKey = %q, %v; want %q", got, err, vkey)
	}
	// Reopening without an origin keeps the key; another origin is refused.
	l, err = Open(dir, Options{CheckpointInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if l.VerifierKey() != vkey || l.Origin() != "shop.example/consent" {
		t.Errorf("reopened with key %q origin %q", l.VerifierKey(), l.Origin())
	}
	l.Close()
	if _, err := Open(dir, Options{Origin: "other.example", CheckpointInterval: -1}); err == nil || !strings.Contains(err.Error(), "shop.example/consent") {
		t.Errorf("opening with another origin: %v, want a refusal naming the data directory's origin", err)
	}
	if _, err := ReadVerifierKey(t.TempDir()); err == nil {
		t.Error("ReadVerifierKey of an empty directory succeeded")
	}
}
