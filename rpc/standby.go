package rpc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// DefaultMinIndexWait bounds how long a read with min_index waits for this
// node to apply that entry (a standby following the leader is normally
// less than a second behind). Past it the read is answered unavailable,
// saying how far the node has got, and the client retries (README.md: The
// API).
const DefaultMinIndexWait = 5 * time.Second

// waitApplied waits until the ledger holds the entry at minIndex (0: no
// wait), at most s.minIndexWait, so that a client reading from a standby
// sees its own writes.
func (s *Service) waitApplied(ctx context.Context, minIndex uint64) error {
	if minIndex == 0 || s.l.Size() > minIndex {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, s.minIndexWait)
	defer cancel()
	n, err := s.l.WaitForSize(wctx, minIndex)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return toConnect(ctx.Err())
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf(
			"min_index: this node has applied %d entries and is still catching up to entry %d after %v; retry in a moment, or read from the leader", n, minIndex, s.minIndexWait))
	case errors.Is(err, ledger.ErrClosed):
		return connect.NewError(connect.CodeUnavailable, errors.New("the server is shutting down"))
	}
	return toConnect(err)
}

// appendOne appends through the ledger, after Options.RefuseWrites.
func (s *Service) appendOne(ctx context.Context, req *ledger.Request) (ledger.Receipt, error) {
	if s.refuseWrites != nil {
		if err := s.refuseWrites(); err != nil {
			return ledger.Receipt{}, err
		}
	}
	return s.l.Append(ctx, req)
}

// appendBatch is ledger.AppendBatch after Options.RefuseWrites.
func (s *Service) appendBatch(ctx context.Context, reqs []*ledger.Request) ([]ledger.BatchResult, error) {
	if s.refuseWrites != nil {
		if err := s.refuseWrites(); err != nil {
			return nil, err
		}
	}
	return s.l.AppendBatch(ctx, reqs)
}

// notLeader answers a write refused on a standby: unavailable, with the
// leader's URL in the message and as a LeaderHint detail (none when no
// node holds the lease), which the Go client follows.
func notLeader(err error) *connect.Error {
	ce := connect.NewError(connect.CodeUnavailable, err)
	var nl *ledger.NotLeaderError
	if errors.As(err, &nl) && nl.Leader != "" {
		if d, derr := connect.NewErrorDetail(&pb.LeaderHint{LeaderUrl: nl.Leader}); derr == nil {
			ce.AddDetail(d)
		}
	}
	return ce
}
