package policies

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
)

// FuzzDecideInput feeds arbitrary bytes to Decide as the input document:
// it must never panic, and it returns either an error or a well-formed
// decision (a denial always with reasons, every reason "code: sentence").
func FuzzDecideInput(f *testing.F) {
	s, err := defaultSet()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(benchInput))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"now": "2026-11-26T21:30:00Z", "request": {"channel": "sms", "purpose": "marketing"}}`))
	f.Add([]byte(`{"now": 1, "request": [], "subject": {"consents": {"whatsapp": {"marketing": {"status": 7}}}}}`))
	f.Add([]byte(`{"now": "2026-11-29T10:00:00Z", "request": {"channel": "rcs", "purpose": "marketing", "subject_timezone": "Europe/Paris"}, "subject": {"country": "FR"}}`))
	f.Add([]byte(`{"breaches": [{"channels": "whatsapp"}], "request": {"channel": "whatsapp"}}`))
	f.Add([]byte(`[1, 2]`))
	f.Add([]byte(`{"a": "\ud800", "b": 1e999}`))
	for _, in := range []map[string]any{baseInput(), with(baseInput(), map[string]any{"now": "2026-11-26T22:30:00Z"})} {
		b, _ := json.Marshal(in)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		d, err := s.Decide(t.Context(), input)
		if err != nil {
			return
		}
		if !d.Allow && len(d.Reasons) == 0 {
			t.Fatalf("denial without reasons for %q", input)
		}
		for _, r := range d.Reasons {
			code, sentence, ok := strings.Cut(r, ": ")
			if !ok || code == "" || sentence == "" {
				t.Fatalf("reason %q is not \"code: sentence\" (input %q)", r, input)
			}
		}
	})
}

// FuzzParseInput checks ParseInput against the slow reference
// (util.UnmarshalJSON, then ast.InterfaceToValue): where ParseInput accepts
// an input, both give the same value.
func FuzzParseInput(f *testing.F) {
	f.Add([]byte(benchInput))
	f.Add([]byte(`{"a": [1, 2.50, -0, 1e3, 12345678901234567890], "b": {"c": null, "d": true, "e": false}}`))
	f.Add([]byte(`{"s": "\u00e9\n\t\"\\ \ud83d\ude00", "t": "\ud800"}`))
	f.Add([]byte(`{"a": 1, "a": 2}`))
	f.Add([]byte("{\"invalid\": \"a\xff\xfeb\", \"\xc3\": 1}"))
	f.Fuzz(func(t *testing.T, input []byte) {
		got, err := ParseInput(input)
		if err != nil {
			return
		}
		var x any
		if err := util.UnmarshalJSON(input, &x); err != nil {
			t.Fatalf("ParseInput accepted %q, encoding/json refused it: %v", input, err)
		}
		if strings.Contains(string(input), `\u`) {
			return // an escaped lone surrogate may be replaced differently
		}
		want, err := ast.InterfaceToValue(x)
		if err != nil {
			return // the reference conversion refuses this input: nothing to compare with
		}
		if got.Compare(want) != 0 {
			t.Fatalf("ParseInput(%q) = %v, want %v", input, got, want)
		}
	})
}
