package verifier

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// decodeEntry decodes stored entry bytes. The bytes are never re-encoded:
// what is verified is what was hashed.
func decodeEntry(data []byte) (*pb.Entry, error) {
	e := new(pb.Entry)
	if err := proto.Unmarshal(data, e); err != nil {
		return nil, err
	}
	return e, nil
}

// isConsentEvent reports whether e belongs on its subject's consent chain
// (docs/entry-format.md: granted, confirmed, withdrawn, erased).
func isConsentEvent(e *pb.Entry) bool {
	switch e.Event.(type) {
	case *pb.Entry_ConsentGranted, *pb.Entry_ConsentConfirmed, *pb.Entry_ConsentWithdrawn, *pb.Entry_SubjectErased:
		return true
	}
	return false
}

// eventKind names an entry's event in snake case, as the proto field does.
func eventKind(e *pb.Entry) string {
	switch e.Event.(type) {
	case *pb.Entry_ConsentGranted:
		return "consent_granted"
	case *pb.Entry_ConsentConfirmed:
		return "consent_confirmed"
	case *pb.Entry_ConsentWithdrawn:
		return "consent_withdrawn"
	case *pb.Entry_SendDecision:
		return "send_decision"
	case *pb.Entry_PolicyPublished:
		return "policy_published"
	case *pb.Entry_BreachDetected:
		return "breach_detected"
	case *pb.Entry_BreachAuthorityNotified:
		return "breach_authority_notified"
	case *pb.Entry_BreachSubjectsNotified:
		return "breach_subjects_notified"
	case *pb.Entry_BreachClosed:
		return "breach_closed"
	case *pb.Entry_SubjectErased:
		return "subject_erased"
	case *pb.Entry_InboundReview:
		return "inbound_review"
	case *pb.Entry_NoticePublished:
		return "notice_published"
	case *pb.Entry_BreachAssessed:
		return "breach_assessed"
	case *pb.Entry_PlanPublished:
		return "plan_published"
	case *pb.Entry_BreachStepCompleted:
		return "breach_step_completed"
	case *pb.Entry_ReportExported:
		return "report_exported"
	}
	return "no_event"
}

// channelName is the lowercase name of a channel: "whatsapp", "sms", …
func channelName(c pb.Channel) string {
	return strings.ToLower(strings.TrimPrefix(c.String(), "CHANNEL_"))
}

// channelTitle is the channel as people write it: "WhatsApp", "SMS", …
func channelTitle(c pb.Channel) string {
	switch c {
	case pb.Channel_CHANNEL_WHATSAPP:
		return "WhatsApp"
	case pb.Channel_CHANNEL_SMS:
		return "SMS"
	case pb.Channel_CHANNEL_RCS:
		return "RCS"
	case pb.Channel_CHANNEL_EMAIL:
		return "e-mail"
	}
	return channelName(c)
}

// consentPurpose is the purpose whose opt-in a send relies on: "marketing"
// for a message of category marketing (whatever purpose the sender states),
// otherwise the stated purpose — as the default policy's consent_purpose.
func consentPurpose(req *pb.SendRequest) string {
	if req.GetCategory() == "marketing" {
		return "marketing"
	}
	return req.GetPurpose()
}

// withdraws reports whether consent event e ends consent for channel ch and
// purpose p: a withdrawal on ch of every purpose or of p, an objection to
// direct marketing (for the marketing purpose), or an erasure.
func withdraws(e *pb.Entry, ch pb.Channel, p string) bool {
	switch ev := e.Event.(type) {
	case *pb.Entry_ConsentWithdrawn:
		w := ev.ConsentWithdrawn
		if w.Scope == "all_marketing" {
			// An objection to direct marketing (Art. 21(3)) on any channel
			// ends marketing, not the channel's other purposes.
			return p == "marketing"
		}
		return w.Channel == ch && (len(w.Purposes) == 0 || slices.Contains(w.Purposes, p))
	case *pb.Entry_SubjectErased:
		return true
	}
	return false
}

// confirms reports whether e is a double opt-in confirmation for ch and p,
// made on ch (confirmed_via unspecified in entries from before it existed).
func confirms(e *pb.Entry, ch pb.Channel, p string) bool {
	c := e.GetConsentConfirmed()
	return c != nil && c.Channel == ch && slices.Contains(c.Purposes, p) &&
		(c.ConfirmedVia == pb.Channel_CHANNEL_UNSPECIFIED || c.ConfirmedVia == ch)
}

// describeEvent says what a consent event did, e.g. "opt-in for
// whatsapp/marketing".
func describeEvent(e *pb.Entry) string {
	switch ev := e.Event.(type) {
	case *pb.Entry_ConsentGranted:
		return fmt.Sprintf("opt-in for %s/%s", channelName(ev.ConsentGranted.Channel), strings.Join(ev.ConsentGranted.Purposes, ","))
	case *pb.Entry_ConsentConfirmed:
		return fmt.Sprintf("double opt-in confirmation for %s/%s", channelName(ev.ConsentConfirmed.Channel), strings.Join(ev.ConsentConfirmed.Purposes, ","))
	case *pb.Entry_ConsentWithdrawn:
		p := strings.Join(ev.ConsentWithdrawn.Purposes, ",")
		if p == "" {
			p = "*"
		}
		return fmt.Sprintf("opt-out for %s/%s", channelName(ev.ConsentWithdrawn.Channel), p)
	case *pb.Entry_SubjectErased:
		return "erasure of the subject"
	}
	return strings.ReplaceAll(eventKind(e), "_", " ")
}

// Times are shown in UTC, to the second, so that reports do not depend on
// the auditor's time zone.
const (
	timeLayout = "2006-01-02 15:04:05 UTC"
	dayLayout  = "2006-01-02"
)

func fmtTime(t *timestamppb.Timestamp) string {
	if t == nil {
		return "(no time)"
	}
	return t.AsTime().UTC().Format(timeLayout)
}

func fmtGoTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// timeOf returns t as a time.Time, or the zero time for nil.
func timeOf(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}
