package ledger

import (
	"context"
	"errors"
	"testing"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// TestAppendBatch checks that an AppendBatch lands in one commit, in request
// order, and that a request refused when sequenced (here a stale decision
// and an idempotency conflict) appends nothing while the others are
// acknowledged.
func TestAppendBatch(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{})
	ctx := context.Background()
	g := mustAppend(t, l, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(1)})
	used := grant(pb.Channel_CHANNEL_SMS, "marketing")
	used.IdempotencyKey = "k-used"
	mustAppend(t, l, &Request{Entry: used, Subject: phone(2), Fingerprint: []byte("first")})
	_, st, _, _ := l.LookupSubject(ctx, *phone(1))

	conflicting := decision(pb.Channel_CHANNEL_SMS, "marketing", true)
	conflicting.IdempotencyKey = "k-used"
	dup := grant(pb.Channel_CHANNEL_SMS, "marketing")
	dup.IdempotencyKey = "k-used"
	reqs := []*Request{
		{Entry: decision(pb.Channel_CHANNEL_SMS, "marketing", true), Subject: phone(1), CheckHead: true, ExpectedHead: st.Head},
		{Entry: decision(pb.Channel_CHANNEL_SMS, "marketing", true), Subject: phone(1), CheckHead: true}, // evaluated before the grant
		{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(3)},
		{Entry: conflicting, Subject: phone(2), Fingerprint: []byte("other")},
		{Entry: dup, Subject: phone(2), Fingerprint: []byte("first")},
		{Entry: withdraw(pb.Channel_CHANNEL_SMS), Subject: phone(1)},
		// Sequenced after the withdrawal before it in the same batch.
		{Entry: decision(pb.Channel_CHANNEL_SMS, "marketing", true), Subject: phone(1), CheckHead: true, ExpectedHead: st.Head},
	}
	before, size := l.Stats(), l.Size()
	res, err := l.AppendBatch(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(reqs) {
		t.Fatalf("%d results for %d requests", len(res), len(reqs))
	}
	wantErr := []error{nil, ErrStaleHead, nil, ErrConflict, nil, nil, ErrStaleHead}
	next := size
	for i, r := range res {
		if wantErr[i] != nil {
			if !errors.Is(r.Err, wantErr[i]) {
				t.Errorf("request %d: error %v, want %v", i, r.Err, wantErr[i])
			}
			continue
		}
		if r.Err != nil {
			t.Fatalf("request %d: %v", i, r.Err)
		}
		if i == 4 {
			if !r.Receipt.Duplicate {
				t.Errorf("request 4 (a retry of a used key) was not answered as a duplicate: %+v", r.Receipt)
			}
			continue
		}
		if r.Receipt.Index != next {
			t.Errorf("request %d appended at %d, want %d (request order)", i, r.Receipt.Index, next)
		}
		next++
	}
	if l.Size() != next {
		t.Errorf("log has %d entries, want %d: a refused request appended something", l.Size(), next)
	}
	after := l.Stats()
	if after.Batches-before.Batches != 1 {
		t.Errorf("the batch took %d commits, want 1", after.Batches-before.Batches)
	}
	leaves := allLeaves(t, l)
	for i, r := range res {
		if r.Err == nil && !r.Receipt.Duplicate && string(leaves[r.Receipt.Index]) != string(r.Receipt.LeafHash) {
			t.Errorf("request %d: leaf at %d differs from its receipt", i, r.Receipt.Index)
		}
	}
	_, st, _, _ = l.LookupSubject(ctx, *phone(1))
	if st.Head.Index != res[5].Receipt.Index || st.Head.Index == g.Index {
		t.Errorf("consent head %d, want the batch's withdrawal %d", st.Head.Index, res[5].Receipt.Index)
	}
}

// TestAppendBatchRejectsMalformed checks that one malformed request refuses
// the whole batch before anything is sequenced.
func TestAppendBatchRejectsMalformed(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{})
	size := l.Size()
	_, err := l.AppendBatch(context.Background(), []*Request{
		{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(1)},
		{Entry: decision(pb.Channel_CHANNEL_SMS, "marketing", true)}, // no subject
	})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	if l.Size() != size {
		t.Fatal("a refused batch appended entries")
	}
}
