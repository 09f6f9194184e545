package rpc

import (
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/ledger/subject"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Input bounds.
const (
	maxShortText = 256  // keys, refs, names, versions
	maxLongText  = 4096 // descriptions, notes
	maxList      = 64   // purposes, categories, channels
	maxFuture    = 5 * time.Minute
)

// optInMethods are the ways consent can be collected (DESIGN §3).
var optInMethods = []string{"checkout", "web_form", "profile", "keyword", "paper", "api"}

func checkSubject(s *pb.Subject) (subject.Identifier, error) {
	id, err := subject.Normalize(s)
	if err != nil {
		return subject.Identifier{}, toConnect(err)
	}
	return id, nil
}

func checkChannel(field string, ch pb.Channel) error {
	if _, ok := pb.Channel_name[int32(ch)]; !ok || ch == pb.Channel_CHANNEL_UNSPECIFIED {
		return invalid(field, "must be one of CHANNEL_WHATSAPP, CHANNEL_SMS, CHANNEL_RCS, CHANNEL_EMAIL")
	}
	return nil
}

func checkPurposes(field string, ps []string, emptyOK bool) error {
	if len(ps) == 0 && !emptyOK {
		return invalid(field, "at least one purpose is required, e.g. [\"marketing\"]")
	}
	if len(ps) > maxList {
		return invalid(field, "%d purposes, the limit is %d", len(ps), maxList)
	}
	seen := map[string]bool{}
	for _, p := range ps {
		if !ledger.ValidPurpose(p) {
			return invalid(field, "%q is not a purpose identifier (lowercase letters, digits and _, starting with a letter, at most 64)", p)
		}
		if seen[p] {
			return invalid(field, "%q is listed twice", p)
		}
		seen[p] = true
	}
	return nil
}

func checkText(field, s string, max int) error {
	if len(s) > max {
		return invalid(field, "is %d bytes, the limit is %d", len(s), max)
	}
	if !utf8.ValidString(s) {
		return invalid(field, "is not valid UTF-8")
	}
	return nil
}

func checkTexts(field string, ss []string, max int) error {
	if len(ss) > maxList {
		return invalid(field, "%d items, the limit is %d", len(ss), maxList)
	}
	for _, s := range ss {
		if err := checkText(field, s, max); err != nil {
			return err
		}
	}
	return nil
}

// oneOf normalises s (trimmed, lowercase) and checks it is one of allowed;
// empty is allowed when def is not empty and becomes def.
func oneOf(field, s, def string, allowed ...string) (string, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	if v == "" && def != "" {
		return def, nil
	}
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", invalid(field, "%q is not one of %s", s, strings.Join(allowed, ", "))
}

// checkTime returns t, or now when t is unset; a time more than five
// minutes in the future is refused.
func checkTime(field string, t *timestamppb.Timestamp, now time.Time) (*timestamppb.Timestamp, error) {
	if t == nil {
		return timestamppb.New(now), nil
	}
	if err := t.CheckValid(); err != nil {
		return nil, invalid(field, "%v", err)
	}
	if t.AsTime().After(now.Add(maxFuture)) {
		return nil, invalid(field, "%s is in the future", t.AsTime().Format(time.RFC3339))
	}
	return t, nil
}

func checkKey(key string) error { return checkText("idempotency_key", key, maxShortText) }

func nowTS(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
