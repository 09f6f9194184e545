package rpc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/ledger/state"
	"github.com/consentledger/consentledger/ledger/subject"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
	"github.com/consentledger/consentledger/zones"
)

// MaxDecideBatch bounds DecideBatch (1 to 1000 requests).
const MaxDecideBatch = 1000

// maxStaleRetries bounds how often Decide re-evaluates when what its input
// was built from changed between evaluation and append.
// Concurrent decisions for one subject each change the last allowed send
// the others' inputs list, so a burst for one subject retries often.
const maxStaleRetries = 64

var categories = []string{"marketing", "utility", "authentication", "service"}

// legalBases are the values of DecideRequest.legal_basis; the first is the default.
var legalBases = []string{"consent", "contract", "legal_obligation"}

type sendHandler struct {
	consentledgerv1connect.UnimplementedSendServiceHandler
	s *Service
}

func (h *sendHandler) Decide(ctx context.Context, r *connect.Request[pb.DecideRequest]) (*connect.Response[pb.DecideResponse], error) {
	resp, err := h.s.decide(ctx, r.Msg, "")
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// checkDecide validates a DecideRequest; prefix names it inside a batch.
func checkDecide(m *pb.DecideRequest, prefix string) (subject.Identifier, *pb.SendRequest, error) {
	if m == nil {
		return subject.Identifier{}, nil, invalid(strings.TrimSuffix(prefix, "."), "is empty")
	}
	id, err := subject.Normalize(m.Subject)
	if err != nil {
		var fe *subject.FieldError
		if errors.As(err, &fe) {
			return id, nil, invalid(prefix+fe.Field, "%s", fe.Reason)
		}
		return id, nil, toConnect(err)
	}
	if err := checkChannel(prefix+"channel", m.Channel); err != nil {
		return id, nil, err
	}
	if !ledger.ValidPurpose(m.Purpose) {
		return id, nil, invalid(prefix+"purpose", "%q is not a purpose identifier (lowercase letters, digits and _, starting with a letter, at most 64)", m.Purpose)
	}
	category := strings.ToLower(strings.TrimSpace(m.Category))
	if category != "" {
		if _, err := oneOf(prefix+"category", category, "", categories...); err != nil {
			return id, nil, err
		}
	}
	basis, err := oneOf(prefix+"legal_basis", m.LegalBasis, legalBases[0], legalBases...)
	if err != nil {
		return id, nil, err
	}
	if m.SubjectTimezone != "" && !zones.Valid(m.SubjectTimezone) {
		return id, nil, invalid(prefix+"subject_timezone", "%q is not an IANA time zone of the embedded tzdata, such as Europe/Berlin", m.SubjectTimezone)
	}
	for field, v := range map[string]string{"provider.name": m.GetProvider().GetName(), "provider.region": m.GetProvider().GetRegion(), "message_ref": m.MessageRef, "idempotency_key": m.IdempotencyKey} {
		if err := checkIdent(prefix+field, v, maxShortText); err != nil {
			return id, nil, err
		}
	}
	req := &pb.SendRequest{
		Channel: m.Channel, Purpose: m.Purpose, Category: category, SubjectTimezone: m.SubjectTimezone,
		ServiceWindowOpen: m.ServiceWindowOpen, MessageRef: m.MessageRef, SubjectCountry: id.Country(),
		LegalBasis: basis,
	}
	if p := m.Provider; p != nil {
		req.Provider = &pb.Provider{Name: p.Name, Region: strings.ToUpper(strings.TrimSpace(p.Region))}
	}
	return id, req, nil
}

// decide evaluates the active policy against the subject's state at a known
// consent head and appends the SendDecision conditional on everything its
// input was built from (docs/guarantees.md): the consent head, the open breaches, the
// subject's last allowed send and the active policy. If any changed before
// it was sequenced, it evaluates again, so a decision never relies on
// consent withdrawn before it was sequenced and never records an input the
// log contradicts.
func (s *Service) decide(ctx context.Context, m *pb.DecideRequest, prefix string) (*pb.DecideResponse, error) {
	id, req, err := checkDecide(m, prefix)
	if err != nil {
		return nil, err
	}
	c := &decision{m: m, id: id, req: req, actor: PrincipalFrom(ctx).Name, fp: s.fingerprint(m.IdempotencyKey, m)}
	for attempt := 0; ; attempt++ {
		if err := s.evaluate(ctx, c); err != nil {
			return nil, err
		}
		rcpt, err := s.appendOne(ctx, c.append)
		if errors.Is(err, ledger.ErrStale) && attempt < maxStaleRetries {
			if err := s.catchUp(ctx, err); err != nil {
				return nil, toConnect(err)
			}
			continue
		}
		if err != nil {
			return nil, toConnect(err)
		}
		return s.decided(ctx, c, rcpt)
	}
}

// decision is one send decision on its way to the log: the validated
// request, and the latest evaluation with the conditional append it makes.
type decision struct {
	m      *pb.DecideRequest
	id     subject.Identifier
	req    *pb.SendRequest
	actor  string
	fp     []byte
	prefix string

	dec       policyResult
	relied    []*pb.EntryRef
	policyRef *pb.EntryRef
	digest    string
	append    *ledger.Request
}

// policyResult is the policy's answer.
type policyResult struct {
	allow   bool
	reasons []string
}

// evaluate reads the subject's committed state, the active policy and the
// open breaches, evaluates the policy and prepares c's conditional append.
func (s *Service) evaluate(ctx context.Context, c *decision) error {
	set, policyRef := s.Active()
	open := s.open.Load()
	_, st, known, err := s.l.LookupSubject(ctx, c.id)
	if err != nil {
		return toConnect(err)
	}
	now := s.now()
	value, input := buildInput(now, c.req, known, st, open.list)
	dec, err := set.DecideValue(ctx, value)
	if err != nil {
		return connect.NewError(connect.CodeInternal, fmt.Errorf("the active policy (entry %d) failed to decide: %w", policyRef.Index, err))
	}
	relied := state.ReliedOn(dec.Allow, c.req, st)
	idx := make([]uint64, len(relied))
	for i, r := range relied {
		idx[i] = r.Index
	}
	c.dec, c.relied, c.policyRef, c.digest = policyResult{dec.Allow, dec.Reasons}, relied, policyRef, set.Digest()
	e := &pb.Entry{
		Actor: c.actor, IdempotencyKey: c.m.IdempotencyKey,
		Event: &pb.Entry_SendDecision{SendDecision: &pb.SendDecision{
			Request: c.req, Allow: dec.Allow, Reasons: dec.Reasons, PolicyIndex: policyRef.Index,
			PolicyDigest: c.digest, ConsentIndexes: idx, Input: input, InputVersion: state.InputVersion,
		}},
	}
	c.append = &ledger.Request{
		Entry: e, Subject: &c.id, Fingerprint: c.fp,
		CheckHead: true, ExpectedHead: st.GetHead(),
		CheckInputs: true, ExpectedKnown: known, ExpectedPolicy: policyRef, ExpectedBreaches: open.epoch,
		ExpectedLastSend: st.GetLastAllowedSend(), EvaluatedAt: now,
	}
	return nil
}

// decided answers c once its decision is in the log at rcpt.
func (s *Service) decided(ctx context.Context, c *decision, rcpt ledger.Receipt) (*pb.DecideResponse, error) {
	if rcpt.Duplicate {
		return s.recordedDecision(ctx, rcpt)
	}
	if s.onDec != nil {
		s.onDec(c.dec.allow, c.dec.reasons)
	}
	return &pb.DecideResponse{
		Allow: c.dec.allow, Reasons: c.dec.reasons, Decision: rcpt.Ref(), Policy: c.policyRef,
		Consents: c.relied, PolicyDigest: c.digest,
	}, nil
}

// catchUp brings what decide reads up to the log after a stale append:
// it waits for the committed state, then for a publication in progress to
// activate its policy, or reloads the open breaches.
func (s *Service) catchUp(ctx context.Context, stale error) error {
	if err := s.l.Barrier(ctx); err != nil {
		return err
	}
	switch {
	case errors.Is(stale, ledger.ErrStalePolicy):
		// Publish appends and activates under publishMu: an empty critical
		// section waits for it.
		s.publishMu.Lock()
		s.publishMu.Unlock()
	case errors.Is(stale, ledger.ErrStaleBreaches):
		return s.refreshBreaches(ctx)
	}
	return nil
}

// recordedDecision answers an idempotent retry with the decision recorded
// the first time, not with a new evaluation.
func (s *Service) recordedDecision(ctx context.Context, rcpt ledger.Receipt) (*pb.DecideResponse, error) {
	e, err := s.entryAt(ctx, rcpt.Index)
	if err != nil {
		return nil, err
	}
	d := e.GetSendDecision()
	if d == nil {
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("idempotency_key %q was used for entry %d, which is not a send decision", e.IdempotencyKey, rcpt.Index))
	}
	resp := &pb.DecideResponse{Allow: d.Allow, Reasons: d.Reasons, Decision: rcpt.Ref(), PolicyDigest: d.PolicyDigest}
	if resp.Policy, err = s.l.Ref(ctx, d.PolicyIndex); err != nil {
		return nil, toConnect(err)
	}
	for _, i := range d.ConsentIndexes {
		ref, err := s.l.Ref(ctx, i)
		if err != nil {
			return nil, toConnect(err)
		}
		resp.Consents = append(resp.Consents, ref)
	}
	return resp, nil
}
