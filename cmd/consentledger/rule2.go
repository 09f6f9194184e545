package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/breach/draft"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/report"
)

func init() {
	commands["breach"] = command{run: runBreach, summary: "draft a breach notification (Art. 33) or the communication to the persons (Art. 34)"}
	commands["report"] = command{run: runReport, summary: "export the consent report (auditor; recorded in the log)"}
}

const (
	notificationUsage  = "usage: consentledger breach notification BREACH_ID [-o FILE] [--format md|html|pdf] [--lang de|en] [--server URL] [--token T]"
	communicationUsage = "usage: consentledger breach communication BREACH_ID [--lang de|en] [-o FILE] [--server URL] [--token T]"
	reportUsage        = "usage: consentledger report consents [--csv|--json] [--channel C] [--purpose P] [--as-of TIME] [-o FILE] [--server URL] [--token T]"
)

func runBreach(args []string) int {
	hint := notificationUsage + "\n" + communicationUsage
	if len(args) == 0 {
		return errorf(2, hint, "missing breach subcommand")
	}
	switch args[0] {
	case "notification":
		return runDraft(args[1:], notificationUsage, true)
	case "communication":
		return runDraft(args[1:], communicationUsage, false)
	}
	return errorf(2, hint, "unknown breach subcommand %q", args[0])
}

// runDraft fetches the breach and writes the authority notification or the
// Art. 34 communication.
func runDraft(args []string, use string, notification bool) int {
	fs := newFlagSet("breach")
	out := fs.String("o", "", "output file (default stdout)")
	format := fs.String("format", "md", "md, html or pdf")
	lang := fs.String("lang", "en", "de or en")
	newClient := clientFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) != 1 {
		return usageError(use, err, pos)
	}
	if *lang != "en" && *lang != "de" {
		return errorf(2, use, "--lang %q must be de or en", *lang)
	}
	if *format != "md" && *format != "html" && *format != "pdf" {
		return errorf(2, use, "--format %q must be md, html or pdf", *format)
	}
	if *format == "pdf" && (*out == "" || *out == "-") && isTerminal(os.Stdout) {
		return errorf(2, use, "a PDF is not written to a terminal: give -o FILE")
	}
	c, err := newClient()
	if err != nil {
		return errorf(2, use, "%v", err)
	}
	r, err := c.Breach.GetBreach(context.Background(), connect.NewRequest(&pb.GetBreachRequest{BreachId: pos[0]}))
	if err != nil {
		return rpcError(err)
	}
	o := draft.Options{Lang: *lang, Now: time.Now()}
	var d *draft.Doc
	if notification {
		d, err = draft.Notification(r.Msg, o)
	} else {
		d, err = draft.Communication(r.Msg, o)
	}
	if err != nil {
		return errorf(1, "", "%v", err)
	}
	if err := writeOutput(*out, func(w io.Writer) error { return d.Write(w, *format) }); err != nil {
		return errorf(2, "", "write %s: %v", *out, err)
	}
	if notification && len(d.Missing) > 0 {
		fmt.Fprintf(stderr, "consentledger: %d facts are still to provide; they are listed first in the draft\n", len(d.Missing))
	}
	return 0
}

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runReport(args []string) int {
	if len(args) == 0 || args[0] != "consents" {
		return errorf(2, reportUsage, "the report is \"consents\"")
	}
	fs := newFlagSet("report consents")
	asCSV := fs.Bool("csv", false, "CSV per RFC 4180 (the default)")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	channel := fs.String("channel", "", "only this channel: whatsapp, sms, rcs or email")
	purpose := fs.String("purpose", "", "only this purpose")
	asOf := fs.String("as-of", "", "consent as it stood at this moment (RFC 3339), by occurred_at")
	out := fs.String("o", "", "output file (default stdout)")
	newClient := clientFlags(fs)
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil || len(pos) > 0 {
		return usageError(reportUsage, err, pos)
	}
	if *asCSV && *asJSON {
		return errorf(2, reportUsage, "give --csv or --json, not both")
	}
	req := &pb.ExportConsentsRequest{Purpose: *purpose, Format: "csv"}
	if *asJSON {
		req.Format = "json"
	}
	if *channel != "" {
		v, ok := pb.Channel_value["CHANNEL_"+strings.ToUpper(*channel)]
		if !ok || v == 0 {
			return errorf(2, reportUsage, "--channel %q must be whatsapp, sms, rcs or email", *channel)
		}
		req.Channel = pb.Channel(v)
	}
	if *asOf != "" {
		t, err := time.Parse(time.RFC3339, *asOf)
		if err != nil {
			return errorf(2, reportUsage, "--as-of %q is not an RFC 3339 time such as 2026-11-30T12:00:00Z", *asOf)
		}
		req.AsOf = timestamppb.New(t)
	}
	c, err := newClient()
	if err != nil {
		return errorf(2, reportUsage, "%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var progress io.Writer
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		progress = stderr
	}
	var rpcErr error
	var ref *pb.EntryRef
	var rows uint64
	err = writeOutput(*out, func(w io.Writer) error {
		ref, rows, rpcErr = streamReport(ctx, c.Report.ExportConsents, req, w, progress)
		return rpcErr
	})
	if rpcErr != nil {
		return rpcError(rpcErr)
	}
	if err != nil {
		return errorf(2, "", "write %s: %v", *out, err)
	}
	fmt.Fprintf(stderr, "consentledger: %d rows; the export is recorded as entry %d\n", rows, ref.GetIndex())
	return 0
}

// streamReport writes the rows as they arrive (constant memory) and
// returns the ReportExported entry.
func streamReport(ctx context.Context, call func(context.Context, *connect.Request[pb.ExportConsentsRequest]) (*connect.ServerStreamForClient[pb.ExportConsentsResponse], error),
	req *pb.ExportConsentsRequest, w io.Writer, progress io.Writer) (*pb.EntryRef, uint64, error) {
	s, err := call(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, 0, err
	}
	defer s.Close()
	var cw *report.CSVWriter
	if req.Format == "csv" {
		cw = report.NewCSVWriter(w)
	}
	var ref *pb.EntryRef
	var rows uint64
	for s.Receive() {
		m := s.Msg()
		switch {
		case m.Row != nil:
			rows++
			if cw != nil {
				err = cw.Write(m.Row)
			} else {
				err = writeJSONRow(w, m.Row)
			}
			if err != nil {
				return nil, rows, err
			}
		case m.Report != nil:
			ref = m.Report
		case progress != nil:
			fmt.Fprintf(progress, "\r%d subjects, %d rows", m.Scanned, rows)
		}
	}
	if err := s.Err(); err != nil {
		return nil, rows, err
	}
	if progress != nil {
		fmt.Fprintln(progress)
	}
	if cw != nil {
		if err := cw.Close(); err != nil {
			return nil, rows, err
		}
	}
	if ref == nil {
		return nil, rows, fmt.Errorf("the server ended the report without recording it; the export is incomplete")
	}
	return ref, rows, nil
}

func writeJSONRow(w io.Writer, r *pb.ConsentRow) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(r)
	if err != nil {
		return err
	}
	var compact json.RawMessage = b
	out, err := json.Marshal(compact)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", out)
	return err
}
