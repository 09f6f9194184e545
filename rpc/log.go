package rpc

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
)

// MaxEntriesPerCall bounds GetEntries.
const MaxEntriesPerCall = 1000

// MaxEntriesBytes bounds the stored bytes of the entries one GetEntries
// answer carries (at least one entry is always returned), and what one
// WatchEntries stream reads ahead of what it has sent.
const MaxEntriesBytes = 4 << 20

// errChunkFull stops a scan whose byte budget is spent.
var errChunkFull = errors.New("chunk full")

// scanChunk reads entries from start on, at most limit of them and about
// MaxEntriesBytes of stored bytes (at least one entry), and returns copies:
// the store's read transaction ends before anything is sent.
func (s *Service) scanChunk(ctx context.Context, start, limit uint64) ([]*pb.LogEntry, error) {
	var out []*pb.LogEntry
	bytes := 0
	err := s.l.Scan(ctx, start, limit, func(i uint64, data []byte) error {
		if len(out) > 0 && bytes+len(data) > MaxEntriesBytes {
			return errChunkFull
		}
		bytes += len(data)
		out = append(out, LogEntryOf(i, append([]byte(nil), data...)))
		return nil
	})
	if errors.Is(err, errChunkFull) {
		err = nil
	}
	return out, err
}

type logHandler struct {
	consentledgerv1connect.UnimplementedLogServiceHandler
	s *Service
}

func (h *logHandler) GetCheckpoint(ctx context.Context, r *connect.Request[pb.GetCheckpointRequest]) (*connect.Response[pb.GetCheckpointResponse], error) {
	if err := h.s.waitApplied(ctx, r.Msg.MinIndex); err != nil {
		return nil, err
	}
	var c *ledger.Checkpoint
	var err error
	switch {
	case r.Msg.Size > 0:
		c, err = h.s.l.CheckpointAt(ctx, r.Msg.Size)
	case r.Msg.Sign:
		c, err = h.s.l.SignCheckpoint(ctx)
	default:
		if c = h.s.l.LatestCheckpoint(); c == nil {
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("no checkpoint has been signed yet (a standby copies the leader's); retry in a second"))
		}
	}
	if err != nil {
		return nil, toConnect(err)
	}
	return h.s.checkpointResponse(ctx, c)
}

// LogEntryOf returns the API view of stored entry bytes.
func LogEntryOf(index uint64, data []byte) *pb.LogEntry {
	le := &pb.LogEntry{Index: index, Entry: data, LeafHash: ledger.LeafHash(data)}
	if e, err := ledger.DecodeEntry(data); err == nil {
		le.Json = protojson.Format(e)
	}
	return le
}

func (h *logHandler) GetEntries(ctx context.Context, r *connect.Request[pb.GetEntriesRequest]) (*connect.Response[pb.GetEntriesResponse], error) {
	if err := h.s.waitApplied(ctx, r.Msg.MinIndex); err != nil {
		return nil, err
	}
	count := int(r.Msg.Count)
	if count == 0 {
		count = 100
	}
	if count > MaxEntriesPerCall {
		return nil, invalid("count", "%d is more than %d", count, MaxEntriesPerCall)
	}
	size := h.s.l.Size()
	if r.Msg.Start > size {
		return nil, connect.NewError(connect.CodeOutOfRange, fmt.Errorf("start: %d is beyond the log's size %d", r.Msg.Start, size))
	}
	entries, err := h.s.scanChunk(ctx, r.Msg.Start, uint64(count))
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&pb.GetEntriesResponse{Size: size, Entries: entries}), nil
}

// proofSize resolves a requested tree size: 0 means the latest checkpoint's.
func (s *Service) proofSize(size uint64) uint64 {
	if size == 0 {
		if c := s.l.LatestCheckpoint(); c != nil {
			return c.Size
		}
		return 0
	}
	return size
}

func (h *logHandler) GetInclusionProof(ctx context.Context, r *connect.Request[pb.GetInclusionProofRequest]) (*connect.Response[pb.GetInclusionProofResponse], error) {
	if err := h.s.waitApplied(ctx, r.Msg.MinIndex); err != nil {
		return nil, err
	}
	size := h.s.proofSize(r.Msg.Size)
	if r.Msg.Size == 0 && r.Msg.Index >= size && r.Msg.Index < h.s.l.Size() {
		// The entry is newer than the latest checkpoint: sign one that covers it.
		c, err := h.s.l.SignCheckpoint(ctx)
		if err != nil {
			return nil, toConnect(err)
		}
		size = c.Size
	}
	p, err := h.s.l.InclusionProof(ctx, r.Msg.Index, size)
	if err != nil {
		return nil, toConnect(err)
	}
	data, err := h.s.l.Entry(ctx, r.Msg.Index)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&pb.GetInclusionProofResponse{Index: r.Msg.Index, Size: size, LeafHash: ledger.LeafHash(data), Proof: p}), nil
}

func (h *logHandler) GetConsistencyProof(ctx context.Context, r *connect.Request[pb.GetConsistencyProofRequest]) (*connect.Response[pb.GetConsistencyProofResponse], error) {
	if err := h.s.waitApplied(ctx, r.Msg.MinIndex); err != nil {
		return nil, err
	}
	size2 := h.s.proofSize(r.Msg.Size2)
	p, err := h.s.l.ConsistencyProof(ctx, r.Msg.Size1, size2)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&pb.GetConsistencyProofResponse{Size1: r.Msg.Size1, Size2: size2, Proof: p}), nil
}

func (h *logHandler) GetEvidence(ctx context.Context, r *connect.Request[pb.GetEvidenceRequest]) (*connect.Response[pb.GetEvidenceResponse], error) {
	if err := h.s.waitApplied(ctx, r.Msg.MinIndex); err != nil {
		return nil, err
	}
	b, err := EvidenceAt(ctx, h.s.l, r.Msg.DecisionIndex, r.Msg.Size)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&pb.GetEvidenceResponse{Bundle: b}), nil
}

func (h *logHandler) WatchEntries(ctx context.Context, r *connect.Request[pb.WatchEntriesRequest], stream *connect.ServerStream[pb.WatchEntriesResponse]) error {
	if err := h.s.waitApplied(ctx, r.Msg.MinIndex); err != nil {
		return err
	}
	next := r.Msg.Start
	for {
		size := h.s.l.Size()
		if next < size {
			chunk, err := h.s.scanChunk(ctx, next, min(size-next, MaxEntriesPerCall))
			if err != nil {
				return toConnect(err)
			}
			for _, e := range chunk {
				if err := stream.Send(&pb.WatchEntriesResponse{Entry: e}); err != nil {
					return toConnect(err)
				}
				next = e.Index + 1
			}
			continue
		}
		if _, err := h.s.l.WaitForSize(ctx, next); err != nil {
			if errors.Is(err, ledger.ErrClosed) {
				return connect.NewError(connect.CodeUnavailable, errors.New("the server is shutting down"))
			}
			return toConnect(err)
		}
	}
}
