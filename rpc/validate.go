package rpc

import (
	"strings"
	"time"
	"unicode"
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
	maxList      = 64   // other lists of short texts
	maxFuture    = 5 * time.Minute

	// MaxPurposes bounds the purposes of one consent request.
	MaxPurposes = 16
	// MaxDataCategories bounds the data categories of one breach report.
	MaxDataCategories = 16
	// MaxChannels is the number of channels: a list of channels holds each at most once.
	MaxChannels = 4
)

// optInMethods are the ways consent can be collected (docs/entry-format.md).
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
	if len(ps) > MaxPurposes {
		return invalid(field, "%d purposes, the limit is %d", len(ps), MaxPurposes)
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

// checkIdent checks an identifier or short label (keys, ids, references,
// names): bounded, valid UTF-8, and free of control and formatting
// characters, which could rewrite a report's lines when printed.
func checkIdent(field, s string, max int) error {
	if err := checkText(field, s, max); err != nil {
		return err
	}
	for i, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return invalid(field, "holds the control character %U at byte %d; identifiers are printable text", r, i)
		}
	}
	return nil
}

// checkFree checks free text (descriptions, notes, reasons): bounded, valid
// UTF-8, and free of control characters other than tab and line breaks.
func checkFree(field, s string, max int) error {
	if err := checkText(field, s, max); err != nil {
		return err
	}
	for i, r := range s {
		if r == '\t' || r == '\n' || r == '\r' {
			continue
		}
		if unicode.IsControl(r) || unicode.In(r, unicode.Bidi_Control) {
			return invalid(field, "holds the control character %U at byte %d; send plain text (tabs and line breaks are allowed)", r, i)
		}
	}
	return nil
}

// checkIdents checks a list of identifiers: at most max items, none twice.
func checkIdents(field string, ss []string, maxItems, maxLen int) error {
	if len(ss) > maxItems {
		return invalid(field, "%d items, the limit is %d", len(ss), maxItems)
	}
	seen := make(map[string]bool, len(ss))
	for _, s := range ss {
		if err := checkIdent(field, s, maxLen); err != nil {
			return err
		}
		if seen[s] {
			return invalid(field, "%q is listed twice", s)
		}
		seen[s] = true
	}
	return nil
}

// checkChannels checks a list of channels: each a known channel, none
// twice, so at most [MaxChannels].
func checkChannels(field string, cs []pb.Channel) error {
	if len(cs) > MaxChannels {
		return invalid(field, "%d channels, there are only %d (list each at most once)", len(cs), MaxChannels)
	}
	seen := make(map[pb.Channel]bool, len(cs))
	for _, c := range cs {
		if err := checkChannel(field, c); err != nil {
			return err
		}
		if seen[c] {
			return invalid(field, "%s is listed twice", c)
		}
		seen[c] = true
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

// checkTime returns a copy of t holding only its seconds and nanos (never
// a request's own message, which may carry unknown fields), or now when t
// is unset; a time more than five minutes in the future is refused.
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
	return &timestamppb.Timestamp{Seconds: t.Seconds, Nanos: t.Nanos}, nil
}

// DefaultMaxBackdate is how far before it is recorded an event's time
// (occurred_at of consent events, detected_at of breaches) may lie
// (README.md: Privacy notices, breaches, reports); Options.MaxBackdate changes it.
const DefaultMaxBackdate = 365 * 24 * time.Hour

// checkPast is checkTime for the time an event happened: besides the
// future, it refuses a time more than the configured bound before now.
// The entry records both times, so an auditor sees the gap.
func (s *Service) checkPast(field string, t *timestamppb.Timestamp) (*timestamppb.Timestamp, error) {
	now := s.now()
	at, err := checkTime(field, t, now)
	if err != nil {
		return nil, err
	}
	if earliest := now.Add(-s.maxBackdate); at.AsTime().Before(earliest) {
		return nil, invalid(field, "%s is more than %v before now; the server records events at most %v after they happened (max_backdate in the config)",
			at.AsTime().UTC().Format(time.RFC3339), s.maxBackdate, s.maxBackdate)
	}
	return at, nil
}

func checkKey(key string) error { return checkIdent("idempotency_key", key, maxShortText) }

func nowTS(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
