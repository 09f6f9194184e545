package verifier_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/consentledger/consentledger/verifier"
)

// Verify the evidence bundle of one send decision against the log's pinned
// verifier key.
func ExampleVerifyEvidence() {
	bundle, _ := os.ReadFile("../testdata/evidence/valid-allow.json")
	key, _ := os.ReadFile("../testdata/verifier.key") // pinned out of band: consentledger pubkey
	report, err := verifier.VerifyEvidence(context.Background(), bundle, string(key))
	if err != nil {
		fmt.Println("not verified:", err)
		return
	}
	fmt.Println(report.Outcome)
	for _, c := range report.Checks {
		fmt.Printf("%d %s: %s\n", c.Check, c.Name, c.Status)
	}
	fmt.Printf("grant #%d, decision #%d, policy #%d\n", report.Grant.Index, report.Decision.Index, report.Policy.Index)
	// Output:
	// consent_proven
	// 1 signature: passed
	// 2 inclusion: passed
	// 3 chain: passed
	// 4 grant: passed
	// 5 policy: passed
	// 6 input: passed
	// grant #1, decision #11, policy #0
}

// A bundle whose decision entry was edited after the fact fails check 2:
// its bytes are not the ones the signed tree holds.
func ExampleVerifyEvidence_tampered() {
	bundle, _ := os.ReadFile("../testdata/evidence/flipped-byte.json")
	key, _ := os.ReadFile("../testdata/verifier.key")
	_, err := verifier.VerifyEvidence(context.Background(), bundle, string(key))
	var ce *verifier.CheckError
	if errors.As(err, &ce) {
		fmt.Printf("check %d (%s) failed for entry #%d: %s\n", ce.Check, ce.Name, ce.Index, ce.Message)
	}
	fmt.Println(errors.Is(err, verifier.ErrInvalid), errors.Is(err, verifier.ErrMalformed))
	// Output:
	// check 2 (inclusion) failed for entry #11: the inclusion proof does not lead to the checkpoint's root
	// true false
}
