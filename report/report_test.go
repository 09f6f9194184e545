package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

func TestSafeCell(t *testing.T) {
	for in, want := range map[string]string{
		"=1+1": "'=1+1", "+49": "'+49", "-2": "'-2", "@SUM(A1)": "'@SUM(A1)", "\tx": "'\tx", "\rx": "'\rx",
		"2026-01": "2026-01", "": "", "a=b": "a=b",
	} {
		if got := SafeCell(in); got != want {
			t.Errorf("SafeCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCSVQuotesPerRFC4180(t *testing.T) {
	var buf bytes.Buffer
	w := NewCSVWriter(&buf)
	if err := w.Write(&pb.ConsentRow{SubjectId: "s1", Channel: pb.Channel_CHANNEL_SMS, Purpose: "marketing", NoticeVersion: `v "1", de`}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\r\n")
	if len(lines) != 3 || !strings.Contains(lines[1], `"v ""1"", de"`) {
		t.Errorf("CSV = %q", buf.String())
	}
}

func TestAsOf(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	at := func(h int) *timestamppb.Timestamp { return timestamppb.New(t0.Add(time.Duration(h) * time.Hour)) }
	events := []*pb.Entry{
		{Index: 3, RecordedAt: at(0), Event: &pb.Entry_ConsentGranted{ConsentGranted: &pb.ConsentGranted{Channel: pb.Channel_CHANNEL_SMS, Purposes: []string{"marketing", "news"}, OccurredAt: at(-1), NoticeVersion: "v1"}}},
		// Withdrawn at +1 h, recorded at +3 h; purposes empty: the whole channel.
		{Index: 9, RecordedAt: at(3), Event: &pb.Entry_ConsentWithdrawn{ConsentWithdrawn: &pb.ConsentWithdrawn{Channel: pb.Channel_CHANNEL_SMS, OccurredAt: at(1)}}},
		{Index: 12, RecordedAt: at(5), Event: &pb.Entry_SubjectErased{SubjectErased: &pb.SubjectErased{ErasedAt: at(5)}}},
	}
	for _, tc := range []struct {
		h    int
		want string
	}{
		{-2, ""},
		{0, "granted granted"},
		{2, "withdrawn withdrawn"},
		{6, "erased erased"},
	} {
		rows := AsOf("s1", events, t0.Add(time.Duration(tc.h)*time.Hour))
		var got []string
		for _, r := range rows {
			got = append(got, r.Status)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("as of %+d h: %v, want %s", tc.h, got, tc.want)
		}
		if tc.h == 2 && (rows[0].WithdrawnRecordedAt.AsTime() != t0.Add(3*time.Hour) || rows[0].LastEventIndex != 9 || rows[0].GrantIndex != 3) {
			t.Errorf("withdrawn row = %v", rows[0])
		}
	}
}
