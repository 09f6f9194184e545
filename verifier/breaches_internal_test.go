package verifier

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

func TestEscapeControls(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text\nnext line", "plain text\nnext line"},
		{"erase\x1b[2K\rline", `erase\x1b[2K\rline`},
		{"tab\there", `tab\there`},
		{"rtl \u202eevil", `rtl \u202eevil`},
		{"bad \xff byte", `bad \xff byte`},
		{"Grüße ✓", "Grüße ✓"},
	} {
		if got := EscapeControls(tc.in); got != tc.want {
			t.Errorf("EscapeControls(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Issue 11.5 and 11.11: a breach notified and closed before its detection
// is a finding, never "notified IN TIME"; text recorded in the log reaches
// the report escaped.
func TestBreachNegativeIntervalsAndEscapes(t *testing.T) {
	detected := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ts := timestamppb.New
	s := &scanner{breaches: map[string]*breachRec{}}
	id := "brc_1\x1b[1A\x1b[2K"
	recorded := ts(detected.Add(time.Hour))
	for i, e := range []*pb.Entry{
		{RecordedAt: recorded, Event: &pb.Entry_BreachDetected{BreachDetected: &pb.BreachDetected{BreachId: id, DetectedAt: ts(detected), Description: "lost\x1b]0;all fine\x07"}}},
		{RecordedAt: recorded, Event: &pb.Entry_BreachAuthorityNotified{BreachAuthorityNotified: &pb.BreachAuthorityNotified{BreachId: id, Authority: "BfDI", NotifiedAt: ts(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))}}},
		{RecordedAt: recorded, Event: &pb.Entry_BreachSubjectsNotified{BreachSubjectsNotified: &pb.BreachSubjectsNotified{BreachId: id, NotifiedAt: ts(detected.Add(-time.Hour))}}},
		{RecordedAt: recorded, Event: &pb.Entry_BreachClosed{BreachClosed: &pb.BreachClosed{BreachId: id, ClosedAt: ts(time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)), Summary: "ok\r\x1b[2K"}}},
	} {
		s.breach(uint64(i+1), e)
	}
	s.prevTime = detected.Add(time.Hour)
	s.finishBreaches()
	var negative []uint64
	for _, f := range s.findings {
		if strings.Contains(f.Message, "negative interval") {
			negative = append(negative, f.Index)
		}
	}
	if len(negative) != 3 {
		t.Errorf("findings of negative intervals at entries %v, want the notification, the subjects' notification and the closure (2, 3, 4); all: %+v", negative, s.findings)
	}
	rep := &BreachReport{Checkpoint: &Checkpoint{Origin: "test\x1b[2J", Root: make([]byte, 32)}, Breaches: s.breachList(), Findings: s.findings, FindingsTotal: s.total}
	if got := rep.Breaches[0].Timeliness; got != NotifiedBeforeDetect {
		t.Errorf("timeliness %q, want %q", got, NotifiedBeforeDetect)
	}
	text := rep.Text()
	if strings.ContainsAny(text, "\x1b\r\x07") {
		t.Errorf("the report holds raw control characters:\n%q", text)
	}
	if strings.Contains(text, "IN TIME") || !strings.Contains(text, `brc_1\x1b[1A\x1b[2K`) {
		t.Errorf("report:\n%s", text)
	}
}

// FuzzEscapeControls: whatever a log holds, the escaped text is valid
// UTF-8 without a control or formatting character other than the line break.
func FuzzEscapeControls(f *testing.F) {
	for _, s := range []string{"plain", "erase\x1b[2K\r", "rtl \u202e", "bad \xff", "a\nb\tc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := EscapeControls(s)
		if !utf8.ValidString(out) {
			t.Fatalf("EscapeControls(%q) = %q is not valid UTF-8", s, out)
		}
		for _, r := range out {
			if unsafeRune(r) {
				t.Fatalf("EscapeControls(%q) = %q holds %U", s, out, r)
			}
		}
		if strings.Count(out, "\n") != strings.Count(s, "\n") {
			t.Fatalf("EscapeControls(%q) = %q changed the line breaks", s, out)
		}
	})
}
