package backup_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consentledger/consentledger/backup"
	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

func TestBackupRestoreSameRoot(t *testing.T) {
	src := t.TempDir()
	l, err := ledger.Open(src, ledger.Options{CheckpointInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		_, err := l.Append(context.Background(), &ledger.Request{Entry: &pb.Entry{Actor: "t", Event: &pb.Entry_BreachDetected{BreachDetected: &pb.BreachDetected{BreachId: "b" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26))}}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := backup.Write(context.Background(), l, src, &buf); err != nil {
		t.Fatal(err)
	}
	size, root, vkey := l.Size(), l.Root(), l.VerifierKey()
	l.Close()

	dst := filepath.Join(t.TempDir(), "restored")
	gotSize, gotRoot, err := backup.Restore(dst, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if gotSize != size || !bytes.Equal(gotRoot, root) {
		t.Fatalf("restored size %d root %x, want %d %x", gotSize, gotRoot, size, root)
	}
	if k, _ := ledger.ReadVerifierKey(dst); k != vkey {
		t.Errorf("restored verifier key %q, want %q", k, vkey)
	}
	fi, err := os.Stat(filepath.Join(dst, ledger.SigningKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("restored signing key mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	// A restore never overwrites.
	if _, _, err := backup.Restore(dst, bytes.NewReader(buf.Bytes())); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("restore into a non-empty directory: %v", err)
	}
	if _, _, err := backup.Restore(t.TempDir(), strings.NewReader("not a backup")); err == nil {
		t.Error("restoring garbage succeeded")
	}
}
