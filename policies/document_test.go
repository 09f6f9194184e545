package policies

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

func ptr(i uint64) *uint64 { return &i }

// benchDocument is benchInput as an Input.
var benchDocument = Input{
	Now: "2026-11-26T10:00:00Z",
	Request: InputRequest{
		Channel: "whatsapp", Purpose: "marketing", Category: "marketing",
		ProviderName: "eu-bsp", ProviderRegion: "EU",
		SubjectTimezone: "Europe/Berlin", MessageRef: "order-123",
	},
	Subject: InputSubject{Known: true, Country: "DE", Consents: []InputConsent{
		{Channel: "whatsapp", Purpose: "marketing", Status: "granted", GrantedAt: "2026-01-05T09:00:00Z", Method: "checkout",
			NoticeVersion: "2026-01", DoubleOptIn: true, ConfirmedAt: "2026-01-05T09:10:00Z",
			LastAllowedSendAt: "2026-11-20T10:00:00Z", GrantIndex: ptr(12), ConfirmationIndex: ptr(13)},
		{Channel: "sms", Purpose: "marketing", Status: "withdrawn", GrantedAt: "2025-03-01T09:00:00Z", Method: "web_form",
			NoticeVersion: "2025-02", DoubleOptIn: true, WithdrawnAt: "2026-02-01T08:00:00Z",
			GrantIndex: ptr(3), WithdrawalIndex: ptr(20)},
		{Channel: "whatsapp", Purpose: "order_updates", Status: "granted", GrantedAt: "2026-01-05T09:00:00Z", Method: "checkout",
			NoticeVersion: "2026-01", GrantIndex: ptr(12)},
	}},
	Breaches: []InputBreach{{BreachID: "br-1", Status: "open", Channels: []string{"email"}, DetectedAt: "2026-11-25T08:00:00Z"}},
}

func TestInputDocumentIsBenchInput(t *testing.T) {
	want, err := ParseInput([]byte(benchInput))
	if err != nil {
		t.Fatal(err)
	}
	if got := benchDocument.Value(); got.Compare(want) != 0 {
		t.Errorf("Value() =\n%v\nwant (benchInput)\n%v", got, want)
	}
	const compact = `{"breaches":[{"breach_id":"br-1","channels":["email"],"detected_at":"2026-11-25T08:00:00Z","status":"open"}],` +
		`"now":"2026-11-26T10:00:00Z","request":{"category":"marketing","channel":"whatsapp","message_ref":"order-123",` +
		`"provider":{"name":"eu-bsp","region":"EU"},"purpose":"marketing","service_window_open":false,"subject_timezone":"Europe/Berlin"},` +
		`"subject":{"consents":{"sms":{"marketing":{"double_opt_in":true,"grant_index":3,"granted_at":"2025-03-01T09:00:00Z",` +
		`"method":"web_form","notice_version":"2025-02","status":"withdrawn","withdrawal_index":20,"withdrawn_at":"2026-02-01T08:00:00Z"}},` +
		`"whatsapp":{"marketing":{"confirmation_index":13,"confirmed_at":"2026-01-05T09:10:00Z","double_opt_in":true,"grant_index":12,` +
		`"granted_at":"2026-01-05T09:00:00Z","last_allowed_send_at":"2026-11-20T10:00:00Z","method":"checkout","notice_version":"2026-01",` +
		`"status":"granted"},"order_updates":{"double_opt_in":false,"grant_index":12,"granted_at":"2026-01-05T09:00:00Z",` +
		`"method":"checkout","notice_version":"2026-01","status":"granted"}}},"country":"DE","known":true}}`
	if got := string(AppendJSON(nil, benchDocument.Value())); got != compact {
		t.Errorf("AppendJSON(Value()) =\n%s\nwant\n%s", got, compact)
	}
}

// checkDocument checks the promise of Input: AppendJSON of its Value is
// valid JSON, encoding/json reads the same document, and ParseInput of it
// equals the Value.
func checkDocument(t *testing.T, in *Input) {
	t.Helper()
	v := in.Value()
	b := AppendJSON(nil, v)
	if !json.Valid(b) {
		t.Fatalf("AppendJSON(Value()) is not valid JSON: %q", b)
	}
	parsed, err := ParseInput(b)
	if err != nil {
		t.Fatalf("ParseInput(AppendJSON(Value())) = %v for %q", err, b)
	}
	if parsed.Compare(v) != 0 {
		t.Fatalf("ParseInput(AppendJSON(Value())) =\n%v\nValue() =\n%v", parsed, v)
	}
	var fromJSON any
	if err := json.Unmarshal(b, &fromJSON); err != nil {
		t.Fatal(err)
	}
	fromAST, err := ast.JSON(v)
	if err != nil {
		t.Fatal(err)
	}
	// encoding/json decodes numbers as float64; compare through a round trip.
	roundTrip, _ := json.Marshal(fromAST)
	var want any
	_ = json.Unmarshal(roundTrip, &want)
	if !reflect.DeepEqual(fromJSON, want) {
		t.Fatalf("encoding/json reads AppendJSON(Value()) as\n%v\nwant\n%v", fromJSON, want)
	}
}

// oddStrings are strings an encoder gets wrong: escapes, control
// characters, invalid UTF-8, non-ASCII, and JSON-looking text.
var oddStrings = []string{
	"", "marketing", "whatsapp", `quo"te`, `back\slash`, "new\nline", "tab\t", "\x00\x01\x1f", "\x7f",
	"\xff", "a\xffb\xfe", "\xed\xa0\x80", "é", "日本", "😀", "\u2028\u2029", "<>&", `{"a":1}`, "Europe/Berlin",
}

func randomDocument(r *rand.Rand) *Input {
	s := func() string { return oddStrings[r.IntN(len(oddStrings))] }
	idx := func() *uint64 {
		switch r.IntN(4) {
		case 0:
			return nil
		case 1:
			return ptr(math.MaxUint64)
		}
		return ptr(r.Uint64N(1 << uint(r.IntN(64))))
	}
	in := &Input{
		Now: s(),
		Request: InputRequest{Channel: s(), Purpose: s(), Category: s(), ProviderName: s(), ProviderRegion: s(),
			SubjectTimezone: s(), ServiceWindowOpen: r.IntN(2) == 0, MessageRef: s(), LegalBasis: s()},
		Subject: InputSubject{Known: r.IntN(2) == 0, Country: s()},
	}
	if i := idx(); i != nil {
		in.Subject.Objection = &InputObjection{At: s(), Index: *i}
	}
	for range r.IntN(6) {
		in.Subject.Consents = append(in.Subject.Consents, InputConsent{
			Channel: s(), Purpose: s(), Status: s(), GrantedAt: s(), Method: s(), NoticeVersion: s(),
			DoubleOptIn: r.IntN(2) == 0, ConfirmedAt: s(), ConfirmedVia: s(), WithdrawnAt: s(), LastAllowedSendAt: s(),
			GrantIndex: idx(), ConfirmationIndex: idx(), WithdrawalIndex: idx(),
		})
	}
	for range r.IntN(3) {
		b := InputBreach{BreachID: s(), Status: s(), DetectedAt: s()}
		for range r.IntN(3) {
			b.Channels = append(b.Channels, s())
		}
		in.Breaches = append(in.Breaches, b)
	}
	return in
}

func TestInputDocumentEncodingsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		checkDocument(t, randomDocument(r))
	}
}

func TestInputDocumentLaterConsentWins(t *testing.T) {
	in := Input{Subject: InputSubject{Consents: []InputConsent{
		{Channel: "sms", Purpose: "marketing", Status: "granted"},
		{Channel: "whatsapp", Purpose: "marketing", Status: "granted"},
		{Channel: "sms", Purpose: "marketing", Status: "withdrawn"},
		{Channel: "\xff", Purpose: "a", Status: "granted"},
		{Channel: "\xfe", Purpose: "b", Status: "granted"}, // both channels read as U+FFFD
	}}}
	checkDocument(t, &in)
	v := in.Value().(ast.Object)
	consents := v.Get(ast.StringTerm("subject")).Value.(ast.Object).Get(ast.StringTerm("consents")).Value.(ast.Object)
	got := consents.Get(ast.StringTerm("sms")).Value.(ast.Object).Get(ast.StringTerm("marketing")).Value.(ast.Object).Get(ast.StringTerm("status"))
	if got.Value.Compare(ast.String("withdrawn")) != 0 {
		t.Errorf("sms/marketing status = %v, want the later record's \"withdrawn\"", got)
	}
	if n := consents.Get(ast.StringTerm("\uFFFD")).Value.(ast.Object).Len(); n != 2 {
		t.Errorf("channel U+FFFD has %d purposes, want 2 (a and b)", n)
	}
}

// FuzzInputDocument checks checkDocument's promise for documents made of
// arbitrary strings.
func FuzzInputDocument(f *testing.F) {
	f.Add("2026-11-26T10:00:00Z", "whatsapp", "marketing", "granted", "\xff\"\\\n", uint64(12))
	f.Add("", "", "", "", "", uint64(math.MaxUint64))
	f.Fuzz(func(t *testing.T, now, channel, purpose, status, text string, index uint64) {
		in := &Input{
			Now:     now,
			Request: InputRequest{Channel: channel, Purpose: purpose, Category: text, ProviderName: text, ProviderRegion: status, SubjectTimezone: text, MessageRef: text},
			Subject: InputSubject{Country: text, Consents: []InputConsent{
				{Channel: channel, Purpose: purpose, Status: status, GrantedAt: now, Method: text, GrantIndex: &index},
				{Channel: text, Purpose: status, Status: text, WithdrawnAt: text, WithdrawalIndex: &index},
			}},
			Breaches: []InputBreach{{BreachID: text, Status: status, Channels: []string{channel, text}, DetectedAt: now}},
		}
		checkDocument(t, in)
	})
}

// The fields added for issue 9 appear only when set, so documents of
// earlier decisions keep their shape, and in their sorted places.
func TestInputDocumentOptionalFields(t *testing.T) {
	in := benchDocument
	in.Request.LegalBasis = "contract"
	in.Subject.Objection = &InputObjection{At: "2026-06-01T10:00:00Z", Index: 90}
	in.Subject.Consents = []InputConsent{{Channel: "sms", Purpose: "marketing", Status: "granted", DoubleOptIn: true, ConfirmedVia: "email"}}
	checkDocument(t, &in)
	got := string(AppendJSON(nil, in.Value()))
	for _, want := range []string{
		`"channel":"whatsapp","legal_basis":"contract","message_ref":"order-123"`,
		`"confirmed_via":"email","double_opt_in":true`,
		`"known":true,"objection":{"at":"2026-06-01T10:00:00Z","index":90}}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("AppendJSON = %s\nwant it to contain %s", got, want)
		}
	}
	plain := string(AppendJSON(nil, benchDocument.Value()))
	for _, absent := range []string{"legal_basis", "objection", "confirmed_via"} {
		if strings.Contains(plain, absent) {
			t.Errorf("a document without %s shows it: %s", absent, plain)
		}
	}
}
