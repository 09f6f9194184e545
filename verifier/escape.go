package verifier

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// EscapeControls makes text safe to print on a terminal: every control
// character but the line break, every formatting character (such as a
// right-to-left override) and every invalid UTF-8 byte is replaced by its
// Go escape (\x1b, \u202e), so that text recorded in the log (a breach id,
// a description, a note) cannot move the cursor, erase lines or reorder
// what the auditor reads. The JSON reports need no such step: encoding/json
// escapes control characters itself.
func EscapeControls(s string) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x` + strconv.FormatUint(uint64(s[i]), 16))
		case unsafeRune(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return r == utf8.RuneError || (r != '\n' && unicode.IsControl(r)) || unicode.Is(unicode.Cf, r)
}
