package verifier_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/consentledger/consentledger/ledger/state"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/verifier"
)

// loopRego decides only after iterating 10^12 pairs: an evaluation that
// never ends in practice, without allocating as it goes.
const loopRego = `package consentledger.send

decision := {"allow": true, "reasons": ["consent: never"]} if {
	some a in numbers.range(1, 1000000)
	some b in numbers.range(1, 1000000)
	a + b < 0
} else := {"allow": false, "reasons": ["no_consent: none"]}
`

const inboundRego = "package consentledger.inbound\n\ndefault action := \"none\"\n\ndefault keyword := \"\"\n"

// loopExport is a log whose second entry is a decision made under a policy
// whose evaluation never ends.
func loopExport(t *testing.T) ([]byte, string) {
	s, key := signer(t, "loop.example/ledger")
	files := []policies.File{
		{Name: "send.rego", Content: loopRego},
		{Name: "inbound.rego", Content: inboundRego},
	}
	pf := make([]*pb.PolicyFile, len(files))
	for i, f := range files {
		pf[i] = &pb.PolicyFile{Name: f.Name, Content: f.Content}
	}
	l := newSynthLog(t)
	digest := policies.Digest(files)
	l.add(&pb.Entry{Event: &pb.Entry_PolicyPublished{PolicyPublished: &pb.PolicyPublished{Files: pf, Digest: digest}}})
	req := &pb.SendRequest{Channel: pb.Channel_CHANNEL_WHATSAPP, Purpose: "marketing"}
	in := state.Input(l.clock.Add(time.Millisecond), req, false, nil, nil)
	l.add(&pb.Entry{SubjectId: "subj_loop", Event: &pb.Entry_SendDecision{SendDecision: &pb.SendDecision{
		Request: req, Allow: false, Reasons: []string{"no_consent: none"}, PolicyDigest: digest,
		Input: policies.AppendJSON(nil, in.Value()), InputVersion: state.InputVersion,
	}}})
	return l.export(s), key.String()
}

// A policy that never ends fails the replay of the decision, naming its
// index, once the time limit passes: the audit does not hang.
func TestAuditReplayTimeout(t *testing.T) {
	exp, key := loopExport(t)
	start := time.Now()
	rep, err := verifier.AuditWith(context.Background(), bytes.NewReader(exp), key, nil, verifier.Options{ReplayTimeout: 200 * time.Millisecond})
	var ae *verifier.AuditError
	if !errors.As(err, &ae) || ae.First.Check != verifier.AuditReplay || ae.First.Index != 1 || !strings.Contains(ae.First.Message, "did not finish within 200ms") {
		t.Fatalf("Audit = %v, want a replay finding at #1 naming the time limit", err)
	}
	if rep == nil || rep.Verified {
		t.Fatal("the report says verified")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the audit took %s with a 200 ms limit", d)
	}
}

// An export holding an entry beyond its checkpoint's size fails at that
// entry, and the audit reads nothing after it: here the stream would block
// forever after the extra entry.
func TestAuditStopsAtCheckpointSize(t *testing.T) {
	exp := readFixture(t, "export/log.export")
	_, entries := readExport(t, bytes.NewReader(exp))
	extra := append(binary.AppendUvarint(nil, uint64(len(entries[28]))), entries[28]...)
	pr, pw := io.Pipe()
	defer pw.Close()
	r := io.MultiReader(bytes.NewReader(exp), bytes.NewReader(extra), pr)
	done := make(chan struct{})
	var rep *verifier.AuditReport
	var err error
	go func() {
		defer close(done)
		rep, err = verifier.Audit(context.Background(), r, pinnedKey(t), nil)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the audit kept reading after the checkpoint's size")
	}
	var ae *verifier.AuditError
	if !errors.As(err, &ae) || ae.First.Check != verifier.AuditRoot || ae.First.Index != 29 || ae.Total != 1 {
		t.Fatalf("Audit = %v, want one merkle-root finding at #29", err)
	}
	if rep.Entries != 29 {
		t.Errorf("audited %d entries, want the checkpoint's 29", rep.Entries)
	}
}

// The evidence check replays under the same limit.
func TestEvidenceReplayTimeout(t *testing.T) {
	f := newForger(t)
	bundle := f.forge(t, "valid-deny", true, func(p *parts) {
		pp := p.policy.GetPolicyPublished()
		files := []policies.File{{Name: "inbound.rego", Content: inboundRego}, {Name: "send.rego", Content: loopRego}}
		pp.Files = []*pb.PolicyFile{{Name: "inbound.rego", Content: inboundRego}, {Name: "send.rego", Content: loopRego}}
		pp.Digest = policies.Digest(files)
		p.send().PolicyDigest = pp.Digest
	})
	rep, err := verifier.VerifyEvidenceWith(context.Background(), bundle, f.vkey, verifier.Options{ReplayTimeout: 200 * time.Millisecond})
	var ce *verifier.CheckError
	if !errors.As(err, &ce) || ce.Check != verifier.CheckPolicy || !strings.Contains(err.Error(), "did not finish within 200ms") {
		t.Fatalf("VerifyEvidence = %v, want check 5 failing on the time limit", err)
	}
	if rep == nil || rep.Verified {
		t.Fatal("the report says verified")
	}
}
