package verifier_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/verifier"
)

// forger rewrites the entries of a fixture bundle and signs a checkpoint
// over them with its own key, as a dishonest operator holding the log's
// key could: signatures and inclusion proofs verify, and only the content
// checks (3 to 6) can tell.
type forger struct {
	signer note.Signer
	vkey   string
}

func newForger(t testing.TB) *forger {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "forged.example/ledger")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &forger{signer: s, vkey: vkey}
}

// parts are a bundle's decoded entries, for a change to edit.
type parts struct {
	decision *pb.Entry
	chain    []*pb.Entry
	policy   *pb.Entry
	lastSend *pb.Entry   // bundle field 6, if any
	extra    []*pb.Entry // more entries of the log (not in the bundle)
	notice   *pb.Entry   // bundle field 5, if set
}

func (p *parts) send() *pb.SendDecision { return p.decision.GetSendDecision() }

func decodeBundle(t testing.TB, raw []byte) *pb.EvidenceBundle {
	t.Helper()
	b := new(pb.EvidenceBundle)
	if err := protojson.Unmarshal(raw, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeEntry(t testing.TB, data []byte) *pb.Entry {
	t.Helper()
	e := new(pb.Entry)
	if err := proto.Unmarshal(data, e); err != nil {
		t.Fatal(err)
	}
	return e
}

func marshalEntry(t testing.TB, e *pb.Entry) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forge applies change to the decoded entries of the fixture bundle, then,
// if relink, makes the links agree again (each chain event's
// subject_prev_hash names the event before it if its subject_prev_index
// does, the decision's consent_head_hash names the chain's last event if its
// index does), rebuilds a tree with the entries at their index fields and
// filler elsewhere, and returns the signed bundle as JSON.
func (f *forger) forge(t testing.TB, fixture string, relink bool, change func(p *parts)) []byte {
	t.Helper()
	b := decodeBundle(t, readFixture(t, "evidence/"+fixture+".json"))
	p := &parts{decision: decodeEntry(t, b.Decision.Entry), policy: decodeEntry(t, b.Policy.Entry)}
	for _, pe := range b.Chain {
		p.chain = append(p.chain, decodeEntry(t, pe.Entry))
	}
	if b.LastAllowedSend != nil {
		p.lastSend = decodeEntry(t, b.LastAllowedSend.Entry)
	}
	change(p)
	data := map[*pb.Entry][]byte{}
	enc := func(e *pb.Entry) []byte {
		d := marshalEntry(t, e)
		data[e] = d
		return d
	}
	for i, e := range p.chain {
		if relink && i > 0 && e.SubjectPrevIndex != nil && *e.SubjectPrevIndex == p.chain[i-1].Index {
			e.SubjectPrevHash = rfc6962.DefaultHasher.HashLeaf(data[p.chain[i-1]])
		}
		enc(e)
	}
	if relink && len(p.chain) > 0 {
		last := p.chain[len(p.chain)-1]
		if h := p.decision.ConsentHeadIndex; h != nil && *h == last.Index {
			p.decision.ConsentHeadHash = rfc6962.DefaultHasher.HashLeaf(data[last])
		}
	}
	enc(p.decision)
	enc(p.policy)
	if p.lastSend != nil {
		enc(p.lastSend)
	}
	for _, e := range p.extra {
		enc(e)
	}
	if p.notice != nil {
		enc(p.notice)
	}
	at := map[uint64][]byte{}
	size := uint64(0)
	for e, d := range data {
		at[e.Index] = d
		size = max(size, e.Index+1)
	}
	tree := testonly.New(rfc6962.DefaultHasher)
	for i := range size {
		if d, ok := at[i]; ok {
			tree.AppendData(d)
		} else {
			tree.AppendData(fmt.Appendf(nil, "filler %d", i))
		}
	}
	prove := func(e *pb.Entry) *pb.ProvenEntry {
		proof, err := tree.InclusionProof(e.Index, size)
		if err != nil {
			t.Fatal(err)
		}
		return &pb.ProvenEntry{Index: e.Index, Entry: data[e], InclusionProof: proof}
	}
	body := log.Checkpoint{Origin: f.signer.Name(), Size: size, Hash: tree.Hash()}.Marshal()
	cp, err := note.Sign(&note.Note{Text: string(body)}, f.signer)
	if err != nil {
		t.Fatal(err)
	}
	out := &pb.EvidenceBundle{Checkpoint: string(cp), Decision: prove(p.decision), Policy: prove(p.policy)}
	for _, e := range p.chain {
		out.Chain = append(out.Chain, prove(e))
	}
	if p.lastSend != nil {
		out.LastAllowedSend = prove(p.lastSend)
	}
	if p.notice != nil {
		out.Notice = prove(p.notice)
	}
	j, err := protojson.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func u64(v uint64) *uint64 { return &v }

// TestForgedBundles covers the content checks, each branch, with bundles a
// key holder could sign. The fixture valid-allow is anna's WhatsApp
// marketing send #11: chain #1 (opt-in) → #2 (SMS opt-in) → #3 (double
// opt-in confirmation), policy #0.
func TestForgedBundles(t *testing.T) {
	f := newForger(t)
	anna := func(p *parts) string { return p.decision.SubjectId }
	cases := []struct {
		name    string
		fixture string
		relink  bool
		change  func(p *parts)
		check   int    // 0: verifies
		want    string // in the error
	}{
		{"unchanged", "valid-allow", true, func(p *parts) {}, 0, ""},
		// A withdrawal of another purpose does not break the chain (check 3
		// passes), but the recorded input does not show it (check 6).
		{"withdrawal of another purpose", "valid-allow", true, func(p *parts) {
			p.chain = append(p.chain, &pb.Entry{Index: 5, SubjectId: anna(p), SubjectPrevIndex: u64(3),
				Event: &pb.Entry_ConsentWithdrawn{ConsentWithdrawn: &pb.ConsentWithdrawn{Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"newsletter"}}}})
			p.decision.ConsentHeadIndex = u64(5)
		}, 6, "subject.consents.whatsapp.newsletter"},
		{"withdrawal of the purpose", "valid-allow", true, func(p *parts) {
			p.chain = append(p.chain, &pb.Entry{Index: 5, SubjectId: anna(p), SubjectPrevIndex: u64(3),
				Event: &pb.Entry_ConsentWithdrawn{ConsentWithdrawn: &pb.ConsentWithdrawn{Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"newsletter", "marketing"}}}})
			p.decision.ConsentHeadIndex = u64(5)
		}, 3, "entry #5 (opt-out for whatsapp/newsletter,marketing) ends the consent"},
		{"erasure", "valid-allow", true, func(p *parts) {
			p.chain = append(p.chain, &pb.Entry{Index: 5, SubjectId: anna(p), SubjectPrevIndex: u64(3),
				Event: &pb.Entry_SubjectErased{SubjectErased: &pb.SubjectErased{Reason: "art17_request"}}})
			p.decision.ConsentHeadIndex = u64(5)
		}, 3, "erasure of the subject"},
		{"another subject on the chain", "valid-allow", true, func(p *parts) { p.chain[1].SubjectId = "subj_someoneelse" }, 3, "another subject"},
		{"a decision on the chain", "valid-allow", true, func(p *parts) {
			p.chain[1].Event = &pb.Entry_SendDecision{SendDecision: &pb.SendDecision{}}
		}, 3, "is a send_decision, not a consent event"},
		{"head hash", "valid-allow", false, func(p *parts) { p.decision.ConsentHeadHash = bytes.Repeat([]byte{7}, 32) }, 3, "with another leaf hash"},
		{"link hash", "valid-allow", false, func(p *parts) { p.chain[2].SubjectPrevHash = bytes.Repeat([]byte{7}, 32) }, 3, "names #2 as the previous consent event, but with another leaf hash"},
		{"head beyond the chain", "valid-allow", true, func(p *parts) { p.decision.ConsentHeadIndex = u64(7) }, 3, "does not end at the consent head"},
		{"no head", "valid-allow", true, func(p *parts) { p.decision.ConsentHeadIndex = nil }, 3, "names no consent head"},
		{"relied-on entry not on the chain", "valid-allow", true, func(p *parts) { p.send().ConsentIndexes = []uint64{1, 9} }, 3, "#9, which is not on the chain"},
		// A chain may start at the subject's first consent event before the
		// grant (check 6 derives the whole state from it): #1 → #2 relied
		// on as the grant, #2 is the SMS opt-in.
		{"chain starts before the grant", "valid-allow", true, func(p *parts) { p.send().ConsentIndexes = []uint64{2} }, 4, "another channel"},
		{"chain starts after the first event, not at the grant", "valid-allow", true, func(p *parts) { p.chain = p.chain[1:] }, 3, "not at the grant #1"},
		{"no subject", "valid-allow", true, func(p *parts) { p.decision.SubjectId = "" }, 3, "names no subject"},
		{"backwards link", "valid-allow", true, func(p *parts) {
			p.chain[1].Index, p.chain[2].SubjectPrevIndex = 9, u64(9) // #1 → #9 → #3
		}, 3, "entry #3 does not name #9"},
		{"denial with a chain", "valid-deny", true, func(p *parts) {
			p.chain = []*pb.Entry{{Index: 1, SubjectId: p.decision.SubjectId, Event: &pb.Entry_ConsentGranted{ConsentGranted: &pb.ConsentGranted{Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing"}}}}}
		}, 3, "denial, which relies on no consent"},
		{"chain without consent relied on", "allow-without-consent", true, func(p *parts) {
			p.chain = []*pb.Entry{{Index: 1, SubjectId: p.decision.SubjectId, Event: &pb.Entry_ConsentGranted{ConsentGranted: &pb.ConsentGranted{Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing"}}}}}
		}, 3, "relied on no consent entry, yet"},
		{"grant for another channel", "valid-allow", true, func(p *parts) {
			p.chain[0].GetConsentGranted().Channel = pb.Channel_CHANNEL_RCS
		}, 4, "another channel"},
		{"chain starts with a confirmation", "valid-allow", true, func(p *parts) {
			p.chain = p.chain[2:]
			p.send().ConsentIndexes = []uint64{3}
			p.chain[0].SubjectPrevIndex = nil
		}, 4, "is not an opt-in"},
		{"input names another grant", "valid-allow", true, func(p *parts) {
			d := p.send()
			d.Input = bytes.Replace(d.Input, []byte(`"grant_index":1,`), []byte(`"grant_index":4,`), 1)
		}, 4, "names another grant"},
		{"input claims double opt-in the chain lacks", "valid-allow-sms", true, func(p *parts) {
			// SMS order updates need no double opt-in; the input claims one.
			d := p.send()
			d.Input = bytes.Replace(d.Input, []byte(`"double_opt_in":false,"grant_index":2`), []byte(`"double_opt_in":true,"grant_index":2`), 1)
			if !bytes.Contains(d.Input, []byte(`"double_opt_in":true,"grant_index":2`)) {
				panic("fixture input changed: " + string(d.Input))
			}
		}, 4, "relied on a double opt-in"},
		{"policy entry is not a policy", "valid-allow", true, func(p *parts) {
			p.policy.Event = &pb.Entry_ConsentGranted{ConsentGranted: &pb.ConsentGranted{}}
		}, 5, "does not publish a policy"},
		{"policy published after the decision", "valid-allow", true, func(p *parts) {
			p.policy.Index = 12
			p.send().PolicyIndex = 12
		}, 5, "published after the decision"},
		{"policy that does not compile", "valid-allow", true, func(p *parts) {
			pp := p.policy.GetPolicyPublished()
			pp.Files = append(pp.Files, &pb.PolicyFile{Name: "broken.rego", Content: "package x\n\nallow if {"})
			files := make([]policies.File, len(pp.Files))
			for i, f := range pp.Files {
				files[i] = policies.File{Name: f.Name, Content: f.Content}
			}
			pp.Digest = policies.Digest(files)
			p.send().PolicyDigest = pp.Digest
		}, 5, "replaying the decision's recorded input with policy #0 fails"},
		{"reasons reordered", "valid-allow", true, func(p *parts) { slices.Reverse(p.send().Reasons) }, 5, "gives another result"},
		// Check 6: what the recorded input claims against what the bundle shows.
		{"input now 6 h before the decision (quiet hours hidden)", "valid-allow", true, func(p *parts) {
			p.decision.RecordedAt = timestamppb.New(p.decision.RecordedAt.AsTime().Add(6 * time.Hour))
		}, 6, "earlier than the decision's recorded_at"},
		{"input zone differs from the request's", "valid-allow", true, func(p *parts) {
			d := p.send()
			d.Input = bytes.Replace(d.Input, []byte(`"subject_timezone":"Europe/Berlin"`), []byte(`"subject_timezone":"Europe/London"`), 1)
		}, 6, "request.subject_timezone"},
		{"input omits the SMS opt-out", "valid-allow-optout", true, func(p *parts) {
			d := p.send()
			in := decodeInput(t, d.Input)
			delete(in["subject"].(map[string]any)["consents"].(map[string]any), "sms")
			d.Input = encodeInput(t, in)
		}, 6, "subject.consents.sms"},
		{"input claims a consent the chain withdrew", "valid-allow", true, func(p *parts) {
			p.chain = append(p.chain, &pb.Entry{Index: 5, SubjectId: anna(p), SubjectPrevIndex: u64(3),
				Event: &pb.Entry_ConsentWithdrawn{ConsentWithdrawn: &pb.ConsentWithdrawn{Channel: pb.Channel_CHANNEL_SMS}}})
			p.decision.ConsentHeadIndex = u64(5)
		}, 6, "subject.consents.sms."},
		{"last allowed send to another subject", "valid-allow", true, func(p *parts) {
			ls := proto.CloneOf(p.decision)
			ls.Index, ls.SubjectId = 9, "subj_someoneelse"
			p.lastSend = ls
		}, 6, "is not an earlier allowed send to the same subject"},
		{"last allowed send the input omits", "valid-allow", true, func(p *parts) {
			ls := proto.CloneOf(p.decision)
			ls.Index = 9
			p.lastSend = ls
		}, 6, "last_allowed_send_at"},
		{"unknown input derivation", "valid-allow", true, func(p *parts) { p.send().InputVersion = 99 }, 6, "derivation this verifier does not know"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bundle := f.forge(t, tc.fixture, tc.relink, tc.change)
			rep, err := verifier.VerifyEvidence(context.Background(), bundle, f.vkey)
			if tc.check == 0 {
				if err != nil {
					t.Fatalf("VerifyEvidence = %v, want verified", err)
				}
				return
			}
			var ce *verifier.CheckError
			if !errors.As(err, &ce) || ce.Check != tc.check || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("VerifyEvidence = %v, want check %d failing with %q", err, tc.check, tc.want)
			}
			if rep == nil || rep.Verified || rep.Checks[tc.check-1].Status != verifier.StatusFailed {
				t.Errorf("report does not show check %d failed", tc.check)
			}
		})
	}
}

// A bundle whose decision is not a send decision is not an evidence
// bundle: malformed, exit 2.
func TestForgedBundleNotADecision(t *testing.T) {
	f := newForger(t)
	bundle := f.forge(t, "valid-allow", true, func(p *parts) {
		p.decision.Event = &pb.Entry_BreachClosed{BreachClosed: &pb.BreachClosed{BreachId: "x"}}
	})
	rep, err := verifier.VerifyEvidence(context.Background(), bundle, f.vkey)
	if !errors.Is(err, verifier.ErrMalformed) || errors.Is(err, verifier.ErrInvalid) || rep != nil {
		t.Fatalf("VerifyEvidence = %v, %v; want ErrMalformed only", rep, err)
	}
}

func decodeInput(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func encodeInput(t testing.TB, m map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Issue 11.3: replaying a decision has a time limit; a policy that does not
// decide within it is a failed check, not a hang.
func TestForgedBundleSlowPolicy(t *testing.T) {
	f := newForger(t)
	bundle := f.forge(t, "valid-allow", true, func(p *parts) {
		pp := p.policy.GetPolicyPublished()
		pp.Files = append(pp.Files, &pb.PolicyFile{Name: "slow.rego", Content: "package consentledger.send\n\ndeny contains \"slow: never\" if {\n\tsome i in numbers.range(1, 5000)\n\tsome j in numbers.range(1, 5000)\n\ti * j == -1\n}\n"})
		files := make([]policies.File, len(pp.Files))
		for i, f := range pp.Files {
			files[i] = policies.File{Name: f.Name, Content: f.Content}
		}
		pp.Digest = policies.Digest(files)
		p.send().PolicyDigest = pp.Digest
	})
	began := time.Now()
	_, err := verifier.VerifyEvidenceWith(context.Background(), bundle, f.vkey, verifier.Options{ReplayTimeout: 300 * time.Millisecond})
	var ce *verifier.CheckError
	if !errors.As(err, &ce) || ce.Check != 5 || !strings.Contains(err.Error(), "did not finish within 300ms") {
		t.Fatalf("VerifyEvidence of a slow policy = %v, want check 5 failing with the time limit", err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("the replay took %v with a 300ms limit", took)
	}
}
