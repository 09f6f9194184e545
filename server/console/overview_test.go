package console

import (
	"strings"
	"testing"
)

func TestSignatureLines(t *testing.T) {
	for _, tc := range []struct{ note, want string }{
		{"origin\n3\nAAAA\n\n— consent.example.com/ledger Az3ab\n", "consent.example.com/ledger"},
		{"origin\n3\nAAAA\n\n— consent.example.com/ledger Az3ab\n— witness.example.org Bq9c\n— w2 Zz\n", "consent.example.com/ledger,witness.example.org,w2"},
		{"origin\n3\nAAAA\n", ""},
		{"origin\n3\nAAAA\n\nnot a signature\n", ""},
	} {
		if got := strings.Join(signatureLines(tc.note), ","); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.note, got, tc.want)
		}
	}
}
