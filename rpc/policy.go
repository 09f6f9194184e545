package rpc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
)

// MaxImpactDecisions bounds ImpactReport's replay.
const MaxImpactDecisions = 10000

type policyHandler struct {
	consentledgerv1connect.UnimplementedPolicyServiceHandler
	s *Service
}

// DefaultDraftTimeout bounds one evaluation of a policy that is not yet
// active: a DryRun, an ImpactReport, the test run before a publication.
const DefaultDraftTimeout = 10 * time.Second

// maxDraftEvaluations bounds how many draft evaluations run at once (OPA
// has no memory limit of its own; this bounds the memory drafts can take).
const maxDraftEvaluations = 2

func checkPolicyFiles(pf []*pb.PolicyFile) ([]policies.File, error) {
	if len(pf) == 0 {
		return nil, invalid("files", "at least one file is required (the *.rego modules, their *_test.rego tests and data.json)")
	}
	if len(pf) > policies.MaxFiles {
		return nil, invalid("files", "%d files, the limit is %d", len(pf), policies.MaxFiles)
	}
	for i, f := range pf {
		field := fmt.Sprintf("files[%d].name", i)
		if err := checkIdent(field, f.GetName(), maxShortText); err != nil {
			return nil, err
		}
		if strings.ContainsAny(f.Name, `/\:`) || !policies.IsPolicyFile(f.Name) {
			return nil, invalid(field, "%q is not a policy file name: give a base name without directories, *.rego or data.json", f.Name)
		}
	}
	return policyFiles(pf), nil
}

// draftContext bounds a draft evaluation in time and in number; release
// must be called when the evaluation ends.
func (s *Service) draftContext(ctx context.Context) (context.Context, func(), error) {
	select {
	case s.drafts <- struct{}{}:
	default:
		return nil, nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("%d draft policy evaluations are already running; try again when they finish", maxDraftEvaluations))
	}
	ctx, cancel := context.WithTimeout(ctx, s.draftTimeout)
	return ctx, func() { cancel(); <-s.drafts }, nil
}

// draftError maps an error of a bounded draft evaluation: a timeout is
// deadline_exceeded with the limit named, a cancellation canceled.
func (s *Service) draftError(ctx context.Context, what string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("%s did not finish within %v, the limit for a policy that is not active: simplify the policy (or its tests) and try again", what, s.draftTimeout))
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return connect.NewError(connect.CodeCanceled, ctx.Err())
	}
	return err
}

func (h *policyHandler) PublishPolicy(ctx context.Context, r *connect.Request[pb.PublishPolicyRequest]) (*connect.Response[pb.PublishPolicyResponse], error) {
	files, err := checkPolicyFiles(r.Msg.Files)
	if err != nil {
		return nil, err
	}
	if err := checkFree("note", r.Msg.Note, maxLongText); err != nil {
		return nil, err
	}
	if err := checkKey(r.Msg.IdempotencyKey); err != nil {
		return nil, err
	}
	dctx, release, err := h.s.draftContext(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	ref, digest, err := h.s.publish(ctx, dctx, files, r.Msg.Note, r.Msg.IdempotencyKey)
	if err != nil {
		return nil, h.s.draftError(dctx, "the policy's tests", toConnect(err))
	}
	return connect.NewResponse(&pb.PublishPolicyResponse{Entry: ref, Digest: digest}), nil
}

func (h *policyHandler) GetActivePolicy(ctx context.Context, _ *connect.Request[pb.GetActivePolicyRequest]) (*connect.Response[pb.GetActivePolicyResponse], error) {
	_, ref := h.s.Active()
	if ref == nil {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no policy has been published yet (a standby: the leader publishes it)"))
	}
	e, err := h.s.entryAt(ctx, ref.Index)
	if err != nil {
		return nil, err
	}
	p := e.GetPolicyPublished()
	return connect.NewResponse(&pb.GetActivePolicyResponse{Entry: ref, Digest: p.GetDigest(), Files: p.GetFiles(), Note: p.GetNote()}), nil
}

// draft compiles and tests the files of a draft policy; none means the active one.
func (s *Service) draft(ctx context.Context, pf []*pb.PolicyFile) (*policies.Set, error) {
	if len(pf) == 0 {
		set, _ := s.Active()
		return set, nil
	}
	files, err := checkPolicyFiles(pf)
	if err != nil {
		return nil, err
	}
	set, err := policies.Check(ctx, files)
	if err != nil {
		return nil, s.draftError(ctx, "the draft policy's tests", toConnect(err))
	}
	return set, nil
}

func (h *policyHandler) DryRun(ctx context.Context, r *connect.Request[pb.DryRunRequest]) (*connect.Response[pb.DryRunResponse], error) {
	id, req, err := checkDecide(r.Msg.Request, "request.")
	if err != nil {
		return nil, err
	}
	ctx, release, err := h.s.draftContext(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	set, err := h.s.draft(ctx, r.Msg.Files)
	if err != nil {
		return nil, err
	}
	_, st, known, err := h.s.l.LookupSubject(ctx, id)
	if err != nil {
		return nil, toConnect(err)
	}
	value, input := buildInput(h.s.now(), req, known, st, h.s.open.Load().list)
	dec, err := set.DecideValue(ctx, value)
	if err != nil {
		return nil, h.s.draftError(ctx, "the dry run", connect.NewError(connect.CodeFailedPrecondition, err))
	}
	return connect.NewResponse(&pb.DryRunResponse{Allow: dec.Allow, Reasons: dec.Reasons, Digest: set.Digest(), Input: string(input)}), nil
}

func (h *policyHandler) ImpactReport(ctx context.Context, r *connect.Request[pb.ImpactReportRequest]) (*connect.Response[pb.ImpactReportResponse], error) {
	limit := int(r.Msg.Limit)
	if limit == 0 || limit > MaxImpactDecisions {
		limit = MaxImpactDecisions
	}
	if len(r.Msg.Files) == 0 {
		return nil, invalid("files", "the draft policy to compare is required")
	}
	ctx, release, err := h.s.draftContext(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	set, err := h.s.draft(ctx, r.Msg.Files)
	if err != nil {
		return nil, err
	}
	// Keep the newest `limit` decisions.
	type rec struct {
		index uint64
		d     *pb.SendDecision
	}
	var recent []rec
	err = h.s.l.Scan(ctx, 0, 0, func(i uint64, data []byte) error {
		e, err := ledger.DecodeEntry(data)
		if err != nil {
			return err
		}
		if d := e.GetSendDecision(); d != nil {
			recent = append(recent, rec{i, d})
			if len(recent) > 2*limit {
				recent = slices.Clone(recent[len(recent)-limit:])
			}
		}
		return nil
	})
	if err != nil {
		return nil, h.s.draftError(ctx, "the impact report", toConnect(err))
	}
	if len(recent) > limit {
		recent = recent[len(recent)-limit:]
	}
	out := &pb.ImpactReportResponse{Digest: set.Digest()}
	for i := len(recent) - 1; i >= 0; i-- {
		rc := recent[i]
		dec, err := set.Decide(ctx, rc.d.Input)
		out.DecisionsReplayed++
		if err != nil && ctx.Err() != nil {
			return nil, h.s.draftError(ctx, fmt.Sprintf("the impact report (after %d of %d decisions)", out.DecisionsReplayed-1, len(recent)), toConnect(err))
		}
		if err != nil {
			out.Changes = append(out.Changes, &pb.DecisionChange{DecisionIndex: rc.index, RecordedAllow: rc.d.Allow, RecordedReasons: rc.d.Reasons, DraftReasons: []string{"error: " + err.Error()}})
			continue
		}
		if dec.Allow != rc.d.Allow || !slices.Equal(dec.Reasons, rc.d.Reasons) {
			out.Changes = append(out.Changes, &pb.DecisionChange{DecisionIndex: rc.index, RecordedAllow: rc.d.Allow, RecordedReasons: rc.d.Reasons, DraftAllow: dec.Allow, DraftReasons: dec.Reasons})
		}
	}
	return connect.NewResponse(out), nil
}
