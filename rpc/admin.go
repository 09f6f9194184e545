package rpc

import (
	"context"
	"io"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/backup"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
)

type adminHandler struct {
	consentledgerv1connect.UnimplementedAdminServiceHandler
	s *Service
}

func (h *adminHandler) RevealSubject(ctx context.Context, r *connect.Request[pb.RevealSubjectRequest]) (*connect.Response[pb.RevealSubjectResponse], error) {
	id, err := checkSubject(r.Msg.Subject)
	if err != nil {
		return nil, err
	}
	sid, salt, commitment, err := h.s.l.RevealSubject(ctx, id)
	if err != nil {
		return nil, toConnect(err)
	}
	h.s.log.Info("subject revealed", "subject_id", sid, "actor", PrincipalFrom(ctx).Name)
	return connect.NewResponse(&pb.RevealSubjectResponse{SubjectId: sid, Salt: salt, Commitment: commitment, Normalized: id.Value}), nil
}

// chunkWriter sends what is written as BackupResponse chunks.
type chunkWriter struct {
	stream *connect.ServerStream[pb.BackupResponse]
}

func (w chunkWriter) Write(p []byte) (int, error) {
	for off := 0; off < len(p); off += 1 << 20 {
		end := min(off+1<<20, len(p))
		if err := w.stream.Send(&pb.BackupResponse{Chunk: p[off:end]}); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

func (h *adminHandler) Backup(ctx context.Context, _ *connect.Request[pb.BackupRequest], stream *connect.ServerStream[pb.BackupResponse]) error {
	if h.s.dataDir == "" {
		return connect.NewError(connect.CodeUnimplemented, errNoDataDir)
	}
	h.s.log.Info("backup started", "actor", PrincipalFrom(ctx).Name)
	var w io.Writer = chunkWriter{stream}
	if err := backup.Write(ctx, h.s.l, h.s.dataDir, w); err != nil {
		return toConnect(err)
	}
	return nil
}
