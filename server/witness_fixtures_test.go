package server_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/consentledger/consentledger/client"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/verifier"
)

var witnessFixtures = flag.Bool("witness-fixtures", false, "write testdata/witnessed/ from a server with two real litewitnesses (then refresh the goldens: go test ./verifier/ -update)")

// TestWriteWitnessedFixtures writes the witnessed bundle and its variants
// that testdata/README.md lists. It runs only with -witness-fixtures: the
// tests verify the committed files and never regenerate them.
func TestWriteWitnessedFixtures(t *testing.T) {
	if !*witnessFixtures {
		t.Skip("requires -witness-fixtures: this test writes testdata/witnessed/; the other tests verify the committed files")
	}
	dir := filepath.Join("..", "testdata", "witnessed")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, w1, w2, logKey := witnessedServer(t)
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	d := decide(t, s, waMarketing(anna))
	cl, _ := client.New(s.url, client.Options{})
	ctx := context.Background()
	valid, err := cl.WitnessedEvidence(ctx, d.Decision.Index, 30*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	both, _ := verifier.ParseWitnesses([]string{w1.VKey, w2.VKey}, 0)
	if _, err := verifier.VerifyEvidenceWitnessed(ctx, valid, logKey, both); err != nil {
		t.Fatal(err)
	}
	var b pb.EvidenceBundle
	if err := protojson.Unmarshal(valid, &b); err != nil {
		t.Fatal(err)
	}
	variant := func(f func(note string) string) []byte {
		c := b.Checkpoint
		b2 := &pb.EvidenceBundle{Checkpoint: f(c), Decision: b.Decision, Chain: b.Chain, Policy: b.Policy}
		out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(b2)
		if err != nil {
			t.Fatal(err)
		}
		return append(out, '\n')
	}
	lineOf := func(n, w string) string {
		i := strings.Index(n, "— "+w+" ")
		return n[i : i+strings.Index(n[i:], "\n")+1]
	}
	// Another witness's key, pinned by a confused auditor.
	_, other, err := note.GenerateKey(rand.Reader, "w3.example/witness")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"verifier.key":       []byte(logKey + "\n"),
		"w1.vkey":            []byte(w1.VKey + "\n"),
		"w2.vkey":            []byte(w2.VKey + "\n"),
		"other-witness.vkey": []byte(other + "\n"),
		"valid.json":         valid,
		"bad-cosignature.json": variant(func(n string) string {
			l := lineOf(n, "w1.example/witness")
			f := strings.Fields(l)
			raw, _ := base64.StdEncoding.DecodeString(f[2])
			raw[len(raw)-1] ^= 1
			return strings.Replace(n, l, f[0]+" "+f[1]+" "+base64.StdEncoding.EncodeToString(raw)+"\n", 1)
		}),
		"quorum-short.json": variant(func(n string) string { return strings.Replace(n, lineOf(n, "w2.example/witness"), "", 1) }),
	}
	// The upgrade: the bundle without cosignatures, and a later witnessed checkpoint (field 7).
	unwitnessed := variant(func(n string) string {
		return strings.Replace(strings.Replace(n, lineOf(n, "w1.example/witness"), "", 1), lineOf(n, "w2.example/witness"), "", 1)
	})
	decide(t, s, waMarketing(anna))
	waitCosigned(t, s, d.Decision.Index+2, 2)
	upgraded, err := cl.UpgradeEvidence(ctx, unwitnessed, 30*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	files["unwitnessed.json"], files["upgraded.json"] = unwitnessed, upgraded
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
