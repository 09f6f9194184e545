package ledger

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/consentledger/consentledger/ledger/storage"
	"github.com/consentledger/consentledger/ledger/subject"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

func erase() *pb.Entry {
	return &pb.Entry{Actor: "admin", Event: &pb.Entry_SubjectErased{SubjectErased: &pb.SubjectErased{Reason: "art17_request"}}}
}

func TestErasure(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{})
	ctx := context.Background()
	p := phone(77)
	g := mustAppend(t, l, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: p})
	sid, salt, commitment, err := l.RevealSubject(ctx, *p)
	if err != nil || sid != g.SubjectID || !subject.CheckCommitment(commitment, salt, p.Value) {
		t.Fatalf("RevealSubject = %s %x %x %v", sid, salt, commitment, err)
	}
	data, _ := l.Entry(ctx, g.Index)
	e, _ := DecodeEntry(data)
	if !bytes.Equal(e.SubjectCommitment, commitment) || e.SubjectId != sid {
		t.Fatalf("entry carries subject %s commitment %x, want %s %x", e.SubjectId, e.SubjectCommitment, sid, commitment)
	}
	er := mustAppend(t, l, &Request{Entry: erase(), Subject: p})
	if er.SubjectID != sid {
		t.Errorf("erasure entry is about %s, want %s", er.SubjectID, sid)
	}
	if _, _, found, _ := l.LookupSubject(ctx, *p); found {
		t.Error("the erased subject is still found by its phone number")
	}
	if _, _, _, err := l.RevealSubject(ctx, *p); !errors.Is(err, ErrNotFound) {
		t.Errorf("RevealSubject after erasure: %v, want ErrNotFound", err)
	}
	if _, err := l.Append(ctx, &Request{Entry: erase(), Subject: p}); !errors.Is(err, ErrNotFound) {
		t.Errorf("erasing twice: %v, want ErrNotFound", err)
	}
	st, err := l.SubjectState(ctx, sid)
	if err != nil || !st.Erased || st.Consents[0].Status != StatusErased || !sameRef(st.Head, er.Ref()) {
		t.Errorf("state after erasure = %v, %v", st, err)
	}
	// The log still verifies and the person can opt in again as a new subject.
	again := mustAppend(t, l, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: p})
	if again.SubjectID == sid {
		t.Error("after erasure the same subject_id was reused")
	}
	checkChains(t, l)
}

// TestNoIdentifierInClear writes entries for phone and e-mail subjects and
// scans every key and value in the store for the identifiers.
func TestNoIdentifierInClear(t *testing.T) {
	l, st, _ := newTestLedger(t, Options{})
	ids := []subject.Identifier{
		{Kind: subject.KindPhone, Value: "+4917012345678"},
		{Kind: subject.KindEmail, Value: "erika.mustermann@example.de"},
	}
	for _, id := range ids {
		mustAppend(t, l, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: &id})
		mustAppend(t, l, &Request{Entry: decision(pb.Channel_CHANNEL_SMS, "marketing", true), Subject: &id})
		mustAppend(t, l, &Request{Entry: withdraw(pb.Channel_CHANNEL_SMS), Subject: &id})
	}
	if _, err := l.SignCheckpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	needles := [][]byte{[]byte("4917012345678"), []byte("erika.mustermann"), []byte("mustermann@example")}
	n := 0
	err := st.View(context.Background(), func(tx storage.ReadTx) error {
		return tx.Scan(nil, nil, func(k, v []byte) error {
			n++
			for _, needle := range needles {
				if bytes.Contains(k, needle) || bytes.Contains(v, needle) {
					t.Errorf("key %q holds %q in clear", k, needle)
				}
			}
			return nil
		})
	})
	if err != nil || n < 10 {
		t.Fatalf("scanned %d keys: %v", n, err)
	}
}
