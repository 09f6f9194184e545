package verifier_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/ledger/state"
	"github.com/consentledger/consentledger/policies"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/verifier"
)

// verifiedContent is what a verified bundle vouches for: the checkpoint's
// origin, size and root, and each entry's index and bytes in bundle order.
// Proofs and signature lines are not content: another valid proof or an
// extra cosignature changes nothing that was verified.
func verifiedContent(rep *verifier.EvidenceReport, b *pb.EvidenceBundle) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s %d %x\n", rep.Checkpoint.Origin, rep.Checkpoint.Size, rep.Checkpoint.Root)
	for _, pe := range append(append([]*pb.ProvenEntry{b.Decision}, b.Chain...), b.Policy) {
		fmt.Fprintf(h, "%d %x\n", pe.Index, sha256.Sum256(pe.Entry))
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// checkErrorClass fails unless err wraps exactly one of the two classes and
// the report comes with ErrInvalid only.
func checkErrorClass(t *testing.T, err error, hasReport bool) {
	t.Helper()
	invalid, malformed := errors.Is(err, verifier.ErrInvalid), errors.Is(err, verifier.ErrMalformed)
	if invalid == malformed {
		t.Fatalf("error %v: ErrInvalid %v, ErrMalformed %v; want exactly one", err, invalid, malformed)
	}
	if malformed && hasReport {
		t.Fatalf("malformed input (%v) came with a report", err)
	}
}

// FuzzVerifyEvidence checks that no bundle makes the verifier panic, that
// every error has one class, and that nothing verifies but the content of
// the valid fixtures.
func FuzzVerifyEvidence(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(testdata, "evidence", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	key := pinnedKey(f)
	valid := map[string]bool{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		if rep, err := verifier.VerifyEvidence(context.Background(), data, key); err == nil {
			b, _ := verifier.ParseBundle(data)
			valid[verifiedContent(rep, b)] = true
		}
	}
	if len(valid) < 5 {
		f.Fatalf("only %d valid fixtures", len(valid))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := verifier.VerifyEvidence(context.Background(), data, key)
		if err != nil {
			checkErrorClass(t, err, rep != nil)
			if errors.Is(err, verifier.ErrInvalid) && (rep == nil || rep.Verified || rep.Failure == nil) {
				t.Fatalf("failed verification %v without a failed report", err)
			}
			return
		}
		b, perr := verifier.ParseBundle(data)
		if perr != nil {
			t.Fatalf("verified a bundle that does not parse: %v", perr)
		}
		if !rep.Verified || !valid[verifiedContent(rep, b)] {
			t.Fatalf("a bundle whose content differs from every valid fixture verifies:\n%s", data)
		}
	})
}

// FuzzAudit checks that no export makes the audit panic, that every error
// has one class, and that an export that audits clean holds exactly the
// entries of a valid log. The fixture exports (100 KB, three copies of the
// default policy) are seeds for go test; fuzzing mutates a small log with
// every kind of entry and a tiny policy, which the fuzzer explores orders
// of magnitude faster.
func FuzzAudit(f *testing.F) {
	small, smallKey := smallExport(f)
	valid := map[string][][]byte{} // checkpoint root -> entries
	for _, exp := range []struct {
		data []byte
		key  string
	}{{small, smallKey}, {readFixture(f, "export/log.export"), pinnedKey(f)}} {
		rep, err := verifier.Audit(context.Background(), bytes.NewReader(exp.data), exp.key, nil)
		if err != nil {
			f.Fatal(err)
		}
		_, entries := readExport(f, bytes.NewReader(exp.data))
		valid[string(rep.Checkpoint.Root)] = entries
	}
	if fuzzing() {
		f.Add(small, true)
		f.Add(small[:len(small)*2/3], true)
	} else {
		f.Add(small, true)
		files, err := filepath.Glob(filepath.Join(testdata, "export", "*.export"))
		if err != nil || len(files) == 0 {
			f.Fatalf("no fixtures: %v", err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data, false)
		}
	}
	fixtureKey := pinnedKey(f)
	f.Fuzz(func(t *testing.T, data []byte, isSmall bool) {
		key := fixtureKey
		if isSmall {
			key = smallKey
		}
		rep, err := verifier.Audit(context.Background(), bytes.NewReader(data), key, nil)
		if err != nil {
			checkErrorClass(t, err, rep != nil)
			return
		}
		want, ok := valid[string(rep.Checkpoint.Root)]
		if !rep.Verified || !ok || rep.Entries != uint64(len(want)) {
			t.Fatalf("audit passed with %d entries and root %x", rep.Entries, rep.Checkpoint.Root)
		}
		_, got := readExport(t, bytes.NewReader(data))
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("audit passed with entry %d changed", i)
			}
		}
	})
}

// fuzzing reports whether the test binary runs with -test.fuzz.
func fuzzing() bool {
	f := flag.Lookup("test.fuzz")
	return f != nil && f.Value.String() != ""
}

// smallExport is a valid log of a dozen entries, one of every kind, with a
// tiny policy, signed by a key derived from a fixed seed (so that a saved
// fuzz corpus stays valid).
func smallExport(t testing.TB) ([]byte, string) {
	skey, vkey, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{42}, 64)), "fuzz.example/ledger")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	files := []policies.File{
		{Name: "send.rego", Content: "package consentledger.send\n\ndecision := {\"allow\": true, \"reasons\": [\"consent: granted\"]} if {\n\tinput.subject.consents[input.request.channel][input.request.purpose].status == \"granted\"\n} else := {\"allow\": false, \"reasons\": [\"no_consent: none\"]}\n"},
		{Name: "inbound.rego", Content: "package consentledger.inbound\n\ndefault action := \"none\"\n\ndefault keyword := \"\"\n"},
	}
	pf := make([]*pb.PolicyFile, len(files))
	for i, f := range files {
		pf[i] = &pb.PolicyFile{Name: f.Name, Content: f.Content}
	}
	digest := policies.Digest(files)
	l := newSynthLog(t)
	at := func(h int) *timestamppb.Timestamp { return timestamppb.New(l.clock.Add(time.Duration(h) * time.Hour)) }
	wa := pb.Channel_CHANNEL_WHATSAPP
	// A decision records the input the server derives (package state) and
	// relies on what the server would.
	decision := func(subject string, allow bool, reason string) *pb.Entry {
		req := &pb.SendRequest{Channel: wa, Purpose: "marketing"}
		st := l.st.Subject(subject)
		var relied []uint64
		for _, r := range state.ReliedOn(allow, req, st) {
			relied = append(relied, r.Index)
		}
		in := state.Input(l.clock.Add(time.Millisecond), req, l.st.Known(subject), st, l.st.OpenBreaches())
		return &pb.Entry{SubjectId: subject, Event: &pb.Entry_SendDecision{SendDecision: &pb.SendDecision{
			Request: req, Allow: allow, Reasons: []string{reason},
			PolicyDigest: digest, ConsentIndexes: relied, Input: policies.AppendJSON(nil, in.Value()), InputVersion: state.InputVersion,
		}}}
	}
	l.add(&pb.Entry{Event: &pb.Entry_PolicyPublished{PolicyPublished: &pb.PolicyPublished{Files: pf, Digest: digest}}})
	l.add(&pb.Entry{SubjectId: "subj_a", Event: &pb.Entry_ConsentGranted{ConsentGranted: &pb.ConsentGranted{Channel: wa, Purposes: []string{"marketing"}}}})
	l.add(&pb.Entry{SubjectId: "subj_a", Event: &pb.Entry_ConsentConfirmed{ConsentConfirmed: &pb.ConsentConfirmed{Channel: wa, Purposes: []string{"marketing"}}}})
	l.add(decision("subj_a", true, "consent: granted"))
	l.add(&pb.Entry{SubjectId: "subj_a", Event: &pb.Entry_ConsentWithdrawn{ConsentWithdrawn: &pb.ConsentWithdrawn{Channel: wa}}})
	l.add(decision("subj_a", false, "no_consent: none"))
	l.add(&pb.Entry{SubjectId: "subj_b", Event: &pb.Entry_ConsentGranted{ConsentGranted: &pb.ConsentGranted{Channel: wa, Purposes: []string{"marketing"}}}})
	l.add(&pb.Entry{SubjectId: "subj_b", Event: &pb.Entry_SubjectErased{SubjectErased: &pb.SubjectErased{Reason: "art17_request"}}})
	l.add(&pb.Entry{Event: &pb.Entry_BreachDetected{BreachDetected: &pb.BreachDetected{BreachId: "b1", DetectedAt: at(0), Channels: []pb.Channel{wa}}}})
	l.add(&pb.Entry{Event: &pb.Entry_BreachAuthorityNotified{BreachAuthorityNotified: &pb.BreachAuthorityNotified{BreachId: "b1", NotifiedAt: at(80), DelayReason: "forensics"}}})
	l.add(&pb.Entry{Event: &pb.Entry_BreachSubjectsNotified{BreachSubjectsNotified: &pb.BreachSubjectsNotified{BreachId: "b1", NotifiedAt: at(81), SubjectsNotified: 3}}})
	l.add(&pb.Entry{Event: &pb.Entry_BreachClosed{BreachClosed: &pb.BreachClosed{BreachId: "b1", ClosedAt: at(90)}}})
	l.add(&pb.Entry{Event: &pb.Entry_BreachDetected{BreachDetected: &pb.BreachDetected{BreachId: "b2", DetectedAt: at(0)}}})
	return l.export(s), vkey
}

// FuzzParseBundle keeps the bundle decoder honest on its own.
func FuzzParseBundle(f *testing.F) {
	f.Add([]byte(`{"checkpoint":"x","decision":{"index":"1"},"policy":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := verifier.ParseBundle(data)
		if err != nil {
			if !errors.Is(err, verifier.ErrMalformed) {
				t.Fatalf("ParseBundle error %v is not ErrMalformed", err)
			}
			return
		}
		if b.Decision == nil || b.Policy == nil || b.Checkpoint == "" {
			t.Fatal("ParseBundle accepted a bundle without decision, policy or checkpoint")
		}
		if _, err := protojson.Marshal(b); err != nil {
			t.Fatal(err)
		}
	})
}
