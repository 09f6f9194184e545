package witness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/ledger/storage/memstore"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// fakeWitness is a tlog-witness (C2SP) for one log, in memory: it checks
// the old size, the consistency proof and the log's signature as the spec
// says, and cosigns with its own cosignature/v1 key. override, when set,
// answers instead (to play a misbehaving witness).
type fakeWitness struct {
	t      *testing.T
	name   string
	signer note.Signer
	vkey   string
	logV   note.Verifier
	origin string

	mu       sync.Mutex
	size     uint64
	root     []byte
	requests int
	override func(w http.ResponseWriter, old uint64, body []byte) bool
	delay    time.Duration
}

func newFakeWitness(t *testing.T, name string, l *ledger.Ledger) (*fakeWitness, *httptest.Server) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	logV, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	fw := &fakeWitness{t: t, name: name, signer: signer, vkey: vkey, logV: logV, origin: l.Origin(), root: rfc6962.DefaultHasher.EmptyRoot()}
	srv := httptest.NewServer(http.HandlerFunc(fw.serve))
	t.Cleanup(srv.Close)
	return fw, srv
}

func (fw *fakeWitness) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/add-checkpoint" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	fw.mu.Lock()
	fw.requests++
	delay, override := fw.delay, fw.override
	fw.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	br := bufio.NewReader(bytes.NewReader(body))
	first, _ := br.ReadString('\n')
	old, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(first, "old "), "\n"), 10, 64)
	if err != nil {
		http.Error(w, "bad old line", http.StatusBadRequest)
		return
	}
	if override != nil && override(w, old, body) {
		return
	}
	var pf [][]byte
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			http.Error(w, "no blank line", http.StatusBadRequest)
			return
		}
		if line == "\n" {
			break
		}
		h, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(line, "\n"))
		if err != nil {
			http.Error(w, "bad proof line", http.StatusBadRequest)
			return
		}
		pf = append(pf, h)
	}
	signed, _ := io.ReadAll(br)
	cp, _, _, err := log.ParseCheckpoint(signed, fw.origin, fw.logV)
	if err != nil {
		http.Error(w, "unknown log", http.StatusForbidden)
		return
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if old != fw.size {
		w.Header().Set("Content-Type", ContentTypeSize)
		w.WriteHeader(http.StatusConflict)
		fmt.Fprintf(w, "%d\n", fw.size)
		return
	}
	if old > cp.Size {
		http.Error(w, "old beyond size", http.StatusBadRequest)
		return
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old, cp.Size, pf, fw.root, cp.Hash); old > 0 && err != nil || old == cp.Size && !bytes.Equal(fw.root, cp.Hash) {
		http.Error(w, "bad consistency proof", http.StatusUnprocessableEntity)
		return
	}
	fw.size, fw.root = cp.Size, cp.Hash
	w.Write(fw.cosign(signed))
}

// cosign returns the witness's signature line over the note's text.
func (fw *fakeWitness) cosign(signed []byte) []byte {
	text := signed[:bytes.Index(signed, []byte("\n\n"))+1]
	out, err := note.Sign(&note.Note{Text: string(text)}, fw.signer)
	if err != nil {
		fw.t.Error(err)
	}
	return out[len(text)+1:]
}

func (fw *fakeWitness) set(f func(*fakeWitness)) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	f(fw)
}

func newLedger(t *testing.T) *ledger.Ledger {
	t.Helper()
	keys, _, err := ledger.NewKeys("test.example/ledger")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.New(memstore.New(), keys, ledger.Options{CheckpointInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

var appended int

// grow appends n entries and signs a checkpoint.
func grow(t *testing.T, l *ledger.Ledger, n int) *ledger.Checkpoint {
	t.Helper()
	for range n {
		appended++
		d := sha256.Sum256([]byte(fmt.Sprint(appended)))
		e := &pb.Entry{Actor: "legal", Event: &pb.Entry_PolicyPublished{PolicyPublished: &pb.PolicyPublished{
			Files: []*pb.PolicyFile{{Name: "send.rego", Content: fmt.Sprintf("package p%d", appended)}}, Digest: fmt.Sprintf("sha256:%x", d),
		}}}
		if _, err := l.Append(context.Background(), &ledger.Request{Entry: e}); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := l.SignCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func newSubmitter(t *testing.T, l *ledger.Ledger, ws ...Witness) *Submitter {
	t.Helper()
	s, err := New(l, Options{Witnesses: ws, Timeout: 300 * time.Millisecond, Interval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSubmitCosignsAndCatchesUp(t *testing.T) {
	l := newLedger(t)
	fw, srv := newFakeWitness(t, "w1.example", l)
	s := newSubmitter(t, l, Witness{Name: "w1", URL: srv.URL, VKey: fw.vkey})
	ctx := context.Background()
	for _, n := range []int{3, 1, 5} {
		cp := grow(t, l, n)
		s.SubmitAll(ctx)
		st := s.Status()[0]
		if st.LastCosignedSize != cp.Size || st.LastError != "" || st.Alarm != "" {
			t.Fatalf("after size %d: status %+v", cp.Size, st)
		}
		if age := time.Since(st.LastCosignedAt); age < 0 || age > time.Minute {
			t.Errorf("cosignature timestamp %v is not now", st.LastCosignedAt)
		}
		cs, err := l.Cosignatures(ctx, cp.Size)
		if err != nil || len(cs) != 1 || cs[0].Witness != "w1" {
			t.Fatalf("stored cosignatures of %d: %v %v", cp.Size, cs, err)
		}
		// The stored note with its cosignature verifies with both keys.
		signed, n, err := l.WithCosignatures(ctx, cp)
		if err != nil || n != 1 {
			t.Fatal(n, err)
		}
		wv, _ := fnote.NewVerifierForCosignatureV1(fw.vkey)
		lv, _ := note.NewVerifier(l.VerifierKey())
		got, err := note.Open(signed, note.VerifierList(wv, lv))
		if err != nil || len(got.Sigs) != 2 {
			t.Fatalf("cosigned note: %v, %d sigs", err, len(got.Sigs))
		}
	}
	// A new submitter (a restarted server) knows nothing: the witness's 409
	// tells it where to start, and it catches up.
	fw.set(func(fw *fakeWitness) { fw.requests = 0 })
	cp := grow(t, l, 2)
	s2, err := New(l, Options{Witnesses: []Witness{{Name: "w1", URL: srv.URL, VKey: fw.vkey}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s2.ws[0].hint = 0
	s2.SubmitAll(ctx)
	if st := s2.Status()[0]; st.LastCosignedSize != cp.Size {
		t.Fatalf("after a 409: %+v", st)
	}
	fw.set(func(fw *fakeWitness) {
		if fw.requests != 2 {
			t.Errorf("witness saw %d requests, want 2 (old 0 → 409, then old 9)", fw.requests)
		}
	})
}

// TestSubmitErrors plays every way a witness can fail or lie.
func TestSubmitErrors(t *testing.T) {
	respond := func(status int, ctype, body string) func(http.ResponseWriter, uint64, []byte) bool {
		return func(w http.ResponseWriter, _ uint64, _ []byte) bool {
			if ctype != "" {
				w.Header().Set("Content-Type", ctype)
			}
			w.WriteHeader(status)
			io.WriteString(w, body)
			return true
		}
	}
	otherSigner := func(t *testing.T) note.Signer {
		skey, _, _ := note.GenerateKey(rand.Reader, "w1.example")
		s, err := fnote.NewSignerForCosignatureV1(skey)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name     string
		setup    func(t *testing.T, fw *fakeWitness)
		down     bool
		wantFork bool
		wantErr  string
	}{
		{name: "conflict with a larger size is a fork", setup: func(t *testing.T, fw *fakeWitness) {
			fw.override = respond(409, ContentTypeSize, "1000\n")
		}, wantFork: true, wantErr: "larger tree than ours"},
		{name: "422 (litewitness: same size, other root) is a fork", setup: func(t *testing.T, fw *fakeWitness) {
			fw.override = respond(422, "text/plain", "bad proof")
		}, wantFork: true, wantErr: "is not ours (HTTP 422"},
		{name: "409 without a size (spec: same size, other root) is a fork", setup: func(t *testing.T, fw *fakeWitness) {
			fw.override = respond(409, "text/plain", "root mismatch")
		}, wantFork: true, wantErr: "is not ours (HTTP 409"},
		{name: "403 (litewitness: unknown origin)", setup: func(t *testing.T, fw *fakeWitness) {
			fw.override = respond(403, "text/plain", "unknown log")
		}, wantErr: "register the log at the witness"},
		{name: "404 unknown origin", setup: func(t *testing.T, fw *fakeWitness) {
			fw.override = respond(404, "text/plain", "not found")
		}, wantErr: "answered HTTP 404"},
		{name: "400", setup: func(t *testing.T, fw *fakeWitness) {
			fw.override = respond(400, "text/plain", "old too big")
		}, wantErr: "400 Bad Request"},
		{name: "500", setup: func(t *testing.T, fw *fakeWitness) {
			fw.override = respond(500, "text/plain", "oops")
		}, wantErr: "answered HTTP 500"},
		{name: "409 with a garbled size", setup: func(t *testing.T, fw *fakeWitness) {
			fw.override = respond(409, ContentTypeSize, "twelve\n")
		}, wantErr: "not a size"},
		{name: "409 forever", setup: func(t *testing.T, fw *fakeWitness) {
			fw.override = func(w http.ResponseWriter, old uint64, _ []byte) bool {
				w.Header().Set("Content-Type", ContentTypeSize)
				w.WriteHeader(409)
				fmt.Fprintf(w, "%d\n", (old+1)%3)
				return true
			}
		}, wantErr: "409 3 times"},
		{name: "empty 200", setup: func(t *testing.T, fw *fakeWitness) {
			fw.override = respond(200, "", "")
		}, wantErr: "not signature lines"},
		{name: "cosignature by another key", setup: func(t *testing.T, fw *fakeWitness) {
			fw.signer = otherSigner(t)
		}, wantErr: "does not verify with its pinned key"},
		{name: "tampered cosignature", setup: func(t *testing.T, fw *fakeWitness) {
			fw.override = func(w http.ResponseWriter, _ uint64, body []byte) bool {
				line := fw.cosign(body[bytes.Index(body, []byte("\n\n"))+2:])
				raw, _ := base64.StdEncoding.DecodeString(strings.Fields(string(line))[2])
				raw[len(raw)-1] ^= 1
				fmt.Fprintf(w, "— %s %s\n", fw.name, base64.StdEncoding.EncodeToString(raw))
				return true
			}
		}, wantErr: "does not verify with its pinned key"},
		{name: "cosignature for another root", setup: func(t *testing.T, fw *fakeWitness) {
			fw.override = func(w http.ResponseWriter, _ uint64, body []byte) bool {
				other := log.Checkpoint{Origin: fw.origin, Size: 4, Hash: make([]byte, 32)}.Marshal()
				w.Write(fw.cosign(append(append([]byte(nil), other...), '\n')))
				return true
			}
		}, wantErr: "does not verify with its pinned key"},
		{name: "timeout", setup: func(t *testing.T, fw *fakeWitness) {
			fw.delay = 5 * time.Second
		}, wantErr: "unreachable"},
		{name: "down", down: true, wantErr: "unreachable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLedger(t)
			fw, srv := newFakeWitness(t, "w1.example", l)
			if tc.setup != nil {
				fw.set(func(fw *fakeWitness) { tc.setup(t, fw) })
			}
			if tc.down {
				srv.Close()
			}
			s := newSubmitter(t, l, Witness{Name: "w1", URL: srv.URL, VKey: fw.vkey})
			cp := grow(t, l, 4)
			err := s.update(context.Background(), s.ws[0], cp)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			var fork *ForkError
			if errors.As(err, &fork) != tc.wantFork {
				t.Errorf("fork %v, want %v: %v", !tc.wantFork, tc.wantFork, err)
			}
			if !tc.wantFork && !errors.Is(err, ErrRejected) && !strings.Contains(err.Error(), "unreachable") {
				t.Errorf("%v does not wrap ErrRejected", err)
			}
			// Nothing is stored, the status shows it, and an alarm stops submissions.
			s.submit(context.Background(), s.ws[0], cp)
			if cs, _ := l.Cosignatures(context.Background(), cp.Size); len(cs) != 0 {
				t.Errorf("stored %d cosignatures after a failure", len(cs))
			}
			st := s.Status()[0]
			if st.Failures != 1 || st.LastError == "" || (st.Alarm != "") != tc.wantFork || st.LastCosignedSize != 0 {
				t.Errorf("status %+v", st)
			}
			if s.due(s.ws[0], grow(t, l, 1)) {
				t.Error("a failed or alarmed witness is due again before the interval")
			}
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	l := newLedger(t)
	_, vkey, _ := note.GenerateKey(rand.Reader, "w.example")
	for _, ws := range [][]Witness{
		{{Name: "", URL: "http://x", VKey: vkey}},
		{{Name: "a b", URL: "http://x", VKey: vkey}},
		{{Name: "w", URL: "ftp://x", VKey: vkey}},
		{{Name: "w", URL: "http://x", VKey: "not a key"}},
		{{Name: "w", URL: "http://x", VKey: vkey}, {Name: "w", URL: "http://y", VKey: vkey}},
	} {
		if _, err := New(l, Options{Witnesses: ws}); err == nil {
			t.Errorf("New(%v) accepted", ws)
		}
	}
}

// TestDownWitnessDoesNotBlock runs the loop with one healthy and one hung
// witness: the healthy one cosigns every new checkpoint, and appends do
// not wait for either.
func TestDownWitnessDoesNotBlock(t *testing.T) {
	l := newLedger(t)
	good, gsrv := newFakeWitness(t, "good.example", l)
	hung, hsrv := newFakeWitness(t, "hung.example", l)
	hung.set(func(fw *fakeWitness) { fw.delay = time.Hour })
	s, err := New(l, Options{Witnesses: []Witness{{Name: "good", URL: gsrv.URL, VKey: good.vkey}, {Name: "hung", URL: hsrv.URL, VKey: hung.vkey}},
		Interval: 50 * time.Millisecond, Timeout: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for range 3 {
		start := time.Now()
		cp := grow(t, l, 2)
		if d := time.Since(start); d > time.Second {
			t.Errorf("appending took %v with a hung witness", d)
		}
		deadline := time.Now().Add(5 * time.Second)
		for s.Status()[0].LastCosignedSize < cp.Size {
			if time.Now().After(deadline) {
				t.Fatalf("the good witness did not cosign size %d: %+v", cp.Size, s.Status())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if st := s.Status()[1]; st.LastCosignedSize != 0 {
		t.Errorf("hung witness status %+v", st)
	}
}

// TestRunSignsWhenTheLogGrows: with the ledger's own signing off, the
// submitter signs a checkpoint of a grown log within Interval and gets it
// cosigned.
func TestRunSignsWhenTheLogGrows(t *testing.T) {
	l := newLedger(t) // CheckpointInterval -1: no background signing
	fw, srv := newFakeWitness(t, "w1.example", l)
	grow(t, l, 1)
	s, err := New(l, Options{Witnesses: []Witness{{Name: "w1", URL: srv.URL, VKey: fw.vkey}}, Interval: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for i := range 3 {
		appended++
		d := sha256.Sum256([]byte(fmt.Sprint("run", i)))
		e := &pb.Entry{Actor: "legal", Event: &pb.Entry_PolicyPublished{PolicyPublished: &pb.PolicyPublished{
			Files: []*pb.PolicyFile{{Name: "send.rego", Content: fmt.Sprintf("package run%d", i)}}, Digest: fmt.Sprintf("sha256:%x", d)}}}
		if _, err := l.Append(context.Background(), &ledger.Request{Entry: e}); err != nil {
			t.Fatal(err)
		}
		want := l.Size()
		deadline := time.Now().Add(5 * time.Second)
		for s.Status()[0].LastCosignedSize < want {
			if time.Now().After(deadline) {
				t.Fatalf("size %d was not signed and cosigned: latest %d, %+v", want, l.LatestCheckpoint().Size, s.Status())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
