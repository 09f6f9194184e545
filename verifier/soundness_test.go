package verifier_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consentledger/verifier"
)

// soundnessCases are the forgeries of testdata/soundness: lies about a
// decision's policy input told by someone holding the log's signing key,
// re-evaluated so that the replay agrees (testdata/README.md). The bundle
// column is the evidence check that catches the lie (0: the bundle alone
// cannot, and its report says so); the audit always catches it.
var soundnessCases = []struct {
	name       string
	bundle     int    // failing evidence check, 0: verifies
	bundleWant string // in the evidence error, or in the report's NotProven
	audit      string // the audit's first finding
	index      uint64
	auditWant  string
}{
	{"valid-allow-later", 0, "", "", 0, ""},
	{"breach-freeze-hidden", 0, "Open breaches: the input lists 0 open breaches", verifier.AuditInput, 21, "breaches differs"},
	{"quiet-hours-now", verifier.CheckInput, "earlier than the decision's recorded_at", verifier.AuditInput, 28, "earlier than the decision's recorded_at"},
	{"quiet-hours-zone", verifier.CheckInput, "request.subject_timezone", verifier.AuditInput, 28, "request.subject_timezone differs"},
	{"rcs-optout-omitted", verifier.CheckInput, "subject.consents.sms", verifier.AuditInput, 32, "subject.consents.sms differs"},
	{"superseded-policy", 0, "no policy newer than #17", verifier.AuditPolicies, 28, "policy entry #19 superseded it"},
	{"withdrawn-consent-claimed", verifier.CheckChain, "ends the consent for sms/marketing", verifier.AuditSubjects, 15, "consent entries are not the subject's grant"},
	{"allow-without-consent-event", verifier.CheckGrant, "NOT a proof of consent", verifier.AuditInput, 12, "subject.consents.whatsapp differs"},
	{"rcs-relying-on-sms-grant", verifier.CheckGrant, "another channel", verifier.AuditSubjects, 16, "consent entries are not the subject's grant"},
}

func soundKey(t testing.TB) string { return string(readFixture(t, "soundness/verifier.key")) }

func TestSoundnessBundles(t *testing.T) {
	for _, tc := range soundnessCases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := verifier.VerifyEvidence(context.Background(), readFixture(t, "soundness/"+tc.name+".json"), soundKey(t))
			if rep == nil {
				t.Fatalf("no report: %v", err)
			}
			if tc.bundle == 0 {
				if err != nil {
					t.Fatalf("VerifyEvidence = %v, want verified (the bundle alone cannot show this lie)", err)
				}
				if tc.bundleWant != "" && !strings.Contains(strings.Join(rep.NotProven, "\n"), tc.bundleWant) {
					t.Errorf("the report does not say the bundle cannot prove %q: %q", tc.bundleWant, rep.NotProven)
				}
			} else {
				var ce *verifier.CheckError
				if !errors.As(err, &ce) || ce.Check != tc.bundle || !strings.Contains(err.Error(), tc.bundleWant) {
					t.Fatalf("VerifyEvidence = %v, want check %d failing with %q", err, tc.bundle, tc.bundleWant)
				}
			}
			golden(t, "soundness/"+tc.name+".evidence.golden", []byte(rep.Text()))
		})
	}
}

func TestSoundnessAudits(t *testing.T) {
	for _, tc := range soundnessCases {
		name := tc.name
		if name == "valid-allow-later" {
			name = "log"
		}
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(testdata, "soundness", name+".export"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rep, err := verifier.Audit(context.Background(), f, soundKey(t), nil)
			if rep == nil {
				t.Fatalf("no report: %v", err)
			}
			if tc.audit == "" {
				if err != nil {
					t.Fatalf("Audit = %v, want verified", err)
				}
			} else {
				var ae *verifier.AuditError
				if !errors.As(err, &ae) || ae.First.Check != tc.audit || ae.First.Index != tc.index || !strings.Contains(ae.First.Error(), tc.auditWant) {
					t.Fatalf("Audit = %v, want %s at #%d with %q", err, tc.audit, tc.index, tc.auditWant)
				}
			}
			golden(t, "soundness/"+name+".audit.golden", []byte(rep.Text()))
		})
	}
}

// A policy that never ends fails the replay of the decision it made, by
// index, within the time limit; an entry beyond the checkpoint fails at
// once.
func TestSoundnessRobustness(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check string
		index uint64
		want  string
	}{
		{"never-ending-policy", verifier.AuditReplay, 18, "did not finish within 300ms"},
		{"beyond-checkpoint", verifier.AuditRoot, 33, "beyond the checkpoint's size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(testdata, "soundness", tc.name+".export"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			start := time.Now()
			rep, err := verifier.AuditWith(context.Background(), f, soundKey(t), nil, verifier.Options{ReplayTimeout: 300 * time.Millisecond})
			var ae *verifier.AuditError
			if !errors.As(err, &ae) || ae.First.Check != tc.check || ae.First.Index != tc.index || !strings.Contains(ae.First.Error(), tc.want) {
				t.Fatalf("Audit = %v, want %s at #%d with %q", err, tc.check, tc.index, tc.want)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %s", d)
			}
			golden(t, "soundness/"+tc.name+".audit.golden", []byte(rep.Text()))
		})
	}
}
