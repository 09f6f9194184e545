package rpc

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/ledger/subject"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// DecideBatch decides up to MaxDecideBatch sends for a campaign.
//
// Everything that can fail is checked before anything is appended: an
// invalid request, or an idempotency key used twice in the batch or
// already used in the log for another request, rejects the batch. Then every
// request is evaluated concurrently on all cores, and all decisions are
// appended with one ledger.AppendBatch: one group commit. A decision whose
// input went stale before it was sequenced (another decision or a consent
// event for its subject, a breach, a publication: ledger.ErrStale) appends
// nothing; the ledger acknowledges the others, and the stale ones are
// evaluated again against the new state and appended in the next
// AppendBatch, until every request has its decision. So every decision of
// the batch honours an opt-out acknowledged before the batch began (the
// evaluation reads committed state after it, and the append is conditional
// on it), and results are in request order. If a later round fails (the
// call's context ends, the ledger stops, a request racing the batch took one
// of its idempotency keys), the decisions already acknowledged stay in the
// log and the call returns the error; a retry with the same idempotency keys
// answers them with the decisions recorded.
func (h *sendHandler) DecideBatch(ctx context.Context, r *connect.Request[pb.DecideBatchRequest]) (*connect.Response[pb.DecideBatchResponse], error) {
	if n := len(r.Msg.Requests); n == 0 || n > MaxDecideBatch {
		return nil, invalid("requests", "%d requests, want 1 to %d", n, MaxDecideBatch)
	}
	actor := PrincipalFrom(ctx).Name
	keys := make(map[string]int, len(r.Msg.Requests))
	batch := make([]*decision, len(r.Msg.Requests))
	for i, m := range r.Msg.Requests {
		prefix := fmt.Sprintf("requests[%d].", i)
		id, req, err := checkDecide(m, prefix)
		if err != nil {
			return nil, err
		}
		c := &decision{m: m, id: id, req: req, actor: actor, fp: h.s.fingerprint(m.IdempotencyKey, m), prefix: prefix}
		batch[i] = c
		if m.IdempotencyKey == "" {
			continue
		}
		if j, ok := keys[m.IdempotencyKey]; ok {
			return nil, invalid(prefix+"idempotency_key", "%q is also the key of requests[%d]; each request of a batch needs its own key", m.IdempotencyKey, j)
		}
		keys[m.IdempotencyKey] = i
		if _, _, err := h.s.l.CheckIdempotencyKey(ctx, actor, m.IdempotencyKey, c.fp); err != nil {
			return nil, toConnect(fmt.Errorf("%s%w", prefix, err))
		}
	}
	out, err := h.s.decideBatch(ctx, batch)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.DecideBatchResponse{Results: out}), nil
}

// decideBatch evaluates and appends validated decisions; see DecideBatch.
func (s *Service) decideBatch(ctx context.Context, batch []*decision) ([]*pb.DecideResponse, error) {
	out := make([]*pb.DecideResponse, len(batch))
	todo := make([]int, len(batch))
	for i := range todo {
		todo[i] = i
	}
	// Every round appends at least one decision unless all went stale; only
	// rounds without progress count against the retry bound.
	for idle := 0; len(todo) > 0; {
		// One request per subject a round: an allowed send changes the
		// subject's last allowed send, so a second request for the subject
		// evaluated against the same state would go stale anyway.
		var later []int
		todo, later = firstPerSubject(batch, todo)
		if err := s.evaluateAll(ctx, batch, todo); err != nil {
			return nil, err
		}
		reqs := make([]*ledger.Request, len(todo))
		for k, i := range todo {
			reqs[k] = batch[i].append
		}
		res, err := s.appendBatch(ctx, reqs)
		if err != nil {
			return nil, toConnect(err)
		}
		var stale []int
		var staleErrs []error
		for k, i := range todo {
			c, r := batch[i], res[k]
			switch {
			case errors.Is(r.Err, ledger.ErrStale):
				stale = append(stale, i)
				staleErrs = append(staleErrs, r.Err)
			case r.Err != nil:
				// Checked before the batch began, so only a request racing
				// this batch with the same idempotency key gets here.
				return nil, toConnect(fmt.Errorf("%s%w", c.prefix, r.Err))
			default:
				if out[i], err = s.decided(ctx, c, r.Receipt); err != nil {
					return nil, err
				}
			}
		}
		if len(stale) == len(todo) {
			if idle++; idle > maxStaleRetries {
				return nil, toConnect(fmt.Errorf("%s%w", batch[stale[0]].prefix, staleErrs[0]))
			}
		} else {
			idle = 0
		}
		if err := s.catchUpAll(ctx, staleErrs); err != nil {
			return nil, toConnect(err)
		}
		todo = append(stale, later...)
		slices.Sort(todo)
	}
	return out, nil
}

// firstPerSubject splits todo into the first request for each subject and
// the others, both in request order.
func firstPerSubject(batch []*decision, todo []int) (first, later []int) {
	type key struct {
		kind  subject.Kind
		value string
	}
	seen := make(map[key]bool, len(todo))
	first = make([]int, 0, len(todo))
	for _, i := range todo {
		k := key{batch[i].id.Kind, batch[i].id.Value}
		if seen[k] {
			later = append(later, i)
			continue
		}
		seen[k] = true
		first = append(first, i)
	}
	return first, later
}

// catchUpAll catches up once for each kind of staleness in errs.
func (s *Service) catchUpAll(ctx context.Context, errs []error) error {
	var seen [3]bool
	for _, err := range errs {
		kind := 0
		switch {
		case errors.Is(err, ledger.ErrStalePolicy):
			kind = 1
		case errors.Is(err, ledger.ErrStaleBreaches):
			kind = 2
		}
		if seen[kind] {
			continue
		}
		seen[kind] = true
		if err := s.catchUp(ctx, err); err != nil {
			return err
		}
	}
	return nil
}

// evaluateAll evaluates batch[i] for every i in todo on up to GOMAXPROCS
// goroutines, and returns an error of one that failed.
func (s *Service) evaluateAll(ctx context.Context, batch []*decision, todo []int) error {
	workers := min(runtime.GOMAXPROCS(0), len(todo))
	if workers <= 1 {
		for _, i := range todo {
			if err := s.evaluate(ctx, batch[i]); err != nil {
				return err
			}
		}
		return nil
	}
	var next atomic.Int64
	var failed atomic.Bool
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				k := int(next.Add(1)) - 1
				if k >= len(todo) {
					return
				}
				if err := s.evaluate(ctx, batch[todo[k]]); err != nil {
					errs[w] = err
					failed.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
