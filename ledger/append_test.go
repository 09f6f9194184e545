package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// TestChainsUnderConcurrency runs 64 appenders that grant, confirm, withdraw
// and decide for 50 shared subjects, then checks the global hash chain,
// every subject's consent chain and every decision's consent head.
func TestChainsUnderConcurrency(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{})
	const workers, perWorker, subjects = 64, 60, 50
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; i < perWorker; i++ {
				var e *pb.Entry
				switch rnd.IntN(4) {
				case 0:
					e = grant(pb.Channel_CHANNEL_WHATSAPP, "marketing")
				case 1:
					e = confirm(pb.Channel_CHANNEL_WHATSAPP, "marketing")
				case 2:
					e = withdraw(pb.Channel_CHANNEL_WHATSAPP)
				default:
					e = decision(pb.Channel_CHANNEL_WHATSAPP, "marketing", rnd.IntN(2) == 0)
				}
				_, err := l.Append(context.Background(), &Request{Entry: e, Subject: phone(rnd.IntN(subjects))})
				if err != nil && !errors.Is(err, ErrPrecondition) {
					t.Error(err)
				}
			}
		}(w)
	}
	wg.Wait()
	if decisions, subjects := checkChains(t, l); decisions == 0 || subjects == 0 {
		t.Fatalf("workload produced %d decisions and %d subjects with consent events", decisions, subjects)
	}
}

// checkChains verifies the global chain, per-subject chains and decision heads
// of the whole log, and that the state index's heads are the chains' ends.
// It returns the number of decisions and of subjects with consent events.
func checkChains(t *testing.T, l *Ledger) (int, int) {
	t.Helper()
	ctx := context.Background()
	prev := zeroHash
	var lastTime time.Time
	heads := map[string]*pb.EntryRef{}
	decisions := 0
	err := l.Scan(ctx, 0, 0, func(i uint64, data []byte) error {
		e, err := DecodeEntry(data)
		if err != nil {
			return err
		}
		if e.Index != i {
			return fmt.Errorf("entry at %d says index %d", i, e.Index)
		}
		if !bytes.Equal(e.PrevHash, prev) {
			return fmt.Errorf("entry %d: prev_hash %x, want %x", i, e.PrevHash, prev)
		}
		if e.RecordedAt.AsTime().Before(lastTime) {
			return fmt.Errorf("entry %d: recorded_at %v before %v", i, e.RecordedAt.AsTime(), lastTime)
		}
		lastTime = e.RecordedAt.AsTime()
		ref := entryRef(e, data)
		head := heads[e.SubjectId]
		if isConsentEvent(e) {
			if (head == nil) != (e.SubjectPrevIndex == nil) || (head != nil && (*e.SubjectPrevIndex != head.Index || !bytes.Equal(e.SubjectPrevHash, head.LeafHash))) {
				return fmt.Errorf("entry %d: subject_prev %v/%x, want %v", i, e.SubjectPrevIndex, e.SubjectPrevHash, head)
			}
			heads[e.SubjectId] = ref
		} else if e.SubjectPrevIndex != nil || e.SubjectPrevHash != nil {
			return fmt.Errorf("entry %d: not a consent event but has subject_prev", i)
		}
		if _, ok := e.Event.(*pb.Entry_SendDecision); ok {
			decisions++
			if (head == nil) != (e.ConsentHeadIndex == nil) || (head != nil && (*e.ConsentHeadIndex != head.Index || !bytes.Equal(e.ConsentHeadHash, head.LeafHash))) {
				return fmt.Errorf("entry %d: consent_head %v/%x, want %v", i, e.ConsentHeadIndex, e.ConsentHeadHash, head)
			}
		}
		prev = ref.LeafHash
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, head := range heads {
		st, err := l.SubjectState(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !sameRef(st.Head, head) {
			t.Errorf("subject %s: state head %v, chain ends at %v", id, st.Head, head)
		}
	}
	return decisions, len(heads)
}

func TestIdempotency(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{})
	ctx := context.Background()
	req := func(fp string) *Request {
		e := grant(pb.Channel_CHANNEL_SMS, "marketing")
		e.IdempotencyKey = "order-42"
		return &Request{Entry: e, Subject: phone(1), Fingerprint: []byte(fp)}
	}
	first := mustAppend(t, l, req("a"))
	again := mustAppend(t, l, req("a"))
	if !again.Duplicate || again.Index != first.Index || !bytes.Equal(again.LeafHash, first.LeafHash) || !again.RecordedAt.Equal(first.RecordedAt) || again.SubjectID != first.SubjectID {
		t.Errorf("retry = %+v, want the first receipt %+v marked duplicate", again, first)
	}
	if _, err := l.Append(ctx, req("b")); !errors.Is(err, ErrConflict) {
		t.Errorf("reuse of the key for another request: %v, want ErrConflict", err)
	}
	// The same key from another actor is another request.
	e := grant(pb.Channel_CHANNEL_SMS, "marketing")
	e.IdempotencyKey, e.Actor = "order-42", "other-backend"
	if r := mustAppend(t, l, &Request{Entry: e, Subject: phone(1)}); r.Duplicate {
		t.Error("another actor's key was treated as a retry")
	}
	// Concurrent retries append once.
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := withdraw(pb.Channel_CHANNEL_SMS)
			e.IdempotencyKey = "stop-7"
			if _, err := l.Append(ctx, &Request{Entry: e, Subject: phone(1)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if l.Size() != 3 {
		t.Errorf("log holds %d entries, want 3", l.Size())
	}
}

func TestRecordedAtNeverDecreases(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	l, _, _ := newTestLedger(t, Options{Now: clock.Now})
	a := mustAppend(t, l, &Request{Entry: policyEntry(1)})
	clock.Set(clock.Now().Add(-time.Hour)) // the wall clock steps back
	b := mustAppend(t, l, &Request{Entry: policyEntry(2)})
	clock.Set(clock.Now().Add(2 * time.Hour))
	c := mustAppend(t, l, &Request{Entry: policyEntry(3)})
	if b.RecordedAt.Before(a.RecordedAt) || !b.RecordedAt.Equal(a.RecordedAt) {
		t.Errorf("after the clock stepped back recorded_at = %v, want %v", b.RecordedAt, a.RecordedAt)
	}
	if !c.RecordedAt.Equal(a.RecordedAt.Add(time.Hour)) {
		t.Errorf("recorded_at = %v, want %v", c.RecordedAt, a.RecordedAt.Add(time.Hour))
	}
}

func TestRefusedRequestsAppendNothing(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{})
	ctx := context.Background()
	mustAppend(t, l, &Request{Entry: breach("b-1")})
	before := l.Size()
	for _, tc := range []struct {
		name string
		req  *Request
		want error
	}{
		{"no event", &Request{Entry: &pb.Entry{}}, ErrInvalid},
		{"consent without subject", &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing")}, ErrInvalid},
		{"subject on a breach", &Request{Entry: breach("b-2"), Subject: phone(1)}, ErrInvalid},
		{"bad purpose", &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "Marketing!"), Subject: phone(1)}, ErrInvalid},
		{"duplicate purpose", &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "news", "news"), Subject: phone(1)}, ErrInvalid},
		{"no purpose", &Request{Entry: grant(pb.Channel_CHANNEL_SMS), Subject: phone(1)}, ErrInvalid},
		{"no channel", &Request{Entry: grant(pb.Channel_CHANNEL_UNSPECIFIED, "news"), Subject: phone(1)}, ErrInvalid},
		{"unknown channel", &Request{Entry: grant(pb.Channel(99), "news"), Subject: phone(1)}, ErrInvalid},
		{"invalid utf-8", &Request{Entry: func() *pb.Entry { e := grant(pb.Channel_CHANNEL_SMS, "news"); e.Actor = "\xff"; return e }(), Subject: phone(1)}, ErrInvalid},
		{"confirm of unknown subject", &Request{Entry: confirm(pb.Channel_CHANNEL_SMS, "news"), Subject: phone(2)}, ErrPrecondition},
		{"duplicate breach", &Request{Entry: breach("b-1")}, ErrConflict},
		{"notify unknown breach", &Request{Entry: &pb.Entry{Event: &pb.Entry_BreachClosed{BreachClosed: &pb.BreachClosed{BreachId: "nope"}}}}, ErrNotFound},
		{"erase unknown subject", &Request{Entry: &pb.Entry{Event: &pb.Entry_SubjectErased{SubjectErased: &pb.SubjectErased{}}}, Subject: phone(3)}, ErrNotFound},
		{"entry too large", &Request{Entry: filler(MaxEntryBytes)}, ErrInvalid},
	} {
		if _, err := l.Append(ctx, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// Confirming a purpose that was never granted to a known subject.
	mustAppend(t, l, &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "news"), Subject: phone(1)})
	before++
	if _, err := l.Append(ctx, &Request{Entry: confirm(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(1)}); !errors.Is(err, ErrPrecondition) {
		t.Errorf("confirm of ungranted purpose: %v, want ErrPrecondition", err)
	}
	if l.Size() != before {
		t.Errorf("refused requests appended %d entries", l.Size()-before)
	}
	checkChains(t, l)
}

func TestStaleConsentHead(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{})
	ctx := context.Background()
	_, st, found, err := l.LookupSubject(ctx, *phone(5))
	if err != nil || found || st != nil {
		t.Fatalf("unknown subject: found=%v state=%v err=%v", found, st, err)
	}
	g := mustAppend(t, l, &Request{Entry: grant(pb.Channel_CHANNEL_WHATSAPP, "marketing"), Subject: phone(5)})
	// Evaluated before the grant (no head): refused, nothing appended.
	size := l.Size()
	if _, err := l.Append(ctx, &Request{Entry: decision(pb.Channel_CHANNEL_WHATSAPP, "marketing", false), Subject: phone(5), CheckHead: true}); !errors.Is(err, ErrStaleHead) {
		t.Fatalf("decision at a stale head: %v, want ErrStaleHead", err)
	}
	if l.Size() != size {
		t.Fatal("a stale decision was appended")
	}
	_, st, _, err = l.LookupSubject(ctx, *phone(5))
	if err != nil || !sameRef(st.Head, g.Ref()) {
		t.Fatalf("head = %v (%v), want the grant %v", st.GetHead(), err, g.Ref())
	}
	d := mustAppend(t, l, &Request{Entry: decision(pb.Channel_CHANNEL_WHATSAPP, "marketing", true), Subject: phone(5), CheckHead: true, ExpectedHead: st.Head})
	data, _ := l.Entry(ctx, d.Index)
	e, _ := DecodeEntry(data)
	if e.ConsentHeadIndex == nil || *e.ConsentHeadIndex != g.Index {
		t.Errorf("decision's consent head = %v, want %d", e.ConsentHeadIndex, g.Index)
	}
	_, st, _, _ = l.LookupSubject(ctx, *phone(5))
	if cs := st.Consents[0]; !sameRef(cs.LastAllowedSend, d.Ref()) {
		t.Errorf("last allowed send = %v, want %v", cs.LastAllowedSend, d.Ref())
	}
}

func TestConsentState(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{})
	ctx := context.Background()
	wa := pb.Channel_CHANNEL_WHATSAPP
	g := mustAppend(t, l, &Request{Entry: grant(wa, "marketing", "order_updates"), Subject: phone(9)})
	c := mustAppend(t, l, &Request{Entry: confirm(wa, "marketing"), Subject: phone(9)})
	w := mustAppend(t, l, &Request{Entry: withdraw(wa), Subject: phone(9)})
	st, err := l.SubjectState(ctx, g.SubjectID)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Consents) != 2 || st.Consents[0].Purpose != "marketing" || st.Consents[1].Purpose != "order_updates" {
		t.Fatalf("consents = %v", st.Consents)
	}
	m := st.Consents[0]
	if m.Status != StatusWithdrawn || !m.DoubleOptIn || !sameRef(m.Grant, g.Ref()) || !sameRef(m.Confirmation, c.Ref()) || !sameRef(m.Withdrawal, w.Ref()) || m.Method != "checkout" || m.NoticeVersion != "2026-01" {
		t.Errorf("marketing state = %v", m)
	}
	if o := st.Consents[1]; o.Status != StatusWithdrawn || o.DoubleOptIn {
		t.Errorf("order_updates state = %v", o)
	}
	// A new grant after the withdrawal is active again.
	mustAppend(t, l, &Request{Entry: grant(wa, "order_updates"), Subject: phone(9)})
	st, _ = l.SubjectState(ctx, g.SubjectID)
	if st.Consents[1].Status != StatusGranted || st.Consents[0].Status != StatusWithdrawn {
		t.Errorf("after re-grant: %v", st.Consents)
	}
}

func TestBreachLifecycle(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{})
	ctx := context.Background()
	detected := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	e := breach("br-1")
	e.GetBreachDetected().DetectedAt = timestampOf(detected)
	e.GetBreachDetected().Channels = []pb.Channel{pb.Channel_CHANNEL_SMS}
	d := mustAppend(t, l, &Request{Entry: e})
	n := mustAppend(t, l, &Request{Entry: &pb.Entry{Event: &pb.Entry_BreachAuthorityNotified{BreachAuthorityNotified: &pb.BreachAuthorityNotified{
		BreachId: "br-1", Authority: "BfDI", Phase: "preliminary", NotifiedAt: timestampOf(detected.Add(30 * time.Hour)),
	}}}})
	mustAppend(t, l, &Request{Entry: &pb.Entry{Event: &pb.Entry_BreachAuthorityNotified{BreachAuthorityNotified: &pb.BreachAuthorityNotified{
		BreachId: "br-1", Authority: "BfDI", Phase: "concluding", NotifiedAt: timestampOf(detected.Add(90 * time.Hour)),
	}}}})
	b, err := l.Breach(ctx, "br-1")
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != BreachOpen || !sameRef(b.Detected, d.Ref()) || !sameRef(b.AuthorityNotification, n.Ref()) || !b.AuthorityNotifiedAt.AsTime().Equal(detected.Add(30*time.Hour)) {
		t.Errorf("breach state = %v", b)
	}
	cl := mustAppend(t, l, &Request{Entry: &pb.Entry{Event: &pb.Entry_BreachClosed{BreachClosed: &pb.BreachClosed{BreachId: "br-1"}}}})
	if _, err := l.Append(ctx, &Request{Entry: &pb.Entry{Event: &pb.Entry_BreachClosed{BreachClosed: &pb.BreachClosed{BreachId: "br-1"}}}}); !errors.Is(err, ErrPrecondition) {
		t.Errorf("closing twice: %v, want ErrPrecondition", err)
	}
	all, err := l.Breaches(ctx)
	if err != nil || len(all) != 1 || all[0].Status != BreachClosed || !sameRef(all[0].Closure, cl.Ref()) {
		t.Errorf("Breaches = %v, %v", all, err)
	}
	if _, err := l.Breach(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown breach: %v", err)
	}
}

func TestActivePolicy(t *testing.T) {
	l, _, _ := newTestLedger(t, Options{})
	if _, err := l.ActivePolicy(context.Background()); !errors.Is(err, ErrNotFound) {
		t.Errorf("before any publication: %v, want ErrNotFound", err)
	}
	appendRaw(t, l, 2)
	p, err := l.ActivePolicy(context.Background())
	if err != nil || p.Entry.Index != 1 || p.Digest != policyEntry(1).GetPolicyPublished().Digest {
		t.Errorf("active policy = %v, %v", p, err)
	}
}
