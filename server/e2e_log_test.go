package server_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
	"github.com/consentledger/consentledger/server"
	"github.com/consentledger/consentledger/verifier"
)

func (s *testServer) policy() consentledgerv1connect.PolicyServiceClient {
	return consentledgerv1connect.NewPolicyServiceClient(s.http, s.url)
}

func pbFiles(fs []policies.File) []*pb.PolicyFile {
	var out []*pb.PolicyFile
	for _, f := range fs {
		out = append(out, &pb.PolicyFile{Name: f.Name, Content: f.Content})
	}
	return out
}

// withData returns the default policy with data.json edited by replace.
func withData(t *testing.T, old, new string) []*pb.PolicyFile {
	t.Helper()
	fs := policies.Default()
	for i, f := range fs {
		if f.Name == "data.json" {
			if !strings.Contains(f.Content, old) {
				t.Fatalf("data.json has no %q", old)
			}
			fs[i].Content = strings.Replace(f.Content, old, new, 1)
		}
	}
	return pbFiles(fs)
}

func TestPolicyLifecycle(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	active, err := s.policy().GetActivePolicy(ctx, connect.NewRequest(&pb.GetActivePolicyRequest{}))
	if err != nil || active.Msg.Entry.Index != 0 || active.Msg.Digest != policies.Digest(policies.Default()) || len(active.Msg.Files) == 0 {
		t.Fatalf("GetActivePolicy on a new log = %v, %v; want the default policy at entry 0", active, err)
	}
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	us := waMarketing(anna)
	us.Provider.Region = "US"
	wantDecision(t, decide(t, s, us), false, "provider_region_not_allowed")

	// A policy that does not compile, and one whose tests fail, are refused
	// and change nothing.
	size := logSize(t, s)
	broken := pbFiles(policies.Default())
	broken = append(broken, &pb.PolicyFile{Name: "broken.rego", Content: "package consentledger.send\n\nnope := [x]\n"})
	if _, err := s.policy().PublishPolicy(ctx, connect.NewRequest(&pb.PublishPolicyRequest{Files: broken})); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "broken.rego:3") {
		t.Errorf("publishing a policy that does not compile: %v, want invalid_argument naming broken.rego:3", err)
	}
	// Allowing US providers breaks the default policy's own tests.
	allowUS := withData(t, `"allowed_provider_regions": ["EU", "EEA"]`, `"allowed_provider_regions": ["EU", "EEA", "US"]`)
	if _, err := s.policy().PublishPolicy(ctx, connect.NewRequest(&pb.PublishPolicyRequest{Files: allowUS})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("publishing a policy whose tests fail: %v, want failed_precondition", err)
	}
	if logSize(t, s) != size {
		t.Fatal("a refused policy appended")
	}
	wantDecision(t, decide(t, s, us), false, "provider_region_not_allowed")

	// DryRun and ImpactReport try a draft without recording anything (their
	// drafts must pass the set's tests too: this one adds a harmless module).
	draft := append(pbFiles(policies.Default()),
		&pb.PolicyFile{Name: "notes.rego", Content: "package consentledger.notes\n\nversion := \"2026-12\"\n"},
		&pb.PolicyFile{Name: "notes_test.rego", Content: "package consentledger.notes_test\n\nimport data.consentledger.notes\n\ntest_version if notes.version == \"2026-12\"\n"})
	size = logSize(t, s)
	dry, err := s.policy().DryRun(ctx, connect.NewRequest(&pb.DryRunRequest{Files: draft, Request: us}))
	if err != nil {
		t.Fatal(err)
	}
	if dry.Msg.Allow || !strings.Contains(dry.Msg.Input, `"region":"US"`) || dry.Msg.Digest == active.Msg.Digest {
		t.Errorf("DryRun = %v", dry.Msg)
	}
	imp, err := s.policy().ImpactReport(ctx, connect.NewRequest(&pb.ImpactReportRequest{Files: draft}))
	if err != nil {
		t.Fatal(err)
	}
	if imp.Msg.DecisionsReplayed != 2 || len(imp.Msg.Changes) != 0 {
		t.Errorf("ImpactReport = %v, want 2 decisions replayed and no change", imp.Msg)
	}
	if logSize(t, s) != size {
		t.Fatal("DryRun or ImpactReport appended")
	}
	pub, err := s.policy().PublishPolicy(ctx, connect.NewRequest(&pb.PublishPolicyRequest{Files: draft, Note: "release notes"}))
	if err != nil {
		t.Fatal(err)
	}
	d := decide(t, s, waMarketing(anna))
	if d.Policy.Index != pub.Msg.Entry.Index || d.PolicyDigest != pub.Msg.Digest {
		t.Errorf("decision made by policy %d %s, want the new one %d %s", d.Policy.Index, d.PolicyDigest, pub.Msg.Entry.Index, pub.Msg.Digest)
	}
}

func TestLogServiceProofs(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	old, err := s.logs().GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{Sign: true}))
	if err != nil {
		t.Fatal(err)
	}
	d := decide(t, s, waMarketing(anna))
	for i := 0; i < 5; i++ {
		decide(t, s, waMarketing(anna))
	}
	cur, err := s.logs().GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{Sign: true}))
	if err != nil {
		t.Fatal(err)
	}
	// The checkpoint verifies with the key `consentledger pubkey` prints.
	vkey, err := ledger.ReadVerifierKey(s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := note.NewVerifier(vkey)
	cp, _, _, err := log.ParseCheckpoint([]byte(cur.Msg.Checkpoint), v.Name(), v)
	if err != nil || cp.Size != cur.Msg.Size || !bytes.Equal(cp.Hash, cur.Msg.RootHash) {
		t.Fatalf("checkpoint %q does not verify (%v)", cur.Msg.Checkpoint, err)
	}
	incl, err := s.logs().GetInclusionProof(ctx, connect.NewRequest(&pb.GetInclusionProofRequest{Index: d.Decision.Index}))
	if err != nil {
		t.Fatal(err)
	}
	if incl.Msg.Size != cp.Size || !bytes.Equal(incl.Msg.LeafHash, d.Decision.LeafHash) {
		t.Fatalf("inclusion proof for size %d leaf %x, want %d %x", incl.Msg.Size, incl.Msg.LeafHash, cp.Size, d.Decision.LeafHash)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, d.Decision.Index, cp.Size, d.Decision.LeafHash, incl.Msg.Proof, cp.Hash); err != nil {
		t.Errorf("inclusion proof does not verify: %v", err)
	}
	cons, err := s.logs().GetConsistencyProof(ctx, connect.NewRequest(&pb.GetConsistencyProofRequest{Size1: old.Msg.Size, Size2: cur.Msg.Size}))
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Msg.Size, cur.Msg.Size, cons.Msg.Proof, old.Msg.RootHash, cur.Msg.RootHash); err != nil {
		t.Errorf("consistency proof does not verify: %v", err)
	}
	if _, err := s.logs().GetInclusionProof(ctx, connect.NewRequest(&pb.GetInclusionProofRequest{Index: 999})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("proof for an entry beyond the log: %v, want not_found", err)
	}

	// The evidence bundle has the shape of docs/entry-format.md: Evidence bundles and verifies by hand.
	ev, err := s.logs().GetEvidence(ctx, connect.NewRequest(&pb.GetEvidenceRequest{DecisionIndex: d.Decision.Index}))
	if err != nil {
		t.Fatal(err)
	}
	b := ev.Msg.Bundle
	bcp, _, _, err := log.ParseCheckpoint([]byte(b.Checkpoint), v.Name(), v)
	if err != nil {
		t.Fatal(err)
	}
	if b.Decision.Index != d.Decision.Index || len(b.Chain) != 1 || b.Chain[0].Index != d.Consents[0].Index || b.Policy.Index != d.Policy.Index {
		t.Fatalf("bundle decision %d chain %v policy %d", b.Decision.Index, b.Chain, b.Policy.Index)
	}
	for _, pe := range append([]*pb.ProvenEntry{b.Decision, b.Policy}, b.Chain...) {
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, pe.Index, bcp.Size, rfc6962.DefaultHasher.HashLeaf(pe.Entry), pe.InclusionProof, bcp.Hash); err != nil {
			t.Errorf("bundle entry %d: %v", pe.Index, err)
		}
	}
	// The auditor's verifier accepts it: every check, including the replay of
	// the recorded input under the recorded policy.
	key, err := verifier.ParseKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verifier.VerifyBundle(ctx, b, key)
	if err != nil || !rep.Verified {
		t.Fatalf("VerifyBundle = %+v, %v; want verified", rep, err)
	}
	if _, err := s.logs().GetEvidence(ctx, connect.NewRequest(&pb.GetEvidenceRequest{DecisionIndex: 1})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("evidence of an opt-in: %v, want invalid_argument", err)
	}
}

func TestWatchEntries(t *testing.T) {
	s := start(t, server.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := s.logs().WatchEntries(ctx, connect.NewRequest(&pb.WatchEntriesRequest{Start: 0}))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		optIn(t, s, anna, pb.Channel_CHANNEL_SMS, false, "news")
	}()
	var got []uint64
	for len(got) < 2 && stream.Receive() {
		got = append(got, stream.Msg().Entry.Index)
	}
	if len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("watched entries %v (%v), want 0 then the new 1", got, stream.Err())
	}
}

func TestConsentStateAndErasure(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing", "order_updates")
	gc, err := s.consent().GetConsent(ctx, connect.NewRequest(&pb.GetConsentRequest{Subject: phone(anna)}))
	if err != nil || len(gc.Msg.Consents) != 2 || gc.Msg.Consents[0].Status != "granted" || gc.Msg.SubjectId == "" {
		t.Fatalf("GetConsent = %v, %v", gc, err)
	}
	batch, err := s.send().DecideBatch(ctx, connect.NewRequest(&pb.DecideBatchRequest{Requests: []*pb.DecideRequest{
		waMarketing(anna), {Subject: phone(anna), Channel: pb.Channel_CHANNEL_SMS, Purpose: "marketing"},
	}}))
	if err != nil || len(batch.Msg.Results) != 2 || !batch.Msg.Results[0].Allow || batch.Msg.Results[1].Allow {
		t.Fatalf("DecideBatch = %v, %v", batch, err)
	}
	er, err := s.consent().EraseSubject(ctx, connect.NewRequest(&pb.EraseSubjectRequest{Subject: phone(anna)}))
	if err != nil || er.Msg.SubjectId != gc.Msg.SubjectId {
		t.Fatalf("EraseSubject = %v, %v", er, err)
	}
	gc, err = s.consent().GetConsent(ctx, connect.NewRequest(&pb.GetConsentRequest{Subject: phone(anna)}))
	if err != nil || gc.Msg.SubjectId != "" || len(gc.Msg.Consents) != 0 {
		t.Errorf("after erasure GetConsent = %v, %v; want an unknown subject", gc, err)
	}
	if _, err := s.consent().EraseSubject(ctx, connect.NewRequest(&pb.EraseSubjectRequest{Subject: phone(anna)})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("erasing twice: %v, want not_found", err)
	}
	// A later decision about the person finds no consent (it is recorded
	// under a new pseudonym, unlinked from the erased one).
	d := decide(t, s, waMarketing(anna))
	wantDecision(t, d, false, "no_consent")
}
