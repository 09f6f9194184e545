package policies_test

import (
	"context"
	"fmt"
	"log"

	"github.com/consentledger/consentledger/policies"
)

// Compile the policy set once, then decide many sends with it.
func ExampleSet_Decide() {
	ctx := context.Background()
	set, err := policies.Check(ctx, policies.Default()) // compile, run the set's tests
	if err != nil {
		log.Fatal(err)
	}
	input := []byte(`{
	  "now": "2026-11-26T21:30:00Z",
	  "request": {
	    "channel": "whatsapp", "purpose": "marketing", "category": "marketing",
	    "provider": {"name": "eu-bsp", "region": "EU"},
	    "subject_timezone": "Europe/Berlin", "service_window_open": false,
	    "message_ref": "newsletter-48"
	  },
	  "subject": {
	    "known": true, "country": "DE",
	    "consents": {"whatsapp": {"marketing": {
	      "status": "granted", "granted_at": "2026-01-05T09:00:00Z", "method": "checkout",
	      "notice_version": "2026-01", "double_opt_in": true, "confirmed_at": "2026-01-05T09:10:00Z",
	      "grant_index": 12, "confirmation_index": 13}}}
	  },
	  "breaches": []
	}`)
	d, err := set.Decide(ctx, input)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("allow:", d.Allow)
	for _, r := range d.Reasons {
		fmt.Println(r)
	}
	// Output:
	// allow: false
	// quiet_hours: 22:30 in Europe/Berlin is inside the marketing quiet hours 22:00-08:00 by default
}

func ExampleSet_Inbound() {
	set, err := policies.Compile(context.Background(), policies.Default())
	if err != nil {
		log.Fatal(err)
	}
	for _, text := range []string{" Stop  All ", "Abmelden", "arrêt", "hilfe", "see you"} {
		action, keyword, err := set.Inbound(context.Background(), text)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%q -> %s %q\n", text, action, keyword)
	}
	// Output:
	// " Stop  All " -> opt_out "STOPALL"
	// "Abmelden" -> opt_out "ABMELDEN"
	// "arrêt" -> opt_out "ARRET"
	// "hilfe" -> help "HILFE"
	// "see you" -> none ""
}
