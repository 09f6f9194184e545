package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/consentledger/consentledger/server"
)

// The optional contact block of the YAML config is read, and a field that
// is not one line is refused before the server starts.
func TestConfigContact(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	yaml := `addr: 127.0.0.1:0
contact:
  sender_name: Example Shop GmbH
  support_contact: support@example.com
  opt_out: reply STOP or visit example.com/prefs
  privacy_notice_url: https://example.com/privacy
  dpo_contact: dpo@example.com
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := server.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	want := server.ContactConfig{
		SenderName: "Example Shop GmbH", SupportContact: "support@example.com", OptOut: "reply STOP or visit example.com/prefs",
		PrivacyNoticeURL: "https://example.com/privacy", DPOContact: "dpo@example.com",
	}
	if c.Contact != want {
		t.Errorf("Contact = %+v, want %+v", c.Contact, want)
	}

	if err := os.WriteFile(path, []byte("contact:\n  sender: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := server.LoadConfig(path); err == nil {
		t.Error("an unknown contact key was accepted")
	}

	c.DataDir = t.TempDir()
	c.Contact.DPOContact = "dpo@example.com\nBUY NOW"
	err = server.Run(context.Background(), c, nil, func(string) { t.Error("the server started") })
	if err == nil || !strings.Contains(err.Error(), "contact.dpo_contact") {
		t.Errorf("Run with a two-line contact = %v, want an error naming contact.dpo_contact", err)
	}
}
