package ledger

import (
	"bytes"
	"context"
	"testing"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

func objection(ch pb.Channel) *pb.Entry {
	return &pb.Entry{Actor: "test", Event: &pb.Entry_ConsentWithdrawn{ConsentWithdrawn: &pb.ConsentWithdrawn{Channel: ch, Method: "api", Scope: ScopeAllMarketing}}}
}

func review(ch pb.Channel, phrase string) *pb.Entry {
	return &pb.Entry{Actor: "test", Event: &pb.Entry_InboundReview{InboundReview: &pb.InboundReview{Channel: ch, Keyword: phrase}}}
}

// An objection is recorded as the subject's objection and withdraws no
// channel consent; the confirming channel is kept; a review is listed and
// changes no consent. Rebuilding the index gives the same state.
func TestObjectionConfirmationReviewState(t *testing.T) {
	l, st, _ := newTestLedger(t, Options{})
	ctx := context.Background()
	wa, email := pb.Channel_CHANNEL_WHATSAPP, pb.Channel_CHANNEL_EMAIL
	g := mustAppend(t, l, &Request{Entry: grant(wa, "marketing", "order_updates"), Subject: phone(1)})
	viaEmail := confirm(wa, "marketing")
	viaEmail.GetConsentConfirmed().ConfirmedVia = email
	mustAppend(t, l, &Request{Entry: viaEmail, Subject: phone(1)})
	pre := grant(email, "marketing")
	pre.GetConsentGranted().DoubleOptInConfirmed = true
	mustAppend(t, l, &Request{Entry: pre, Subject: phone(1)})
	o := mustAppend(t, l, &Request{Entry: objection(email), Subject: phone(1)})
	r := mustAppend(t, l, &Request{Entry: review(wa, "KEINE WERBUNG"), Subject: phone(2)})
	mustAppend(t, l, &Request{Entry: confirm(email, "marketing"), Subject: phone(1)})

	ss, err := l.SubjectState(ctx, g.SubjectID)
	if err != nil {
		t.Fatal(err)
	}
	if !sameRef(ss.Objection, o.Ref()) || ss.ObjectedAt == nil {
		t.Errorf("objection = %v at %v, want %v", ss.Objection, ss.ObjectedAt, o.Ref())
	}
	for _, cs := range ss.Consents {
		if cs.Status != StatusGranted {
			t.Errorf("%v/%s is %s after an objection; an objection withdraws no channel consent", cs.Channel, cs.Purpose, cs.Status)
		}
		want := pb.Channel_CHANNEL_UNSPECIFIED
		switch {
		case cs.Channel == wa && cs.Purpose == "marketing":
			want = email
		case cs.Channel == email:
			want = email // first on its own grant, then by a confirmation without confirmed_via
		}
		if cs.ConfirmedVia != want {
			t.Errorf("%v/%s confirmed_via = %v, want %v", cs.Channel, cs.Purpose, cs.ConfirmedVia, want)
		}
	}
	if _, st2, found, _ := l.LookupSubject(ctx, *phone(2)); !found || len(st2.GetConsents()) != 0 || st2.GetHead() != nil {
		t.Errorf("a review made consent state: found %v, %v", found, st2)
	}
	reviews, err := l.Reviews(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(reviews) != 1 || !sameRef(reviews[0], r.Ref()) {
		t.Errorf("Reviews = %v, want [%v]", reviews, r.Ref())
	}

	live := snapshotTables(t, st, stateTables)
	if err := l.RebuildState(ctx, nil); err != nil {
		t.Fatal(err)
	}
	rebuilt := snapshotTables(t, st, stateTables)
	if len(rebuilt) != len(live) {
		t.Errorf("rebuild has %d records, live %d", len(rebuilt), len(live))
	}
	for k, v := range live {
		if !bytes.Equal(rebuilt[k], v) {
			t.Errorf("state %q differs after rebuild", k)
		}
	}
}

func TestObjectionAndReviewValidation(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{})
	ctx := context.Background()
	bad := objection(pb.Channel_CHANNEL_SMS)
	bad.GetConsentWithdrawn().Purposes = []string{"marketing"}
	odd := withdraw(pb.Channel_CHANNEL_SMS)
	odd.GetConsentWithdrawn().Scope = "everything"
	for name, req := range map[string]*Request{
		"objection with purposes": {Entry: bad, Subject: phone(1)},
		"unknown scope":           {Entry: odd, Subject: phone(1)},
		"review without phrase":   {Entry: review(pb.Channel_CHANNEL_SMS, ""), Subject: phone(1)},
		"review without subject":  {Entry: review(pb.Channel_CHANNEL_SMS, "STOP")},
		"review without channel":  {Entry: review(pb.Channel_CHANNEL_UNSPECIFIED, "STOP"), Subject: phone(1)},
	} {
		if _, err := l.Append(ctx, req); !errorsIs(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}
