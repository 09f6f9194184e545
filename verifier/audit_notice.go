package verifier

import (
	"fmt"
	"slices"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// auditNotices holds the notices an audit has seen, by entry index, without
// their text (DESIGN §14).
type auditNotices map[uint64]*pb.NoticePublished

// notice checks a NoticePublished entry: its text gives its digest (a
// finding of the entry check otherwise), and remembers it for the grants
// that name it.
func (s *scanner) notice(i uint64, n *pb.NoticePublished) {
	if got := NoticeDigest(n.Text); got != n.Digest {
		s.find(AuditEntry, i, got, n.Digest, "privacy notice %s (%s): its text does not give the digest recorded with it", n.Version, n.Language)
	}
	if s.notices == nil {
		s.notices = auditNotices{}
	}
	s.notices[i] = &pb.NoticePublished{Version: n.Version, Language: n.Language, Channels: n.Channels, Purposes: n.Purposes, EffectiveFrom: n.EffectiveFrom}
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
	n := s.notices[ni]
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
