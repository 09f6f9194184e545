package subject_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/consentledger/consentledger/ledger/subject"
	consentledgerv1 "github.com/consentledger/consentledger/proto/consentledger/v1"
)

func phone(s string) *consentledgerv1.Subject {
	return &consentledgerv1.Subject{Id: &consentledgerv1.Subject_Phone{Phone: s}}
}

func email(s string) *consentledgerv1.Subject {
	return &consentledgerv1.Subject{Id: &consentledgerv1.Subject_Email{Email: s}}
}

func externalID(s string) *consentledgerv1.Subject {
	return &consentledgerv1.Subject{Id: &consentledgerv1.Subject_ExternalId{ExternalId: s}}
}

func TestNormalizePhone(t *testing.T) {
	tests := []struct {
		in, want, country string
	}{
		// Germany.
		{"+49 170 1234567", "+491701234567", "DE"},
		{"+491701234567", "+491701234567", "DE"},
		{"  +49 170 1234567\t", "+491701234567", "DE"},
		{"+49-170-1234567", "+491701234567", "DE"},
		{"+49.170.123.45.67", "+491701234567", "DE"},
		{"+49 (170) 123-4567", "+491701234567", "DE"},
		{"+49 (0) 170 1234567", "+491701234567", "DE"},
		{"0049 170 1234567", "+491701234567", "DE"},
		{"0049 (0)170 123 45 67", "+491701234567", "DE"},
		{"+49 30 901820", "+4930901820", "DE"},
		// France.
		{"+33 6 12 34 56 78", "+33612345678", "FR"},
		{"+33 (0)6 12 34 56 78", "+33612345678", "FR"},
		{"+33.6.12.34.56.78", "+33612345678", "FR"},
		{"0033612345678", "+33612345678", "FR"},
		{"0033 6-12-34-56-78", "+33612345678", "FR"},
		// United States, including the fictional 555-01XX range.
		{"+1 (202) 555-0143", "+12025550143", "US"},
		{"+1-202-555-0143", "+12025550143", "US"},
		{"+1.202.555.0143", "+12025550143", "US"},
		{"+12025550143", "+12025550143", "US"},
		{"001 202 555 0143", "+12025550143", "US"},
		{"+1 202 555 0100", "+12025550100", "US"},
		// Other regions sharing +1.
		{"+1 416 555 0123", "+14165550123", "CA"},
		// Italy keeps its leading zero.
		{"+39 06 1234 5678", "+390612345678", "IT"},
		{"+44 20 7946 0958", "+442079460958", "GB"},
		// Possible but not valid, and possible only as a local number:
		// accepted, with no known region.
		{"+1 555 0100", "+15550100", ""},
		// Non-geographic numbers have no country.
		{"+800 1234 5678", "+80012345678", ""},
	}
	for _, tt := range tests {
		id, err := subject.Normalize(phone(tt.in))
		if err != nil {
			t.Errorf("Normalize(phone %q): %v", tt.in, err)
			continue
		}
		if id.Kind != subject.KindPhone || id.Value != tt.want {
			t.Errorf("Normalize(phone %q) = %v %q, want phone %q", tt.in, id.Kind, id.Value, tt.want)
		}
		if got := id.Country(); got != tt.country {
			t.Errorf("Normalize(phone %q).Country() = %q, want %q", tt.in, got, tt.country)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	tests := []struct{ in, want string }{
		{"bob@example.org", "bob@example.org"},
		{"Bob@Example.ORG", "bob@example.org"},
		{"BOB@EXAMPLE.ORG", "bob@example.org"},
		{" bob@example.org\t\n", "bob@example.org"},
		{"Bob.Smith+Newsletter@Mail.Example.ORG", "bob.smith+newsletter@mail.example.org"},
		{"o'brien@example.ie", "o'brien@example.ie"},
		// Internationalised domains become A-labels, in either spelling.
		{"Müller@Bücher.DE", "müller@xn--bcher-kva.de"},
		{"müller@XN--BCHER-KVA.de", "müller@xn--bcher-kva.de"},
		// Canonically equivalent local parts (NFD "u" + U+0308) are unified.
		{"Mu\u0308ller@example.de", "müller@example.de"},
	}
	for _, tt := range tests {
		id, err := subject.Normalize(email(tt.in))
		if err != nil {
			t.Errorf("Normalize(email %q): %v", tt.in, err)
			continue
		}
		if id.Kind != subject.KindEmail || id.Value != tt.want {
			t.Errorf("Normalize(email %q) = %v %q, want email %q", tt.in, id.Kind, id.Value, tt.want)
		}
	}
}

func TestNormalizeExternalID(t *testing.T) {
	long := strings.Repeat("x", subject.MaxExternalIDLength)
	tests := []struct{ in, want string }{
		{"cust-42", "cust-42"},
		{"  Cust-42 \n", "Cust-42"}, // trimmed, case kept
		{"CRM:0001/a b", "CRM:0001/a b"},
		{"kunde-äöü-名前", "kunde-äöü-名前"},
		{long, long},
	}
	for _, tt := range tests {
		id, err := subject.Normalize(externalID(tt.in))
		if err != nil {
			t.Errorf("Normalize(external_id %q): %v", tt.in, err)
			continue
		}
		if id.Kind != subject.KindExternalID || id.Value != tt.want {
			t.Errorf("Normalize(external_id %q) = %v %q, want external_id %q", tt.in, id.Kind, id.Value, tt.want)
		}
	}
}

func TestNormalizeErrors(t *testing.T) {
	tests := []struct {
		name  string
		in    *consentledgerv1.Subject
		field string
		// reason must contain this.
		reason string
	}{
		{"nil subject", nil, "subject", "one of phone, email or external_id is required"},
		{"no identifier", &consentledgerv1.Subject{}, "subject", "one of phone, email or external_id is required"},
		{"nil phone wrapper", &consentledgerv1.Subject{Id: (*consentledgerv1.Subject_Phone)(nil)}, "subject", "is required"},
		{"nil email wrapper", &consentledgerv1.Subject{Id: (*consentledgerv1.Subject_Email)(nil)}, "subject", "is required"},
		{"nil external_id wrapper", &consentledgerv1.Subject{Id: (*consentledgerv1.Subject_ExternalId)(nil)}, "subject", "is required"},

		{"empty phone", phone(""), "subject.phone", "must not be empty"},
		{"blank phone", phone("   "), "subject.phone", "must not be empty"},
		{"national format", phone("0170 123"), "subject.phone", `"0170 123" is not in international format; write it with a country code, like +49 170 1234567`},
		{"national format 2", phone("(202) 555-0143"), "subject.phone", "is not in international format"},
		{"letters", phone("+1 800 FLOWERS"), "subject.phone", `contains 'F'`},
		{"extension", phone("+49 170 1234567 ext. 12"), "subject.phone", `contains 'e'`},
		{"tel uri", phone("tel:+49-170-1234567"), "subject.phone", "is not in international format"},
		{"slash", phone("+49 170/1234567"), "subject.phone", `contains '/'`},
		{"second plus", phone("00+49 170 1234567"), "subject.phone", `contains '+'`},
		{"plus only", phone("+"), "subject.phone", "has no digits"},
		{"separators only", phone("+ ( ) -"), "subject.phone", "has no digits"},
		{"too short", phone("+49 1"), "subject.phone", "too short"},
		{"too short for country", phone("+33 6 12"), "subject.phone", "too short"},
		{"too long for country", phone("+33 6 12 34 56 78 90 12"), "subject.phone", "too long"},
		{"unknown country code", phone("+999 1234567"), "subject.phone", "valid country code"},
		{"zero country code", phone("+0049 170 1234567"), "subject.phone", "valid country code"},
		{"too long input", phone("+49 170 " + strings.Repeat("1", 60)), "subject.phone", "too long"},
		{"invalid utf-8", phone("+49 170\xff1234567"), "subject.phone", "UTF-8"},
		{"nul", phone("+49 170\x001234567"), "subject.phone", `contains '\x00'`},
		{"double trunk prefix", phone("+49 (0) 0170 1234567"), "subject.phone", "cannot be normalised unambiguously"},

		{"empty email", email(""), "subject.email", "must not be empty"},
		{"not an address", email("bob"), "subject.email", "is not an e-mail address"},
		{"no local part", email("@example.org"), "subject.email", "is not an e-mail address"},
		{"two at signs", email("a@b@example.org"), "subject.email", "is not an e-mail address"},
		{"display name", email("Bob <bob@example.org>"), "subject.email", "is not a bare e-mail address"},
		{"angle brackets", email("<bob@example.org>"), "subject.email", "is not a bare e-mail address"},
		{"quoted display name", email(`"Bob Smith" <bob@example.org>`), "subject.email", "is not a bare e-mail address"},
		{"comment", email("bob@example.org (Bob)"), "subject.email", "is not a bare e-mail address"},
		{"quoted local part", email(`"bob smith"@example.org`), "subject.email", "is not a bare e-mail address"},
		{"no dot in domain", email("bob@localhost"), "subject.email", "no complete domain name"},
		{"domain literal", email("bob@[192.0.2.1]"), "subject.email", "invalid domain name"},
		{"underscore in domain", email("bob@ex_ample.org"), "subject.email", "invalid domain name"},
		{"two addresses", email("a@example.org, b@example.org"), "subject.email", "is not an e-mail address"},
		{"too long email", email(strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".org"), "subject.email", "too long"},
		{"invalid utf-8 email", email("b\xff@example.org"), "subject.email", "UTF-8"},
		// U+037E is canonically equivalent to ';', which is not allowed.
		{"greek question mark", email("a\u037e@example.org"), "subject.email", "is not an e-mail address"},
		// IDNA maps U+2135 to a Hebrew letter whose A-label fails the bidi rule.
		{"unstable domain", email("a@\u2135x.org"), "subject.email", "invalid domain name"},

		{"empty external_id", externalID(""), "subject.external_id", "must not be empty"},
		{"blank external_id", externalID(" \t\n"), "subject.external_id", "must not be empty"},
		{"too long external_id", externalID(strings.Repeat("x", subject.MaxExternalIDLength+1)), "subject.external_id", "too long (257 bytes; at most 256)"},
		{"control character", externalID("cust\x0042"), "subject.external_id", "control character U+0000"},
		{"inner newline", externalID("cust\n42"), "subject.external_id", "control character U+000A"},
		{"C1 control", externalID("cust\u008542"), "subject.external_id", "control character U+0085"},
		{"invalid utf-8 external_id", externalID("cust\xc3"), "subject.external_id", "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := subject.Normalize(tt.in)
			if err == nil {
				t.Fatalf("Normalize succeeded with %v %q, want error", id.Kind, id.Value)
			}
			if id != (subject.Identifier{}) {
				t.Errorf("Normalize returned non-zero Identifier %#v with error", id)
			}
			var fe *subject.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a *FieldError", err, err)
			}
			if fe.Field != tt.field {
				t.Errorf("Field = %q, want %q (error: %v)", fe.Field, tt.field, err)
			}
			if !strings.Contains(fe.Reason, tt.reason) {
				t.Errorf("Reason = %q, want it to contain %q", fe.Reason, tt.reason)
			}
			if got, want := err.Error(), fe.Field+": "+fe.Reason; got != want {
				t.Errorf("Error() = %q, want %q", got, want)
			}
			if r := fe.Reason; r == "" || strings.HasSuffix(r, ".") || r[0] >= 'A' && r[0] <= 'Z' {
				t.Errorf("Reason %q should be non-empty, start lower case and have no trailing period", r)
			}
		})
	}
}

// The example message from the API documentation, verbatim.
func TestNormalizeErrorMessage(t *testing.T) {
	_, err := subject.Normalize(phone("0170 123"))
	const want = `subject.phone: "0170 123" is not in international format; write it with a country code, like +49 170 1234567`
	if err == nil || err.Error() != want {
		t.Errorf("Normalize(phone %q) error = %v, want %s", "0170 123", err, want)
	}
}

func TestCountry(t *testing.T) {
	tests := []struct {
		id   subject.Identifier
		want string
	}{
		{subject.Identifier{Kind: subject.KindPhone, Value: "+491701234567"}, "DE"},
		{subject.Identifier{Kind: subject.KindPhone, Value: "+33612345678"}, "FR"},
		{subject.Identifier{Kind: subject.KindPhone, Value: "+12025550143"}, "US"},
		{subject.Identifier{Kind: subject.KindPhone, Value: "+442079460958"}, "GB"},
		{subject.Identifier{Kind: subject.KindPhone, Value: "+80012345678"}, ""},
		{subject.Identifier{Kind: subject.KindPhone, Value: "not a number"}, ""},
		{subject.Identifier{Kind: subject.KindPhone, Value: ""}, ""},
		{subject.Identifier{Kind: subject.KindEmail, Value: "+491701234567"}, ""},
		{subject.Identifier{Kind: subject.KindExternalID, Value: "+491701234567"}, ""},
		{subject.Identifier{}, ""},
	}
	for _, tt := range tests {
		if got := tt.id.Country(); got != tt.want {
			t.Errorf("Identifier{%v, %q}.Country() = %q, want %q", tt.id.Kind, tt.id.Value, got, tt.want)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[subject.Kind]string{
		subject.KindPhone:      "phone",
		subject.KindEmail:      "email",
		subject.KindExternalID: "external_id",
		0:                      "Kind(0)",
		9:                      "Kind(9)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}

// An Identifier formatted or logged by accident must not reveal its value.
func TestIdentifierRedacted(t *testing.T) {
	id := subject.Identifier{Kind: subject.KindEmail, Value: "bob@example.org"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "subject", id)
	for _, s := range []string{
		fmt.Sprint(id), fmt.Sprintf("%v %+v %#v %s", id, id, id, id), fmt.Sprint(&id), buf.String(),
	} {
		if strings.Contains(s, "bob") {
			t.Errorf("formatted Identifier leaks its value: %s", s)
		}
	}
	if got := fmt.Sprint(id); got != "email(redacted)" {
		t.Errorf("String() = %q, want %q", got, "email(redacted)")
	}
	if !strings.Contains(buf.String(), `"subject":{"kind":"email"}`) {
		t.Errorf("slog output %s lacks the kind", buf.String())
	}
}

var testKey = bytes.Repeat([]byte{0x42}, subject.KeySize)

func TestTableKey(t *testing.T) {
	value := "+491701234567"
	phoneID := subject.Identifier{Kind: subject.KindPhone, Value: value}

	// Known answer: HMAC-SHA256(0x00..0x1f, 0x01 || value), computed with
	// Python's hmac module.
	seqKey := make([]byte, 32)
	for i := range seqKey {
		seqKey[i] = byte(i)
	}
	got := subject.TableKey(seqKey, phoneID)
	const want = "9eb7b5bb1613d61a09151f510c72401582a662f748742f61c081eaa10a65eb73"
	if hex.EncodeToString(got[:]) != want {
		t.Errorf("TableKey = %x, want %s", got, want)
	}
	mac := hmac.New(sha256.New, seqKey)
	mac.Write(append([]byte{1}, value...))
	if !bytes.Equal(got[:], mac.Sum(nil)) {
		t.Errorf("TableKey = %x, want HMAC %x", got, mac.Sum(nil))
	}

	if first, again := subject.TableKey(testKey, phoneID), subject.TableKey(testKey, phoneID); first != again {
		t.Errorf("TableKey is not deterministic: %x, then %x", first, again)
	}
	// The same value under different kinds must not collide.
	keys := map[[32]byte]subject.Kind{}
	for _, k := range []subject.Kind{subject.KindPhone, subject.KindEmail, subject.KindExternalID} {
		tk := subject.TableKey(testKey, subject.Identifier{Kind: k, Value: value})
		if other, dup := keys[tk]; dup {
			t.Errorf("TableKey is the same for kinds %v and %v", other, k)
		}
		keys[tk] = k
	}
	otherKey := bytes.Repeat([]byte{0x43}, subject.KeySize)
	if subject.TableKey(testKey, phoneID) == subject.TableKey(otherKey, phoneID) {
		t.Error("TableKey does not depend on the key")
	}
	if subject.TableKey(testKey, phoneID) == subject.TableKey(testKey, subject.Identifier{Kind: subject.KindPhone, Value: "+491701234568"}) {
		t.Error("TableKey does not depend on the value")
	}
}

func TestTableKeyPanicsOnBadKey(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("TableKey with a %d-byte key did not panic", n)
				}
			}()
			subject.TableKey(make([]byte, n), subject.Identifier{Kind: subject.KindPhone, Value: "+491701234567"})
		}()
	}
}

func TestCommitment(t *testing.T) {
	salt := make([]byte, subject.SaltSize)
	for i := range salt {
		salt[i] = byte(i)
	}
	id := subject.Identifier{Kind: subject.KindPhone, Value: "+491701234567"}
	got := subject.Commitment(salt, id)

	// By hand: SHA-256 over the salt bytes followed by the value bytes.
	byHand := sha256.Sum256(append(append([]byte{}, salt...), "+491701234567"...))
	if got != byHand {
		t.Errorf("Commitment = %x, want %x", got, byHand)
	}
	// The same known answer, computed independently with sha256sum(1).
	const want = "b6cafb07b98db362279d2f1116be5b407c4437e20bfe37274dc9834bbc361eb4"
	if hex.EncodeToString(got[:]) != want {
		t.Errorf("Commitment = %x, want %s", got, want)
	}
	// The commitment binds the value only; the kind is not part of it.
	if subject.Commitment(salt, subject.Identifier{Kind: subject.KindExternalID, Value: id.Value}) != got {
		t.Error("Commitment depends on the kind")
	}
}

func TestCheckCommitment(t *testing.T) {
	salt, err := subject.NewSalt()
	if err != nil {
		t.Fatal(err)
	}
	value := "bob@example.org"
	c := subject.Commitment(salt, subject.Identifier{Kind: subject.KindEmail, Value: value})

	if !subject.CheckCommitment(c[:], salt, value) {
		t.Error("CheckCommitment(right commitment, salt, value) = false")
	}
	otherSalt := bytes.Clone(salt)
	otherSalt[0] ^= 1
	flipped := c
	flipped[31] ^= 0x80
	for name, tc := range map[string]struct {
		c, salt []byte
		value   string
	}{
		"other value":          {c[:], salt, "alice@example.org"},
		"unnormalised value":   {c[:], salt, "Bob@Example.org"},
		"other salt":           {c[:], otherSalt, value},
		"no salt":              {c[:], nil, value},
		"flipped bit":          {flipped[:], salt, value},
		"truncated commitment": {c[:31], salt, value},
		"nil commitment":       {nil, salt, value},
	} {
		if subject.CheckCommitment(tc.c, tc.salt, tc.value) {
			t.Errorf("CheckCommitment with %s = true, want false", name)
		}
	}
}

func TestNewSubjectID(t *testing.T) {
	re := regexp.MustCompile(`^subj_[a-z2-7]{26}$`)
	dec := base32.StdEncoding.WithPadding(base32.NoPadding)
	seen := map[string]bool{}
	for range 1000 {
		id, err := subject.NewSubjectID()
		if err != nil {
			t.Fatal(err)
		}
		if !re.MatchString(id) {
			t.Fatalf("NewSubjectID() = %q, want it to match %s", id, re)
		}
		b, err := dec.DecodeString(strings.ToUpper(strings.TrimPrefix(id, "subj_")))
		if err != nil || len(b) != 16 {
			t.Fatalf("NewSubjectID() = %q does not decode to 16 bytes: %v %x", id, err, b)
		}
		if seen[id] {
			t.Fatalf("NewSubjectID() returned %q twice", id)
		}
		seen[id] = true
	}
}

func TestNewSalt(t *testing.T) {
	a, err := subject.NewSalt()
	if err != nil {
		t.Fatal(err)
	}
	b, err := subject.NewSalt()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 || len(b) != 32 {
		t.Fatalf("NewSalt lengths = %d, %d, want 32", len(a), len(b))
	}
	if bytes.Equal(a, b) {
		t.Error("NewSalt returned the same salt twice")
	}
}

// subjectOf builds a Subject of the fuzzer's choice: kind 0 leaves the oneof
// unset, 4 sets a nil wrapper.
func subjectOf(kind uint8, raw string) *consentledgerv1.Subject {
	switch kind % 5 {
	case 1:
		return phone(raw)
	case 2:
		return email(raw)
	case 3:
		return externalID(raw)
	case 4:
		return &consentledgerv1.Subject{Id: (*consentledgerv1.Subject_Email)(nil)}
	}
	return &consentledgerv1.Subject{}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []struct {
		kind uint8
		raw  string
	}{
		{1, "+49 170 1234567"},
		{1, "0049 (0)170 123-45.67"},
		{1, "+1 555 0100"},
		{1, "+49 (0) 0170 1234567"},
		{2, "Bob@Example.ORG"},
		{2, "Müller@Bücher.DE"},
		{2, "Bob <b@x.org>"},
		{3, " cust-42 "},
		{3, "a\x00b"},
		{0, ""},
	} {
		f.Add(s.kind, s.raw)
	}
	allowed := map[string]bool{"subject": true, "subject.phone": true, "subject.email": true, "subject.external_id": true}
	f.Fuzz(func(t *testing.T, kind uint8, raw string) {
		in := subjectOf(kind, raw)
		id, err := subject.Normalize(in)
		if err != nil {
			var fe *subject.FieldError
			if !errors.As(err, &fe) || !allowed[fe.Field] || fe.Reason == "" {
				t.Fatalf("Normalize(%v %q) error %v (%T) is not a *FieldError naming a subject field", kind%5, raw, err, err)
			}
			return
		}
		if want := subject.Kind(kind % 5); id.Kind != want {
			t.Fatalf("Normalize(%v %q).Kind = %v, want %v", kind%5, raw, id.Kind, want)
		}
		again, err := subject.Normalize(subjectOf(uint8(id.Kind), id.Value))
		if err != nil {
			t.Fatalf("Normalize(%v %q) = %q, which does not normalise again: %v", id.Kind, raw, id.Value, err)
		}
		if again != id {
			t.Fatalf("Normalize(%v %q) = %q, but normalising that gives %q", id.Kind, raw, id.Value, again.Value)
		}
		_ = id.Country()
		_ = subject.TableKey(testKey, id)
	})
}
