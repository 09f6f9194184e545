package verifier_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/consentledger/consentledger/export"
	"github.com/consentledger/consentledger/verifier"
)

func TestParseKey(t *testing.T) {
	k, err := verifier.ParseKey("  " + pinnedKey(t) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if k.Name() != "consent.example.com/ledger" || len(k.Hash()) != 8 || !strings.HasPrefix(k.String(), k.Name()+"+"+k.Hash()+"+") {
		t.Errorf("key name %q hash %q text %q", k.Name(), k.Hash(), k.String())
	}
	skey, _, err := note.GenerateKey(rand.Reader, "x.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "consent.example.com/ledger", "a+b+c", skey} {
		if _, err := verifier.ParseKey(bad); !errors.Is(err, verifier.ErrMalformed) {
			t.Errorf("ParseKey(%.30q) = %v, want ErrMalformed", bad, err)
		}
	}
	if _, err := verifier.ParseKey(skey); !strings.Contains(err.Error(), "private signing key") {
		t.Errorf("ParseKey(signer key) = %v, want a word about the private key", err)
	}
}

func signer(t testing.TB, name string) (note.Signer, *verifier.Key) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := verifier.ParseKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

func TestVerifyCheckpoint(t *testing.T) {
	s, key := signer(t, "log.example/a")
	sign := func(text string, signers ...note.Signer) []byte {
		b, err := note.Sign(&note.Note{Text: text}, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	root := bytes.Repeat([]byte{1}, 32)
	good := log.Checkpoint{Origin: "log.example/a", Size: 5, Hash: root}.Marshal()
	witness, _ := signer(t, "witness.example")
	cp, err := verifier.VerifyCheckpoint(sign(string(good), witness, s), key)
	if err != nil || cp.Size != 5 || !bytes.Equal(cp.Root, root) || cp.Origin != "log.example/a" || len(cp.Cosigners) != 1 {
		t.Fatalf("VerifyCheckpoint = %+v, %v", cp, err)
	}
	other, _ := signer(t, "log.example/a") // same name, another key
	for _, tc := range []struct {
		name string
		note []byte
		want string
	}{
		{"not a note", []byte("hello"), "not a signed note"},
		{"another key of the same name", sign(string(good), other), "no signature by the pinned key"},
		{"another origin", sign(string(log.Checkpoint{Origin: "log.example/b", Size: 5, Hash: root}.Marshal()), s), "not a checkpoint of the log"},
		{"not a checkpoint", sign("log.example/a\nfive\n", s), "not a checkpoint of the log"},
		{"short root", sign("log.example/a\n5\n"+base64.StdEncoding.EncodeToString(root[:31])+"\n", s), "root hash is 31 bytes"},
		{"altered", bytes.Replace(sign(string(good), s), []byte("\n5\n"), []byte("\n6\n"), 1), "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifier.VerifyCheckpoint(tc.note, key)
			var cpErr *verifier.CheckpointError
			if !errors.As(err, &cpErr) || !errors.Is(err, verifier.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("VerifyCheckpoint = %v, want a *CheckpointError with %q", err, tc.want)
			}
		})
	}
}

func TestParseBundleMalformed(t *testing.T) {
	valid := readFixture(t, "evidence/valid-allow.json")
	for name, in := range map[string][]byte{
		"empty":         nil,
		"not JSON":      []byte("consentledger"),
		"unknown field": []byte(`{"checkpoint": "x", "extra": 1}`),
		"no decision":   []byte(`{"checkpoint": "x", "policy": {}}`),
		"no policy":     []byte(`{"checkpoint": "x", "decision": {}}`),
		"no checkpoint": []byte(`{"decision": {}, "policy": {}}`),
		"null chain":    []byte(`{"checkpoint": "x", "decision": {}, "policy": {}, "chain": [null]}`),
		"truncated":     valid[:len(valid)/2],
	} {
		rep, err := verifier.VerifyEvidence(context.Background(), in, pinnedKey(t))
		if rep != nil || !errors.Is(err, verifier.ErrMalformed) || errors.Is(err, verifier.ErrInvalid) {
			t.Errorf("%s: VerifyEvidence = %v, %v; want ErrMalformed and no report", name, rep, err)
		}
	}
	if _, err := verifier.VerifyEvidence(context.Background(), valid, "not a key"); !errors.Is(err, verifier.ErrMalformed) {
		t.Errorf("bad key: %v, want ErrMalformed", err)
	}
}

func TestVerifyInclusionErrors(t *testing.T) {
	cp := &verifier.Checkpoint{Size: 4, Root: make([]byte, 32)}
	for _, tc := range []struct {
		index uint64
		proof [][]byte
		want  string
	}{
		{4, nil, "beyond the checkpoint's tree size 4"},
		{1, [][]byte{make([]byte, 31)}, "is 31 bytes"},
		{1, [][]byte{make([]byte, 32)}, "malformed"},
		{1, [][]byte{make([]byte, 32), make([]byte, 32)}, "does not lead to the checkpoint's root"},
	} {
		err := verifier.VerifyInclusion(cp, tc.index, []byte("entry"), tc.proof)
		var pe *verifier.ProofError
		if !errors.As(err, &pe) || !errors.Is(err, verifier.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("VerifyInclusion(%d, %d hashes) = %v, want %q", tc.index, len(tc.proof), err, tc.want)
		}
	}
}

func TestParseConsistencyProof(t *testing.T) {
	h1, h2 := bytes.Repeat([]byte{0xab}, 32), bytes.Repeat([]byte{0x01}, 32)
	text := "# from the server\n" + hex.EncodeToString(h1) + "\n\n" + base64.StdEncoding.EncodeToString(h2) + "\n"
	p, err := verifier.ParseConsistencyProof([]byte(text))
	if err != nil || len(p.Hashes) != 2 || !bytes.Equal(p.Hashes[0], h1) || !bytes.Equal(p.Hashes[1], h2) || p.Size1 != 0 {
		t.Fatalf("text proof: %+v, %v", p, err)
	}
	p, err = verifier.ParseConsistencyProof(readFixture(t, "consistency/proof.json"))
	if err != nil || p.Size1 != 11 || p.Size2 != 29 || len(p.Hashes) == 0 {
		t.Fatalf("JSON proof: %+v, %v", p, err)
	}
	for _, bad := range []string{"zz", hex.EncodeToString(h1[:31]), `{"proof": [1]}`, `{"size1": "x"}`, `{"size1": -1}`} {
		if _, err := verifier.ParseConsistencyProof([]byte(bad)); !errors.Is(err, verifier.ErrMalformed) {
			t.Errorf("ParseConsistencyProof(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

// exportEntries reads the entries of an export fixture.
func exportEntries(t testing.TB, name string) ([]byte, [][]byte) {
	t.Helper()
	f, err := os.Open(filepath.Join(testdata, "export", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return readExport(t, f)
}

// readExport reads the checkpoint and entries of an export.
func readExport(t testing.TB, in io.Reader) ([]byte, [][]byte) {
	t.Helper()
	r, err := export.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	var entries [][]byte
	for {
		_, e, err := r.Next()
		if err == io.EOF {
			return r.Checkpoint, entries
		}
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
}

// TestCrossCheckTlog checks the fixtures with a second RFC 6962
// implementation, golang.org/x/mod/sumdb/tlog, that neither the ledger nor
// the verifier uses: the export's entries hash to the checkpoint's root,
// and every inclusion proof of the valid bundles is the one tlog proves and
// checks.
func TestCrossCheckTlog(t *testing.T) {
	note, entries := exportEntries(t, "log.export")
	key, err := verifier.ParseKey(pinnedKey(t))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := verifier.VerifyCheckpoint(note, key)
	if err != nil {
		t.Fatal(err)
	}
	var stored []tlog.Hash
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for i, e := range entries {
		hs, err := tlog.StoredHashes(int64(i), e, hr)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	size := int64(len(entries))
	root, err := tlog.TreeHash(size, hr)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(cp.Size) || !bytes.Equal(root[:], cp.Root) {
		t.Fatalf("tlog: %d entries hash to %x, the checkpoint says %d, %x", size, root, cp.Size, cp.Root)
	}
	files, _ := filepath.Glob(filepath.Join(testdata, "evidence", "valid-*.json"))
	if len(files) < 5 {
		t.Fatalf("found %d valid bundles", len(files))
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		b := decodeBundle(t, raw)
		for _, pe := range append(append(b.Chain, b.Decision), b.Policy) {
			want, err := tlog.ProveRecord(size, int64(pe.Index), hr)
			if err != nil {
				t.Fatal(err)
			}
			var p tlog.RecordProof
			for _, h := range pe.InclusionProof {
				var th tlog.Hash
				copy(th[:], h)
				p = append(p, th)
			}
			if len(p) != len(want) {
				t.Fatalf("%s: entry %d: proof of %d hashes, tlog proves %d", filepath.Base(file), pe.Index, len(p), len(want))
			}
			for i := range p {
				if p[i] != want[i] {
					t.Errorf("%s: entry %d: proof hash %d differs from tlog's", filepath.Base(file), pe.Index, i)
				}
			}
			if err := tlog.CheckRecord(p, size, root, int64(pe.Index), tlog.RecordHash(pe.Entry)); err != nil {
				t.Errorf("%s: entry %d: tlog.CheckRecord: %v", filepath.Base(file), pe.Index, err)
			}
		}
	}
}

func TestCheckNames(t *testing.T) {
	want := []string{"", "signature", "inclusion", "chain", "grant", "policy", "input", ""}
	for n, w := range want {
		if got := verifier.CheckName(n); got != w {
			t.Errorf("CheckName(%d) = %q, want %q", n, got, w)
		}
	}
}

// A cancelled audit stops and says so, without a report.
func TestAuditCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f, err := os.Open(filepath.Join(testdata, "export", "log.export"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := verifier.Audit(ctx, f, pinnedKey(t), nil)
	if rep != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Audit with a cancelled context = %v, %v", rep, err)
	}
}

func TestAuditMalformed(t *testing.T) {
	for name, in := range map[string][]byte{
		"empty":         nil,
		"not magic":     []byte("hello world, this is not an export"),
		"no checkpoint": []byte(export.Magic),
	} {
		rep, err := verifier.Audit(context.Background(), bytes.NewReader(in), pinnedKey(t), nil)
		if rep != nil || !errors.Is(err, verifier.ErrMalformed) {
			t.Errorf("%s: Audit = %v, %v; want ErrMalformed", name, rep, err)
		}
	}
}
