package server_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/server"
)

// wantInvalid checks that err is invalid_argument naming field.
func wantInvalid(t *testing.T, name string, err error, field string) {
	t.Helper()
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), field+":") {
		t.Errorf("%s: %v, want invalid_argument naming %s", name, err, field)
	}
}

func smsOnly() []pb.Channel { return []pb.Channel{pb.Channel_CHANNEL_SMS} }

// Issue 11.1, 11.5, 11.11: repeated fields are bounded, breach times cannot
// lie before detection, events cannot be backdated without bound, and
// identifiers hold no control characters. Nothing rejected is appended.
func TestHardenedInputAppendsNothing(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	rb, err := s.breach().ReportBreach(ctx, connect.NewRequest(&pb.ReportBreachRequest{
		Description: "laptop lost", Channels: smsOnly(), DetectedAt: timestamppb.New(noon.Add(-2 * time.Hour)),
	}))
	if err != nil {
		t.Fatal(err)
	}
	id := rb.Msg.BreachId
	size := logSize(t, s)
	many := func(n int, f func(int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	breach := func(m *pb.ReportBreachRequest) func() error {
		return func() error {
			if m.Description == "" {
				m.Description = "a breach"
			}
			_, err := s.breach().ReportBreach(ctx, connect.NewRequest(m))
			return err
		}
	}
	optIn := func(m *pb.RecordOptInRequest) func() error {
		return func() error {
			m.Subject, m.Channel = phone(anna), pb.Channel_CHANNEL_SMS
			if m.Purposes == nil {
				m.Purposes = []string{"marketing"}
			}
			_, err := s.consent().RecordOptIn(ctx, connect.NewRequest(m))
			return err
		}
	}
	for _, tc := range []struct {
		name  string
		call  func() error
		field string
	}{
		{"duplicate channels", breach(&pb.ReportBreachRequest{Channels: []pb.Channel{1, 2, 1}}), "channels"},
		{"more channels than exist", breach(&pb.ReportBreachRequest{Channels: []pb.Channel{1, 2, 3, 4, 4}}), "channels"},
		{"a million channels", breach(&pb.ReportBreachRequest{Channels: make([]pb.Channel, 1_000_000)}), "channels"},
		{"too many data categories", breach(&pb.ReportBreachRequest{DataCategories: many(17, func(i int) string { return fmt.Sprint("cat", i) })}), "data_categories"},
		{"duplicate data categories", breach(&pb.ReportBreachRequest{DataCategories: []string{"phone", "phone"}}), "data_categories"},
		{"duplicate breach types", breach(&pb.ReportBreachRequest{BreachTypes: []string{"integrity", "Integrity"}}), "breach_types"},
		{"too many purposes", optIn(&pb.RecordOptInRequest{Purposes: many(17, func(i int) string { return fmt.Sprint("p", i) })}), "purposes"},
		{"detected 400 days ago", breach(&pb.ReportBreachRequest{DetectedAt: timestamppb.New(noon.Add(-400 * 24 * time.Hour))}), "detected_at"},
		{"consent in year 1", optIn(&pb.RecordOptInRequest{OccurredAt: timestamppb.New(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))}), "occurred_at"},
		{"consent 366 days ago", optIn(&pb.RecordOptInRequest{OccurredAt: timestamppb.New(noon.Add(-366 * 24 * time.Hour))}), "occurred_at"},
		{"authority notified before detection", func() error {
			_, err := s.breach().RecordAuthorityNotification(ctx, connect.NewRequest(&pb.RecordAuthorityNotificationRequest{
				BreachId: id, Authority: "BfDI", NotifiedAt: timestamppb.New(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)),
			}))
			return err
		}, "notified_at"},
		{"subjects notified before detection", func() error {
			_, err := s.breach().RecordSubjectNotification(ctx, connect.NewRequest(&pb.RecordSubjectNotificationRequest{
				BreachId: id, NotifiedAt: timestamppb.New(noon.Add(-3 * time.Hour)),
			}))
			return err
		}, "notified_at"},
		{"closed before detection", func() error {
			_, err := s.breach().CloseBreach(ctx, connect.NewRequest(&pb.CloseBreachRequest{
				BreachId: id, ClosedAt: timestamppb.New(time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)),
			}))
			return err
		}, "closed_at"},
		{"escape sequence in a breach id", breach(&pb.ReportBreachRequest{BreachId: "brc_1\x1b[2K\rall fine"}), "breach_id"},
		{"escape sequence in a description", breach(&pb.ReportBreachRequest{Description: "lost\x1b[1A\x1b[2K"}), "description"},
		{"bidi override in an idempotency key", optIn(&pb.RecordOptInRequest{IdempotencyKey: "k\u202e1"}), "idempotency_key"},
		{"control character in a notice version", optIn(&pb.RecordOptInRequest{NoticeVersion: "v1\x07"}), "notice_version"},
		{"control character in a message ref", func() error {
			req := waMarketing(anna)
			req.MessageRef = "m\x00"
			_, err := s.send().Decide(ctx, connect.NewRequest(req))
			return err
		}, "message_ref"},
		{"control character in a closing summary", func() error {
			_, err := s.breach().CloseBreach(ctx, connect.NewRequest(&pb.CloseBreachRequest{BreachId: id, Summary: "done\x1b]0;x\x07"}))
			return err
		}, "summary"},
	} {
		wantInvalid(t, tc.name, tc.call(), tc.field)
	}
	if got := logSize(t, s); got != size {
		t.Errorf("rejected requests appended %d entries", got-size)
	}
	// Line breaks in free text stay allowed.
	if _, err := s.breach().CloseBreach(ctx, connect.NewRequest(&pb.CloseBreachRequest{BreachId: id, Summary: "contained.\nPasswords reset."})); err != nil {
		t.Errorf("summary with a line break: %v", err)
	}
}

// Issue 11.5: the backdating bound comes from the YAML config.
func TestMaxBackdateFromConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("max_backdate: 720h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, cfg)
	ctx := context.Background()
	at := func(d time.Duration) error {
		_, err := s.consent().RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{
			Subject: phone(anna), Channel: pb.Channel_CHANNEL_SMS, Purposes: []string{"marketing"}, OccurredAt: timestamppb.New(noon.Add(-d)),
		}))
		return err
	}
	wantInvalid(t, "consent 31 days ago with max_backdate 720h", at(31*24*time.Hour), "occurred_at")
	if err := at(29 * 24 * time.Hour); err != nil {
		t.Errorf("consent 29 days ago with max_backdate 720h: %v", err)
	}
}

// Issue 11.4: an unknown field inside a binary Timestamp never reaches the log.
func TestUnknownFieldsNeverStored(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	const smuggled = "Erika Mustermann +4917099999999 erika@example.com"
	ts := timestamppb.New(noon.Add(-time.Hour))
	ts.ProtoReflect().SetUnknown(protowire.AppendString(protowire.AppendTag(nil, 99, protowire.BytesType), smuggled))
	req := &pb.RecordOptInRequest{Subject: phone(anna), Channel: pb.Channel_CHANNEL_SMS, Purposes: []string{"marketing"}, OccurredAt: ts}
	req.ProtoReflect().SetUnknown(protowire.AppendString(protowire.AppendTag(nil, 98, protowire.BytesType), smuggled))
	r, err := s.consent().RecordOptIn(ctx, connect.NewRequest(req)) // the default codec is binary protobuf
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.logs().GetEntries(ctx, connect.NewRequest(&pb.GetEntriesRequest{Start: r.Msg.Entry.Index, Count: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Msg.Entries[0].Entry; bytes.Contains(got, []byte("erika@example.com")) || bytes.Contains(got, []byte("4917099999999")) {
		t.Errorf("the stored entry holds the bytes smuggled in unknown fields: %q", got)
	}
}

// Issue 11.12: a policy file name with directories is invalid_argument.
func TestPolicyFileNames(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	for _, name := range []string{"../../etc/passwd", "sub/send.rego", "notes.txt", "", "a\x1b.rego"} {
		files := append(pbFiles(policies.Default()), &pb.PolicyFile{Name: name, Content: "package x\n"})
		_, err := s.policy().PublishPolicy(ctx, connect.NewRequest(&pb.PublishPolicyRequest{Files: files}))
		wantInvalid(t, fmt.Sprintf("PublishPolicy with %q", name), err, fmt.Sprintf("files[%d].name", len(files)-1))
		_, err = s.policy().DryRun(ctx, connect.NewRequest(&pb.DryRunRequest{Files: files, Request: waMarketing(anna)}))
		wantInvalid(t, fmt.Sprintf("DryRun with %q", name), err, fmt.Sprintf("files[%d].name", len(files)-1))
	}
}

// slowRule denies only for message_ref "slow", after some 9 million steps.
const slowRule = `package consentledger.send

deny contains "slow: never" if {
	input.request.message_ref == "slow"
	some i in numbers.range(1, 3000)
	some j in numbers.range(1, 3000)
	i * j == -1
}
`

// Issue 11.3: evaluating a draft policy has a time limit.
func TestDraftPolicyTimeLimit(t *testing.T) {
	s := start(t, server.Config{DraftTimeout: 2 * time.Second})
	ctx := context.Background()
	files := append(pbFiles(policies.Default()), &pb.PolicyFile{Name: "slow.rego", Content: slowRule})
	req := waMarketing(anna)
	req.MessageRef = "slow"
	began := time.Now()
	_, err := s.policy().DryRun(ctx, connect.NewRequest(&pb.DryRunRequest{Files: files, Request: req}))
	if connect.CodeOf(err) != connect.CodeDeadlineExceeded || !strings.Contains(err.Error(), "within 2s") {
		t.Errorf("DryRun of a slow policy: %v, want deadline_exceeded naming the limit", err)
	}
	if took := time.Since(began); took > 8*time.Second {
		t.Errorf("DryRun of a slow policy took %v with a 2 s limit", took)
	}
	// A publication's tests are bounded too.
	slowTest := `package consentledger.slow_test

test_slow if {
	not slow_loop
}

slow_loop if {
	some i in numbers.range(1, 3000)
	some j in numbers.range(1, 3000)
	i * j == -1
}
`
	size := logSize(t, s)
	_, err = s.policy().PublishPolicy(ctx, connect.NewRequest(&pb.PublishPolicyRequest{
		Files: append(pbFiles(policies.Default()), &pb.PolicyFile{Name: "slow_test.rego", Content: slowTest}),
	}))
	if c := connect.CodeOf(err); c != connect.CodeDeadlineExceeded {
		t.Errorf("PublishPolicy with a slow test: %v, want deadline_exceeded", err)
	}
	if got := logSize(t, s); got != size {
		t.Errorf("a timed-out publication appended %d entries", got-size)
	}
}

// Issue 11.6: only zones of the embedded tzdata, whatever the host has.
func TestHostOnlyZonesRefused(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	size := logSize(t, s)
	for _, zone := range []string{"right/UTC", "posix/Europe/Berlin", "Factory", "Local", "/etc/localtime"} {
		req := waMarketing(anna)
		req.SubjectTimezone = zone
		_, err := s.send().Decide(ctx, connect.NewRequest(req))
		wantInvalid(t, "zone "+zone, err, "subject_timezone")
	}
	if got := logSize(t, s); got != size {
		t.Errorf("rejected decisions appended %d entries", got-size)
	}
	decide(t, s, waMarketing(anna)) // Europe/Berlin
}

// Issue 11.8: a batch with a conflicting idempotency key appends nothing.
func TestDecideBatchAtomic(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	used := waMarketing(anna)
	used.IdempotencyKey = "used-once"
	decide(t, s, used)
	size := logSize(t, s)
	req := func(key, ref string) *pb.DecideRequest {
		r := waMarketing(anna)
		r.IdempotencyKey, r.MessageRef = key, ref
		return r
	}
	for _, tc := range []struct {
		name  string
		reqs  []*pb.DecideRequest
		code  connect.Code
		field string
	}{
		{"a key twice in the batch", []*pb.DecideRequest{req("k1", "a"), req("k1", "b")}, connect.CodeInvalidArgument, "requests[1].idempotency_key"},
		{"a key used before for another request", []*pb.DecideRequest{req("k2", "a"), req("used-once", "other")}, connect.CodeAlreadyExists, "requests[1]"},
		{"an invalid last request", []*pb.DecideRequest{req("k3", "a"), {Subject: phone(anna)}}, connect.CodeInvalidArgument, "requests[1].channel"},
	} {
		_, err := s.send().DecideBatch(ctx, connect.NewRequest(&pb.DecideBatchRequest{Requests: tc.reqs}))
		if connect.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want %v naming %s", tc.name, err, tc.code, tc.field)
		}
		if got := logSize(t, s); got != size {
			t.Fatalf("%s: the rejected batch appended %d entries", tc.name, got-size)
		}
	}
	// A retry of the recorded request inside a batch is still answered.
	r, err := s.send().DecideBatch(ctx, connect.NewRequest(&pb.DecideBatchRequest{Requests: []*pb.DecideRequest{req("k4", "a"), used}}))
	if err != nil || len(r.Msg.Results) != 2 {
		t.Fatalf("batch with a retried key: %v", err)
	}
}

// Issue 11.13: ListBreaches is paged.
func TestListBreachesPaged(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	var want []string
	for i := range 5 {
		r, err := s.breach().ReportBreach(ctx, connect.NewRequest(&pb.ReportBreachRequest{Description: fmt.Sprint("breach ", i), Channels: smsOnly()}))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, r.Msg.BreachId)
	}
	var got []string
	token, pages := "", 0
	for {
		r, err := s.breach().ListBreaches(ctx, connect.NewRequest(&pb.ListBreachesRequest{PageSize: 2, PageToken: token}))
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(r.Msg.Breaches) > 2 {
			t.Fatalf("page of %d breaches, page_size 2", len(r.Msg.Breaches))
		}
		for _, b := range r.Msg.Breaches {
			got = append(got, b.BreachId)
		}
		if token = r.Msg.NextPageToken; token == "" {
			break
		}
	}
	if pages != 3 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%d pages of %v, want 3 pages of %v in reporting order", pages, got, want)
	}
	_, err := s.breach().ListBreaches(ctx, connect.NewRequest(&pb.ListBreachesRequest{PageSize: 5000}))
	wantInvalid(t, "page_size 5000", err, "page_size")
	_, err = s.breach().ListBreaches(ctx, connect.NewRequest(&pb.ListBreachesRequest{PageToken: "x"}))
	wantInvalid(t, "bad page_token", err, "page_token")
}

// Issue 11.13: GetEntries bounds its answer by bytes, not only by count.
func TestGetEntriesBoundedByBytes(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	// Policies of about 1.5 MB each: a comment makes them big.
	big := strings.Repeat("# padding padding padding padding padding padding padding padding\n", 11000) // 0.7 MB
	for i := range 4 {
		files := append(pbFiles(policies.Default()),
			&pb.PolicyFile{Name: "pad1.rego", Content: fmt.Sprintf("package pad\n# %d\n%s", i, big)},
			&pb.PolicyFile{Name: "pad2.rego", Content: fmt.Sprintf("package pad\n# %d\n%s", i, big)})
		if _, err := s.policy().PublishPolicy(ctx, connect.NewRequest(&pb.PublishPolicyRequest{Files: files})); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.logs().GetEntries(ctx, connect.NewRequest(&pb.GetEntriesRequest{Start: 1, Count: 4}))
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, e := range r.Msg.Entries {
		total += len(e.Entry)
	}
	if n := len(r.Msg.Entries); n == 0 || n == 4 || total > 4<<20 {
		t.Errorf("GetEntries of 4 entries of ~%d KB each gave %d entries, %d bytes; want at least one and at most 4 MiB", 2*len(big)>>10, n, total)
	}
}
