package rpc

import (
	"context"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
	"github.com/consentledger/consentledger/report"
)

type reportHandler struct {
	consentledgerv1connect.UnimplementedReportServiceHandler
	s *Service
}

// progressEvery is how many subjects pass between progress messages.
const progressEvery = 1000

// ExportConsents streams the consent report from one snapshot of the state
// index, one subject at a time, and records the export as a ReportExported
// entry (README.md: Privacy notices, breaches, reports: pseudonyms are personal data for the controller).
func (h *reportHandler) ExportConsents(ctx context.Context, r *connect.Request[pb.ExportConsentsRequest], stream *connect.ServerStream[pb.ExportConsentsResponse]) error {
	m := r.Msg
	f := report.Filter{Channel: m.Channel, Purpose: m.Purpose}
	var filters []string
	if m.Channel != pb.Channel_CHANNEL_UNSPECIFIED {
		if err := checkChannel("channel", m.Channel); err != nil {
			return err
		}
		filters = append(filters, "channel="+ledger.ChannelName(m.Channel))
	}
	if m.Purpose != "" {
		if err := checkPurposes("purpose", []string{m.Purpose}, false); err != nil {
			return err
		}
		filters = append(filters, "purpose="+m.Purpose)
	}
	var asOf time.Time
	if m.AsOf != nil {
		if err := m.AsOf.CheckValid(); err != nil {
			return invalid("as_of", "%v", err)
		}
		asOf = m.AsOf.AsTime()
		filters = append(filters, "as_of="+asOf.UTC().Format(time.RFC3339Nano))
	}
	format, err := oneOf("format", m.Format, "csv", "csv", "json")
	if err != nil {
		return err
	}
	var rows, subjects uint64
	err = h.s.l.ScanSubjects(ctx, func(st *pb.SubjectState, chain ledger.SubjectChain) error {
		var out []*pb.ConsentRow
		if m.AsOf == nil {
			out = report.FromState(st)
		} else {
			evs, err := chain()
			if err != nil {
				return err
			}
			out = report.AsOf(st.SubjectId, evs, asOf)
		}
		for _, row := range out {
			if !f.Keep(row) {
				continue
			}
			rows++
			if err := stream.Send(&pb.ExportConsentsResponse{Row: row}); err != nil {
				return err
			}
		}
		subjects++
		if subjects%progressEvery == 0 {
			return stream.Send(&pb.ExportConsentsResponse{Scanned: subjects})
		}
		return nil
	})
	if err != nil {
		return toConnect(err)
	}
	rcpt, err := h.s.appendFor(ctx, nil, "", nil, &pb.Entry{Event: &pb.Entry_ReportExported{ReportExported: &pb.ReportExported{
		Report: "consents", Filters: filters, Rows: rows, Format: format,
	}}})
	if err != nil {
		return err
	}
	return stream.Send(&pb.ExportConsentsResponse{Report: rcpt.Ref(), Scanned: subjects, Total: subjects})
}
