package ledger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/consentledger/consentledger/ledger/state"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// A decision with CheckInputs is appended only if everything its input was
// built from is unchanged (docs/guarantees.md); each change refuses it with its own
// ErrStale… and appends nothing.
func TestStaleInputs(t *testing.T) {
	clock := &fakeClock{}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock.Set(t0)
	l, _, _ := newTestLedger(t, Options{Now: clock.Now})
	ctx := context.Background()
	wa := pb.Channel_CHANNEL_WHATSAPP
	pol := mustAppend(t, l, &Request{Entry: policyEntry(1)}).Ref()
	mustAppend(t, l, &Request{Entry: grant(wa, "marketing"), Subject: phone(1)})

	// snapshot is what rpc reads before evaluating.
	type snapshot struct {
		known    bool
		st       *pb.SubjectState
		breaches *pb.EntryRef
		policy   *pb.EntryRef
	}
	read := func(who int) snapshot {
		_, st, known, err := l.LookupSubject(ctx, *phone(who))
		if err != nil {
			t.Fatal(err)
		}
		_, epoch, err := l.OpenBreaches(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p, err := l.ActivePolicy(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return snapshot{known, st, epoch, p.Entry}
	}
	decide := func(who int, s snapshot, at time.Time) error {
		_, err := l.Append(ctx, &Request{
			Entry: decision(wa, "marketing", true), Subject: phone(who),
			CheckHead: true, ExpectedHead: s.st.GetHead(),
			CheckInputs: true, ExpectedKnown: s.known, ExpectedPolicy: s.policy, ExpectedBreaches: s.breaches,
			ExpectedLastSend: s.st.GetLastAllowedSend(), EvaluatedAt: at,
		})
		return err
	}
	if s := read(1); !sameRef(s.policy, pol) {
		t.Fatalf("active policy %v, want %v", s.policy, pol)
	}
	tests := []struct {
		name   string
		who    int
		change func() // between the snapshot and the append
		at     time.Duration
		want   error
	}{
		{"nothing changed", 1, func() {}, 0, nil},
		{"another allowed send to the subject", 1, func() {
			mustAppend(t, l, &Request{Entry: decision(wa, "marketing", true), Subject: phone(1)})
		}, 0, ErrStaleSend},
		{"a denied send changes nothing", 1, func() {
			mustAppend(t, l, &Request{Entry: decision(wa, "marketing", false), Subject: phone(1)})
		}, 0, nil},
		{"a breach reported", 1, func() { mustAppend(t, l, &Request{Entry: breach("b1")}) }, 0, ErrStaleBreaches},
		{"a policy published", 1, func() { mustAppend(t, l, &Request{Entry: policyEntry(2)}) }, 0, ErrStalePolicy},
		{"the subject became known", 2, func() {
			mustAppend(t, l, &Request{Entry: decision(wa, "marketing", false), Subject: phone(2)})
		}, 0, ErrStaleKnown},
		{"evaluated too long ago", 1, func() {}, -state.MaxInputLag - time.Second, ErrStaleClock},
		{"a consent event", 1, func() {
			mustAppend(t, l, &Request{Entry: withdraw(wa, "news"), Subject: phone(1)})
		}, 0, ErrStaleHead},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := read(tc.who)
			tc.change()
			size := l.Size()
			err := decide(tc.who, s, clock.Now().Add(tc.at))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Append = %v, want appended", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrStale) {
				t.Fatalf("Append = %v, want %v", err, tc.want)
			}
			if l.Size() != size {
				t.Error("a stale decision was appended")
			}
			// Evaluated again on fresh state, it is appended.
			if err := decide(tc.who, read(tc.who), clock.Now()); err != nil {
				t.Errorf("fresh evaluation: %v", err)
			}
		})
	}
}

// recorded_at is never before the input's now, even when the evaluator's
// clock is ahead of the sequencer's.
func TestRecordedNotBeforeInput(t *testing.T) {
	clock := &fakeClock{}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock.Set(t0)
	l, _, _ := newTestLedger(t, Options{Now: clock.Now})
	ctx := context.Background()
	ahead := t0.Add(3 * time.Second)
	r, err := l.Append(ctx, &Request{Entry: decision(pb.Channel_CHANNEL_SMS, "marketing", false), Subject: phone(1),
		CheckInputs: true, EvaluatedAt: ahead})
	if err != nil {
		t.Fatal(err)
	}
	if !r.RecordedAt.Equal(ahead) {
		t.Errorf("recorded at %v, want the input's now %v", r.RecordedAt, ahead)
	}
}
