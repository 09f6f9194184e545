package rpc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
)

// maxNoticeText bounds a notice's full text.
const maxNoticeText = 256 << 10

// languageTag is a BCP 47 language tag as notices use it: "de", "en", "de-AT".
var languageTag = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$`)

// NoticeDigest is the digest a NoticePublished entry records and the
// verifier recomputes: "sha256:" + hex of SHA-256 over the text.
func NoticeDigest(text string) string {
	h := sha256.Sum256([]byte(text))
	return "sha256:" + hex.EncodeToString(h[:])
}

type noticeHandler struct {
	consentledgerv1connect.UnimplementedNoticeServiceHandler
	s *Service
}

func (h *noticeHandler) PublishNotice(ctx context.Context, r *connect.Request[pb.PublishNoticeRequest]) (*connect.Response[pb.PublishNoticeResponse], error) {
	m := r.Msg
	for f, v := range map[string]string{"version": m.Version, "language": m.Language, "title": m.Title} {
		if strings.TrimSpace(v) == "" {
			return nil, invalid(f, "is required")
		}
		if err := checkText(f, v, maxShortText); err != nil {
			return nil, err
		}
	}
	if !languageTag.MatchString(m.Language) {
		return nil, invalid("language", "%q is not a language tag such as de, en or de-AT", m.Language)
	}
	if strings.TrimSpace(m.Text) == "" {
		return nil, invalid("text", "is required: the full text of the notice (a URL alone proves nothing about what was shown)")
	}
	if t := strings.TrimSpace(m.Text); !strings.ContainsAny(t, " \n") && (strings.HasPrefix(t, "http://") || strings.HasPrefix(t, "https://")) {
		return nil, invalid("text", "is a URL: give the full text of the notice, which the log keeps (a URL alone proves nothing about what was shown)")
	}
	if err := checkText("text", m.Text, maxNoticeText); err != nil {
		return nil, err
	}
	if strings.TrimSpace(m.WithdrawalInstructions) == "" {
		return nil, invalid("withdrawal_instructions", "is required: how the person withdraws consent (GDPR Art. 7(3))")
	}
	for f, v := range map[string]string{"short_text": m.ShortText, "withdrawal_instructions": m.WithdrawalInstructions} {
		if err := checkText(f, v, maxLongText); err != nil {
			return nil, err
		}
	}
	if err := checkText("controller", m.Controller, maxShortText); err != nil {
		return nil, err
	}
	if err := h.s.org.checkController(m.Controller); err != nil {
		return nil, err
	}
	if len(m.Channels) == 0 {
		return nil, invalid("channels", "at least one channel the notice is shown on is required")
	}
	for _, c := range m.Channels {
		if err := checkChannel("channels", c); err != nil {
			return nil, err
		}
	}
	if err := checkPurposes("purposes", m.Purposes, false); err != nil {
		return nil, err
	}
	from := m.EffectiveFrom
	if from == nil {
		from = nowTS(h.s.now())
	} else if err := from.CheckValid(); err != nil {
		return nil, invalid("effective_from", "%v", err)
	}
	if err := checkKey(m.IdempotencyKey); err != nil {
		return nil, err
	}
	digest := NoticeDigest(m.Text)
	rcpt, err := h.s.appendFor(ctx, nil, m.IdempotencyKey, m, &pb.Entry{Event: &pb.Entry_NoticePublished{NoticePublished: &pb.NoticePublished{
		Version: m.Version, Language: strings.ToLower(m.Language), Title: m.Title, Text: m.Text, ShortText: m.ShortText,
		Controller: m.Controller, WithdrawalInstructions: m.WithdrawalInstructions, Channels: m.Channels,
		Purposes: m.Purposes, EffectiveFrom: from, Digest: digest,
	}}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.PublishNoticeResponse{Entry: rcpt.Ref(), Digest: digest}), nil
}

func (h *noticeHandler) ListNotices(ctx context.Context, _ *connect.Request[pb.ListNoticesRequest]) (*connect.Response[pb.ListNoticesResponse], error) {
	all, err := h.s.l.Notices(ctx)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&pb.ListNoticesResponse{Notices: all}), nil
}

func (h *noticeHandler) GetNotice(ctx context.Context, r *connect.Request[pb.GetNoticeRequest]) (*connect.Response[pb.GetNoticeResponse], error) {
	m := r.Msg
	if m.Version == "" {
		return nil, invalid("version", "is required")
	}
	n, err := h.s.pickNotice(ctx, m.Version, strings.ToLower(m.Language))
	if err != nil {
		return nil, err
	}
	e, err := h.s.entryAt(ctx, n.Entry.Index)
	if err != nil {
		return nil, err
	}
	p := e.GetNoticePublished()
	return connect.NewResponse(&pb.GetNoticeResponse{
		Notice: n, Text: p.GetText(), ShortText: p.GetShortText(),
		WithdrawalInstructions: p.GetWithdrawalInstructions(), Controller: p.GetController(),
	}), nil
}

// pickNotice returns the notice of version in language; with no language,
// the only language the version was published in.
func (s *Service) pickNotice(ctx context.Context, version, language string) (*pb.NoticeState, error) {
	ns, err := s.l.NoticeVersions(ctx, version)
	if err != nil {
		return nil, toConnect(err)
	}
	if len(ns) == 0 {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no notice version %q is published; publish it with NoticeService/PublishNotice first", version))
	}
	if language == "" {
		if len(ns) > 1 {
			return nil, invalid("language", "is required: notice version %q is published in %s", version, languages(ns))
		}
		return ns[0], nil
	}
	for _, n := range ns {
		if n.Language == language {
			return n, nil
		}
	}
	return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("notice version %q is not published in language %q, only in %s", version, language, languages(ns)))
}

func languages(ns []*pb.NoticeState) string {
	var ls []string
	for _, n := range ns {
		ls = append(ls, n.Language)
	}
	return strings.Join(ls, ", ")
}

// requireNotice reports whether an opt-in must name a published notice:
// by default, once any notice is published.
func (s *Service) requireNotice(ctx context.Context) (bool, error) {
	if s.requirePublished != nil && !*s.requirePublished {
		return false, nil
	}
	all, err := s.l.Notices(ctx)
	if err != nil {
		return false, toConnect(err)
	}
	return len(all) > 0, nil
}

// grantNotice resolves an opt-in's notice_version and notice_language to the
// published notice it names (README.md: Privacy notices, breaches, reports): it must cover the channel and every
// purpose and be in effect at occurred_at. It returns the notice's entry
// index and language, or (nil, "", nil) when no published notice is
// required and none matches.
func (s *Service) grantNotice(ctx context.Context, version, language string, ch pb.Channel, purposes []string, at *timestamppb.Timestamp) (*uint64, string, error) {
	required, err := s.requireNotice(ctx)
	if err != nil {
		return nil, "", err
	}
	if version == "" {
		if required {
			return nil, "", precondition("notice_version", "is required: name the published privacy notice shown (NoticeService/ListNotices)")
		}
		return nil, "", nil
	}
	if err := checkText("notice_language", language, maxShortText); err != nil {
		return nil, "", err
	}
	n, err := s.pickNotice(ctx, version, strings.ToLower(language))
	if err != nil {
		if !required {
			return nil, "", nil // a free-text version, as before notices were published
		}
		var ce *connect.Error
		if errors.As(err, &ce) && ce.Code() == connect.CodeNotFound {
			return nil, "", precondition("notice_version", "%v", ce.Message())
		}
		return nil, "", err
	}
	if !slices.Contains(n.Channels, ch) {
		return nil, "", precondition("notice_version", "notice %s (%s) does not cover channel %s; it covers %s", n.Version, n.Language, ledger.ChannelName(ch), channelNames(n.Channels))
	}
	for _, p := range purposes {
		if !slices.Contains(n.Purposes, p) {
			return nil, "", precondition("notice_version", "notice %s (%s) does not cover purpose %q; it covers %s", n.Version, n.Language, p, strings.Join(n.Purposes, ", "))
		}
	}
	if n.EffectiveFrom.AsTime().After(at.AsTime()) {
		return nil, "", precondition("notice_version", "notice %s (%s) takes effect at %s, after the opt-in's occurred_at %s", n.Version, n.Language,
			n.EffectiveFrom.AsTime().UTC().Format(time.RFC3339), at.AsTime().UTC().Format(time.RFC3339))
	}
	idx := n.Entry.Index
	return &idx, n.Language, nil
}

func channelNames(cs []pb.Channel) string {
	var out []string
	for _, c := range cs {
		out = append(out, ledger.ChannelName(c))
	}
	return strings.Join(out, ", ")
}

// precondition returns a failed_precondition error naming the field.
func precondition(field, format string, args ...any) error {
	return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}
