// Package breach holds the law of README.md: Privacy notices, breaches, reports for personal-data breaches as
// pure functions over the state the log derives: the default breach
// response plan (steps, owners and deadlines as data — the 72 h may change
// by law), which breaches are notifiable and by when (GDPR Art. 33(1), (2),
// (5)), Art. 34 for high-risk breaches, each step's status and deadline, and
// the check that free text holds no e-mail address or phone number.
package breach

import (
	"fmt"
	"regexp"
	"strings"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// DefaultPlanVersion names the built-in plan a breach follows when no plan
// was published.
const DefaultPlanVersion = "builtin-2026-11"

// Step identifiers the status derivation knows: these steps count as done
// when the log shows the fact itself (an assessment, a notification), even
// without a CompleteStep.
const (
	StepInformDPO         = "inform_dpo"
	StepContain           = "contain"
	StepAssess            = "assess"
	StepNotifyControllers = "notify_controllers"
	StepNotifyAuthority   = "notify_authority"
	StepNotifySubjects    = "notify_subjects"
	StepFollowUp          = "follow_up"
	StepLessons           = "lessons_learned"
	StepDocument          = "documentation"
)

// When a step applies (PlanStep.applies).
const (
	AppliesAlways     = ""
	AppliesController = "controller"
	AppliesProcessor  = "processor"
	AppliesNotifiable = "notifiable"
	AppliesHighRisk   = "high_risk"
)

// DefaultSteps returns the default plan of GDPR Art. 7(1), 13, in order.
func DefaultSteps() []*pb.PlanStep {
	return []*pb.PlanStep{
		{Id: StepInformDPO, Title: "Inform the DPO or the data protection contact point at once (Art. 38(1))", OwnerRole: "breach", DeadlineHours: 1},
		{Id: StepContain, Title: "Contain the breach and preserve evidence", OwnerRole: "breach", DeadlineHours: 24},
		{Id: StepAssess, Title: "Assess the risk to the persons concerned (e.g. DSK short paper 18)", OwnerRole: "breach", DeadlineHours: 48},
		{Id: StepNotifyControllers, Title: "Notify the controllers without undue delay (Art. 33(2))", OwnerRole: "breach", DeadlineHours: 24, Applies: AppliesProcessor},
		{Id: StepNotifyAuthority, Title: "Notify the supervisory authority (Art. 33(1))", OwnerRole: "breach", DeadlineHours: 72, Applies: AppliesNotifiable},
		{Id: StepNotifySubjects, Title: "Notify the persons concerned, or record the Art. 34(3) exception", OwnerRole: "breach", DeadlineHours: 72, Applies: AppliesHighRisk},
		{Id: StepFollowUp, Title: "Provide further information in phases (Art. 33(4))", OwnerRole: "breach", Ongoing: true, Applies: AppliesNotifiable},
		{Id: StepLessons, Title: "Lessons learned: review measures and the plan", OwnerRole: "legal", DeadlineHours: 720},
		{Id: StepDocument, Title: "Document facts, effects and remedial action (Art. 33(5))", OwnerRole: "breach", Ongoing: true},
	}
}

var stepID = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// CheckSteps validates a plan's steps: unique identifiers, titles, known
// "applies" values, and a deadline for every step that is not ongoing.
func CheckSteps(steps []*pb.PlanStep) error {
	if len(steps) == 0 {
		return fmt.Errorf("a plan needs at least one step")
	}
	if len(steps) > 64 {
		return fmt.Errorf("%d steps, the limit is 64", len(steps))
	}
	seen := map[string]bool{}
	for i, s := range steps {
		if !stepID.MatchString(s.Id) {
			return fmt.Errorf("steps[%d].id %q must be a lowercase identifier (letters, digits, _)", i, s.Id)
		}
		if seen[s.Id] {
			return fmt.Errorf("steps[%d].id %q is used twice", i, s.Id)
		}
		seen[s.Id] = true
		if strings.TrimSpace(s.Title) == "" || len(s.Title) > 256 {
			return fmt.Errorf("steps[%d] (%s): title is required, at most 256 bytes", i, s.Id)
		}
		if len(s.OwnerRole) > 64 {
			return fmt.Errorf("steps[%d] (%s): owner_role is too long", i, s.Id)
		}
		switch s.Applies {
		case AppliesAlways, AppliesController, AppliesProcessor, AppliesNotifiable, AppliesHighRisk:
		default:
			return fmt.Errorf("steps[%d] (%s): applies %q must be empty, controller, processor, notifiable or high_risk", i, s.Id, s.Applies)
		}
		if s.Ongoing && s.DeadlineHours != 0 {
			return fmt.Errorf("steps[%d] (%s): an ongoing step has no deadline", i, s.Id)
		}
	}
	return nil
}
