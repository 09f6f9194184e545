package rpc

import (
	"context"
	"sort"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// MaxStatsHours bounds GetDecisionStats's window (one week).
const MaxStatsHours = 168

// GetDecisionStats finds the window's first entry by binary search on
// recorded_at (which never decreases along the log) and scans from there,
// so it reads the window's entries and a logarithmic number of others.
func (h *logHandler) GetDecisionStats(ctx context.Context, r *connect.Request[pb.GetDecisionStatsRequest]) (*connect.Response[pb.GetDecisionStatsResponse], error) {
	hours := int(r.Msg.Hours)
	if hours == 0 {
		hours = 24
	}
	if hours > MaxStatsHours {
		return nil, invalid("hours", "%d is more than %d (one week)", hours, MaxStatsHours)
	}
	now := h.s.now().UTC()
	first := now.Truncate(time.Hour).Add(-time.Duration(hours-1) * time.Hour)
	out := &pb.GetDecisionStatsResponse{Size: h.s.l.Size()}
	for i := range hours {
		out.Hours = append(out.Hours, &pb.DecisionHour{Start: timestamppb.New(first.Add(time.Duration(i) * time.Hour)), DeniedByReason: map[string]uint64{}})
	}
	start, err := h.s.firstAtOrAfter(ctx, first, out.Size)
	if err != nil {
		return nil, toConnect(err)
	}
	err = h.s.l.Scan(ctx, start, out.Size-start, func(_ uint64, data []byte) error {
		e, err := ledger.DecodeEntry(data)
		if err != nil {
			return err
		}
		d := e.GetSendDecision()
		if d == nil {
			return nil
		}
		i := int(e.RecordedAt.AsTime().Sub(first) / time.Hour)
		if i < 0 || i >= hours {
			return nil
		}
		hr := out.Hours[i]
		if d.Allow {
			hr.Allowed++
			return nil
		}
		hr.Denied++
		seen := map[string]bool{}
		for _, reason := range d.Reasons {
			code, _, _ := strings.Cut(reason, ":")
			if !seen[code] {
				seen[code] = true
				hr.DeniedByReason[code]++
			}
		}
		return nil
	})
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(out), nil
}

// firstAtOrAfter returns the index of the first entry below size recorded at
// or after t (size if none).
func (s *Service) firstAtOrAfter(ctx context.Context, t time.Time, size uint64) (uint64, error) {
	var ferr error
	i := sort.Search(int(size), func(i int) bool {
		if ferr != nil {
			return true
		}
		data, err := s.l.Entry(ctx, uint64(i))
		if err != nil {
			ferr = err
			return true
		}
		e, err := ledger.DecodeEntry(data)
		if err != nil {
			ferr = err
			return true
		}
		return !e.RecordedAt.AsTime().Before(t)
	})
	return uint64(i), ferr
}
