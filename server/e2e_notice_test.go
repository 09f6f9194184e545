package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
	"github.com/consentledger/consentledger/server"
)

func (s *testServer) notices() consentledgerv1connect.NoticeServiceClient {
	return consentledgerv1connect.NewNoticeServiceClient(s.http, s.url)
}

const noticeText = "Example Shop GmbH sends you offers on WhatsApp. We keep your number until you withdraw."

func marketingNotice(version, lang string, from time.Time) *pb.PublishNoticeRequest {
	return &pb.PublishNoticeRequest{
		Version: version, Language: lang, Title: "WhatsApp offers", Text: noticeText, ShortText: "Offers on WhatsApp; reply STOP to end.",
		Controller: "Example Shop GmbH", WithdrawalInstructions: "Reply STOP, or use example.com/prefs.",
		Channels: []pb.Channel{pb.Channel_CHANNEL_WHATSAPP}, Purposes: []string{"marketing"}, EffectiveFrom: timestamppb.New(from),
	}
}

func wantCode(t *testing.T, err error, code connect.Code, field string) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != code || !strings.Contains(ce.Message(), field) {
		t.Fatalf("err = %v, want %v naming %s", err, code, field)
	}
}

func TestNotices(t *testing.T) {
	ctx := context.Background()
	s := start(t, server.Config{Controller: &server.ControllerConfig{Name: "Example Shop GmbH"}})

	// Before any notice is published, a free-text version is still accepted.
	optIn(t, s, anna, pb.Channel_CHANNEL_SMS, true, "marketing")

	bad := []struct {
		name  string
		edit  func(*pb.PublishNoticeRequest)
		code  connect.Code
		field string
	}{
		{"no text", func(r *pb.PublishNoticeRequest) { r.Text = " " }, connect.CodeInvalidArgument, "text"},
		{"URL only", func(r *pb.PublishNoticeRequest) { r.Text = "https://example.com/privacy" }, connect.CodeInvalidArgument, "text"},
		{"no withdrawal instructions", func(r *pb.PublishNoticeRequest) { r.WithdrawalInstructions = "" }, connect.CodeInvalidArgument, "withdrawal_instructions"},
		{"other controller", func(r *pb.PublishNoticeRequest) { r.Controller = "Other GmbH" }, connect.CodeFailedPrecondition, "controller"},
		{"no channels", func(r *pb.PublishNoticeRequest) { r.Channels = nil }, connect.CodeInvalidArgument, "channels"},
	}
	for _, tc := range bad {
		size := logSize(t, s)
		req := marketingNotice("2026-11", "en", noon.Add(-time.Hour))
		tc.edit(req)
		_, err := s.notices().PublishNotice(ctx, connect.NewRequest(req))
		wantCode(t, err, tc.code, tc.field)
		if got := logSize(t, s); got != size {
			t.Fatalf("%s: the refused notice appended %d entries", tc.name, got-size)
		}
	}

	pub, err := s.notices().PublishNotice(ctx, connect.NewRequest(marketingNotice("2026-11", "en", noon.Add(-time.Hour))))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pub.Msg.Digest, "sha256:") {
		t.Fatalf("digest = %q", pub.Msg.Digest)
	}
	if _, err := s.notices().PublishNotice(ctx, connect.NewRequest(marketingNotice("2026-11", "en", noon))); connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("the same version published twice: %v, want already_exists", err)
	}
	if _, err := s.notices().PublishNotice(ctx, connect.NewRequest(marketingNotice("2026-12", "en", noon.Add(time.Hour)))); err != nil {
		t.Fatal(err)
	}
	list, err := s.notices().ListNotices(ctx, connect.NewRequest(&pb.ListNoticesRequest{}))
	if err != nil || len(list.Msg.Notices) != 2 || list.Msg.Notices[0].Version != "2026-11" || list.Msg.Notices[0].Digest != pub.Msg.Digest {
		t.Fatalf("ListNotices = %v, %v", list, err)
	}
	got, err := s.notices().GetNotice(ctx, connect.NewRequest(&pb.GetNoticeRequest{Version: "2026-11"}))
	if err != nil || got.Msg.Text != noticeText || got.Msg.Notice.Entry.Index != pub.Msg.Entry.Index {
		t.Fatalf("GetNotice = %v, %v", got, err)
	}
	if _, err := s.notices().GetNotice(ctx, connect.NewRequest(&pb.GetNoticeRequest{Version: "1999"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("GetNotice of an unknown version: %v", err)
	}

	// Once a notice exists, an opt-in must name one that covers it.
	refused := []struct {
		name string
		req  *pb.RecordOptInRequest
	}{
		{"unknown version", &pb.RecordOptInRequest{NoticeVersion: "2026-01", Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing"}}},
		{"no version", &pb.RecordOptInRequest{Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing"}}},
		{"other channel", &pb.RecordOptInRequest{NoticeVersion: "2026-11", Channel: pb.Channel_CHANNEL_SMS, Purposes: []string{"marketing"}}},
		{"other purpose", &pb.RecordOptInRequest{NoticeVersion: "2026-11", Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing", "surveys"}}},
		{"not yet effective", &pb.RecordOptInRequest{NoticeVersion: "2026-12", Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing"}}},
		{"other language", &pb.RecordOptInRequest{NoticeVersion: "2026-11", NoticeLanguage: "de", Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing"}}},
	}
	for _, tc := range refused {
		size := logSize(t, s)
		tc.req.Subject, tc.req.Method = phone(anna), "web_form"
		_, err := s.consent().RecordOptIn(ctx, connect.NewRequest(tc.req))
		wantCode(t, err, connect.CodeFailedPrecondition, "notice_version")
		if got := logSize(t, s); got != size {
			t.Fatalf("%s: the refused opt-in appended %d entries", tc.name, got-size)
		}
	}

	r, err := s.consent().RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{
		Subject: phone(anna), Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing"}, Method: "web_form",
		NoticeVersion: "2026-11", DoubleOptInConfirmed: true,
	}))
	if err != nil {
		t.Fatal(err)
	}
	g := entryAt(t, s, r.Msg.Entry.Index).GetConsentGranted()
	if g.NoticeIndex == nil || *g.NoticeIndex != pub.Msg.Entry.Index || g.NoticeLanguage != "en" {
		t.Fatalf("grant records notice %v (%q), want entry %d (en)", g.NoticeIndex, g.NoticeLanguage, pub.Msg.Entry.Index)
	}
	cs := consentOf(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, "marketing")
	if cs.NoticeIndex == nil || *cs.NoticeIndex != pub.Msg.Entry.Index || cs.NoticeLanguage != "en" {
		t.Fatalf("consent state = %v", cs)
	}
	// The policy input carries the grant's notice (version and language).
	d := decide(t, s, waMarketing(anna))
	in := string(entryAt(t, s, d.Decision.Index).GetSendDecision().GetInput())
	if !strings.Contains(in, `"notice_language":"en","notice_version":"2026-11"`) {
		t.Errorf("decision input lacks the grant's notice: %s", in)
	}
}

// With require_published_notice: false, a free-text version stays accepted.
func TestNoticeNotRequired(t *testing.T) {
	no := false
	s := start(t, server.Config{RequirePublishedNotice: &no})
	if _, err := s.notices().PublishNotice(context.Background(), connect.NewRequest(marketingNotice("2026-11", "en", noon.Add(-time.Hour)))); err != nil {
		t.Fatal(err)
	}
	optIn(t, s, anna, pb.Channel_CHANNEL_SMS, true, "marketing")
}

// The help reply names the DPO, or the contact point without calling it DPO.
func TestHelpReplyNamesDPOOrContactPoint(t *testing.T) {
	for _, tc := range []struct {
		cfg       server.Config
		want, not string
	}{
		{server.Config{DPO: &server.PersonConfig{Name: "Dr. Data", Email: "dpo@example.com"}}, "Data protection officer: Dr. Data, dpo@example.com", "contact:"},
		{server.Config{ContactPoint: &server.PersonConfig{Name: "Privacy team", Email: "privacy@example.com"},
			Contact: server.ContactConfig{DPOContact: "dpo@example.com"}}, "Data protection contact: Privacy team, privacy@example.com", "officer"},
		{server.Config{Contact: server.ContactConfig{DPOContact: "dpo@example.com"}}, "Data protection officer: dpo@example.com", "contact:"},
	} {
		s := start(t, tc.cfg)
		r := inbound(t, s, anna, pb.Channel_CHANNEL_SMS, "HELP", "")
		if !strings.Contains(r.Reply, tc.want) || strings.Contains(r.Reply, tc.not) {
			t.Errorf("reply %q, want %q and not %q", r.Reply, tc.want, tc.not)
		}
		s.stop()
	}
}

// A config with both a DPO and a contact point, or an unknown controller
// role, is refused before the server starts.
func TestConfigOrgRefused(t *testing.T) {
	for _, tc := range []struct {
		cfg  server.Config
		want string
	}{
		{server.Config{DPO: &server.PersonConfig{Name: "a"}, ContactPoint: &server.PersonConfig{Name: "b"}}, "contact_point"},
		{server.Config{Controller: &server.ControllerConfig{Name: "X", Role: "owner"}}, "controller.role"},
		{server.Config{DPO: &server.PersonConfig{Name: "a\nb"}}, "dpo.name"},
	} {
		tc.cfg.DataDir = t.TempDir()
		err := server.Run(context.Background(), tc.cfg, nil, func(string) { t.Error("the server started") })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run = %v, want an error naming %s", err, tc.want)
		}
	}
}
