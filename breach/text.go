package breach

import (
	"fmt"
	"regexp"

	"github.com/nyaruka/phonenumbers"
)

var (
	emailRe = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`)
	// A phone number candidate: "+" or "0" first, not inside a word or a
	// longer number, then digits and the usual separators.
	phoneRe = regexp.MustCompile(`(?:^|[^0-9A-Za-z_+])((?:\+|0)[0-9][0-9 ()/.\-]{4,}[0-9])`)
)

// PersonalDataError says that free text holds an e-mail address or a phone
// number, which must not enter the log.
type PersonalDataError struct {
	Kind string // "e-mail address" or "phone number"
}

func (e *PersonalDataError) Error() string {
	return fmt.Sprintf("holds what looks like an %s: personal data must not enter the log; describe it instead (e.g. \"the customer's %s\")", e.Kind, e.Kind)
}

// CheckFreeText returns a *PersonalDataError if s holds an e-mail address or
// a phone number.
func CheckFreeText(s string) error {
	if emailRe.MatchString(s) {
		return &PersonalDataError{Kind: "e-mail address"}
	}
	for _, m := range phoneRe.FindAllStringSubmatch(s, -1) {
		c := m[1]
		digits := 0
		for _, r := range c {
			if r >= '0' && r <= '9' {
				digits++
			}
		}
		if digits < 7 || digits > 15 {
			continue
		}
		n, err := phonenumbers.Parse(c, "DE")
		if err == nil && phonenumbers.IsPossibleNumber(n) {
			return &PersonalDataError{Kind: "phone number"}
		}
	}
	return nil
}
