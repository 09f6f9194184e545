package policies

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Input is the policy input document of one send, described for legal teams
// in README.md. The ledger builds it from the request and the subject's
// recorded state, evaluates [Input.Value] with [Set.DecideValue], and
// records that value written by [AppendJSON] with the decision: [ParseInput]
// of those bytes gives the same value, so a replay evaluates exactly what
// the ledger evaluated.
//
// Building the AST value directly skips writing and re-reading JSON on the
// ledger's hot path.
type Input struct {
	Now      string        // RFC 3339 time of the decision, UTC
	Request  InputRequest  // the send being asked about
	Subject  InputSubject  // the recipient's recorded state
	Breaches []InputBreach // open data breaches, in ledger order
}

// InputRequest is input.request: what the sender wants to send.
type InputRequest struct {
	Channel           string // "whatsapp", "sms", "rcs", "email"
	Purpose           string // the stated purpose, e.g. "marketing"
	Category          string // the message (template) category, "" if none
	ProviderName      string // the messaging provider
	ProviderRegion    string // where the provider processes data, e.g. "EU"
	SubjectTimezone   string // IANA zone of the recipient, "" if unknown
	ServiceWindowOpen bool   // a customer-initiated service window is open
	MessageRef        string // the sender's reference for the message
	// LegalBasis is "consent", "contract" or "legal_obligation"; "" leaves
	// request.legal_basis out of the document (decisions recorded before it
	// existed), which the policy reads as consent.
	LegalBasis string
}

// InputSubject is input.subject: the recipient as the ledger knows them.
type InputSubject struct {
	Known   bool   // the ledger has a record of the subject
	Country string // ISO 3166 country of the phone number, "" if none
	// Consents are the consent records; each channel's purposes in any
	// order (the encodings sort them). Channel and purpose pairs are unique.
	Consents []InputConsent
	// Objection is the subject's latest objection to direct marketing
	// (input.subject.objection); nil leaves it out of the document.
	Objection *InputObjection
}

// InputObjection is input.subject.objection: an objection to direct
// marketing (GDPR Art. 21(3)), a ConsentWithdrawn entry of scope
// all_marketing.
type InputObjection struct {
	At    string // RFC 3339 time the person objected
	Index uint64 // the entry's index
}

// InputConsent is input.subject.consents[channel][purpose]. Empty strings
// and nil indexes are left out of the document.
type InputConsent struct {
	Channel, Purpose  string // the keys it is recorded under
	Status            string // "granted", "withdrawn" or "erased"
	GrantedAt         string // RFC 3339
	Method            string // how the opt-in was collected
	NoticeVersion     string // the privacy notice shown
	NoticeLanguage    string // its language (README.md: Privacy notices, breaches, reports); "" for grants naming no published notice
	DoubleOptIn       bool   // confirmed by double opt-in
	ConfirmedAt       string // RFC 3339
	ConfirmedVia      string // channel the double opt-in was confirmed on
	WithdrawnAt       string // RFC 3339
	LastAllowedSendAt string // RFC 3339
	GrantIndex        *uint64
	ConfirmationIndex *uint64
	WithdrawalIndex   *uint64
}

// InputBreach is one element of input.breaches.
type InputBreach struct {
	BreachID   string
	Status     string
	Channels   []string
	DetectedAt string // RFC 3339, "" if unknown
}

// Value returns the document as the AST value OPA evaluates. Invalid UTF-8
// in a string becomes U+FFFD, one per byte, as [ParseInput] reads it.
func (in *Input) Value() ast.Value {
	var b builder
	return b.input(in)
}

// builder makes the AST terms of one document out of a few allocations.
type builder struct {
	terms []ast.Term
}

func (b *builder) term(v ast.Value) *ast.Term {
	if len(b.terms) == cap(b.terms) {
		b.terms = make([]ast.Term, 0, 64)
	}
	b.terms = append(b.terms, ast.Term{Value: v})
	return &b.terms[len(b.terms)-1]
}

// obj returns an object of key/value pairs given in sorted key order.
func (b *builder) obj(kv ...any) ast.Object {
	o := ast.NewObjectWithCapacity(len(kv) / 2)
	for i := 0; i < len(kv); i += 2 {
		o.Insert(b.term(str(kv[i].(string))), b.term(kv[i+1].(ast.Value)))
	}
	return o
}

func (b *builder) input(in *Input) ast.Value {
	r := &in.Request
	breaches := make([]*ast.Term, len(in.Breaches))
	for i := range in.Breaches {
		breaches[i] = b.term(b.breach(&in.Breaches[i]))
	}
	return b.obj(
		"breaches", ast.NewArray(breaches...),
		"now", str(in.Now),
		"request", b.request(r),
		"subject", b.subject(&in.Subject),
	)
}

// request returns input.request; legal_basis only when set.
func (b *builder) request(r *InputRequest) ast.Value {
	kv := []any{
		"category", str(r.Category),
		"channel", str(r.Channel),
	}
	if r.LegalBasis != "" {
		kv = append(kv, "legal_basis", str(r.LegalBasis))
	}
	return b.obj(append(kv,
		"message_ref", str(r.MessageRef),
		"provider", b.obj("name", str(r.ProviderName), "region", str(r.ProviderRegion)),
		"purpose", str(r.Purpose),
		"service_window_open", ast.Boolean(r.ServiceWindowOpen),
		"subject_timezone", str(r.SubjectTimezone),
	)...)
}

// subject returns input.subject; objection only when there is one.
func (b *builder) subject(s *InputSubject) ast.Value {
	kv := []any{
		"consents", b.consents(s.Consents),
		"country", str(s.Country),
		"known", ast.Boolean(s.Known),
	}
	if o := s.Objection; o != nil {
		kv = append(kv, "objection", b.obj("at", str(o.At), "index", number(o.Index)))
	}
	return b.obj(kv...)
}

func (b *builder) breach(br *InputBreach) ast.Value {
	chans := make([]*ast.Term, len(br.Channels))
	for i, c := range br.Channels {
		chans[i] = b.term(str(c))
	}
	return b.obj(
		"breach_id", str(br.BreachID),
		"channels", ast.NewArray(chans...),
		"detected_at", str(br.DetectedAt),
		"status", str(br.Status),
	)
}

// consents returns {channel: {purpose: record}}. A later record for the
// same pair replaces an earlier one. Each object is complete before it is
// inserted into its parent, whose hash covers its values.
func (b *builder) consents(cs []InputConsent) ast.Value {
	order := make([]int, len(cs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int {
		return strings.Compare(valid(cs[i].Channel), valid(cs[j].Channel))
	})
	out := ast.NewObjectWithCapacity(len(cs))
	for start := 0; start < len(order); {
		channel := valid(cs[order[start]].Channel)
		end := start + 1
		for end < len(order) && valid(cs[order[end]].Channel) == channel {
			end++
		}
		ch := ast.NewObjectWithCapacity(end - start)
		for _, i := range order[start:end] {
			ch.Insert(b.term(str(cs[i].Purpose)), b.term(b.consent(&cs[i])))
		}
		out.Insert(b.term(str(channel)), b.term(ch))
		start = end
	}
	return out
}

func (b *builder) consent(c *InputConsent) ast.Value {
	var kv []any
	add := func(k string, v ast.Value) { kv = append(kv, k, v) }
	opt := func(k, s string) {
		if s != "" {
			add(k, str(s))
		}
	}
	idx := func(k string, i *uint64) {
		if i != nil {
			add(k, number(*i))
		}
	}
	// Keys in sorted order.
	idx("confirmation_index", c.ConfirmationIndex)
	opt("confirmed_at", c.ConfirmedAt)
	opt("confirmed_via", c.ConfirmedVia)
	add("double_opt_in", ast.Boolean(c.DoubleOptIn))
	idx("grant_index", c.GrantIndex)
	opt("granted_at", c.GrantedAt)
	opt("last_allowed_send_at", c.LastAllowedSendAt)
	opt("method", c.Method)
	opt("notice_language", c.NoticeLanguage)
	opt("notice_version", c.NoticeVersion)
	add("status", str(c.Status))
	idx("withdrawal_index", c.WithdrawalIndex)
	opt("withdrawn_at", c.WithdrawnAt)
	return b.obj(kv...)
}

// str is s as an AST string, invalid UTF-8 replaced, common strings shared.
func str(s string) ast.Value {
	if v, ok := commonStrings[s]; ok {
		return v
	}
	return ast.String(valid(s))
}

func number(i uint64) ast.Value {
	s := strconv.FormatUint(i, 10)
	if t := ast.InternedIntNumberTermFromString(s); t != nil {
		return t.Value
	}
	return ast.Number(s)
}

// valid returns s with each byte of invalid UTF-8 replaced by U+FFFD, as
// encoding/json and the JSON decoder behind ParseInput do.
func valid(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, s[i:i+n]...)
		}
		i += n
	}
	return string(out)
}

// AppendJSON appends v, an AST value of JSON types (null, booleans, numbers,
// strings, arrays and objects with string keys, as [ParseInput] returns), as
// compact JSON, object keys in sorted order. Strings must be valid UTF-8.
// It panics on any other value: the documents it writes are the ledger's
// own.
func AppendJSON(dst []byte, v ast.Value) []byte {
	switch x := v.(type) {
	case ast.Null:
		return append(dst, "null"...)
	case ast.Boolean:
		return strconv.AppendBool(dst, bool(x))
	case ast.Number:
		return append(dst, x...)
	case ast.String:
		return appendString(dst, string(x))
	case *ast.Array:
		dst = append(dst, '[')
		for i := range x.Len() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSON(dst, x.Elem(i).Value)
		}
		return append(dst, ']')
	case ast.Object:
		dst = append(dst, '{')
		first := true
		x.Foreach(func(k, e *ast.Term) {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendString(dst, string(k.Value.(ast.String)))
			dst = append(dst, ':')
			dst = AppendJSON(dst, e.Value)
		})
		return append(dst, '}')
	}
	panic("policies: AppendJSON of a non-JSON value " + v.String())
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping what RFC 8259 requires.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
