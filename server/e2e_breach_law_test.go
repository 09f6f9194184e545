package server_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/server"
)

func reportBreach(t *testing.T, s *testServer, req *pb.ReportBreachRequest) string {
	t.Helper()
	if req.Description == "" {
		req.Description = "A backup of the SMS gateway's log was readable without login"
	}
	r, err := s.breach().ReportBreach(context.Background(), connect.NewRequest(req))
	if err != nil {
		t.Fatalf("ReportBreach: %v", err)
	}
	return r.Msg.BreachId
}

func assess(t *testing.T, s *testServer, id, level string) *pb.Breach {
	t.Helper()
	r, err := s.breach().AssessBreach(context.Background(), connect.NewRequest(&pb.AssessBreachRequest{BreachId: id, Level: level, Reasoning: "DSK short paper 18: likelihood low, severity low"}))
	if err != nil {
		t.Fatalf("AssessBreach(%s): %v", level, err)
	}
	return r.Msg.Breach
}

func listed(t *testing.T, s *testServer, id string) *pb.Breach {
	t.Helper()
	r, err := s.breach().ListBreaches(context.Background(), connect.NewRequest(&pb.ListBreachesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range r.Msg.Breaches {
		if b.BreachId == id {
			return b
		}
	}
	t.Fatalf("breach %s not listed", id)
	return nil
}

func step(b *pb.Breach, id string) *pb.BreachStep {
	for _, s := range b.Steps {
		if s.Id == id {
			return s
		}
	}
	return nil
}

func TestBreachAssessment(t *testing.T) {
	ctx := context.Background()
	s := start(t, server.Config{DPO: &server.PersonConfig{Name: "Dr. Data", Email: "dpo@example.com"}})
	noRisk := reportBreach(t, s, &pb.ReportBreachRequest{BreachId: "b-norisk"})
	risk := reportBreach(t, s, &pb.ReportBreachRequest{BreachId: "b-risk"})
	high := reportBreach(t, s, &pb.ReportBreachRequest{BreachId: "b-high"})
	unassessed := reportBreach(t, s, &pb.ReportBreachRequest{BreachId: "b-open"})
	if b := assess(t, s, noRisk, "no_risk"); b.Notifiable || b.Deadline != nil {
		t.Fatalf("no_risk: %v, want not notifiable and no deadline", b)
	}
	assess(t, s, risk, "risk")
	assess(t, s, high, "high_risk")

	s.clock.Add(100 * time.Hour)
	if b := listed(t, s, noRisk); b.Overdue || b.Deadline != nil || b.Assessment != "no_risk" {
		t.Errorf("no_risk at +100 h: %v, want documented, never overdue", b)
	}
	if b := listed(t, s, risk); !b.Overdue || !b.Deadline.AsTime().Equal(noon.Add(72*time.Hour)) {
		t.Errorf("risk at +100 h: %v, want overdue since +72 h", b)
	}
	if b := listed(t, s, unassessed); !b.Overdue || !b.Notifiable {
		t.Errorf("unassessed at +100 h: %v, want treated as notifiable and overdue", b)
	}
	b := listed(t, s, high)
	if !b.Overdue || !b.SubjectsOverdue {
		t.Errorf("high_risk with neither communication nor exception: %v, want overdue", b)
	}
	if b.Contact.GetKind() != "dpo" || b.Contact.GetName() != "Dr. Data" {
		t.Errorf("contact = %v, want the DPO", b.Contact)
	}
	if st := step(b, "notify_subjects"); st == nil || st.Status != "open" || !st.Overdue {
		t.Errorf("step notify_subjects = %v, want open and overdue", st)
	}

	// An exception needs a reason, and applies only to high_risk.
	_, err := s.breach().RecordSubjectNotification(ctx, connect.NewRequest(&pb.RecordSubjectNotificationRequest{BreachId: high, Exception: "a"}))
	wantInvalidField(t, s, err, "exception_reason")
	_, err = s.breach().RecordSubjectNotification(ctx, connect.NewRequest(&pb.RecordSubjectNotificationRequest{BreachId: risk, Exception: "a", ExceptionReason: "encrypted"}))
	wantCode(t, err, connect.CodeFailedPrecondition, "exception")
	if _, err := s.breach().RecordAuthorityNotification(ctx, connect.NewRequest(&pb.RecordAuthorityNotificationRequest{
		BreachId: high, Authority: "BfDI", DelayReason: "forensics", Reference: "BfDI-2026-17",
	})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.breach().RecordSubjectNotification(ctx, connect.NewRequest(&pb.RecordSubjectNotificationRequest{
		BreachId: high, Exception: "a", ExceptionReason: "the leaked backup was encrypted with a key that was not leaked",
	})); err != nil {
		t.Fatal(err)
	}
	b = listed(t, s, high)
	if b.Overdue || b.SubjectsOverdue || b.SubjectsException != "a" || b.SubjectsNotifiedAt != nil {
		t.Errorf("high_risk with exception a: %v, want not overdue, exception recorded, no communication", b)
	}
	if st := step(b, "notify_subjects"); st.GetStatus() != "done" {
		t.Errorf("step notify_subjects = %v, want done", st)
	}
}

func TestBreachFreeTextRefusesPersonalData(t *testing.T) {
	ctx := context.Background()
	s := start(t, server.Config{})
	for _, req := range []*pb.ReportBreachRequest{
		{Description: "the list of anna@example.com and others leaked"},
		{Description: "leak", Measures: "called the customer at +49 170 1234567"},
		{Description: "leak", SubjectCategories: []string{"customers like +49 170 1234567"}},
	} {
		size := logSize(t, s)
		_, err := s.breach().ReportBreach(ctx, connect.NewRequest(req))
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("%v: err = %v, want invalid_argument", req, err)
		}
		if logSize(t, s) != size {
			t.Errorf("%v: the refused report appended an entry", req)
		}
	}
	id := reportBreach(t, s, &pb.ReportBreachRequest{})
	_, err := s.breach().AssessBreach(ctx, connect.NewRequest(&pb.AssessBreachRequest{BreachId: id, Level: "risk", Reasoning: "see mail from bob@example.com"}))
	wantInvalidField(t, s, err, "reasoning")
}

func TestBreachProcessor(t *testing.T) {
	s := start(t, server.Config{Controller: &server.ControllerConfig{Name: "SMS Relay GmbH", Role: "processor"},
		ContactPoint: &server.PersonConfig{Name: "Privacy team"}})
	id := reportBreach(t, s, &pb.ReportBreachRequest{})
	b := listed(t, s, id)
	if b.ControllerRole != "processor" || !b.Deadline.AsTime().Equal(noon.Add(24*time.Hour)) || b.Contact.GetKind() != "contact_point" {
		t.Fatalf("processor breach: %v, want the controllers' deadline +24 h and the contact point", b)
	}
	if st := step(b, "notify_authority"); st.GetStatus() != "not_applicable" {
		t.Errorf("a processor's notify_authority step = %v, want not_applicable", st)
	}
	s.clock.Add(25 * time.Hour)
	if b := listed(t, s, id); !b.Overdue {
		t.Errorf("processor breach at +25 h without notifying the controllers: %v, want overdue", b)
	}
}

func TestBreachPlan(t *testing.T) {
	ctx := context.Background()
	s := start(t, server.Config{})
	before := reportBreach(t, s, &pb.ReportBreachRequest{})
	if b := listed(t, s, before); b.PlanVersion != "builtin-2026-11" || len(b.Steps) != 9 {
		t.Fatalf("breach without a published plan: %v", b)
	}
	steps := []*pb.PlanStep{
		{Id: "inform_dpo", Title: "Inform the DPO", OwnerRole: "breach", DeadlineHours: 2},
		{Id: "notify_authority", Title: "Notify the authority", OwnerRole: "breach", DeadlineHours: 48, Applies: "notifiable"},
	}
	if _, err := s.breach().PublishPlan(ctx, connect.NewRequest(&pb.PublishPlanRequest{Version: "2026-12", Steps: steps})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.breach().PublishPlan(ctx, connect.NewRequest(&pb.PublishPlanRequest{Version: "2026-12"})); connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("a plan version published twice: %v", err)
	}
	_, err := s.breach().PublishPlan(ctx, connect.NewRequest(&pb.PublishPlanRequest{Version: "bad", Steps: []*pb.PlanStep{{Id: "X", Title: "x"}}}))
	wantInvalidField(t, s, err, "steps")

	id := reportBreach(t, s, &pb.ReportBreachRequest{})
	b := listed(t, s, id)
	if b.PlanVersion != "2026-12" || len(b.Steps) != 2 || !b.Deadline.AsTime().Equal(noon.Add(48*time.Hour)) {
		t.Fatalf("breach under plan 2026-12: %v, want its two steps and the 48 h deadline as data", b)
	}
	_, err = s.breach().CompleteStep(ctx, connect.NewRequest(&pb.CompleteStepRequest{BreachId: id, StepId: "contain"}))
	wantInvalidField(t, s, err, "step_id")
	s.clock.Add(3 * time.Hour)
	if st := step(listed(t, s, id), "inform_dpo"); !st.Overdue {
		t.Errorf("inform_dpo at +3 h: %v, want overdue", st)
	}
	if _, err := s.breach().CompleteStep(ctx, connect.NewRequest(&pb.CompleteStepRequest{BreachId: id, StepId: "inform_dpo", Note: "told by phone"})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.breach().CompleteStep(ctx, connect.NewRequest(&pb.CompleteStepRequest{BreachId: id, StepId: "inform_dpo"})); connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Errorf("a step completed twice: %v", err)
	}
	if st := step(listed(t, s, id), "inform_dpo"); st.Status != "done" || st.Overdue {
		t.Errorf("inform_dpo after CompleteStep: %v", st)
	}
	g, err := s.breach().GetBreach(ctx, connect.NewRequest(&pb.GetBreachRequest{BreachId: id}))
	if err != nil || len(g.Msg.Entries) != 2 || g.Msg.Entries[1].Entry.GetBreachStepCompleted().GetStepId() != "inform_dpo" {
		t.Fatalf("GetBreach = %v, %v: want the detection and the step", g, err)
	}
}
