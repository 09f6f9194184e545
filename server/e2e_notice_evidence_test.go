package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/server"
	"github.com/consentledger/consentledger/verifier"
)

// Evidence of a decision whose grant names a published notice carries the
// notice entry (bundle field 5); the verifier recomputes its digest and
// prints its title, version, language and digest. Tampering fails; a bundle
// without field 5 still verifies and says what it could not show.
func TestEvidenceCarriesNotice(t *testing.T) {
	ctx := context.Background()
	s := start(t, server.Config{})
	pub, err := s.notices().PublishNotice(ctx, connect.NewRequest(marketingNotice("2026-11", "de", noon.Add(-time.Hour))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.consent().RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{
		Subject: phone(anna), Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing"}, Method: "web_form",
		NoticeVersion: "2026-11", NoticeLanguage: "de", DoubleOptInConfirmed: true,
	})); err != nil {
		t.Fatal(err)
	}
	d := decide(t, s, waMarketing(anna))
	wantDecision(t, d, true, "consent")
	ev, err := s.logs().GetEvidence(ctx, connect.NewRequest(&pb.GetEvidenceRequest{DecisionIndex: d.Decision.Index}))
	if err != nil {
		t.Fatal(err)
	}
	b := ev.Msg.Bundle
	if b.Notice == nil || b.Notice.Index != pub.Msg.Entry.Index {
		t.Fatalf("bundle notice = %v, want entry %d", b.Notice, pub.Msg.Entry.Index)
	}
	vkey, err := ledger.ReadVerifierKey(s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := verifier.ParseKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verifier.VerifyBundle(ctx, b, key)
	if err != nil || !rep.Verified {
		t.Fatalf("VerifyBundle = %+v, %v", rep, err)
	}
	n := rep.Notice
	if n == nil || n.Version != "2026-11" || n.Language != "de" || n.Title != "WhatsApp offers" || n.Digest != pub.Msg.Digest {
		t.Fatalf("report notice = %+v", n)
	}
	text := rep.Text()
	for _, want := range []string{"WhatsApp offers", "version 2026-11", "language de", pub.Msg.Digest} {
		if !strings.Contains(text, want) {
			t.Errorf("the report lacks %q:\n%s", want, text)
		}
	}

	// A tampered notice entry fails (its bytes no longer prove inclusion).
	bad := proto.Clone(b).(*pb.EvidenceBundle)
	bad.Notice.Entry = []byte(strings.Replace(string(bad.Notice.Entry), "offers", "OFFERS", 1))
	if rep, err := verifier.VerifyBundle(ctx, bad, key); err == nil || rep.Verified {
		t.Error("a tampered notice entry verified")
	}
	// Another proven entry in field 5 fails check 4.
	bad = proto.Clone(b).(*pb.EvidenceBundle)
	bad.Notice = bad.Policy
	if rep, err := verifier.VerifyBundle(ctx, bad, key); err == nil || rep.Verified || rep.Failure == nil || rep.Failure.Check != verifier.CheckGrant {
		t.Errorf("a policy entry as the notice: %v, %v", rep.Failure, err)
	}
	// An older bundle without field 5 verifies and says so.
	old := proto.Clone(b).(*pb.EvidenceBundle)
	old.Notice = nil
	rep, err = verifier.VerifyBundle(ctx, old, key)
	if err != nil || !rep.Verified || rep.Notice != nil || !strings.Contains(rep.NoticeNote, "Not shown") {
		t.Errorf("bundle without the notice: verified %v, note %q, %v", rep.Verified, rep.NoticeNote, err)
	}
}
