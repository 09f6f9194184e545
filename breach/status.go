package breach

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Assessment levels (BreachAssessed.level).
const (
	NoRisk   = "no_risk"
	Risk     = "risk"
	HighRisk = "high_risk"
)

// Default deadlines when a plan lacks the step.
const (
	AuthorityDeadline   = 72 * time.Hour // Art. 33(1)
	ControllersDeadline = 24 * time.Hour // Art. 33(2) "without undue delay": the default plan's choice
)

// Status is what the law asks of one breach at a moment.
type Status struct {
	// Notifiable: a controller's breach not assessed no_risk (until it is
	// assessed, a breach is treated as notifiable), or any breach of a processor.
	Notifiable bool
	// Deadline of the notification; zero when not notifiable.
	Deadline time.Time
	// Obligation in words.
	Obligation string
	// Overdue: the deadline passed without a notification, or a high-risk
	// breach has neither a communication nor an exception.
	Overdue bool
	// SubjectsOverdue: high_risk, with neither a communication to the
	// persons nor a recorded Art. 34(3) exception.
	SubjectsOverdue bool
	// HoursRemaining until the deadline (negative when past); 0 once notified.
	HoursRemaining float64
	// Steps of the plan with their status.
	Steps []*pb.BreachStep
}

// Processor reports whether the breach was reported by a processor.
func Processor(b *pb.BreachState) bool { return b.ControllerRole == "processor" }

// Evaluate returns the status of b at now under the plan's steps (nil: the
// default steps).
func Evaluate(b *pb.BreachState, steps []*pb.PlanStep, now time.Time) Status {
	if steps == nil {
		steps = DefaultSteps()
	}
	detected := b.DetectedAt.AsTime()
	var st Status
	switch {
	case Processor(b):
		st.Notifiable = true
		st.Deadline = detected.Add(stepHours(steps, StepNotifyControllers, ControllersDeadline))
		st.Obligation = "notify the controllers without undue delay (GDPR Art. 33(2))"
	case b.Assessment == NoRisk:
		st.Obligation = "document only: assessed as unlikely to result in a risk (GDPR Art. 33(1), (5))"
	default:
		st.Notifiable = true
		st.Deadline = detected.Add(stepHours(steps, StepNotifyAuthority, AuthorityDeadline))
		st.Obligation = "notify the supervisory authority without undue delay, at the latest 72 hours after awareness (GDPR Art. 33(1))"
		if b.Assessment == "" {
			st.Obligation += "; not yet assessed, so treated as notifiable"
		}
	}
	if st.Notifiable && b.AuthorityNotifiedAt == nil {
		st.HoursRemaining = float64(st.Deadline.Sub(now).Round(time.Minute)) / float64(time.Hour)
		st.Overdue = now.After(st.Deadline) && b.Status != "closed"
	}
	if b.Assessment == HighRisk && b.SubjectsNotifiedAt == nil && b.SubjectsException == "" {
		st.SubjectsOverdue = true
		st.Overdue = true
	}
	st.Steps = evaluateSteps(b, steps, now)
	return st
}

func stepHours(steps []*pb.PlanStep, id string, def time.Duration) time.Duration {
	for _, s := range steps {
		if s.Id == id && !s.Ongoing {
			return time.Duration(s.DeadlineHours) * time.Hour
		}
	}
	return def
}

// applies reports whether a step applies to b.
func applies(s *pb.PlanStep, b *pb.BreachState) bool {
	switch s.Applies {
	case AppliesController:
		return !Processor(b)
	case AppliesProcessor:
		return Processor(b)
	case AppliesNotifiable:
		return !Processor(b) && b.Assessment != NoRisk
	case AppliesHighRisk:
		return b.Assessment == HighRisk
	}
	return true
}

// doneByFact returns when the log shows a step's fact itself, or nil.
func doneByFact(id string, b *pb.BreachState) *timestamppb.Timestamp {
	switch id {
	case StepAssess:
		return b.AssessedAt
	case StepNotifyAuthority, StepNotifyControllers:
		return b.AuthorityNotifiedAt
	case StepNotifySubjects:
		if b.SubjectsNotifiedAt != nil {
			return b.SubjectsNotifiedAt
		}
		if b.SubjectsException != "" {
			for _, s := range b.Steps {
				if s.StepId == StepNotifySubjects {
					return s.CompletedAt
				}
			}
			return b.AssessedAt // an exception is recorded; its time is in the entry
		}
	}
	return nil
}

func evaluateSteps(b *pb.BreachState, steps []*pb.PlanStep, now time.Time) []*pb.BreachStep {
	detected := b.DetectedAt.AsTime()
	var out []*pb.BreachStep
	for _, s := range steps {
		v := &pb.BreachStep{Id: s.Id, Title: s.Title, OwnerRole: s.OwnerRole, Status: "open"}
		if !s.Ongoing {
			v.Deadline = timestamppb.New(detected.Add(time.Duration(s.DeadlineHours) * time.Hour))
		}
		for _, done := range b.Steps {
			if done.StepId == s.Id {
				v.Status, v.CompletedAt = "done", done.CompletedAt
			}
		}
		if v.Status != "done" {
			if at := doneByFact(s.Id, b); at != nil {
				v.Status, v.CompletedAt = "done", at
			}
		}
		switch {
		case !applies(s, b):
			v.Status = "not_applicable"
		case v.Status == "open" && v.Deadline != nil && b.Status != "closed":
			v.Overdue = now.After(v.Deadline.AsTime())
		}
		out = append(out, v)
	}
	return out
}
