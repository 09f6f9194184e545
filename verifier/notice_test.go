package verifier_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/verifier"
)

const noticeText = "Example Shop GmbH sends you offers on WhatsApp."

// withNotice makes the fixture's grant (#1) name notice #4 and carries it.
func withNotice(edit func(n *pb.NoticePublished, g *pb.ConsentGranted)) func(p *parts) {
	return func(p *parts) {
		n := &pb.NoticePublished{
			Version: "2026-01", Language: "de", Title: "WhatsApp-Angebote", Text: noticeText, Digest: verifier.NoticeDigest(noticeText),
			WithdrawalInstructions: "STOP", Channels: []pb.Channel{pb.Channel_CHANNEL_WHATSAPP}, Purposes: []string{"marketing", "newsletter"},
			EffectiveFrom: timestamppb.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		}
		g := p.chain[0].GetConsentGranted()
		g.NoticeVersion, g.NoticeLanguage, g.NoticeIndex = "2026-01", "de", u64(4)
		if edit != nil {
			edit(n, g)
		}
		p.notice = &pb.Entry{Index: 4, Event: &pb.Entry_NoticePublished{NoticePublished: n}}
	}
}

func TestEvidenceNotice(t *testing.T) {
	f := newForger(t)
	for _, tc := range []struct {
		name   string
		change func(p *parts)
		check  int
		want   string
	}{
		{"notice shown", withNotice(nil), 0, ""},
		{"text altered before logging", withNotice(func(n *pb.NoticePublished, _ *pb.ConsentGranted) { n.Text += " And we sell your data." }), 4, "does not give the digest"},
		{"other channel", withNotice(func(n *pb.NoticePublished, _ *pb.ConsentGranted) { n.Channels = []pb.Channel{pb.Channel_CHANNEL_SMS} }), 4, "channel"},
		{"not yet in effect", withNotice(func(n *pb.NoticePublished, _ *pb.ConsentGranted) {
			n.EffectiveFrom = timestamppb.New(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
		}), 4, "took effect after"},
		{"other language", withNotice(func(_ *pb.NoticePublished, g *pb.ConsentGranted) { g.NoticeLanguage = "en" }), 4, "version or language"},
		{"notice the grant does not name", func(p *parts) {
			withNotice(nil)(p)
			p.chain[0].GetConsentGranted().NoticeIndex = nil
		}, 4, "names no notice"},
		{"another entry as the notice", func(p *parts) {
			withNotice(nil)(p)
			p.notice.Event = &pb.Entry_BreachClosed{BreachClosed: &pb.BreachClosed{BreachId: "x"}}
		}, 4, "no published notice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle := f.forge(t, "valid-allow", true, tc.change)
			rep, err := verifier.VerifyEvidence(context.Background(), bundle, f.vkey)
			if tc.check == 0 {
				if err != nil {
					t.Fatalf("VerifyEvidence = %v, want verified", err)
				}
				n := rep.Notice
				if n == nil || n.Version != "2026-01" || n.Language != "de" || n.Title != "WhatsApp-Angebote" || n.Digest != verifier.NoticeDigest(noticeText) {
					t.Fatalf("report notice = %+v", n)
				}
				if !strings.Contains(rep.Text(), "Privacy notice #4") || !strings.Contains(rep.Text(), n.Digest) {
					t.Errorf("the report does not show the notice:\n%s", rep.Text())
				}
				return
			}
			var ce *verifier.CheckError
			if !errors.As(err, &ce) || ce.Check != tc.check || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("VerifyEvidence = %v, want check %d failing with %q", err, tc.check, tc.want)
			}
		})
	}

	// The notice's bytes changed after the checkpoint: check 2 fails.
	bundle := f.forge(t, "valid-allow", true, withNotice(nil))
	b := decodeBundle(t, bundle)
	b.Notice.Entry = []byte(strings.Replace(string(b.Notice.Entry), "offers", "OFFERS", 1))
	tampered, _ := protojson.Marshal(b)
	var ce *verifier.CheckError
	if _, err := verifier.VerifyEvidence(context.Background(), tampered, f.vkey); !errors.As(err, &ce) || ce.Check != verifier.CheckInclusion {
		t.Errorf("a tampered notice entry: %v, want check 2 to fail", err)
	}
	// An older bundle without field 5, of a grant that names a notice:
	// verified, and the report says what it could not show.
	bundle = f.forge(t, "valid-allow", true, withNotice(func(_ *pb.NoticePublished, _ *pb.ConsentGranted) {}))
	b = decodeBundle(t, bundle)
	b.Notice = nil
	old, _ := protojson.Marshal(b)
	rep, err := verifier.VerifyEvidence(context.Background(), old, f.vkey)
	if err != nil || rep.Notice != nil || !strings.Contains(rep.NoticeNote, "Not shown") {
		t.Errorf("bundle without field 5: %v, note %q", err, rep.NoticeNote)
	}
}
