package verifier_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consentledger/consentledger/verifier"
)

var update = flag.Bool("update", false, "rewrite the golden reports in ../testdata (the fixtures themselves come from go run ./internal/fixturegen)")

// testdata is the repository's fixture directory, written by
// internal/fixturegen and committed.
const testdata = "../testdata"

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pinnedKey(t testing.TB) string { return string(readFixture(t, "verifier.key")) }
func otherKey(t testing.TB) string  { return string(readFixture(t, "other-log.key")) }
func keyNamed(t testing.TB, name string) string {
	if name == "other-log" {
		return otherKey(t)
	}
	return pinnedKey(t)
}

// golden compares got with the golden file, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(testdata, name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./verifier/ -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("report differs from %s (go test ./verifier/ -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// evidenceCases are the evidence fixtures and the check that must catch
// each (0: verifies). testdata/README.md explains each tampering.
var evidenceCases = []struct {
	name    string // golden file testdata/evidence/<name>.golden
	bundle  string
	key     string // "verifier" or "other-log"
	check   int
	index   int64 // the entry the failure names, -1 for none; scenario.txt lists them
	outcome string
}{
	{"valid-allow", "valid-allow", "verifier", 0, -1, verifier.OutcomeConsent},
	{"valid-allow-optout", "valid-allow-optout", "verifier", 0, -1, verifier.OutcomeConsent},
	{"valid-allow-template", "valid-allow-template", "verifier", 0, -1, verifier.OutcomeConsent},
	{"valid-allow-sms", "valid-allow-sms", "verifier", 0, -1, verifier.OutcomeConsent},
	{"valid-cosigned", "valid-cosigned", "verifier", 0, -1, verifier.OutcomeConsent},
	{"valid-deny", "valid-deny", "verifier", 0, -1, verifier.OutcomeDenial},
	{"valid-deny-breach", "valid-deny-breach", "verifier", 0, -1, verifier.OutcomeDenial},

	{"wrong-key", "valid-allow", "other-log", 1, -1, verifier.OutcomeFailed},
	{"other-log", "other-log", "verifier", 1, -1, verifier.OutcomeFailed},
	{"checkpoint-altered", "checkpoint-altered", "verifier", 1, -1, verifier.OutcomeFailed},
	{"flipped-byte", "flipped-byte", "verifier", 2, 11, verifier.OutcomeFailed},
	{"withdrawal-altered", "withdrawal-altered", "verifier", 2, 6, verifier.OutcomeFailed},
	{"index-beyond-size", "index-beyond-size", "verifier", 2, 11, verifier.OutcomeFailed},
	{"forged-index-field", "forged-index-field", "verifier", 2, 11, verifier.OutcomeFailed},
	{"chain-cut", "chain-cut", "verifier", 3, 3, verifier.OutcomeFailed},
	{"withdrawal-dropped", "withdrawal-dropped", "verifier", 3, 7, verifier.OutcomeFailed},
	{"forged-withdrawal", "forged-withdrawal", "verifier", 3, 6, verifier.OutcomeFailed},
	{"allow-without-consent", "allow-without-consent", "verifier", 4, 18, verifier.OutcomeFailed},
	{"forged-grant-purpose", "forged-grant-purpose", "verifier", 4, 1, verifier.OutcomeFailed},
	{"forged-grant-after-decision", "forged-grant-after-decision", "verifier", 4, 1, verifier.OutcomeFailed},
	{"forged-no-double-opt-in", "forged-no-double-opt-in", "verifier", 4, 1, verifier.OutcomeFailed},
	{"policy-swapped", "policy-swapped", "verifier", 5, 17, verifier.OutcomeFailed},
	{"forged-policy-files", "forged-policy-files", "verifier", 5, 0, verifier.OutcomeFailed},
	{"forged-decision-digest", "forged-decision-digest", "verifier", 5, 0, verifier.OutcomeFailed},
	{"forged-replay", "forged-replay", "verifier", 5, 11, verifier.OutcomeFailed},
}

func TestEvidenceFixtures(t *testing.T) {
	ctx := context.Background()
	for _, tc := range evidenceCases {
		t.Run(tc.name, func(t *testing.T) {
			bundle := readFixture(t, "evidence/"+tc.bundle+".json")
			rep, err := verifier.VerifyEvidence(ctx, bundle, keyNamed(t, tc.key))
			if rep == nil {
				t.Fatalf("VerifyEvidence returned no report (err %v)", err)
			}
			if rep.Outcome != tc.outcome {
				t.Errorf("outcome %q, want %q", rep.Outcome, tc.outcome)
			}
			if tc.check == 0 {
				if err != nil || !rep.Verified {
					t.Fatalf("VerifyEvidence = %v, verified %v; want verified", err, rep.Verified)
				}
			} else {
				var ce *verifier.CheckError
				if !errors.As(err, &ce) {
					t.Fatalf("VerifyEvidence = %v, want a *CheckError for check %d", err, tc.check)
				}
				if !errors.Is(err, verifier.ErrInvalid) || errors.Is(err, verifier.ErrMalformed) {
					t.Errorf("error %v is not (only) ErrInvalid", err)
				}
				if ce.Check != tc.check || ce.Name != verifier.CheckName(tc.check) {
					t.Errorf("failed check %d (%s), want %d (%s): %v", ce.Check, ce.Name, tc.check, verifier.CheckName(tc.check), err)
				}
				gotIndex := int64(-1)
				if ce.HasIndex {
					gotIndex = int64(ce.Index)
				}
				if gotIndex != tc.index {
					t.Errorf("failure names entry %d, want %d: %v", gotIndex, tc.index, err)
				}
				if rep.Verified || rep.Failure != ce {
					t.Errorf("report verified=%v failure=%v, want the failure %v", rep.Verified, rep.Failure, ce)
				}
				if tc.check == verifier.CheckSignature {
					var cpErr *verifier.CheckpointError
					if !errors.As(err, &cpErr) {
						t.Errorf("check 1 failure %v does not carry a *CheckpointError", err)
					}
				}
			}
			for i, c := range rep.Checks {
				want := verifier.StatusPassed
				switch {
				case tc.check != 0 && i+1 == tc.check:
					want = verifier.StatusFailed
				case tc.check != 0 && i+1 > tc.check:
					want = verifier.StatusNotRun
				case c.Status == verifier.StatusSkipped:
					want = verifier.StatusSkipped
				}
				if c.Status != want {
					t.Errorf("check %d status %q, want %q", c.Check, c.Status, want)
				}
			}
			golden(t, "evidence/"+tc.name+".golden", []byte(rep.Text()))
		})
	}
}

func TestEvidenceJSON(t *testing.T) {
	for _, name := range []string{"valid-allow", "allow-without-consent"} {
		rep, _ := verifier.VerifyEvidence(context.Background(), readFixture(t, "evidence/"+name+".json"), pinnedKey(t))
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "evidence/"+name+".json.golden", append(b, '\n'))
		var back map[string]any
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back["verified"] != rep.Verified || back["outcome"] != rep.Outcome {
			t.Errorf("%s: JSON verified=%v outcome=%v", name, back["verified"], back["outcome"])
		}
	}
}

// Denials verify without a chain; decisions of other subjects do not mix.
func TestEvidenceReportFacts(t *testing.T) {
	rep, err := verifier.VerifyEvidence(context.Background(), readFixture(t, "evidence/valid-allow-template.json"), pinnedKey(t))
	if err != nil {
		t.Fatal(err)
	}
	// A WhatsApp template of category marketing relies on the marketing
	// opt-in, whatever purpose the sender stated.
	if d := rep.Decision; d.Purpose != "order_updates" || d.ConsentPurpose != "marketing" {
		t.Errorf("decision purpose %q consent purpose %q, want order_updates and marketing", d.Purpose, d.ConsentPurpose)
	}
	if g := rep.Grant; g == nil || !g.DoubleOptIn || g.ConfirmedBy == nil || *g.ConfirmedBy != g.Index {
		t.Errorf("grant facts %+v, want double opt-in confirmed in the grant itself", rep.Grant)
	}
	rep, err = verifier.VerifyEvidence(context.Background(), readFixture(t, "evidence/valid-cosigned.json"), pinnedKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Checkpoint.Cosigners) != 1 || !strings.HasPrefix(rep.Checkpoint.Cosigners[0], "witness.example.net+") {
		t.Errorf("cosigners %v, want the witness", rep.Checkpoint.Cosigners)
	}
}

var auditCases = []struct {
	name      string // export file testdata/export/<name>.export
	key       string
	check     string // the first finding's check, "" for none
	first     int64  // the first bad index, -1 for none
	findings  int
	malformed bool
}{
	{"log", "verifier", "", -1, 0, false},
	// The flipped byte is in #11's message_ref: its input no longer matches
	// its request (#11), and the chain breaks at #12.
	{"flipped-byte", "verifier", verifier.AuditInput, 11, 3, false},
	// The forged input's now (22:30) is after the decision's recorded_at
	// (12:00), and the replay gives another result.
	{"forged-replay", "verifier", verifier.AuditInput, 11, 2, false},
	{"forged-fork", "verifier", verifier.AuditSubjects, 7, 1, false},
	{"forged-late-breach", "verifier", verifier.AuditBreaches, 26, 1, false},
	{"truncated", "verifier", "", -1, 0, true},
}

func TestAuditFixtures(t *testing.T) {
	ctx := context.Background()
	for _, tc := range auditCases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(testdata, "export", tc.name+".export"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var calls int
			rep, err := verifier.Audit(ctx, f, keyNamed(t, tc.key), func(done, total uint64) { calls++ })
			if tc.malformed {
				if !errors.Is(err, verifier.ErrMalformed) || rep != nil {
					t.Fatalf("Audit = %v, %v; want ErrMalformed and no report", rep, err)
				}
				return
			}
			if rep == nil {
				t.Fatalf("Audit returned no report: %v", err)
			}
			if calls == 0 {
				t.Error("progress was never called")
			}
			if tc.check == "" {
				if err != nil || !rep.Verified || rep.FirstBadIndex != nil {
					t.Fatalf("Audit = %v, verified %v; want verified", err, rep.Verified)
				}
			} else {
				var ae *verifier.AuditError
				if !errors.As(err, &ae) || !errors.Is(err, verifier.ErrInvalid) {
					t.Fatalf("Audit error %v, want an *AuditError", err)
				}
				if ae.First.Check != tc.check || !ae.First.HasIndex || int64(ae.First.Index) != tc.first || ae.Total != tc.findings {
					t.Errorf("first finding %v of %d, want %s at #%d of %d", ae.First, ae.Total, tc.check, tc.first, tc.findings)
				}
				if rep.FirstBadIndex == nil || int64(*rep.FirstBadIndex) != tc.first {
					t.Errorf("report's first bad index %v, want %d", rep.FirstBadIndex, tc.first)
				}
			}
			if rep.Entries != 29 || rep.Replayed != rep.Allowed+rep.Denied {
				t.Errorf("audited %d entries, replayed %d of %d decisions", rep.Entries, rep.Replayed, rep.Allowed+rep.Denied)
			}
			golden(t, "export/"+tc.name+".audit.golden", []byte(rep.Text()))
		})
	}
}

func TestAuditWrongKey(t *testing.T) {
	f, err := os.Open(filepath.Join(testdata, "export", "log.export"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := verifier.Audit(context.Background(), f, otherKey(t), nil)
	var cpErr *verifier.CheckpointError
	if rep != nil || !errors.As(err, &cpErr) || !errors.Is(err, verifier.ErrInvalid) {
		t.Fatalf("Audit with another log's key = %v, %v; want a *CheckpointError", rep, err)
	}
}

func TestBreachesFixtures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		verified bool
		states   []string
	}{
		{"log", true, []string{verifier.NotifiedInTime, verifier.NotifiedLateReason, verifier.NotNotifiedPending}},
		{"forged-late-breach", false, []string{verifier.NotifiedInTime, verifier.NotifiedLateNoReason, verifier.NotNotifiedPending}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(testdata, "export", tc.name+".export"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rep, err := verifier.Breaches(context.Background(), f, pinnedKey(t))
			if rep == nil || rep.Verified != tc.verified || (err == nil) != tc.verified {
				t.Fatalf("Breaches = %v (verified %v), want verified %v", err, rep != nil && rep.Verified, tc.verified)
			}
			var states []string
			for _, b := range rep.Breaches {
				states = append(states, b.Timeliness)
			}
			if strings.Join(states, " ") != strings.Join(tc.states, " ") {
				t.Errorf("timeliness %v, want %v", states, tc.states)
			}
			golden(t, "export/"+tc.name+".breaches.golden", []byte(rep.Text()))
		})
	}
}

func TestConsistencyFixtures(t *testing.T) {
	old, cur := readFixture(t, "consistency/old.checkpoint"), readFixture(t, "consistency/new.checkpoint")
	for _, tc := range []struct {
		name      string
		old, new  []byte
		proof     string
		key       string
		wantError string // "" verifies
	}{
		{"valid", old, cur, "proof.json", "verifier", ""},
		{"bad proof", old, cur, "proof-bad.json", "verifier", "does not match the checkpoints"},
		{"forked log", old, readFixture(t, "consistency/forked.checkpoint"), "forked-proof.json", "verifier", "the log was rewritten"},
		{"swapped", cur, old, "proof.json", "verifier", "the proof is for sizes 11 to 29"},
		{"wrong key", old, cur, "proof.json", "other-log", "old checkpoint: no signature by the pinned key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := verifier.ParseConsistencyProof(readFixture(t, "consistency/"+tc.proof))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := verifier.VerifyConsistencyProof(tc.old, tc.new, keyNamed(t, tc.key), p)
			if tc.wantError == "" {
				if err != nil || rep.Old.Size != 11 || rep.New.Size != 29 {
					t.Fatalf("VerifyConsistencyProof = %v, %v", rep, err)
				}
				// The same with the plain function.
				if _, err := verifier.VerifyConsistency(tc.old, tc.new, pinnedKey(t), p.Hashes); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !errors.Is(err, verifier.ErrInvalid) || !strings.Contains(err.Error(), tc.wantError) {
				t.Fatalf("VerifyConsistencyProof error %v, want ErrInvalid containing %q", err, tc.wantError)
			}
		})
	}
}
