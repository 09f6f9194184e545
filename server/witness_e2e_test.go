package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/consentledger/consentledger/client"
	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/ledger/witness"
	"github.com/consentledger/consentledger/ledger/witness/litewitnesstest"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/server"
	"github.com/consentledger/consentledger/verifier"
)

const witnessedOrigin = "witnessed.example/ledger"

// witnessedServer starts two real litewitnesses and a server that submits
// to both, registers the server's log at both, and returns them.
func witnessedServer(t *testing.T) (*testServer, *litewitnesstest.Witness, *litewitnesstest.Witness, string) {
	t.Helper()
	w1 := litewitnesstest.Start(t, "w1.example/witness")
	w2 := litewitnesstest.Start(t, "w2.example/witness")
	s := start(t, server.Config{Origin: witnessedOrigin, WitnessInterval: 200 * time.Millisecond, Witnesses: []witness.Witness{
		{Name: "w1", URL: w1.URL, VKey: w1.VKey}, {Name: "w2", URL: w2.URL, VKey: w2.VKey},
	}})
	vkey, err := os.ReadFile(filepath.Join(s.dataDir, ledger.VerifierKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []*litewitnesstest.Witness{w1, w2} {
		w.Register(witnessedOrigin, strings.TrimSpace(string(vkey)))
	}
	return s, w1, w2, strings.TrimSpace(string(vkey))
}

// waitCosigned waits until the latest checkpoint covers size and carries n
// cosignatures, and returns it.
func waitCosigned(t *testing.T, s *testServer, size uint64, n uint32) *pb.GetCheckpointResponse {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := s.logs().GetCheckpoint(context.Background(), connect.NewRequest(&pb.GetCheckpointRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		if r.Msg.Size >= size && r.Msg.Cosignatures >= n {
			return r.Msg
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of size ≥ %d with %d cosignatures within 20 s; latest: size %d, %d cosignatures, witnesses %v", size, n, r.Msg.Size, r.Msg.Cosignatures, r.Msg.Witnesses)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func bundleJSON(t *testing.T, s *testServer, decision, size uint64) []byte {
	t.Helper()
	r, err := s.logs().GetEvidence(context.Background(), connect.NewRequest(&pb.GetEvidenceRequest{DecisionIndex: decision, Size: size}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := protojson.Marshal(r.Msg.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLitewitness runs the server with two real litewitnesses: their
// cosignatures arrive, are served with the checkpoint and verify with the
// pinned keys; a quorum of 2 passes, 3 fails; tampered, misplaced and
// unpinned cosignatures are rejected.
func TestLitewitness(t *testing.T) {
	s, w1, w2, logKey := witnessedServer(t)
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	d := decide(t, s, waMarketing(anna))
	cp := waitCosigned(t, s, d.Decision.Index+1, 2)
	if len(cp.Witnesses) != 2 || cp.WitnessQuorum != 2 || cp.Witnesses[0].Name != "w1" || cp.Witnesses[0].LastCosignedSize < cp.Size || cp.Witnesses[1].Vkey != w2.VKey {
		t.Errorf("GetCheckpoint's witnesses: %v, quorum %d", cp.Witnesses, cp.WitnessQuorum)
	}
	bundle := bundleJSON(t, s, d.Decision.Index, cp.Size)
	ctx := context.Background()
	both, _ := verifier.ParseWitnesses([]string{w1.VKey, w2.VKey}, 0)
	rep, err := verifier.VerifyEvidenceWitnessed(ctx, bundle, logKey, both)
	if err != nil {
		t.Fatalf("quorum 2 of 2: %v", err)
	}
	text := rep.Text()
	for _, w := range []string{"w1.example/witness", "w2.example/witness"} {
		if !strings.Contains(text, "witnessed by "+w+" at ") || !strings.Contains(text, ": this decision existed no later than ") {
			t.Errorf("report does not say who witnessed it:\n%s", text)
		}
	}
	for _, c := range rep.Witness.Cosignatures {
		if age := time.Since(c.Time); age < 0 || age > time.Minute {
			t.Errorf("cosignature time %v is not the witness's now", c.Time)
		}
	}

	three, _ := verifier.ParseWitnesses([]string{w1.VKey, w2.VKey}, 3)
	onlyW1, _ := verifier.ParseWitnesses([]string{w1.VKey}, 2)
	// Another checkpoint's cosignature by w1, moved onto this one.
	grow := decide(t, s, waMarketing(anna))
	later := waitCosigned(t, s, grow.Decision.Index+1, 2)
	w1Line := func(note string) string {
		for _, l := range strings.Split(note, "\n") {
			if strings.HasPrefix(l, "— w1.example/witness ") {
				return l
			}
		}
		t.Fatalf("no w1 line in %q", note)
		return ""
	}
	tamper := func(f func(string) string) []byte {
		var b pb.EvidenceBundle
		if err := protojson.Unmarshal(bundle, &b); err != nil {
			t.Fatal(err)
		}
		b.Checkpoint = f(b.Checkpoint)
		out, _ := protojson.Marshal(&b)
		return out
	}
	flip := func(note string) string {
		line := w1Line(note)
		f := strings.Fields(line)
		raw, _ := base64.StdEncoding.DecodeString(f[2])
		raw[len(raw)-1] ^= 1
		return strings.Replace(note, line, f[0]+" "+f[1]+" "+base64.StdEncoding.EncodeToString(raw), 1)
	}
	tests := []struct {
		name   string
		bundle []byte
		w      *verifier.Witnesses
		want   string
	}{
		{"quorum 3 of 2 keys", bundle, three, "the quorum cannot be met"},
		{"unpinned witness does not count", bundle, onlyW1, "1 valid cosignatures from pinned witnesses, but the quorum is 2"},
		{"tampered cosignature", tamper(flip), both, "does not verify: it was altered, or made for another checkpoint"},
		{"cosignature of another root", tamper(func(n string) string { return strings.Replace(n, w1Line(n), w1Line(later.Checkpoint), 1) }), both, "does not verify"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := verifier.VerifyEvidenceWitnessed(ctx, tc.bundle, logKey, tc.w)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if rep == nil || rep.Verified || !strings.HasPrefix(rep.Text(), "NOT VERIFIED: the witness check failed") {
				t.Errorf("report: %v", rep)
			}
		})
	}
	if rep, err := verifier.VerifyEvidenceWitnessed(ctx, bundle, logKey, onlyW1); err == nil || len(rep.Witness.Ignored) != 1 || !strings.HasPrefix(rep.Witness.Ignored[0], "w2.example/witness+") {
		t.Errorf("the unpinned w2 is not listed as ignored: %v", rep.Witness)
	}

	// /metrics shows each witness's size, age and failures.
	resp, err := s.http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`consentledger_witness_cosigned_size{witness="w1"}`, `consentledger_witness_cosignature_age_seconds{witness="w2"}`, `consentledger_witness_failures_total{witness="w1"}`, `consentledger_witness_alarm{witness="w2"} 0`} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

// TestLitewitnessDownAndRestart: a witness that is down slows no Decide;
// after it restarts it catches up from the size it cosigned last.
func TestLitewitnessDownAndRestart(t *testing.T) {
	s, _, w2, _ := witnessedServer(t)
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	waitCosigned(t, s, 1, 2)
	w2.Stop()
	var slowest time.Duration
	var last *pb.DecideResponse
	for range 20 {
		start := time.Now()
		last = decide(t, s, waMarketing(anna))
		slowest = max(slowest, time.Since(start))
		time.Sleep(50 * time.Millisecond) // let checkpoints be signed and submitted meanwhile
	}
	if slowest > 500*time.Millisecond {
		t.Errorf("the slowest Decide took %v with a witness down", slowest)
	}
	status := func() []*pb.WitnessStatus {
		r, err := s.logs().GetCheckpoint(context.Background(), connect.NewRequest(&pb.GetCheckpointRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		return r.Msg.Witnesses
	}
	cp := waitCosigned(t, s, last.Decision.Index+1, 1)
	if st := status(); st[0].LastCosignedSize < cp.Size || st[1].Failures == 0 || st[1].LastError == "" {
		t.Errorf("while w2 is down: %v", st)
	}
	w2.Restart()
	deadline := time.Now().Add(20 * time.Second)
	for status()[1].LastCosignedSize < last.Decision.Index+1 {
		if time.Now().After(deadline) {
			t.Fatalf("w2 did not catch up after its restart: %v", status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := status(); st[1].LastError != "" || st[1].Alarm != "" {
		t.Errorf("after the restart: %v", st[1])
	}
}

// TestLitewitnessRefusesFork builds a second ledger with the same key and
// origin but other entries (a split view, test-only): a witness that has
// cosigned the first refuses it, and the submitter raises the alarm.
func TestLitewitnessRefusesFork(t *testing.T) {
	s, w1, _, _ := witnessedServer(t)
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	real := waitCosigned(t, s, 2, 2)

	for _, delta := range []int{-1, 0, 5} { // the fork is smaller than, as large as, and larger than the real log
		t.Run(fmt.Sprintf("fork of %d%+d entries", real.Size, delta), func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{ledger.SigningKeyFile, ledger.VerifierKeyFile, ledger.SubjectKeyFile} {
				b, err := os.ReadFile(filepath.Join(s.dataDir, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			fork, err := ledger.Open(dir, ledger.Options{CheckpointInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer fork.Close()
			if fork.Origin() != witnessedOrigin {
				t.Fatalf("fork origin %q", fork.Origin())
			}
			n := int(real.Size) + delta
			for i := range n {
				d := sha256.Sum256([]byte(fmt.Sprint("fork", i)))
				e := &pb.Entry{Actor: "mallory", Event: &pb.Entry_PolicyPublished{PolicyPublished: &pb.PolicyPublished{
					Files: []*pb.PolicyFile{{Name: "send.rego", Content: fmt.Sprintf("package fork%d", i)}}, Digest: fmt.Sprintf("sha256:%x", d)}}}
				if _, err := fork.Append(context.Background(), &ledger.Request{Entry: e}); err != nil {
					t.Fatal(err)
				}
			}
			fcp, err := fork.SignCheckpoint(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			sub, err := witness.New(fork, witness.Options{Witnesses: []witness.Witness{{Name: "w1", URL: w1.URL, VKey: w1.VKey}}, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			sub.SubmitAll(context.Background())
			st := sub.Status()[0]
			if st.Alarm == "" || st.LastCosignedSize != 0 {
				t.Fatalf("the witness did not refuse the fork of size %d: %+v", fcp.Size, st)
			}
			if cs, _ := fork.Cosignatures(context.Background(), fcp.Size); len(cs) != 0 {
				t.Errorf("the fork got %d cosignatures", len(cs))
			}
			t.Logf("alarm: %s", st.Alarm)
		})
	}
	// The real log is still witnessed.
	d := decide(t, s, waMarketing(anna))
	waitCosigned(t, s, d.Decision.Index+1, 2)
}

// TestWitnessConfigRefused: a witness key that does not parse, or a quorum
// the witnesses cannot meet, stops the start with a message.
func TestWitnessConfigRefused(t *testing.T) {
	for _, cfg := range []server.Config{
		{Witnesses: []witness.Witness{{Name: "w", URL: "http://127.0.0.1:1", VKey: "nonsense"}}},
		{Witnesses: []witness.Witness{{Name: "w", URL: "http://127.0.0.1:1", VKey: "w.example+01020304+AQ=="}}, WitnessQuorum: 2},
	} {
		cfg.DataDir, cfg.Addr = t.TempDir(), "127.0.0.1:0"
		err := server.Run(context.Background(), cfg, slog.New(slog.DiscardHandler), nil)
		if err == nil || !strings.Contains(err.Error(), "witness") {
			t.Errorf("Run(%+v) = %v, want a witness configuration error", cfg.Witnesses, err)
		}
	}
}

// TestWitnessedEvidence: `consentledger evidence --witnessed` waits for a
// cosigned checkpoint and proves the decision in it (field 1); --upgrade
// adds a later cosigned checkpoint to a bundle whose checkpoint has none
// (field 7).
func TestWitnessedEvidence(t *testing.T) {
	s, w1, w2, logKey := witnessedServer(t)
	cl, err := client.New(s.url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	both, _ := verifier.ParseWitnesses([]string{w1.VKey, w2.VKey}, 0)
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	d := decide(t, s, waMarketing(anna))

	var progress strings.Builder
	b, err := cl.WitnessedEvidence(ctx, d.Decision.Index, 30*time.Second, &progress)
	if err != nil {
		t.Fatalf("WitnessedEvidence: %v (%s)", err, progress.String())
	}
	rep, err := verifier.VerifyEvidenceWitnessed(ctx, b, logKey, both)
	if err != nil || rep.Witness.Upgraded || len(rep.Witness.Cosignatures) != 2 {
		t.Fatalf("witnessed bundle: %v, %+v", err, rep.Witness)
	}

	// An old bundle: the cosignatures stripped from its checkpoint, which
	// keeps the log's own signature valid.
	var old pb.EvidenceBundle
	if err := protojson.Unmarshal(b, &old); err != nil {
		t.Fatal(err)
	}
	note := old.Checkpoint
	for _, w := range []string{"w1.example/witness", "w2.example/witness"} {
		i := strings.Index(note, "— "+w+" ")
		j := i + strings.Index(note[i:], "\n") + 1
		note = note[:i] + note[j:]
	}
	old.Checkpoint = note
	oldJSON, _ := protojson.Marshal(&old)
	if _, err := verifier.VerifyEvidenceWitnessed(ctx, oldJSON, logKey, both); err == nil {
		t.Fatal("a bundle without cosignatures passed the witness check")
	}
	decide(t, s, waMarketing(anna)) // the log grows: the upgrade needs a consistency proof
	waitCosigned(t, s, d.Decision.Index+2, 2)
	up, err := cl.UpgradeEvidence(ctx, oldJSON, 30*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = verifier.VerifyEvidenceWitnessed(ctx, up, logKey, both)
	if err != nil || !rep.Witness.Upgraded || rep.Witness.Size <= d.Decision.Index+1 {
		t.Fatalf("upgraded bundle: %v, %+v", err, rep.Witness)
	}
	// A consistency proof that does not hold fails the upgrade.
	var bad pb.EvidenceBundle
	protojson.Unmarshal(up, &bad)
	bad.Witnessed.ConsistencyProof[0][0] ^= 1
	badJSON, _ := protojson.Marshal(&bad)
	if _, err := verifier.VerifyEvidenceWitnessed(ctx, badJSON, logKey, both); err == nil || !strings.Contains(err.Error(), "does not extend") {
		t.Errorf("a bad field-7 proof: %v", err)
	}

	// No witnesses configured: an immediate, clear error.
	plain := start(t, server.Config{})
	pc, _ := client.New(plain.url, client.Options{})
	optIn(t, plain, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	pd := decide(t, plain, waMarketing(anna))
	if _, err := pc.WitnessedEvidence(ctx, pd.Decision.Index, time.Second, io.Discard); !errors.Is(err, client.ErrNoWitnesses) {
		t.Errorf("without witnesses: %v", err)
	}
}

// TestWitnessedEvidenceTimesOut: witnesses that never cosign (the log is
// not registered with them) make --witnessed give up after --wait, saying
// why.
func TestWitnessedEvidenceTimesOut(t *testing.T) {
	w1 := litewitnesstest.Start(t, "w1.example/witness")
	s := start(t, server.Config{Origin: witnessedOrigin, WitnessInterval: 100 * time.Millisecond, Witnesses: []witness.Witness{{Name: "w1", URL: w1.URL, VKey: w1.VKey}}})
	cl, _ := client.New(s.url, client.Options{})
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	d := decide(t, s, waMarketing(anna))
	var progress strings.Builder
	start := time.Now()
	_, err := cl.WitnessedEvidence(context.Background(), d.Decision.Index, 1500*time.Millisecond, &progress)
	if err == nil || !strings.Contains(err.Error(), "within 1.5s") || !strings.Contains(err.Error(), "w1: last cosigned size 0, last error: ") {
		t.Fatalf("error %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("gave up after %v, want about 1.5 s", el)
	}
	if !strings.HasPrefix(progress.String(), "waiting up to 1.5s for 1 witness cosignatures on a checkpoint that covers decision ") {
		t.Errorf("progress %q", progress.String())
	}
}

// TestLitewitnessAuditAndClock: an export carries every kept checkpoint
// with its cosignatures, and the audit bounds each entry's time by them; a
// decision recorded by a clock ahead of the witnesses' is a finding, in the
// audit and in its evidence.
func TestLitewitnessAuditAndClock(t *testing.T) {
	s, w1, w2, logKey := witnessedServer(t)
	cl, _ := client.New(s.url, client.Options{})
	ctx := context.Background()
	both, _ := verifier.ParseWitnesses([]string{w1.VKey, w2.VKey}, 0)
	three, _ := verifier.ParseWitnesses([]string{w1.VKey, w2.VKey}, 3)
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	d := decide(t, s, waMarketing(anna))
	waitCosigned(t, s, d.Decision.Index+1, 2)
	exportLog := func() []byte {
		var buf bytes.Buffer
		if _, err := cl.Export(ctx, &buf, nil); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	exp := exportLog()
	rep, err := verifier.AuditWitnessed(ctx, bytes.NewReader(exp), logKey, both, nil)
	if err != nil {
		t.Fatalf("audit with witnesses: %v", err)
	}
	if rep.Witness == nil || rep.Witness.Size < d.Decision.Index+1 || len(rep.Witness.Cosignatures) != 2 || !strings.Contains(rep.Text(), "witnessed by w2.example/witness at ") {
		t.Errorf("audit report:\n%s", rep.Text())
	}
	if _, err := verifier.AuditWitnessed(ctx, bytes.NewReader(exp), logKey, three, nil); err == nil || !strings.Contains(err.Error(), "the quorum cannot be met") {
		t.Errorf("audit with quorum 3: %v", err)
	}
	// Without --witness the audit is as before, and reads the v2 export.
	if _, err := verifier.Audit(ctx, bytes.NewReader(exp), logKey, nil); err != nil {
		t.Errorf("plain audit of a v2 export: %v", err)
	}

	// The operator's clock runs an hour ahead of the witnesses'.
	s.clock.Set(time.Now().Add(time.Hour))
	late := decide(t, s, waMarketing(anna))
	cp := waitCosigned(t, s, late.Decision.Index+1, 2)
	if _, err := verifier.VerifyEvidenceWitnessed(ctx, bundleJSON(t, s, late.Decision.Index, cp.Size), logKey, both); err == nil || !strings.Contains(err.Error(), "the operator's clock is not true") {
		t.Errorf("evidence of a decision recorded after the witnesses saw it: %v", err)
	}
	_, err = verifier.AuditWitnessed(ctx, bytes.NewReader(exportLog()), logKey, both, nil)
	var ae *verifier.AuditError
	if !errors.As(err, &ae) || ae.First.Check != verifier.AuditWitness || ae.First.Index != late.Decision.Index {
		t.Fatalf("audit: %v, want a witness finding at #%d", err, late.Decision.Index)
	}
}
