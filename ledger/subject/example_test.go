package subject_test

import (
	"fmt"

	"github.com/consentledger/consentledger/ledger/subject"
	consentledgerv1 "github.com/consentledger/consentledger/proto/consentledger/v1"
)

func ExampleNormalize() {
	for _, s := range []*consentledgerv1.Subject{
		{Id: &consentledgerv1.Subject_Phone{Phone: "0049 (0)170 123-4567"}},
		{Id: &consentledgerv1.Subject_Email{Email: " Bob@Example.ORG "}},
		{Id: &consentledgerv1.Subject_Phone{Phone: "0170 123"}},
	} {
		id, err := subject.Normalize(s)
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		// Printing Value is for the example only: it is personal data.
		if c := id.Country(); c != "" {
			fmt.Println(id.Kind, id.Value, c)
		} else {
			fmt.Println(id.Kind, id.Value)
		}
	}
	// Output:
	// phone +491701234567 DE
	// email bob@example.org
	// error: subject.phone: "0170 123" is not in international format; write it with a country code, like +49 170 1234567
}

func ExampleCommitment() {
	id, _ := subject.Normalize(&consentledgerv1.Subject{Id: &consentledgerv1.Subject_Email{Email: "Bob@Example.ORG"}})
	salt := make([]byte, subject.SaltSize) // use NewSalt in real code
	c := subject.Commitment(salt, id)
	fmt.Println(subject.CheckCommitment(c[:], salt, "bob@example.org"))
	fmt.Println(subject.CheckCommitment(c[:], salt, "alice@example.org"))
	// Output:
	// true
	// false
}
