package rpc

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// MaxCheckpointsPerCall bounds ListCheckpoints.
const MaxCheckpointsPerCall = 1000

// WitnessInfo is what GetCheckpoint shows of one configured witness.
type WitnessInfo struct {
	Name, URL, VKey  string
	LastCosignedSize uint64
	LastCosignedAt   time.Time // zero: none yet
	Failures         uint64
	LastError, Alarm string
}

// checkpointResponse is c with its stored cosignatures and the witnesses.
func (s *Service) checkpointResponse(ctx context.Context, c *ledger.Checkpoint) (*connect.Response[pb.GetCheckpointResponse], error) {
	cosigned, n, err := s.l.WithCosignatures(ctx, c)
	if err != nil {
		return nil, toConnect(err)
	}
	out := &pb.GetCheckpointResponse{Checkpoint: string(cosigned), Size: c.Size, RootHash: c.Root, Cosignatures: uint32(n), WitnessQuorum: uint32(s.quorum)}
	if s.witnesses != nil {
		for _, w := range s.witnesses() {
			ws := &pb.WitnessStatus{Name: w.Name, Url: w.URL, Vkey: w.VKey, LastCosignedSize: w.LastCosignedSize,
				Failures: w.Failures, LastError: w.LastError, Alarm: w.Alarm}
			if !w.LastCosignedAt.IsZero() {
				ws.LastCosignedAt = timestamppb.New(w.LastCosignedAt)
			}
			out.Witnesses = append(out.Witnesses, ws)
		}
	}
	return connect.NewResponse(out), nil
}

func (h *logHandler) ListCheckpoints(ctx context.Context, r *connect.Request[pb.ListCheckpointsRequest]) (*connect.Response[pb.ListCheckpointsResponse], error) {
	count := int(r.Msg.Count)
	if count == 0 {
		count = 100
	}
	if count > MaxCheckpointsPerCall {
		return nil, invalid("count", "%d is more than %d", count, MaxCheckpointsPerCall)
	}
	out := &pb.ListCheckpointsResponse{}
	err := h.s.l.CosignedCheckpoints(ctx, r.Msg.StartSize, count, func(c *ledger.Checkpoint, cosigned []byte) error {
		out.Checkpoints = append(out.Checkpoints, &pb.CosignedCheckpoint{Checkpoint: string(cosigned), Size: c.Size})
		return nil
	})
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(out), nil
}
