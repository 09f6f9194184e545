package ledger

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/consentledger/consentledger/ledger/state"
	"github.com/consentledger/consentledger/ledger/storage"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// snapshotTables returns every key and value of the given tables.
func snapshotTables(t *testing.T, st storage.Store, tables []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := st.View(context.Background(), func(tx storage.ReadTx) error {
		for _, tab := range tables {
			err := tx.Scan([]byte{tab}, storage.PrefixEnd([]byte{tab}), func(k, v []byte) error {
				out[string(k)] = bytes.Clone(v)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRebuildStateEqualsLive(t *testing.T) {
	l, st, _ := newTestLedger(t, Options{})
	rnd := rand.New(rand.NewPCG(3, 4))
	chs := []pb.Channel{pb.Channel_CHANNEL_WHATSAPP, pb.Channel_CHANNEL_SMS, pb.Channel_CHANNEL_RCS}
	for i := 0; i < 2000; i++ {
		ch := chs[rnd.IntN(len(chs))]
		var req *Request
		switch k := rnd.IntN(10); {
		case k < 3:
			req = &Request{Entry: grant(ch, "marketing", "news"), Subject: phone(rnd.IntN(40))}
		case k < 4:
			req = &Request{Entry: confirm(ch, "marketing"), Subject: phone(rnd.IntN(40))}
		case k < 5:
			req = &Request{Entry: withdraw(ch), Subject: phone(rnd.IntN(40))}
		case k < 8:
			req = &Request{Entry: decision(ch, "marketing", rnd.IntN(2) == 0), Subject: phone(rnd.IntN(40))}
		case k < 9:
			req = &Request{Entry: breach(fmt.Sprintf("br-%d", i))}
		default:
			req = &Request{Entry: policyEntry(i)}
		}
		if rnd.IntN(3) == 0 {
			req.Entry.IdempotencyKey = fmt.Sprintf("k%d", rnd.IntN(500))
		}
		if _, err := l.Append(context.Background(), req); err != nil && !isRefusal(err) {
			t.Fatal(err)
		}
	}
	mustAppend(t, l, &Request{Entry: erase(), Subject: phone(3)})
	live := snapshotTables(t, st, stateTables)
	sameAsPureFold(t, l)
	if len(live) < 40 {
		t.Fatalf("only %d state records", len(live))
	}
	var calls int
	if err := l.RebuildState(context.Background(), func(done, total uint64) { calls++ }); err != nil {
		t.Fatal(err)
	}
	rebuilt := snapshotTables(t, st, stateTables)
	for k, v := range live {
		if !bytes.Equal(rebuilt[k], v) {
			t.Errorf("state %q differs after rebuild", k)
		}
	}
	for k := range rebuilt {
		if _, ok := live[k]; !ok {
			t.Errorf("rebuild made state %q that the live index lacks", k)
		}
	}
	if calls == 0 {
		t.Error("progress was never reported")
	}
	// The ledger goes on appending on the rebuilt index.
	mustAppend(t, l, &Request{Entry: withdraw(pb.Channel_CHANNEL_SMS), Subject: phone(1)})
	checkChains(t, l)
}

func isRefusal(err error) bool {
	for _, e := range []error{ErrInvalid, ErrNotFound, ErrPrecondition, ErrConflict} {
		if errorsIs(err, e) {
			return true
		}
	}
	return false
}

// sameAsPureFold checks that the state index equals the pure fold of
// package state over the entries: every subject, the open breaches and the
// active policy. The verifier derives decisions' inputs with that fold.
func sameAsPureFold(t *testing.T, l *Ledger) {
	t.Helper()
	ctx := context.Background()
	s := state.New()
	subjects := map[string]bool{}
	err := l.Scan(ctx, 0, 0, func(_ uint64, data []byte) error {
		e, err := DecodeEntry(data)
		if err != nil {
			return err
		}
		s.Apply(e, entryRef(e, data))
		if isConsentEvent(e) {
			subjects[e.SubjectId] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id := range subjects {
		got, err := l.SubjectState(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := s.Subject(id); !proto.Equal(got, want) {
			t.Fatalf("subject %s: the state index says\n%v\nthe pure fold says\n%v", id, got, want)
		}
	}
	open, _, err := l.OpenBreaches(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := s.OpenBreaches()
	if len(open) != len(want) {
		t.Fatalf("%d open breaches in the index, %d in the fold", len(open), len(want))
	}
	for i := range open {
		if !proto.Equal(open[i], want[i]) {
			t.Errorf("open breach %d: index %v, fold %v", i, open[i], want[i])
		}
	}
	pol, err := l.ActivePolicy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(pol, s.Policy()) {
		t.Errorf("active policy: index %v, fold %v", pol, s.Policy())
	}
}
