package verifier

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/breach"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// auditRule2 is what an audit remembers of the README.md: Privacy notices, breaches, reports entries: the
// notices by entry index (without their text) and the plans' steps.
type auditRule2 struct {
	notices map[uint64]*pb.NoticePublished
	plans   map[uint64][]*pb.PlanStep
}

// plan remembers a PlanPublished entry's steps.
func (s *scanner) plan(i uint64, p *pb.PlanPublished) {
	if s.rule2.plans == nil {
		s.rule2.plans = map[uint64][]*pb.PlanStep{}
	}
	s.rule2.plans[i] = p.Steps
}

// breachDeadline is a detected breach's notification deadline under the
// plan it records (the default plan when none): 72 h for a controller by
// default, the controllers' deadline for a processor (Art. 33(2)).
func (s *scanner) breachDeadline(d *pb.BreachDetected, detected time.Time) time.Time {
	var steps []*pb.PlanStep
	if d.PlanIndex != nil {
		steps = s.rule2.plans[*d.PlanIndex]
	}
	st := &pb.BreachState{DetectedAt: timestamppb.New(detected), ControllerRole: d.ControllerRole}
	return breach.Evaluate(st, steps, detected).Deadline
}

// notice checks a NoticePublished entry: its text gives its digest (a
// finding of the entry check otherwise), and remembers it for the grants
// that name it.
func (s *scanner) notice(i uint64, n *pb.NoticePublished) {
	if got := NoticeDigest(n.Text); got != n.Digest {
		s.find(AuditEntry, i, got, n.Digest, "privacy notice %s (%s): its text does not give the digest recorded with it", n.Version, n.Language)
	}
	if s.rule2.notices == nil {
		s.rule2.notices = map[uint64]*pb.NoticePublished{}
	}
	s.rule2.notices[i] = &pb.NoticePublished{Version: n.Version, Language: n.Language, Channels: n.Channels, Purposes: n.Purposes, EffectiveFrom: n.EffectiveFrom}
}

// grantNotice checks that a grant naming a notice names an earlier
// NoticePublished of its version and language that covers its channel and
// purposes and was in effect when consent was given (a finding of the
// subject-chain check otherwise).
func (s *scanner) grantNotice(i uint64, e *pb.Entry, g *pb.ConsentGranted) {
	if g.NoticeIndex == nil {
		return
	}
	ni := *g.NoticeIndex
	n := s.rule2.notices[ni]
	if n == nil || ni >= i {
		s.find(AuditSubjects, i, fmt.Sprintf("notice #%d", ni), "an earlier notice_published entry", "the opt-in names notice entry #%d, which is no earlier published notice", ni)
		return
	}
	occurred := timeOf(g.OccurredAt)
	if g.OccurredAt == nil {
		occurred = timeOf(e.RecordedAt)
	}
	switch {
	case n.Version != g.NoticeVersion || (g.NoticeLanguage != "" && n.Language != g.NoticeLanguage):
		s.find(AuditSubjects, i, g.NoticeVersion+" ("+g.NoticeLanguage+")", n.Version+" ("+n.Language+")", "the opt-in's notice version or language is not that of notice #%d", ni)
	case !slices.Contains(n.Channels, g.Channel):
		s.find(AuditSubjects, i, channelName(g.Channel), "a channel of the notice", "notice #%d does not cover the opt-in's channel", ni)
	case slices.ContainsFunc(g.Purposes, func(p string) bool { return !slices.Contains(n.Purposes, p) }):
		s.find(AuditSubjects, i, fmt.Sprint(g.Purposes), fmt.Sprint(n.Purposes), "notice #%d does not cover every purpose of the opt-in", ni)
	case timeOf(n.EffectiveFrom).After(occurred):
		s.find(AuditSubjects, i, fmtGoTime(occurred), "from "+fmtGoTime(timeOf(n.EffectiveFrom)), "the opt-in was given before notice #%d took effect", ni)
	}
}
