package rpc

import (
	"context"
	"slices"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/ledger/subject"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
)

type consentHandler struct {
	consentledgerv1connect.UnimplementedConsentServiceHandler
	s *Service
}

// appendFor appends an event about a subject on behalf of the caller.
// req, the caller's request, is fingerprinted (keyed) so that reusing its
// idempotency key for another request is refused.
func (s *Service) appendFor(ctx context.Context, id *subject.Identifier, key string, req proto.Message, e *pb.Entry) (ledger.Receipt, error) {
	e.Actor, e.IdempotencyKey = PrincipalFrom(ctx).Name, key
	fp := s.fingerprint(key, req)
	rcpt, err := s.appendOne(ctx, &ledger.Request{Entry: e, Subject: id, Fingerprint: fp})
	return rcpt, toConnect(err)
}

// checkConsentTarget validates the subject, channel and purposes of a
// consent request; emptyOK allows no purposes (meaning all).
func checkConsentTarget(s *pb.Subject, ch pb.Channel, purposes []string, emptyOK bool) (subject.Identifier, error) {
	id, err := checkSubject(s)
	if err != nil {
		return id, err
	}
	if err := checkChannel("channel", ch); err != nil {
		return id, err
	}
	return id, checkPurposes("purposes", purposes, emptyOK)
}

func (h *consentHandler) RecordOptIn(ctx context.Context, r *connect.Request[pb.RecordOptInRequest]) (*connect.Response[pb.RecordOptInResponse], error) {
	m := r.Msg
	id, err := checkConsentTarget(m.Subject, m.Channel, m.Purposes, false)
	if err != nil {
		return nil, err
	}
	method, err := oneOf("method", m.Method, "api", optInMethods...)
	if err != nil {
		return nil, err
	}
	if err := checkIdent("notice_version", m.NoticeVersion, maxShortText); err != nil {
		return nil, err
	}
	if len(m.EvidenceDigest) > 64 {
		return nil, invalid("evidence_digest", "is %d bytes, the limit is 64 (send a digest, not the evidence)", len(m.EvidenceDigest))
	}
	at, err := h.s.checkPast("occurred_at", m.OccurredAt)
	if err != nil {
		return nil, err
	}
	if err := checkKey(m.IdempotencyKey); err != nil {
		return nil, err
	}
	noticeIndex, noticeLang, err := h.s.grantNotice(ctx, m.NoticeVersion, m.NoticeLanguage, m.Channel, m.Purposes, at)
	if err != nil {
		return nil, err
	}
	rcpt, err := h.s.appendFor(ctx, &id, m.IdempotencyKey, m, &pb.Entry{Event: &pb.Entry_ConsentGranted{ConsentGranted: &pb.ConsentGranted{
		Channel: m.Channel, Purposes: slices.Clone(m.Purposes), Method: method, NoticeVersion: m.NoticeVersion,
		EvidenceDigest: slices.Clone(m.EvidenceDigest), OccurredAt: at, DoubleOptInConfirmed: m.DoubleOptInConfirmed,
		NoticeLanguage: noticeLang, NoticeIndex: noticeIndex,
	}}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.RecordOptInResponse{Entry: rcpt.Ref()}), nil
}

func (h *consentHandler) ConfirmOptIn(ctx context.Context, r *connect.Request[pb.ConfirmOptInRequest]) (*connect.Response[pb.ConfirmOptInResponse], error) {
	m := r.Msg
	id, err := checkConsentTarget(m.Subject, m.Channel, m.Purposes, false)
	if err != nil {
		return nil, err
	}
	at, err := h.s.checkPast("occurred_at", m.OccurredAt)
	if err != nil {
		return nil, err
	}
	// The confirming channel is recorded, never left implicit: double opt-in
	// counts only on the channel it was confirmed on (BGH I ZR 164/09).
	via := m.ConfirmedVia
	if via == pb.Channel_CHANNEL_UNSPECIFIED {
		via = m.Channel
	}
	if err := checkChannel("confirmed_via", via); err != nil {
		return nil, err
	}
	if err := checkKey(m.IdempotencyKey); err != nil {
		return nil, err
	}
	rcpt, err := h.s.appendFor(ctx, &id, m.IdempotencyKey, m, &pb.Entry{Event: &pb.Entry_ConsentConfirmed{ConsentConfirmed: &pb.ConsentConfirmed{
		Channel: m.Channel, Purposes: slices.Clone(m.Purposes), OccurredAt: at, ConfirmedVia: via,
	}}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.ConfirmOptInResponse{Entry: rcpt.Ref()}), nil
}

func (h *consentHandler) RecordOptOut(ctx context.Context, r *connect.Request[pb.RecordOptOutRequest]) (*connect.Response[pb.RecordOptOutResponse], error) {
	m := r.Msg
	id, err := checkConsentTarget(m.Subject, m.Channel, m.Purposes, true)
	if err != nil {
		return nil, err
	}
	method, err := oneOf("method", m.Method, "api", append(optInMethods, "email_link", "customer_service")...)
	if err != nil {
		return nil, err
	}
	scope, err := oneOf("scope", m.Scope, ledger.ScopeChannel, ledger.ScopeChannel, ledger.ScopeAllMarketing)
	if err != nil {
		return nil, err
	}
	if scope == ledger.ScopeAllMarketing && len(m.Purposes) > 0 {
		return nil, invalid("purposes", "must be empty with scope all_marketing: an objection covers every marketing purpose on every channel")
	}
	at, err := h.s.checkPast("occurred_at", m.OccurredAt)
	if err != nil {
		return nil, err
	}
	if err := checkKey(m.IdempotencyKey); err != nil {
		return nil, err
	}
	rcpt, err := h.s.appendFor(ctx, &id, m.IdempotencyKey, m, &pb.Entry{Event: &pb.Entry_ConsentWithdrawn{ConsentWithdrawn: &pb.ConsentWithdrawn{
		Channel: m.Channel, Purposes: slices.Clone(m.Purposes), Method: method, OccurredAt: at, Scope: scope,
	}}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.RecordOptOutResponse{Entry: rcpt.Ref()}), nil
}

func (h *consentHandler) GetConsent(ctx context.Context, r *connect.Request[pb.GetConsentRequest]) (*connect.Response[pb.GetConsentResponse], error) {
	if err := h.s.waitApplied(ctx, r.Msg.MinIndex); err != nil {
		return nil, err
	}
	id, err := checkSubject(r.Msg.Subject)
	if err != nil {
		return nil, err
	}
	sid, st, found, err := h.s.l.LookupSubject(ctx, id)
	if err != nil {
		return nil, toConnect(err)
	}
	resp := &pb.GetConsentResponse{}
	if found {
		resp.SubjectId, resp.Consents, resp.Head, resp.Objection = sid, st.GetConsents(), st.GetHead(), st.GetObjection()
	}
	return connect.NewResponse(resp), nil
}

func (h *consentHandler) EraseSubject(ctx context.Context, r *connect.Request[pb.EraseSubjectRequest]) (*connect.Response[pb.EraseSubjectResponse], error) {
	m := r.Msg
	id, err := checkSubject(m.Subject)
	if err != nil {
		return nil, err
	}
	if err := checkIdent("reason", m.Reason, maxShortText); err != nil {
		return nil, err
	}
	if err := checkKey(m.IdempotencyKey); err != nil {
		return nil, err
	}
	reason := m.Reason
	if reason == "" {
		reason = "art17_request"
	}
	rcpt, err := h.s.appendFor(ctx, &id, m.IdempotencyKey, m, &pb.Entry{Event: &pb.Entry_SubjectErased{SubjectErased: &pb.SubjectErased{
		Reason: reason, ErasedAt: nowTS(h.s.now()),
	}}})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.EraseSubjectResponse{Entry: rcpt.Ref(), SubjectId: rcpt.SubjectID}), nil
}
