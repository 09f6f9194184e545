package breach

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

func TestCheckFreeText(t *testing.T) {
	for _, tc := range []struct {
		text string
		kind string // "" for accepted
	}{
		{"A laptop with the customer list was stolen on 2026-11-24 at 09:30.", ""},
		{"About 12000 records, 350 subjects, breach brc_0123456789.", ""},
		{"Version 1.0.42 of the app leaked 0.5 % of tokens", ""},
		{"The list included anna@example.com", "e-mail address"},
		{"Call +49 170 1234567 for details", "phone number"},
		{"Rückruf unter 0170/1234567", "phone number"},
		{"(030) 1234567 was on the screenshot", "phone number"},
	} {
		err := CheckFreeText(tc.text)
		var pe *PersonalDataError
		switch {
		case tc.kind == "" && err != nil:
			t.Errorf("%q refused: %v", tc.text, err)
		case tc.kind != "" && (!errors.As(err, &pe) || pe.Kind != tc.kind):
			t.Errorf("%q: err = %v, want a %s refused", tc.text, err, tc.kind)
		}
	}
}

func TestEvaluate(t *testing.T) {
	detected := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	at := func(h float64) time.Time { return detected.Add(time.Duration(h * float64(time.Hour))) }
	ts := func(h float64) *timestamppb.Timestamp { return timestamppb.New(at(h)) }
	for _, tc := range []struct {
		name                     string
		b                        *pb.BreachState
		now                      float64
		notifiable, overdue, sub bool
		deadline                 float64 // hours, or -1 for none
	}{
		{"unassessed at 80 h: notifiable, overdue", &pb.BreachState{}, 80, true, true, false, 72},
		{"unassessed at 10 h", &pb.BreachState{}, 10, true, false, false, 72},
		{"no_risk at 100 h: documented, never overdue", &pb.BreachState{Assessment: NoRisk}, 100, false, false, false, -1},
		{"risk past 72 h", &pb.BreachState{Assessment: Risk}, 73, true, true, false, 72},
		{"risk notified in time", &pb.BreachState{Assessment: Risk, AuthorityNotifiedAt: ts(70)}, 100, true, false, false, 72},
		{"high_risk without communication or exception", &pb.BreachState{Assessment: HighRisk, AuthorityNotifiedAt: ts(5)}, 6, true, true, true, 72},
		{"high_risk with communication", &pb.BreachState{Assessment: HighRisk, AuthorityNotifiedAt: ts(5), SubjectsNotifiedAt: ts(6)}, 7, true, false, false, 72},
		{"high_risk with exception", &pb.BreachState{Assessment: HighRisk, AuthorityNotifiedAt: ts(5), SubjectsException: "a"}, 7, true, false, false, 72},
		{"processor past 24 h", &pb.BreachState{ControllerRole: "processor", Assessment: NoRisk}, 25, true, true, false, 24},
		{"processor notified its controllers", &pb.BreachState{ControllerRole: "processor", AuthorityNotifiedAt: ts(3)}, 25, true, false, false, 24},
	} {
		tc.b.DetectedAt, tc.b.Status = timestamppb.New(detected), "open"
		st := Evaluate(tc.b, nil, at(tc.now))
		if st.Notifiable != tc.notifiable || st.Overdue != tc.overdue || st.SubjectsOverdue != tc.sub {
			t.Errorf("%s: notifiable %v overdue %v subjects_overdue %v, want %v %v %v", tc.name, st.Notifiable, st.Overdue, st.SubjectsOverdue, tc.notifiable, tc.overdue, tc.sub)
		}
		if (tc.deadline < 0) != st.Deadline.IsZero() || (tc.deadline >= 0 && !st.Deadline.Equal(at(tc.deadline))) {
			t.Errorf("%s: deadline %v, want +%v h", tc.name, st.Deadline, tc.deadline)
		}
	}
}

func TestStepsStatus(t *testing.T) {
	detected := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	b := &pb.BreachState{
		DetectedAt: timestamppb.New(detected), Status: "open", Assessment: NoRisk, AssessedAt: timestamppb.New(detected.Add(time.Hour)),
		Steps: []*pb.StepState{{StepId: StepInformDPO, CompletedAt: timestamppb.New(detected.Add(time.Minute))}},
	}
	st := Evaluate(b, nil, detected.Add(30*time.Hour))
	want := map[string]struct {
		status  string
		overdue bool
	}{
		StepInformDPO: {"done", false}, StepContain: {"open", true}, StepAssess: {"done", false},
		StepNotifyControllers: {"not_applicable", false}, StepNotifyAuthority: {"not_applicable", false},
		StepNotifySubjects: {"not_applicable", false}, StepLessons: {"open", false}, StepDocument: {"open", false},
	}
	for _, s := range st.Steps {
		w, ok := want[s.Id]
		if !ok {
			continue
		}
		if s.Status != w.status || s.Overdue != w.overdue {
			t.Errorf("step %s: %s overdue=%v, want %s overdue=%v", s.Id, s.Status, s.Overdue, w.status, w.overdue)
		}
	}
	if err := CheckSteps(DefaultSteps()); err != nil {
		t.Fatalf("the default plan is invalid: %v", err)
	}
	if err := CheckSteps([]*pb.PlanStep{{Id: "a", Title: "x"}, {Id: "a", Title: "y"}}); err == nil {
		t.Error("a duplicate step id was accepted")
	}
}

// FuzzCheckFreeText: the check never panics, and an e-mail address put into
// any text is always refused.
func FuzzCheckFreeText(f *testing.F) {
	for _, s := range []string{"", "A laptop was stolen", "call 0170 1234567", "x@y.de", "2026-11-24 09:30 +0100"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = CheckFreeText(s)
		if CheckFreeText(s+" anna.schmidt@example.com ") == nil {
			t.Errorf("an e-mail address after %q was accepted", s)
		}
	})
}
