// Package keycopy copies a data directory's key files for tests that start
// a second node, or a node on an empty data directory, with the same keys
// (several nodes on one Trillian tree share them).
package keycopy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Into copies every regular file of from whose name ends in ".key" (the
// signing, subject and verifier keys) into the directory to, keeping each
// file's permission bits; anything else (the store, the checkpoint
// sidecar) is not copied.
func Into(t testing.TB, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".key") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("no key files in %s", from)
	}
}

// Dir copies from's key files into a new temporary directory and returns it.
func Dir(t testing.TB, from string) string {
	t.Helper()
	to := t.TempDir()
	Into(t, from, to)
	return to
}
