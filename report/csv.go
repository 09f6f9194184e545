package report

import (
	"encoding/csv"
	"io"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Header is the CSV header row.
var Header = []string{
	"subject_id", "channel", "purpose", "status", "method", "notice_version", "notice_language",
	"granted_occurred_at", "granted_recorded_at", "confirmed_occurred_at", "confirmed_recorded_at",
	"withdrawn_occurred_at", "withdrawn_recorded_at", "grant_index", "last_event_index", "erased",
}

// SafeCell neutralises a cell a spreadsheet would read as a formula: a
// cell starting with =, +, -, @, a tab or a carriage return gets a leading
// apostrophe (the OWASP CSV-injection rule README.md: Privacy notices, breaches, reports names).
func SafeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// CSVWriter writes rows as CSV per RFC 4180 (CRLF line ends, quoting by
// encoding/csv) with a header row.
type CSVWriter struct {
	w      *csv.Writer
	header bool
}

// NewCSVWriter returns a CSVWriter on w.
func NewCSVWriter(w io.Writer) *CSVWriter {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	return &CSVWriter{w: cw}
}

// Write writes one row (the header before the first).
func (c *CSVWriter) Write(r *pb.ConsentRow) error {
	if !c.header {
		c.header = true
		if err := c.w.Write(Header); err != nil {
			return err
		}
	}
	rec := Record(r)
	for i := range rec {
		rec[i] = SafeCell(rec[i])
	}
	return c.w.Write(rec)
}

// Close writes the header if no row was written and flushes.
func (c *CSVWriter) Close() error {
	if !c.header {
		c.header = true
		if err := c.w.Write(Header); err != nil {
			return err
		}
	}
	c.w.Flush()
	return c.w.Error()
}

// Record is a row's cells in Header's order (before SafeCell).
func Record(r *pb.ConsentRow) []string {
	return []string{
		r.SubjectId, channelName(r.Channel), r.Purpose, r.Status, r.Method, r.NoticeVersion, r.NoticeLanguage,
		ts(r.GrantedOccurredAt), ts(r.GrantedRecordedAt), ts(r.ConfirmedOccurredAt), ts(r.ConfirmedRecordedAt),
		ts(r.WithdrawnOccurredAt), ts(r.WithdrawnRecordedAt),
		strconv.FormatUint(r.GrantIndex, 10), strconv.FormatUint(r.LastEventIndex, 10), strconv.FormatBool(r.Erased),
	}
}

func ts(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.AsTime().UTC().Format(time.RFC3339Nano)
}

func channelName(c pb.Channel) string {
	return strings.ToLower(strings.TrimPrefix(c.String(), "CHANNEL_"))
}
