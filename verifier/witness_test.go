package verifier_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/consentledger/consentledger/verifier"
)

// witnessCases are the witnessed fixtures (testdata/witnessed, written by
// go test ./server/ -run WriteWitnessedFixtures -witness-fixtures from a
// server with two real litewitnesses) and what each must show.
var witnessCases = []struct {
	golden  string   // report file in testdata/witnessed
	bundle  string   // fixture in testdata/witnessed
	keys    []string // pinned witness key files
	quorum  int
	wantErr string // "" verifies
}{
	{"valid.golden", "valid.json", []string{"w1.vkey", "w2.vkey"}, 0, ""},
	{"quorum-3.golden", "valid.json", []string{"w1.vkey", "w2.vkey"}, 3, "the quorum cannot be met"},
	{"bad-cosignature.golden", "bad-cosignature.json", []string{"w1.vkey", "w2.vkey"}, 0, "does not verify: it was altered, or made for another checkpoint"},
	{"wrong-witness-key.golden", "valid.json", []string{"w1.vkey", "other-witness.vkey"}, 0, "1 valid cosignatures from pinned witnesses, but the quorum is 2"},
	{"quorum-short.golden", "quorum-short.json", []string{"w1.vkey", "w2.vkey"}, 0, "1 valid cosignatures from pinned witnesses, but the quorum is 2"},
	{"quorum-short-1.golden", "quorum-short.json", []string{"w1.vkey", "w2.vkey"}, 1, ""},
	{"unwitnessed.golden", "unwitnessed.json", []string{"w1.vkey", "w2.vkey"}, 0, "0 valid cosignatures"},
	{"upgraded.golden", "upgraded.json", []string{"w1.vkey", "w2.vkey"}, 0, ""},
}

func witnessKeys(t *testing.T, files []string, quorum int) *verifier.Witnesses {
	t.Helper()
	var keys []string
	for _, f := range files {
		keys = append(keys, string(readFixture(t, "witnessed/"+f)))
	}
	w, err := verifier.ParseWitnesses(keys, quorum)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWitnessedFixtures(t *testing.T) {
	vkey := string(readFixture(t, "witnessed/verifier.key"))
	for _, tc := range witnessCases {
		t.Run(tc.golden, func(t *testing.T) {
			rep, err := verifier.VerifyEvidenceWitnessed(context.Background(), readFixture(t, "witnessed/"+tc.bundle), vkey, witnessKeys(t, tc.keys, tc.quorum))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if tc.wantErr != "" {
				var we *verifier.WitnessError
				if !errors.As(err, &we) || !errors.Is(err, verifier.ErrInvalid) {
					t.Errorf("%v is not a *verifier.WitnessError wrapping verifier.ErrInvalid", err)
				}
				if rep.Verified {
					t.Error("a failed witness check left the report verified")
				}
			}
			golden(t, "witnessed/"+tc.golden, []byte(rep.Text()))
			if tc.golden == "valid.golden" {
				j, _ := json.MarshalIndent(rep, "", "  ")
				golden(t, "witnessed/valid.json.golden", append(j, '\n'))
			}
		})
	}
	// Without witness keys the bundle verifies as it always did, and the
	// cosignatures are only named.
	rep, err := verifier.VerifyEvidence(context.Background(), readFixture(t, "witnessed/valid.json"), vkey)
	if err != nil || rep.Witness != nil || len(rep.Checkpoint.Cosigners) != 2 {
		t.Errorf("without --witness: %v, %+v", err, rep.Checkpoint)
	}
}

func TestParseWitnesses(t *testing.T) {
	w1 := string(readFixture(t, "witnessed/w1.vkey"))
	for _, tc := range []struct {
		keys   []string
		quorum int
		ok     bool
		want   int
	}{
		{[]string{w1}, 0, true, 1},
		{[]string{w1}, 5, true, 5}, // cannot be met: verification fails, it is not a usage error
		{nil, 1, true, 1},
		{[]string{w1}, -1, false, 0},
		{[]string{"nonsense"}, 0, false, 0},
		{[]string{string(readFixture(t, "witnessed/verifier.key")) + "x"}, 0, false, 0},
	} {
		w, err := verifier.ParseWitnesses(tc.keys, tc.quorum)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, verifier.ErrMalformed) || tc.ok && w.Quorum != tc.want {
			t.Errorf("verifier.ParseWitnesses(%q, %d) = %v, %v", tc.keys, tc.quorum, w, err)
		}
	}
}

// FuzzVerifyCosignatures feeds arbitrary notes to the witness check: it
// never panics, and what it accepts carries the quorum of cosignatures by
// pinned keys over this very note.
func FuzzVerifyCosignatures(f *testing.F) {
	for _, name := range []string{"valid.json", "bad-cosignature.json", "quorum-short.json", "upgraded.json"} {
		b, err := verifier.ParseBundle(readFixture(f, "witnessed/"+name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(b.Checkpoint))
		if b.Witnessed != nil {
			f.Add([]byte(b.Witnessed.Checkpoint))
		}
	}
	f.Add([]byte("not a note"))
	logVKey := strings.TrimSpace(string(readFixture(f, "witnessed/verifier.key")))
	key, err := verifier.ParseKey(logVKey)
	if err != nil {
		f.Fatal(err)
	}
	lv, _ := note.NewVerifier(logVKey)
	vs := []note.Verifier{lv}
	var keys []string
	for _, k := range []string{"w1.vkey", "w2.vkey"} {
		keys = append(keys, string(readFixture(f, "witnessed/"+k)))
		v, err := fnote.NewVerifierForCosignatureV1(strings.TrimSpace(keys[len(keys)-1]))
		if err != nil {
			f.Fatal(err)
		}
		vs = append(vs, v)
	}
	w, err := verifier.ParseWitnesses(keys, 2)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		cos, _, err := w.VerifyCosignatures(raw, key)
		if err != nil {
			var we *verifier.WitnessError
			if !errors.As(err, &we) || !errors.Is(err, verifier.ErrInvalid) {
				t.Fatalf("error of another class: %v", err)
			}
			return
		}
		if len(cos) < 2 {
			t.Fatalf("accepted %d cosignatures with a quorum of 2", len(cos))
		}
		// Every accepted cosignature is a line of this note, by a pinned key.
		n, err := note.Open(raw, note.VerifierList(vs...))
		if err != nil {
			t.Fatalf("accepted a note that does not open: %v", err)
		}
		for _, c := range cos {
			found := false
			for _, s := range n.Sigs {
				found = found || (s.Name == c.Witness && bytes.Contains(raw, []byte("— "+s.Name+" ")))
			}
			if !found {
				t.Fatalf("cosignature %+v is not on the note", c)
			}
		}
	})
}
