// Package subject normalises the identifiers of data subjects (E.164 phone
// numbers, e-mail addresses, external ids) and derives the pseudonymous values
// the ledger stores instead of them (GDPR Art. 4(5), 17).
//
// The ledger never writes an identifier to the append-only log. It keeps,
// outside the Merkle tree, an erasable table that maps
// [TableKey](server key, identifier) to a random subject id ([NewSubjectID])
// and a random salt ([NewSalt]); log entries carry only the subject id and
// [Commitment](salt, identifier). Deleting the table row erases the link
// between the log and the person.
package subject

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"

	consentledgerv1 "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Kind is the kind of a subject identifier.
type Kind uint8

// The kinds of subject identifier. The numeric values are part of the
// [TableKey] derivation and must never change.
const (
	// KindPhone is a phone number, normalised to E.164.
	KindPhone Kind = 1
	// KindEmail is an e-mail address, normalised to lower case.
	KindEmail Kind = 2
	// KindExternalID is the sender's own customer identifier, trimmed.
	KindExternalID Kind = 3
)

// String returns "phone", "email" or "external_id", or "Kind(n)" for an
// unknown kind.
func (k Kind) String() string {
	switch k {
	case KindPhone:
		return "phone"
	case KindEmail:
		return "email"
	case KindExternalID:
		return "external_id"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Size limits for identifiers, in bytes, after trimming surrounding space.
const (
	// MaxPhoneLength is the longest phone number Normalize accepts as input.
	MaxPhoneLength = 64
	// MaxEmailLength is the longest e-mail address Normalize accepts, as
	// input and once normalised.
	MaxEmailLength = 254
	// MaxExternalIDLength is the longest external id Normalize accepts.
	MaxExternalIDLength = 256
)

// KeySize is the size in bytes of the server key passed to [TableKey].
const KeySize = 32

// SaltSize is the size in bytes of a subject's salt (see [NewSalt]).
const SaltSize = 32

// Identifier is a normalised subject identifier, as returned by [Normalize].
// It holds personal data: never log or store Value. String, GoString and
// LogValue redact Value, so formatting an Identifier with fmt or log/slog
// does not leak it.
type Identifier struct {
	Kind  Kind
	Value string

	region string // Country, computed by Normalize (empty: compute on demand)
}

// String returns the kind followed by "(redacted)"; it never includes Value.
func (id Identifier) String() string {
	return id.Kind.String() + "(redacted)"
}

// GoString is like String, so that %#v does not leak Value either.
func (id Identifier) GoString() string {
	return "subject.Identifier{Kind: " + id.Kind.String() + ", Value: <redacted>}"
}

// LogValue implements [slog.LogValuer]: it logs the kind only.
func (id Identifier) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kind", id.Kind.String()))
}

// Country returns the ISO 3166-1 alpha-2 region of a phone identifier, such
// as "DE", or "" for other kinds and for numbers whose region is unknown or
// ambiguous (e.g. non-geographic numbers like +800).
func (id Identifier) Country() string {
	if id.Kind != KindPhone {
		return ""
	}
	if id.region != "" {
		return id.region
	}
	num, err := phonenumbers.Parse(id.Value, "")
	if err != nil {
		return ""
	}
	return regionOf(num)
}

// regionOf returns the ISO 3166-1 alpha-2 region of a parsed number, or "".
func regionOf(num *phonenumbers.PhoneNumber) string {
	region := phonenumbers.GetRegionCodeForNumber(num)
	if len(region) != 2 || region == phonenumbers.UNKNOWN_REGION ||
		region[0] < 'A' || region[0] > 'Z' || region[1] < 'A' || region[1] > 'Z' {
		return ""
	}
	return region
}

// FieldError is an invalid-input error that names the offending field, such
// as "subject.phone".
type FieldError struct {
	Field  string
	Reason string
}

// Error returns Field + ": " + Reason.
func (e *FieldError) Error() string {
	return e.Field + ": " + e.Reason
}

// Field names used in errors returned by Normalize.
const (
	fieldSubject    = "subject"
	fieldPhone      = "subject.phone"
	fieldEmail      = "subject.email"
	fieldExternalID = "subject.external_id"
)

// Normalize validates and normalises a Subject. Phone numbers must be in
// international format and become E.164 ("+491701234567"); e-mail addresses
// are lower-cased; external ids are trimmed. Errors are *FieldError values
// naming the field ("subject", "subject.phone", "subject.email" or
// "subject.external_id") with a reason a person can act on. The reason may
// quote the rejected input.
//
// Normalize is idempotent: normalising an Identifier's Value again, as the
// same kind, yields the same Value.
func Normalize(s *consentledgerv1.Subject) (Identifier, error) {
	var (
		kind Kind
		raw  string
	)
	switch v := s.GetId().(type) {
	case *consentledgerv1.Subject_Phone:
		if v != nil {
			kind, raw = KindPhone, v.Phone
		}
	case *consentledgerv1.Subject_Email:
		if v != nil {
			kind, raw = KindEmail, v.Email
		}
	case *consentledgerv1.Subject_ExternalId:
		if v != nil {
			kind, raw = KindExternalID, v.ExternalId
		}
	}
	if kind == 0 {
		return Identifier{}, &FieldError{fieldSubject, "one of phone, email or external_id is required"}
	}
	value, region, err := normalize(kind, raw)
	if err != nil {
		return Identifier{}, err
	}
	// Guarantee idempotence: the stored value must be its own normal form,
	// or the same person could end up with two table rows. (A phone number
	// such as "+49 (0) 0170 …" loses one trunk prefix per pass.) An input
	// already in normal form needs no second pass: it would repeat the first.
	if value == strings.TrimSpace(raw) {
		return Identifier{Kind: kind, Value: value, region: region}, nil
	}
	if again, _, err := normalize(kind, value); err != nil || again != value {
		return Identifier{}, &FieldError{fieldFor(kind), fmt.Sprintf("%q cannot be normalised unambiguously; check it for typos and extra digits", strings.TrimSpace(raw))}
	}
	return Identifier{Kind: kind, Value: value, region: region}, nil
}

func fieldFor(k Kind) string {
	switch k {
	case KindPhone:
		return fieldPhone
	case KindEmail:
		return fieldEmail
	}
	return fieldExternalID
}

// normalize returns the normal form of raw and, for a phone number, its region.
func normalize(kind Kind, raw string) (string, string, *FieldError) {
	switch kind {
	case KindPhone:
		return normalizePhone(raw)
	case KindEmail:
		v, err := normalizeEmail(raw)
		return v, "", err
	}
	v, err := normalizeExternalID(raw)
	return v, "", err
}

const phoneHint = "like +49 170 1234567"

func normalizePhone(raw string) (string, string, *FieldError) {
	fail := func(format string, args ...any) (string, string, *FieldError) {
		return "", "", &FieldError{fieldPhone, fmt.Sprintf(format, args...)}
	}
	s := strings.TrimSpace(raw)
	switch {
	case s == "":
		return fail("must not be empty; write the number with a country code, %s", phoneHint)
	case len(s) > MaxPhoneLength:
		return fail("is too long (%d bytes; at most %d)", len(s), MaxPhoneLength)
	case !utf8.ValidString(s):
		return fail("is not valid UTF-8")
	}
	rest, ok := strings.CutPrefix(s, "+")
	if !ok {
		rest, ok = strings.CutPrefix(s, "00")
	}
	if !ok {
		return fail("%q is not in international format; write it with a country code, %s", s, phoneHint)
	}
	digits := 0
	for _, r := range rest {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == ' ', r == '-', r == '.', r == '(', r == ')':
		default:
			return fail("%q contains %q; use only digits, spaces, dashes, dots and parentheses after the leading +", s, r)
		}
	}
	if digits == 0 {
		return fail("%q has no digits; write the number with a country code, %s", s, phoneHint)
	}
	num, err := phonenumbers.Parse("+"+rest, "")
	if err != nil {
		switch err {
		case phonenumbers.ErrInvalidCountryCode:
			return fail("%q does not start with a valid country code; write it %s", s, phoneHint)
		case phonenumbers.ErrTooShortNSN:
			return fail("%q is too short for a phone number; write it with a country code, %s", s, phoneHint)
		}
		return fail("%q is not a phone number; write it with a country code, %s", s, phoneHint)
	}
	if num.GetExtension() != "" {
		return fail("%q has an extension; give the number without it", s)
	}
	cc := num.GetCountryCode()
	switch phonenumbers.IsPossibleNumberWithReason(num) {
	case phonenumbers.IS_POSSIBLE, phonenumbers.IS_POSSIBLE_LOCAL_ONLY:
	case phonenumbers.INVALID_COUNTRY_CODE:
		return fail("%q does not start with a valid country code; write it %s", s, phoneHint)
	case phonenumbers.TOO_SHORT:
		return fail("%q is too short for a phone number with country code +%d", s, cc)
	case phonenumbers.TOO_LONG:
		return fail("%q is too long for a phone number with country code +%d", s, cc)
	default:
		return fail("%q has the wrong number of digits for a phone number with country code +%d", s, cc)
	}
	return phonenumbers.Format(num, phonenumbers.E164), regionOf(num), nil
}

const emailHint = "like name@example.org"

func normalizeEmail(raw string) (string, *FieldError) {
	fail := func(format string, args ...any) (string, *FieldError) {
		return "", &FieldError{fieldEmail, fmt.Sprintf(format, args...)}
	}
	s := strings.TrimSpace(raw)
	switch {
	case s == "":
		return fail("must not be empty; write an address %s", emailHint)
	case len(s) > MaxEmailLength:
		return fail("is too long (%d bytes; at most %d)", len(s), MaxEmailLength)
	case !utf8.ValidString(s):
		return fail("is not valid UTF-8")
	}
	// Put the address in Unicode NFC before parsing it, so that canonically
	// equivalent spellings give the same subject and the syntax check sees
	// the characters that will be stored (NFC maps U+037E to ';').
	s = norm.NFC.String(s)
	addr, err := mail.ParseAddress(s)
	if err != nil {
		return fail("%q is not an e-mail address; write it %s", s, emailHint)
	}
	if addr.Name != "" || addr.Address != s {
		return fail("%q is not a bare e-mail address; send only the address itself, %s", s, emailHint)
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || strings.Contains(domain, "@") {
		return fail("%q must contain exactly one @ with a name before it, %s", s, emailHint)
	}
	// The local part is lower-cased too: the ledger treats addresses that
	// differ only in case as the same subject.
	local = norm.NFC.String(strings.ToLower(local))
	// The domain is converted to its ASCII (A-label) form, which also lower-
	// cases it, so that "Bücher.example" and "xn--bcher-kva.example" match.
	// A domain whose A-label form does not convert to itself (IDNA mappings
	// of a few symbols produce labels that fail the bidi rule) is rejected.
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil || ascii == "" {
		return fail("%q has an invalid domain name; write it %s", s, emailHint)
	}
	if again, err := idna.Lookup.ToASCII(ascii); err != nil || again != ascii {
		return fail("%q has an invalid domain name; write it %s", s, emailHint)
	}
	domain = ascii
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return fail("%q has no complete domain name; write the full domain, %s", s, emailHint)
	}
	v := local + "@" + domain
	if len(v) > MaxEmailLength {
		return fail("is too long once normalised (%d bytes; at most %d)", len(v), MaxEmailLength)
	}
	return v, nil
}

func normalizeExternalID(raw string) (string, *FieldError) {
	fail := func(format string, args ...any) (string, *FieldError) {
		return "", &FieldError{fieldExternalID, fmt.Sprintf(format, args...)}
	}
	s := strings.TrimSpace(raw)
	switch {
	case s == "":
		return fail("must not be empty")
	case len(s) > MaxExternalIDLength:
		return fail("is too long (%d bytes; at most %d)", len(s), MaxExternalIDLength)
	case !utf8.ValidString(s):
		return fail("is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fail("%q contains the control character %U; remove it", s, r)
		}
	}
	return s, nil
}

// TableKey returns HMAC-SHA256(key, kind byte || value): the lookup key of
// the identifier's row in the erasable subject table. key is the server's
// secret and must be [KeySize] bytes long; TableKey panics otherwise.
func TableKey(key []byte, id Identifier) [32]byte {
	if len(key) != KeySize {
		panic(fmt.Sprintf("subject: TableKey: key is %d bytes, want %d", len(key), KeySize))
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte{byte(id.Kind)})
	mac.Write([]byte(id.Value))
	var out [32]byte
	mac.Sum(out[:0])
	return out
}

// Commitment returns SHA-256(salt || value): the subject_commitment stored in
// log entries. salt is the subject's salt from the erasable table.
func Commitment(salt []byte, id Identifier) [32]byte {
	return commit(salt, id.Value)
}

func commit(salt []byte, value string) [32]byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(value))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// CheckCommitment reports whether commitment equals SHA-256(salt || value),
// comparing in constant time. value must already be normalised (see
// [Normalize]). Verifiers use it when an operator reveals a subject's salt.
func CheckCommitment(commitment, salt []byte, value string) bool {
	want := commit(salt, value)
	return subtle.ConstantTimeCompare(commitment, want[:]) == 1
}

const subjectIDPrefix = "subj_"

var subjectIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewSubjectID returns a new random subject id: "subj_" followed by the 26
// characters of the unpadded, lower-case base32 encoding of 16 random bytes.
func NewSubjectID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("subject: generating subject id: %w", err)
	}
	return subjectIDPrefix + subjectIDEncoding.EncodeToString(b[:]), nil
}

// NewSalt returns [SaltSize] (32) random bytes for a new subject's
// commitment.
func NewSalt() ([]byte, error) {
	b := make([]byte, SaltSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("subject: generating salt: %w", err)
	}
	return b, nil
}
