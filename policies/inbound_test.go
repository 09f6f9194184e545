package policies

import (
	"reflect"
	"strings"
	"testing"
)

func TestInboundMessage(t *testing.T) {
	s := mustDefault(t)
	contact := Contact{
		SenderName: "Example Shop GmbH", SupportContact: "support@example.com",
		PrivacyNoticeURL: "https://example.com/privacy", DPOContact: "dpo@example.com",
	}
	tests := []struct {
		name string
		msg  InboundMessage
		want InboundResult
	}{
		{"stop", InboundMessage{Text: "Stop!"}, InboundResult{Action: ActionOptOut, Keyword: "STOP", Scope: ScopeChannel, ReviewDueHours: 24}},
		{"review", InboundMessage{Text: "Keine Werbung mehr, danke"}, InboundResult{Action: ActionReview, Keyword: "KEINE WERBUNG", Scope: ScopeChannel, ReviewDueHours: 24}},
		{"signal", InboundMessage{Signal: SignalWhatsAppStopPromotions}, InboundResult{Action: ActionOptOut, Scope: ScopeChannel, Purposes: []string{"marketing"}, ReviewDueHours: 24}},
		{"help", InboundMessage{Text: "HELP", Contact: contact}, InboundResult{
			Action: ActionHelp, Keyword: "HELP", Scope: ScopeChannel, ReviewDueHours: 24,
			Reply: "Example Shop GmbH\nHelp: support@example.com\nTo stop these messages: reply STOP\nPrivacy notice: https://example.com/privacy\nData protection officer: dpo@example.com",
		}},
		{"none", InboundMessage{Text: "hello", Contact: contact}, InboundResult{Action: ActionNone, Scope: ScopeChannel, ReviewDueHours: 24}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.InboundMessage(t.Context(), tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("InboundMessage(%+v) =\n%+v\nwant\n%+v", tt.msg, got, tt.want)
			}
		})
	}
}

// A policy published before the result rule existed still works: the
// defaults of that time (channel scope, every purpose, no reply).
func TestInboundMessageOldPolicy(t *testing.T) {
	var files []File
	for _, f := range Default() {
		switch {
		case strings.HasSuffix(f.Name, "_test.rego"):
			continue
		case f.Name == "inbound.rego":
			f.Content = "package consentledger.inbound\n\ndefault action := \"none\"\n\naction := \"opt_out\" if input.text == \"STOP\"\n\ndefault keyword := \"\"\n\nkeyword := input.text if action != \"none\"\n"
		}
		files = append(files, f)
	}
	s, err := Compile(t.Context(), files)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.InboundMessage(t.Context(), InboundMessage{Text: "STOP", Signal: SignalWhatsAppStopPromotions})
	if err != nil {
		t.Fatal(err)
	}
	want := InboundResult{Action: ActionOptOut, Keyword: "STOP", Scope: ScopeChannel, ReviewDueHours: DefaultReviewDueHours}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("InboundMessage = %+v, want %+v", got, want)
	}
}

func TestInboundMessageMalformedResult(t *testing.T) {
	for _, result := range []string{
		`{"scope": "everything"}`,
		`{"purposes": "marketing"}`,
		`{"review_due_hours": 0}`,
		`{"review_due_hours": 1.5}`,
		`{"reply": 3}`,
		`"x"`,
	} {
		var files []File
		for _, f := range Default() {
			if strings.HasSuffix(f.Name, "_test.rego") {
				continue
			}
			if f.Name == "inbound.rego" {
				f.Content = strings.Replace(f.Content, "result := {", "result_unused := {", 1) + "\nresult := " + result + "\n"
			}
			files = append(files, f)
		}
		s, err := Compile(t.Context(), files)
		if err != nil {
			t.Fatalf("%s: %v", result, err)
		}
		if _, err := s.InboundMessage(t.Context(), InboundMessage{Text: "STOP"}); err == nil {
			t.Errorf("result %s: no error", result)
		}
	}
}
