package ledger

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// The §14 entries build their state (notices, the plan, assessments, steps,
// the breach's entry list), refuse duplicates and unknown breaches, and a
// rebuilt index equals the live one.
func TestRule2State(t *testing.T) {
	ctx := context.Background()
	l, st, _ := newTestLedger(t, Options{})
	notice := func(v, lang string) *pb.Entry {
		return &pb.Entry{Event: &pb.Entry_NoticePublished{NoticePublished: &pb.NoticePublished{
			Version: v, Language: lang, Title: "t", Text: "x", Digest: "sha256:00", Channels: []pb.Channel{pb.Channel_CHANNEL_SMS}, Purposes: []string{"marketing"},
		}}}
	}
	n1 := mustAppend(t, l, &Request{Entry: notice("2026-11", "en")})
	mustAppend(t, l, &Request{Entry: notice("2026-11", "de")})
	if _, err := l.Append(ctx, &Request{Entry: notice("2026-11", "en")}); !errors.Is(err, ErrConflict) {
		t.Fatalf("a notice version published twice: %v, want ErrConflict", err)
	}
	plan := &pb.Entry{Event: &pb.Entry_PlanPublished{PlanPublished: &pb.PlanPublished{Version: "p1", Steps: []*pb.PlanStep{{Id: "inform_dpo", Title: "x"}}}}}
	p1 := mustAppend(t, l, &Request{Entry: plan})
	if _, err := l.Append(ctx, &Request{Entry: proto.Clone(plan).(*pb.Entry)}); !errors.Is(err, ErrConflict) {
		t.Fatalf("a plan version published twice: %v", err)
	}
	det := breach("b1")
	det.GetBreachDetected().PlanIndex, det.GetBreachDetected().PlanVersion = &p1.Index, "p1"
	d := mustAppend(t, l, &Request{Entry: det})
	a := mustAppend(t, l, &Request{Entry: &pb.Entry{Event: &pb.Entry_BreachAssessed{BreachAssessed: &pb.BreachAssessed{BreachId: "b1", Level: RiskNone, Reasoning: "r"}}}})
	step := &pb.Entry{Event: &pb.Entry_BreachStepCompleted{BreachStepCompleted: &pb.BreachStepCompleted{BreachId: "b1", StepId: "inform_dpo"}}}
	s := mustAppend(t, l, &Request{Entry: step})
	if _, err := l.Append(ctx, &Request{Entry: proto.Clone(step).(*pb.Entry)}); !errors.Is(err, ErrConflict) {
		t.Fatalf("a step completed twice: %v", err)
	}
	if _, err := l.Append(ctx, &Request{Entry: &pb.Entry{Event: &pb.Entry_BreachAssessed{BreachAssessed: &pb.BreachAssessed{BreachId: "nope", Level: RiskHigh}}}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("assessing an unknown breach: %v", err)
	}
	ex := &pb.Entry{Event: &pb.Entry_BreachSubjectsNotified{BreachSubjectsNotified: &pb.BreachSubjectsNotified{BreachId: "b1", Exception: "a", ExceptionReason: "encrypted"}}}
	e := mustAppend(t, l, &Request{Entry: ex})

	ns, err := l.Notices(ctx)
	if err != nil || len(ns) != 2 || ns[0].Language != "de" || ns[1].Entry.Index != n1.Index {
		t.Fatalf("Notices = %v, %v", ns, err)
	}
	if p, err := l.Plan(ctx); err != nil || p.Version != "p1" || p.Entry.Index != p1.Index {
		t.Fatalf("Plan = %v, %v", p, err)
	}
	b, err := l.Breach(ctx, "b1")
	if err != nil {
		t.Fatal(err)
	}
	want := []uint64{d.Index, a.Index, s.Index, e.Index}
	if b.Assessment != RiskNone || b.PlanVersion != "p1" || len(b.Steps) != 1 || b.SubjectsException != "a" || b.SubjectsNotifiedAt != nil ||
		len(b.EntryIndexes) != 4 || b.EntryIndexes[3] != want[3] || b.EntryIndexes[0] != want[0] {
		t.Fatalf("breach state = %v", b)
	}

	live := snapshotTables(t, st, stateTables)
	if err := l.RebuildState(ctx, nil); err != nil {
		t.Fatal(err)
	}
	rebuilt := snapshotTables(t, st, stateTables)
	if len(rebuilt) != len(live) {
		t.Errorf("%d state records after rebuild, %d live", len(rebuilt), len(live))
	}
	for k, v := range live {
		if !bytes.Equal(rebuilt[k], v) {
			t.Errorf("state %q differs after rebuild", k)
		}
	}
}
