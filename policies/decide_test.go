package policies

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
)

// defaultSet compiles the default policy once for all tests.
var defaultSet = sync.OnceValues(func() (*Set, error) {
	return Compile(context.Background(), Default())
})

func mustDefault(t testing.TB) *Set {
	t.Helper()
	s, err := defaultSet()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// obj is a JSON object under construction.
type obj = map[string]any

// grant is a double-opt-in consent record as the ledger reports it.
func grant() obj {
	return obj{
		"status":             "granted",
		"granted_at":         "2026-01-05T09:00:00Z",
		"method":             "checkout",
		"notice_version":     "2026-01",
		"double_opt_in":      true,
		"confirmed_at":       "2026-01-05T09:10:00Z",
		"grant_index":        12,
		"confirmation_index": 13,
	}
}

// baseInput is a marketing WhatsApp message to a German subject on a
// Thursday at 11:00 Berlin time, with a double-opt-in marketing consent.
func baseInput() obj {
	return obj{
		"now": "2026-11-26T10:00:00Z",
		"request": obj{
			"channel":             "whatsapp",
			"purpose":             "marketing",
			"category":            "marketing",
			"provider":            obj{"name": "eu-bsp", "region": "EU"},
			"subject_timezone":    "Europe/Berlin",
			"service_window_open": false,
			"message_ref":         "order-123",
		},
		"subject": obj{
			"known":    true,
			"country":  "DE",
			"consents": obj{"whatsapp": obj{"marketing": grant()}},
		},
		"breaches": []any{},
	}
}

// with returns a deep copy of base with patch merged in: objects merge key
// by key, any other value (nil included) replaces.
func with(base obj, patch obj) obj {
	out := maps.Clone(base)
	for k, v := range patch {
		if pv, ok := v.(obj); ok {
			if bv, ok := out[k].(obj); ok {
				out[k] = with(bv, pv)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func consents(c obj) obj { return obj{"subject": obj{"consents": nil}, "__consents": c} }

// build marshals an input; a "__consents" key replaces the consents object.
func build(t testing.TB, patch obj) []byte {
	t.Helper()
	in := with(baseInput(), patch)
	if c, ok := in["__consents"]; ok {
		delete(in, "__consents")
		in["subject"].(obj)["consents"] = c
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	consentReason = "consent: opt-in for whatsapp/marketing granted 2026-01-05 by checkout (notice 2026-01)"
	doiReason     = "double_opt_in: marketing opt-in for whatsapp/marketing was confirmed by double opt-in"
)

func TestDecideDefaultPolicy(t *testing.T) {
	s := mustDefault(t)
	order := obj{"status": "granted", "granted_at": "2026-01-05T09:00:00Z", "method": "web_form", "notice_version": "2026-01"}
	withdrawn := with(grant(), obj{"status": "withdrawn", "withdrawn_at": "2026-03-01T12:00:00Z", "withdrawal_index": 40})
	single := with(grant(), obj{"double_opt_in": false})
	delete(single, "confirmed_at")
	old := with(grant(), obj{"granted_at": "2024-06-01T09:00:00Z"})
	breach := obj{"breach_id": "br-1", "status": "open", "channels": []any{"whatsapp"}, "detected_at": "2026-11-25T08:00:00Z"}
	rcsGrant := with(grant(), obj{"granted_at": "2026-02-01T09:00:00Z", "grant_index": 20})
	smsOut := with(withdrawn, obj{"withdrawal_index": 30})
	tests := []struct {
		name   string
		patch  obj
		allow  bool
		want   []string // exact reasons, if set
		prefix string   // otherwise: one reason must start with this code
	}{
		{name: "consent granted", patch: obj{}, allow: true, want: []string{consentReason, doiReason}},
		{name: "no consent", patch: consents(obj{}), want: []string{"no_consent: no opt-in for whatsapp/marketing"}},
		{name: "consent on another channel only", patch: consents(obj{"sms": obj{"marketing": grant()}}), want: []string{"no_consent: no opt-in for whatsapp/marketing"}},
		{name: "withdrawn", patch: consents(obj{"whatsapp": obj{"marketing": withdrawn}}), want: []string{"consent_withdrawn: opt-in for whatsapp/marketing was withdrawn 2026-03-01"}},
		{name: "erased", patch: consents(obj{"whatsapp": obj{"marketing": obj{"status": "erased"}}}), prefix: "subject_erased: "},
		{name: "non-marketing with consent", allow: true,
			patch: with(consents(obj{"sms": obj{"order_updates": order}}), obj{"request": obj{"channel": "sms", "purpose": "order_updates", "category": ""}}),
			want:  []string{"consent: opt-in for sms/order_updates granted 2026-01-05 by web_form (notice 2026-01)"}},

		{name: "stale consent", patch: consents(obj{"whatsapp": obj{"marketing": old}}), prefix: "consent_stale: "},
		{name: "old consent used recently", allow: true, patch: consents(obj{"whatsapp": obj{"marketing": with(old, obj{"last_allowed_send_at": "2026-01-10T10:00:00Z"})}})},
		{name: "old non-marketing consent", allow: true,
			patch: with(consents(obj{"whatsapp": obj{"order_updates": with(order, obj{"granted_at": "2020-01-01T00:00:00Z"})}}), obj{"request": obj{"purpose": "order_updates", "category": "utility"}})},

		{name: "marketing without double opt-in", patch: consents(obj{"whatsapp": obj{"marketing": single}}),
			want: []string{"double_opt_in_required: marketing opt-in for whatsapp/marketing was not confirmed by double opt-in"}},
		{name: "non-marketing without double opt-in", allow: true,
			patch: with(consents(obj{"whatsapp": obj{"order_updates": single}}), obj{"request": obj{"purpose": "order_updates", "category": "utility"}})},

		{name: "non-EU WhatsApp provider", patch: obj{"request": obj{"provider": obj{"name": "us-bsp", "region": "US"}}},
			want: []string{`provider_region_not_allowed: WhatsApp provider us-bsp is in region "US", allowed are EU, EEA`}},
		{name: "EEA WhatsApp provider", allow: true, patch: obj{"request": obj{"provider": obj{"name": "no-bsp", "region": "EEA"}}}},
		{name: "non-EU SMS provider", allow: true,
			patch: with(consents(obj{"sms": obj{"marketing": grant()}}), obj{"request": obj{"channel": "sms", "category": "", "provider": obj{"name": "us", "region": "US"}}})},

		{name: "quiet hours DE 22:30", patch: obj{"now": "2026-11-26T21:30:00Z"},
			want: []string{"quiet_hours: 22:30 in Europe/Berlin is inside the marketing quiet hours 22:00-08:00 by default"}},
		{name: "DE 21:59", allow: true, patch: obj{"now": "2026-11-26T20:59:00Z"}},
		{name: "DE 08:00", allow: true, patch: obj{"now": "2026-11-26T07:00:00Z"}},
		{name: "quiet hours FR 20:30", patch: obj{"now": "2026-11-26T19:30:00Z", "request": obj{"subject_timezone": "Europe/Paris"}, "subject": obj{"country": "FR"}},
			want: []string{"quiet_hours: 20:30 in Europe/Paris is inside the marketing quiet hours 20:00-08:00 for FR"}},
		{name: "FR Sunday", patch: obj{"now": "2026-11-29T10:00:00Z", "request": obj{"subject_timezone": "Europe/Paris"}, "subject": obj{"country": "FR"}},
			want: []string{"quiet_hours: Sunday in Europe/Paris is a marketing rest day for FR"}},
		{name: "FR Thursday 11:00", allow: true, patch: obj{"request": obj{"subject_timezone": "Europe/Paris"}, "subject": obj{"country": "FR"}}},
		{name: "US 21:30 New York", patch: obj{"now": "2026-11-27T02:30:00Z", "request": obj{"subject_timezone": "America/New_York"}, "subject": obj{"country": "US"}}, prefix: "quiet_hours: 21:30 in America/New_York"},
		{name: "US 20:30 New York", allow: true, patch: obj{"now": "2026-11-27T01:30:00Z", "request": obj{"subject_timezone": "America/New_York"}, "subject": obj{"country": "US"}}},
		{name: "empty zone uses default", patch: obj{"now": "2026-11-26T21:30:00Z", "request": obj{"subject_timezone": ""}}, prefix: "quiet_hours: 22:30 in Europe/Berlin"},
		{name: "non-marketing at night", allow: true,
			patch: with(consents(obj{"whatsapp": obj{"order_updates": order}}), obj{"now": "2026-11-26T23:00:00Z", "request": obj{"purpose": "order_updates", "category": "utility"}})},

		{name: "breach freezes marketing", patch: obj{"breaches": []any{breach}},
			want: []string{"breach_freeze: open breach br-1 affects whatsapp; marketing on it is frozen"}},
		{name: "breach on another channel", allow: true, patch: obj{"breaches": []any{with(breach, obj{"channels": []any{"sms"}})}}},
		{name: "breach and non-marketing", allow: true,
			patch: with(consents(obj{"whatsapp": obj{"order_updates": order}}), obj{"breaches": []any{breach}, "request": obj{"purpose": "order_updates", "category": "utility"}})},

		{name: "service window reply", allow: true,
			patch: with(consents(obj{}), obj{"request": obj{"purpose": "support", "category": "service", "service_window_open": true}}),
			want:  []string{"service_window: reply inside an open customer-service window needs no marketing consent"}},
		{name: "service window closed", patch: with(consents(obj{}), obj{"request": obj{"purpose": "support", "category": "service"}}),
			want: []string{"no_consent: no opt-in for whatsapp/support"}},
		{name: "marketing template in service window", patch: with(consents(obj{}), obj{"request": obj{"service_window_open": true}}),
			want: []string{"no_consent: no opt-in for whatsapp/marketing"}},
		{name: "service window keeps provider region",
			patch:  with(consents(obj{}), obj{"request": obj{"purpose": "support", "category": "service", "service_window_open": true, "provider": obj{"name": "us-bsp", "region": "US"}}}),
			prefix: "provider_region_not_allowed: "},

		{name: "marketing template relies on marketing consent", allow: true, patch: obj{"request": obj{"purpose": "order_updates"}},
			want: []string{consentReason, doiReason, "template_category: a marketing template counts as marketing, so it relies on the opt-in for whatsapp/marketing"}},
		{name: "marketing template without marketing consent",
			patch: with(consents(obj{"whatsapp": obj{"order_updates": order}}), obj{"request": obj{"purpose": "order_updates"}}),
			want:  []string{"no_consent: no opt-in for whatsapp/marketing"}},

		{name: "SMS opt-out covers RCS",
			patch: with(consents(obj{"rcs": obj{"marketing": rcsGrant}, "sms": obj{"marketing": smsOut}}), obj{"request": obj{"channel": "rcs", "category": ""}}),
			want:  []string{"opted_out_on_related_channel: opt-out on sms/marketing 2026-03-01 also covers rcs"}},
		{name: "RCS granted after SMS opt-out", allow: true,
			patch: with(consents(obj{"rcs": obj{"marketing": with(rcsGrant, obj{"grant_index": 50, "granted_at": "2026-04-01T00:00:00Z"})}, "sms": obj{"marketing": smsOut}}), obj{"request": obj{"channel": "rcs", "category": ""}})},
		{name: "SMS opt-out does not cover WhatsApp", allow: true, patch: consents(obj{"whatsapp": obj{"marketing": rcsGrant}, "sms": obj{"marketing": smsOut}})},

		{name: "every failing rule, sorted",
			patch: with(consents(obj{"whatsapp": obj{"marketing": single}}), obj{"now": "2026-11-26T22:30:00Z", "breaches": []any{breach}, "request": obj{"provider": obj{"name": "us-bsp", "region": "US"}}}),
			want: []string{
				"breach_freeze: open breach br-1 affects whatsapp; marketing on it is frozen",
				"double_opt_in_required: marketing opt-in for whatsapp/marketing was not confirmed by double opt-in",
				`provider_region_not_allowed: WhatsApp provider us-bsp is in region "US", allowed are EU, EEA`,
				"quiet_hours: 23:30 in Europe/Berlin is inside the marketing quiet hours 22:00-08:00 by default",
			}},
		{name: "missing now", patch: obj{"now": nil}, prefix: "invalid_input: now"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := s.Decide(t.Context(), build(t, tt.patch))
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tt.allow {
				t.Errorf("allow = %v, want %v (reasons %q)", d.Allow, tt.allow, d.Reasons)
			}
			if len(d.Reasons) == 0 || !slices.IsSorted(d.Reasons) {
				t.Errorf("reasons %q: want sorted and non-empty", d.Reasons)
			}
			if tt.want != nil && !slices.Equal(d.Reasons, tt.want) {
				t.Errorf("reasons:\n got %q\nwant %q", d.Reasons, tt.want)
			}
			if tt.prefix != "" && !slices.ContainsFunc(d.Reasons, func(r string) bool { return strings.HasPrefix(r, tt.prefix) }) {
				t.Errorf("reasons %q: want one starting %q", d.Reasons, tt.prefix)
			}
		})
	}
}

func TestDecideInvalidInput(t *testing.T) {
	s := mustDefault(t)
	for _, in := range []string{``, `null`, `[]`, `"x"`, `{`, `{} {}`, `{"a":1,"a":2}`, `{"now": 01}`, strings.Repeat(" ", MaxInputSize+1)} {
		_, err := s.Decide(t.Context(), []byte(in))
		if !errors.Is(err, ErrInvalidInput) {
			t.Errorf("Decide(%.20q) = %v, want ErrInvalidInput", in, err)
		}
	}
}

func TestDecideBuiltinErrorIsError(t *testing.T) {
	s := mustDefault(t)
	in := build(t, obj{"request": obj{"subject_timezone": "Mars/Olympus_Mons"}})
	if d, err := s.Decide(t.Context(), in); err == nil {
		t.Fatalf("Decide with an unknown time zone = %+v, want an error", d)
	}
	in = build(t, obj{"now": "yesterday"})
	if d, err := s.Decide(t.Context(), in); err == nil {
		t.Fatalf("Decide with a malformed now = %+v, want an error", d)
	}
}

func TestDecideNoOrMalformedDecision(t *testing.T) {
	inbound := File{Name: "inbound.rego", Content: "package consentledger.inbound\n\naction := \"none\"\n\nkeyword := \"\"\n"}
	tests := []struct {
		name, rego string
		want       error
	}{
		{"undefined", "package consentledger.send\n\ndecision := {\"allow\": true, \"reasons\": []} if input.never\n", ErrNoDecision},
		{"not an object", "package consentledger.send\n\ndecision := true\n", ErrMalformedDecision},
		{"allow not boolean", "package consentledger.send\n\ndecision := {\"allow\": \"yes\", \"reasons\": []}\n", ErrMalformedDecision},
		{"reasons not strings", "package consentledger.send\n\ndecision := {\"allow\": true, \"reasons\": [1]}\n", ErrMalformedDecision},
		{"deny without reasons", "package consentledger.send\n\ndecision := {\"allow\": false, \"reasons\": []}\n", ErrMalformedDecision},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile(t.Context(), []File{{Name: "send.rego", Content: tt.rego}, inbound})
			if err != nil {
				t.Fatal(err)
			}
			d, err := s.Decide(t.Context(), []byte(`{}`))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decide = %+v, %v; want %v", d, err, tt.want)
			}
		})
	}
}

func TestInbound(t *testing.T) {
	s := mustDefault(t)
	tests := []struct{ text, action, keyword string }{
		{"STOP", ActionOptOut, "STOP"},
		{" Stop  All ", ActionOptOut, "STOPALL"},
		{"stopall", ActionOptOut, "STOPALL"},
		{"unsubscribe", ActionOptOut, "UNSUBSCRIBE"},
		{"Abmelden", ActionOptOut, "ABMELDEN"},
		{"stopp", ActionOptOut, "STOPP"},
		{"ENDE", ActionOptOut, "ENDE"},
		{"arrêt", ActionOptOut, "ARRET"},
		{"Arrêter", ActionOptOut, "ARRETER"},
		{"baja", ActionOptOut, "BAJA"},
		{"Cancelar", ActionOptOut, "CANCELAR"},
		{"start", ActionOptIn, "START"},
		{"Ja", ActionOptIn, "JA"},
		{"alta", ActionOptIn, "ALTA"},
		{"help", ActionHelp, "HELP"},
		{"Hilfe", ActionHelp, "HILFE"},
		{"aide", ActionHelp, "AIDE"},
		{"please stop", ActionOptOut, "STOP"},
		{"STOP!", ActionOptOut, "STOP"},
		{"Stopp bitte", ActionOptOut, "STOPP"},
		{"keine Werbung mehr", ActionReview, "KEINE WERBUNG"},
		{"please stop texting me", ActionReview, "STOP"},
		{"hello", ActionNone, ""},
		{"", ActionNone, ""},
	}
	for _, tt := range tests {
		action, keyword, err := s.Inbound(t.Context(), tt.text)
		if err != nil {
			t.Fatal(err)
		}
		if action != tt.action || keyword != tt.keyword {
			t.Errorf("Inbound(%q) = %q, %q; want %q, %q", tt.text, action, keyword, tt.action, tt.keyword)
		}
	}
}

func TestReplayEqualsDecide(t *testing.T) {
	s := mustDefault(t)
	for _, patch := range []obj{{}, {"now": "2026-11-26T21:30:00Z"}, consents(obj{})} {
		in := build(t, patch)
		want, err := s.Decide(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // compiled, then cached
			got, err := Replay(t.Context(), s.Files(), in)
			if err != nil {
				t.Fatal(err)
			}
			if got.Allow != want.Allow || !slices.Equal(got.Reasons, want.Reasons) {
				t.Errorf("Replay = %+v, Decide = %+v", got, want)
			}
		}
	}
	// A different policy replays to its own answer.
	files := Default()
	for i := range files {
		if files[i].Name == DataFile {
			files[i].Content = strings.Replace(files[i].Content, `"quiet_hours": true`, `"quiet_hours": false`, 1)
		}
	}
	d, err := Replay(t.Context(), files, build(t, obj{"now": "2026-11-26T21:30:00Z"}))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allow {
		t.Errorf("Replay with quiet hours switched off = %+v, want allowed", d)
	}
}

func TestSetCacheBounded(t *testing.T) {
	c := &setCache{max: 2}
	a, b, d := &Set{digest: "a"}, &Set{digest: "b"}, &Set{digest: "d"}
	c.put(a)
	c.put(b)
	if c.get("a") != a { // a is now the most recently used
		t.Fatal("a missing")
	}
	c.put(d) // evicts b
	if c.get("b") != nil || c.get("a") != a || c.get("d") != d {
		t.Errorf("cache holds %v, want a and d", c.sets)
	}
}

func TestDecideConcurrent(t *testing.T) {
	s := mustDefault(t)
	allowed, denied := build(t, obj{}), build(t, obj{"now": "2026-11-26T21:30:00Z"})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				in, want := allowed, true
				if (i+j)%2 == 1 {
					in, want = denied, false
				}
				d, err := s.Decide(context.Background(), in)
				if err != nil || d.Allow != want {
					t.Errorf("Decide = %+v, %v; want allow %v", d, err, want)
					return
				}
				if _, _, err := s.Inbound(context.Background(), "STOP"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestEngineSwap(t *testing.T) {
	old := mustDefault(t)
	files := Default()
	for i := range files {
		if files[i].Name == DataFile {
			files[i].Content = strings.Replace(files[i].Content, `"EU", "EEA"`, `"EU", "EEA", "US"`, 1)
		}
	}
	// The set's own tests expect a US provider to be refused, so publishing
	// this data change alone is rejected, naming the tests it breaks ...
	_, err := Check(t.Context(), files)
	if tf, ok := errors.AsType[*TestFailure](err); !ok || !slices.ContainsFunc(tf.Failed, func(r TestResult) bool {
		return r.Name == "data.consentledger.send_test.test_deny_whatsapp_non_eu_provider"
	}) {
		t.Fatalf("Check = %v, want a TestFailure naming test_deny_whatsapp_non_eu_provider", err)
	}
	// ... but it compiles, and an engine can switch to it.
	next, err := Compile(t.Context(), files)
	if err != nil {
		t.Fatal(err)
	}
	if next.Digest() == old.Digest() {
		t.Fatal("changed set has the same digest")
	}
	e := NewEngine(old)
	in := build(t, obj{"request": obj{"provider": obj{"name": "us-bsp", "region": "US"}}})

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := e.Current()
				d, err := s.Decide(context.Background(), in)
				if err != nil {
					t.Error(err)
					return
				}
				// Each decision is made entirely by the set it was asked of.
				if want := s == next; d.Allow != want {
					t.Errorf("set %s: allow = %v, want %v", s.Digest(), d.Allow, want)
					return
				}
			}
		})
	}
	if got := e.Swap(next); got != old {
		t.Errorf("Swap returned %p, want the old set %p", got, old)
	}
	if e.Current() != next {
		t.Error("Current after Swap is not the new set")
	}
	close(stop)
	wg.Wait()

	var zero Engine
	if zero.Current() != nil {
		t.Error("zero Engine has a set")
	}
}
