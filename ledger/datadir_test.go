package ledger

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newDataDir creates a data directory holding a small closed log and
// returns it with the log's leaves and root.
func newDataDir(t *testing.T) (string, [][]byte, []byte) {
	t.Helper()
	dir := t.TempDir()
	l, err := Open(dir, Options{Origin: "test.example/ledger", CheckpointInterval: -1, DiskReserve: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 600; i++ {
		mustAppend(t, l, &Request{Entry: filler(300 + i)})
	}
	leaves, root := allLeaves(t, l), l.Root()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, leaves, root
}

// TestDamagedDataDirRefused: each way a data directory can be unsafe is
// refused at start with a message naming what is wrong and how to recover,
// and nothing is created in it.
func TestDamagedDataDirRefused(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		wantMsg []string
	}{
		{"newer format", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, FormatFile), formatPrefix+"2\n", 0o644)
		}, []string{"newer consentledger", "format 2"}},
		{"foreign format file", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, FormatFile), "hello\n", 0o644)
		}, []string{"not written by consentledger", "backup"}},
		{"signing key missing", func(t *testing.T, dir string) {
			remove(t, filepath.Join(dir, SigningKeyFile))
		}, []string{"signing.key is missing", "restore the key files"}},
		{"subject key missing", func(t *testing.T, dir string) {
			remove(t, filepath.Join(dir, SubjectKeyFile))
		}, []string{"subject.key is missing", "restore the key files"}},
		{"signing key readable by others", func(t *testing.T, dir string) {
			chmod(t, filepath.Join(dir, SigningKeyFile), 0o644)
		}, []string{"signing.key is readable by others", "chmod 600"}},
		{"subject key readable by group", func(t *testing.T, dir string) {
			chmod(t, filepath.Join(dir, SubjectKeyFile), 0o640)
		}, []string{"subject.key is readable by others", "chmod 600"}},
		{"signing key of another log", func(t *testing.T, dir string) {
			_, skey, err := NewKeys("test.example/ledger")
			if err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(dir, SigningKeyFile), skey+"\n", 0o600)
		}, []string{"verifier.key does not match", "restore the key files"}},
		{"both keys of another log", func(t *testing.T, dir string) {
			keys, skey, err := NewKeys("test.example/ledger")
			if err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(dir, SigningKeyFile), skey+"\n", 0o600)
			write(t, filepath.Join(dir, VerifierKeyFile), keys.VerifierKey+"\n", 0o644)
		}, []string{"do not belong to this log", "restore"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, _, _ := newDataDir(t)
			tt.damage(t, dir)
			before := listing(t, dir)
			l, err := Open(dir, Options{CheckpointInterval: -1, DiskReserve: -1})
			if err == nil {
				l.Close()
				t.Fatal("Open succeeded on a damaged data directory")
			}
			for _, want := range tt.wantMsg {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if after := listing(t, dir); after != before {
				t.Errorf("Open changed the damaged directory:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestDamagedStoreFiles truncates, or flips a byte in, each file of the
// Badger store in turn. Opening must never panic and never serve a wrong
// log: it fails with ErrDataDir, or it opens with the same root and every
// entry it returns is the recorded one (a damaged block the start did not
// read is an error when read, not wrong bytes).
func TestDamagedStoreFiles(t *testing.T) {
	dir, leaves, root := newDataDir(t)
	files, err := os.ReadDir(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		fi, err := f.Info()
		if err != nil || fi.Size() == 0 || f.IsDir() {
			continue
		}
		for _, kind := range []string{"truncated", "bit-flipped"} {
			t.Run(kind+" "+f.Name(), func(t *testing.T) {
				d := copyDir(t, dir)
				path := filepath.Join(d, "db", f.Name())
				raw, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if kind == "truncated" {
					raw = raw[:len(raw)/2]
				} else {
					raw[len(raw)/2] ^= 0x40
				}
				write(t, path, string(raw), fi.Mode().Perm())

				l, err := Open(d, Options{CheckpointInterval: -1, DiskReserve: -1})
				if err != nil {
					if !errors.Is(err, ErrDataDir) {
						t.Fatalf("Open: %v, want an ErrDataDir that says how to recover", err)
					}
					if !strings.Contains(err.Error(), "backup") {
						t.Errorf("error %q does not say how to recover", err)
					}
					return
				}
				defer l.Close()
				if !bytes.Equal(l.Root(), root) || l.Size() != uint64(len(leaves)) {
					t.Fatalf("opened a damaged store with size %d root %x, want %d %x", l.Size(), l.Root(), len(leaves), root)
				}
				for i := range leaves {
					data, err := l.Entry(t.Context(), uint64(i))
					if err != nil {
						return // the damage is found when read: an error, not wrong bytes
					}
					if got := hasher.HashLeaf(data); !bytes.Equal(got, leaves[i]) {
						t.Fatalf("entry %d read from a damaged store has leaf %x, want %x", i, got, leaves[i])
					}
				}
			})
		}
	}
}

func write(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// listing describes the ledger's own files in dir (keys, format, sidecar:
// names, modes and contents) to compare; the store's files are Badger's.
func listing(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%v:%x ", e.Name(), fi.Mode(), sha256.Sum256(raw))
	}
	return b.String()
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, fi.Mode().Perm())
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, raw, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
