package ledger

import (
	"fmt"
	"regexp"

	"github.com/consentledger/consentledger/ledger/state"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Limits on what one entry may hold.
const (
	// MaxEntryBytes bounds one entry's stored bytes (a policy set with its
	// tests and data is the largest entry).
	MaxEntryBytes = 4 << 20
	maxKeyLen     = 256
	maxActorLen   = 128
	maxIDLen      = 128
)

var purposeRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// ValidPurpose reports whether p is a purpose identifier: ^[a-z][a-z0-9_]{0,63}$.
func ValidPurpose(p string) bool { return purposeRE.MatchString(p) }

// checkRequest refuses a request whose entry is malformed, before it reaches
// the sequencer.
func checkRequest(r *Request) error {
	e := r.Entry
	if e == nil || e.Event == nil {
		return fmt.Errorf("%w: entry has no event", ErrInvalid)
	}
	if len(e.Actor) > maxActorLen {
		return fmt.Errorf("%w: actor is %d bytes, the limit is %d", ErrInvalid, len(e.Actor), maxActorLen)
	}
	if len(e.IdempotencyKey) > maxKeyLen {
		return fmt.Errorf("%w: idempotency_key is %d bytes, the limit is %d", ErrInvalid, len(e.IdempotencyKey), maxKeyLen)
	}
	if len(r.Fingerprint) > 64 {
		return fmt.Errorf("%w: fingerprint is %d bytes, the limit is 64", ErrInvalid, len(r.Fingerprint))
	}
	aboutSubject := isConsentEvent(e)
	switch e.Event.(type) {
	case *pb.Entry_SendDecision, *pb.Entry_InboundReview:
		aboutSubject = true
	}
	if aboutSubject != (r.Subject != nil) {
		if aboutSubject {
			return fmt.Errorf("%w: subject is required", ErrInvalid)
		}
		return fmt.Errorf("%w: this event is about no subject, but a subject was given", ErrInvalid)
	}
	switch ev := e.Event.(type) {
	case *pb.Entry_ConsentGranted:
		return checkConsent(ev.ConsentGranted.Channel, ev.ConsentGranted.Purposes, false)
	case *pb.Entry_ConsentConfirmed:
		return checkConsent(ev.ConsentConfirmed.Channel, ev.ConsentConfirmed.Purposes, false)
	case *pb.Entry_ConsentWithdrawn:
		switch ev.ConsentWithdrawn.Scope {
		case "", ScopeChannel:
		case ScopeAllMarketing:
			if len(ev.ConsentWithdrawn.Purposes) > 0 {
				return fmt.Errorf("%w: an objection (scope all_marketing) covers every marketing purpose; leave purposes empty", ErrInvalid)
			}
		default:
			return fmt.Errorf("%w: scope %q must be channel or all_marketing", ErrInvalid, ev.ConsentWithdrawn.Scope)
		}
		return checkConsent(ev.ConsentWithdrawn.Channel, ev.ConsentWithdrawn.Purposes, true)
	case *pb.Entry_InboundReview:
		r := ev.InboundReview
		if r.Keyword == "" || len(r.Keyword) > maxIDLen {
			return fmt.Errorf("%w: a review records the matched phrase, 1 to %d bytes", ErrInvalid, maxIDLen)
		}
		return checkConsent(r.Channel, nil, true)
	case *pb.Entry_SendDecision:
		req := ev.SendDecision.GetRequest()
		if req == nil {
			return fmt.Errorf("%w: send decision has no request", ErrInvalid)
		}
		return checkConsent(req.Channel, []string{req.Purpose}, false)
	case *pb.Entry_PolicyPublished:
		if ev.PolicyPublished.Digest == "" || len(ev.PolicyPublished.Files) == 0 {
			return fmt.Errorf("%w: a published policy needs its files and digest", ErrInvalid)
		}
	case *pb.Entry_BreachDetected, *pb.Entry_BreachAuthorityNotified, *pb.Entry_BreachSubjectsNotified, *pb.Entry_BreachClosed:
		id := state.BreachID(e)
		if id == "" || len(id) > maxIDLen {
			return fmt.Errorf("%w: breach_id must be 1 to %d bytes", ErrInvalid, maxIDLen)
		}
	}
	return nil
}

func checkConsent(ch pb.Channel, purposes []string, emptyOK bool) error {
	if _, ok := pb.Channel_name[int32(ch)]; !ok || ch == pb.Channel_CHANNEL_UNSPECIFIED {
		return fmt.Errorf("%w: channel must be one of whatsapp, sms, rcs, email", ErrInvalid)
	}
	if len(purposes) == 0 && !emptyOK {
		return fmt.Errorf("%w: at least one purpose is required", ErrInvalid)
	}
	seen := map[string]bool{}
	for _, p := range purposes {
		if !ValidPurpose(p) {
			return fmt.Errorf("%w: purpose %q must match ^[a-z][a-z0-9_]{0,63}$", ErrInvalid, p)
		}
		if seen[p] {
			return fmt.Errorf("%w: purpose %q is listed twice", ErrInvalid, p)
		}
		seen[p] = true
	}
	return nil
}
