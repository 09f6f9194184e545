package verifier_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/export"
	"github.com/consentledger/consentledger/ledger/state"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/verifier"
)

// synthLog builds a valid log entry by entry, as the ledger would: index,
// recorded_at, prev_hash, subject chains and consent heads.
type synthLog struct {
	t       testing.TB
	entries [][]byte
	prev    []byte
	rng     *compact.Range
	heads   map[string]*pb.EntryRef
	clock   time.Time
	st      *state.State // the fold of the entries so far
}

func newSynthLog(t testing.TB) *synthLog {
	return &synthLog{
		t: t, prev: make([]byte, 32), heads: map[string]*pb.EntryRef{},
		rng:   (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0),
		clock: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC), st: state.New(),
	}
}

func (l *synthLog) add(e *pb.Entry) uint64 {
	i := uint64(len(l.entries))
	l.clock = l.clock.Add(time.Millisecond)
	e.Index, e.RecordedAt, e.PrevHash, e.Actor = i, timestamppb.New(l.clock), l.prev, "shop-backend"
	head := l.heads[e.SubjectId]
	switch e.Event.(type) {
	case *pb.Entry_ConsentGranted, *pb.Entry_ConsentConfirmed, *pb.Entry_ConsentWithdrawn, *pb.Entry_SubjectErased:
		if head != nil {
			e.SubjectPrevIndex, e.SubjectPrevHash = &head.Index, head.LeafHash
		}
	case *pb.Entry_SendDecision:
		if head != nil {
			e.ConsentHeadIndex, e.ConsentHeadHash = &head.Index, head.LeafHash
		}
	}
	data := marshalEntry(l.t, e)
	leaf := rfc6962.DefaultHasher.HashLeaf(data)
	if err := l.rng.Append(leaf, nil); err != nil {
		l.t.Fatal(err)
	}
	switch e.Event.(type) {
	case *pb.Entry_ConsentGranted, *pb.Entry_ConsentConfirmed, *pb.Entry_ConsentWithdrawn, *pb.Entry_SubjectErased:
		l.heads[e.SubjectId] = &pb.EntryRef{Index: i, LeafHash: leaf}
	}
	l.st.Apply(e, &pb.EntryRef{Index: i, LeafHash: leaf, RecordedAt: e.RecordedAt})
	l.entries = append(l.entries, data)
	l.prev = leaf
	return i
}

// export signs a checkpoint and writes the export.
func (l *synthLog) export(s note.Signer) []byte {
	root, err := l.rng.GetRootHash(nil)
	if err != nil {
		l.t.Fatal(err)
	}
	cp, err := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: s.Name(), Size: uint64(len(l.entries)), Hash: root}.Marshal())}, s)
	if err != nil {
		l.t.Fatal(err)
	}
	var b bytes.Buffer
	w, err := export.NewWriter(&b, cp, uint64(len(l.entries)))
	if err != nil {
		l.t.Fatal(err)
	}
	for _, e := range l.entries {
		if err := w.WriteEntry(e); err != nil {
			l.t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		l.t.Fatal(err)
	}
	return b.Bytes()
}

// buildLog returns an export of about n entries: the default policy, then
// subjects with opt-ins, confirmations and opt-outs, and every
// decisionEvery-th entry a send decision (0: none) with the recorded input
// with the request of the valid-allow fixture and the input the server
// would derive, evaluated with the policy, which the audit replays; if
// lie, every decision records the opposite result, which the replay
// contradicts.
func buildLog(t testing.TB, n, decisionEvery int, lie bool) (exp []byte, vkey string) {
	s, key := signer(t, "bench.example/ledger")
	l := newSynthLog(t)
	files := policies.Default()
	pf := make([]*pb.PolicyFile, len(files))
	for i, f := range files {
		pf[i] = &pb.PolicyFile{Name: f.Name, Content: f.Content}
	}
	digest := policies.Digest(files)
	l.add(&pb.Entry{Event: &pb.Entry_PolicyPublished{PolicyPublished: &pb.PolicyPublished{Files: pf, Digest: digest, Note: "default"}}})
	recorded := decodeEntry(t, decodeBundle(t, readFixture(t, "evidence/valid-allow.json")).Decision.Entry).GetSendDecision()
	set, err := policies.Compile(context.Background(), files)
	if err != nil {
		t.Fatal(err)
	}
	commitment := bytes.Repeat([]byte{0x5a}, 32)
	for i := 1; len(l.entries) < n; i++ {
		subject := fmt.Sprintf("subj_%026d", i%50000)
		if decisionEvery > 0 && i%decisionEvery == 0 {
			st := l.st.Subject(subject)
			v := state.Input(l.clock.Add(time.Millisecond), recorded.Request, l.st.Known(subject), st, l.st.OpenBreaches()).Value()
			dec, err := set.DecideValue(context.Background(), v)
			if err != nil {
				t.Fatal(err)
			}
			allow := dec.Allow != lie
			var relied []uint64
			for _, r := range state.ReliedOn(allow, recorded.Request, st) {
				relied = append(relied, r.Index)
			}
			l.add(&pb.Entry{SubjectId: subject, SubjectCommitment: commitment, IdempotencyKey: fmt.Sprintf("send-%d", i),
				Event: &pb.Entry_SendDecision{SendDecision: &pb.SendDecision{
					Request: recorded.Request, Allow: allow, Reasons: dec.Reasons, PolicyIndex: 0,
					PolicyDigest: digest, ConsentIndexes: relied, Input: policies.AppendJSON(nil, v), InputVersion: state.InputVersion,
				}}})
			continue
		}
		e := &pb.Entry{SubjectId: subject, SubjectCommitment: commitment, IdempotencyKey: fmt.Sprintf("consent-%d", i)}
		switch i % 3 {
		case 0:
			e.Event = &pb.Entry_ConsentGranted{ConsentGranted: &pb.ConsentGranted{
				Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing", "order_updates"}, Method: "checkout",
				NoticeVersion: "2026-01", EvidenceDigest: commitment, OccurredAt: timestamppb.New(l.clock),
			}}
		case 1:
			e.Event = &pb.Entry_ConsentConfirmed{ConsentConfirmed: &pb.ConsentConfirmed{
				Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing"}, OccurredAt: timestamppb.New(l.clock),
			}}
		default:
			e.Event = &pb.Entry_ConsentWithdrawn{ConsentWithdrawn: &pb.ConsentWithdrawn{
				Channel: pb.Channel_CHANNEL_SMS, Method: "keyword", Keyword: "STOP", OccurredAt: timestamppb.New(l.clock),
			}}
		}
		l.add(e)
	}
	return l.export(s), key.String()
}

// TestSynthLogAudits checks the benchmark's log is one an audit passes.
func TestSynthLogAudits(t *testing.T) {
	exp, key := buildLog(t, 3000, 10, false)
	rep, err := verifier.Audit(context.Background(), bytes.NewReader(exp), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 3000 || rep.Replayed == 0 {
		t.Fatalf("audited %d entries, replayed %d decisions", rep.Entries, rep.Replayed)
	}
}

// Replays report findings out of order, from several goroutines; the
// report still keeps the lowest indexes and names the first.
func TestAuditManyFindings(t *testing.T) {
	exp, key := buildLog(t, 2600, 1, true)
	rep, err := verifier.Audit(context.Background(), bytes.NewReader(exp), key, nil)
	var ae *verifier.AuditError
	if !errors.As(err, &ae) || ae.Total != 2599 || ae.First.Index != 1 || ae.First.Check != verifier.AuditReplay {
		t.Fatalf("Audit = %v, want 2599 replay findings from #1", err)
	}
	if len(rep.Findings) != verifier.MaxFindings || rep.FindingsTotal != 2599 || *rep.FirstBadIndex != 1 {
		t.Fatalf("report lists %d of %d findings, first %d", len(rep.Findings), rep.FindingsTotal, *rep.FirstBadIndex)
	}
	for i, f := range rep.Findings {
		if f.Index != uint64(i+1) {
			t.Fatalf("finding %d is about #%d, want #%d", i, f.Index, i+1)
		}
	}
	if !strings.Contains(rep.Text(), "… and 1599 more") {
		t.Error("the text does not say how many findings are not listed")
	}
}

// BenchmarkAudit reports the audit's throughput in entries/s: over consent
// events only (hashing, decoding, chains: the target is
// 200,000 entries/s), and over logs where every 10th or every entry is a
// decision replayed with the Rego policy.
func BenchmarkAudit(b *testing.B) {
	for _, bc := range []struct {
		name          string
		n             int
		decisionEvery int
	}{
		{"consent-events", 200_000, 0},
		{"decisions-10pct", 50_000, 10},
		{"decisions-only", 5_000, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			exp, key := buildLog(b, bc.n, bc.decisionEvery, false)
			b.SetBytes(int64(len(exp)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := verifier.Audit(context.Background(), bytes.NewReader(exp), key, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(bc.n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkVerifyEvidence is the library's share of consentverify
// evidence, with the policy already compiled (policies.Replay caches it;
// a process compiles it once, ~20 ms).
func BenchmarkVerifyEvidence(b *testing.B) {
	bundle, key := readFixture(b, "evidence/valid-allow.json"), pinnedKey(b)
	for b.Loop() {
		if _, err := verifier.VerifyEvidence(context.Background(), bundle, key); err != nil {
			b.Fatal(err)
		}
	}
}
