package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/client"
	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/verifier"
)

// serveChildEnv makes the test binary run the consentledger command with the
// newline-separated arguments it holds (see TestMain): the crash test's
// server is the real command in a process of its own, killable with SIGKILL.
const serveChildEnv = "CONSENTLEDGER_TEST_CHILD_ARGS"

// childServer is a `consentledger serve` process on a loopback port.
type childServer struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
	exited chan struct{}
}

// startChild starts `consentledger serve --data dir` on a free loopback port
// in a child process and waits until it serves.
func startChild(t *testing.T, dir string) *childServer {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), serveChildEnv+"="+strings.Join([]string{"serve", "--data", dir, "--addr", "127.0.0.1:0"}, "\n"))
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &childServer{cmd: cmd, stderr: new(bytes.Buffer), exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		pw.Close()
		close(c.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.exited
	})
	addr := make(chan string, 1)
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			mu.Lock()
			c.stderr.Write(append(sc.Bytes(), '\n'))
			mu.Unlock()
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "consentledger serving" {
				addr <- line.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		c.url = "http://" + a
	case <-c.exited:
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("consentledger serve exited before serving: %s", c.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatal("consentledger serve did not start within 20 s")
	}
	return c
}

// kill ends the server with SIGKILL: no shutdown, no last checkpoint.
func (c *childServer) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.exited
}

// crashWho is the phone number of caller w's subject j.
func crashWho(w, j int) string { return fmt.Sprintf("+4917066%02d%03d", w, j) }

const (
	crashCallers  = 4
	crashSubjects = 40  // per caller, so that callers do not make each other's decisions stale
	crashBatch    = 200 // requests per DecideBatch, about five per subject
)

// crashBatchReqs is caller w's n-th batch of round r, every request with its
// own idempotency key and message_ref.
func crashBatchReqs(r, w, n int) []*pb.DecideRequest {
	reqs := make([]*pb.DecideRequest, crashBatch)
	for k := range reqs {
		id := fmt.Sprintf("crash/r%d/w%d/b%d/%03d", r, w, n, k)
		reqs[k] = &pb.DecideRequest{
			Subject:         &pb.Subject{Id: &pb.Subject_Phone{Phone: crashWho(w, (n*7+k)%crashSubjects)}},
			Channel:         pb.Channel_CHANNEL_WHATSAPP,
			Purpose:         "marketing",
			Category:        "marketing",
			Provider:        &pb.Provider{Name: "eu-bsp", Region: "EU"},
			SubjectTimezone: "Europe/Berlin",
			MessageRef:      id,
			IdempotencyKey:  id,
		}
	}
	return reqs
}

// ackedDecision is what a DecideBatch answered for one request.
type ackedDecision struct {
	index      uint64
	leaf       []byte
	allow      bool
	messageRef string
}

// logged is one decision of the crash test found in the log.
type logged struct {
	index uint64
	leaf  []byte
	allow bool
}

// TestServeKilledMidBatch kills `consentledger serve` with SIGKILL while
// several callers' DecideBatch calls of 200 requests are in flight, twice,
// and restarts it on the same data directory each time. Every decision of a
// batch the server acknowledged is in the log at the index and with the leaf
// hash it answered, and its evidence verifies offline; a batch that was not
// acknowledged (some of its rounds may be in the log) is replayed with the
// same idempotency keys, and each request is answered either with its entry
// already in the log or with a fresh append, never appended twice. The
// offline audit of the export passes at the end.
func TestServeKilledMidBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills a server process; skipped with -short")
	}
	dir := t.TempDir()
	ctx := context.Background()
	acked := map[string]ackedDecision{}
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	const rounds = 2
	var srv *childServer
	for round := range rounds {
		ackedEarlier := len(acked)
		srv = startChild(t, dir)
		c, err := client.New(srv.url, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			optInCrashSubjects(t, c)
		}

		// Callers send batches until the server dies under them.
		var mu sync.Mutex
		var unacked [][]*pb.DecideRequest
		batches := make(chan struct{}, 1024)
		var wg sync.WaitGroup
		for w := range crashCallers {
			wg.Go(func() {
				for n := 0; ; n++ {
					reqs := crashBatchReqs(round, w, n)
					r, err := c.Send.DecideBatch(ctx, connect.NewRequest(&pb.DecideBatchRequest{Requests: reqs}))
					mu.Lock()
					if err != nil {
						unacked = append(unacked, reqs)
						mu.Unlock()
						return
					}
					if len(r.Msg.Results) != len(reqs) {
						mu.Unlock()
						t.Errorf("%d results for %d requests", len(r.Msg.Results), len(reqs))
						return
					}
					for k, res := range r.Msg.Results {
						acked[reqs[k].IdempotencyKey] = ackedDecision{res.Decision.GetIndex(), res.Decision.GetLeafHash(), res.Allow, reqs[k].MessageRef}
					}
					mu.Unlock()
					batches <- struct{}{}
				}
			})
		}
		// Kill at a random moment once a few batches were acknowledged:
		// with four callers, about four batches are in flight then.
		for range crashCallers {
			select {
			case <-batches:
			case <-srv.exited:
				t.Fatalf("round %d: the server exited under load: %s", round, srv.stderr.String())
			case <-time.After(60 * time.Second):
				t.Fatalf("round %d: batches did not complete within 60 s", round)
			}
		}
		time.Sleep(time.Duration(rnd.IntN(150)) * time.Millisecond)
		srv.kill(t)
		wg.Wait()
		if t.Failed() {
			return
		}
		if len(unacked) != crashCallers {
			t.Fatalf("round %d: %d callers saw their batch fail, want all %d", round, len(unacked), crashCallers)
		}

		srv = startChild(t, dir)
		c, err = client.New(srv.url, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		vkey, err := ledger.ReadVerifierKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		found, size := crashDecisions(t, c)
		ackedBefore := len(acked) - ackedEarlier
		for key, a := range acked {
			got, ok := found[key]
			switch {
			case !ok:
				t.Fatalf("round %d: acknowledged decision %s (entry %d) is not in the log after the kill", round, key, a.index)
			case got.index != a.index || !bytes.Equal(got.leaf, a.leaf) || got.allow != a.allow:
				t.Fatalf("round %d: decision %s is entry %d (leaf %x, allow %v), acknowledged as entry %d (leaf %x, allow %v)",
					round, key, got.index, got.leaf, got.allow, a.index, a.leaf, a.allow)
			}
		}
		// Evidence of the first and last acknowledged decision of the
		// round's earliest batches verifies offline.
		checked := 0
		for w := range crashCallers {
			for _, k := range []int{0, crashBatch - 1} {
				a, ok := acked[fmt.Sprintf("crash/r%d/w%d/b0/%03d", round, w, k)]
				if !ok {
					continue
				}
				bundle, err := c.Evidence(ctx, a.index)
				if err != nil {
					t.Fatalf("evidence of decision %d: %v", a.index, err)
				}
				if _, err := verifier.VerifyEvidence(ctx, bundle, vkey); err != nil {
					t.Fatalf("evidence of decision %d after the kill: %v", a.index, err)
				}
				checked++
			}
		}
		if checked == 0 {
			t.Fatalf("round %d: no acknowledged decision of a first batch", round)
		}

		// Replay every batch that was not acknowledged.
		present, fresh, partial := 0, 0, 0
		replayed := map[string]logged{}
		for _, reqs := range unacked {
			in := 0
			for _, m := range reqs {
				if _, ok := found[m.IdempotencyKey]; ok {
					in++
				}
			}
			if in > 0 && in < len(reqs) {
				partial++
			}
			r, err := c.Send.DecideBatch(ctx, connect.NewRequest(&pb.DecideBatchRequest{Requests: reqs}))
			if err != nil {
				t.Fatalf("round %d: replaying an unacknowledged batch: %v", round, err)
			}
			for k, res := range r.Msg.Results {
				key := reqs[k].IdempotencyKey
				got := logged{res.Decision.GetIndex(), res.Decision.GetLeafHash(), res.Allow}
				replayed[key] = got
				if before, ok := found[key]; ok {
					present++
					if got.index != before.index || !bytes.Equal(got.leaf, before.leaf) || got.allow != before.allow {
						t.Fatalf("round %d: replayed %s answered entry %d (allow %v), but it was already entry %d (allow %v)", round, key, got.index, got.allow, before.index, before.allow)
					}
					continue
				}
				fresh++
				if got.index < size {
					t.Fatalf("round %d: replayed %s, not in the log before, answered entry %d below the log's size %d then", round, key, got.index, size)
				}
			}
		}
		after, newSize := crashDecisions(t, c)
		if newSize != size+uint64(fresh) {
			t.Fatalf("round %d: the replays grew the log by %d entries, want %d (the requests not in it)", round, newSize-size, fresh)
		}
		for key, got := range replayed {
			if e := after[key]; e.index != got.index || !bytes.Equal(e.leaf, got.leaf) {
				t.Fatalf("round %d: replayed %s answered entry %d, the log has it at %d", round, key, got.index, e.index)
			}
			acked[key] = ackedDecision{got.index, got.leaf, got.allow, key}
		}
		if len(after) != len(acked) {
			t.Fatalf("round %d: the log holds %d decisions of the test, %d were answered", round, len(after), len(acked))
		}
		t.Logf("round %d: %d decisions acknowledged before the kill; of %d unacknowledged batches (%d partly in the log), %d requests were in the log, %d appended by the replay",
			round, ackedBefore, len(unacked), partial, present, fresh)
		if round < rounds-1 {
			srv.kill(t)
		}
	}

	c, err := client.New(srv.url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var exp bytes.Buffer
	if _, err := c.Export(ctx, &exp, nil); err != nil {
		t.Fatal(err)
	}
	vkey, err := ledger.ReadVerifierKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verifier.Audit(ctx, &exp, vkey, nil)
	if err != nil {
		t.Fatalf("audit of the export after the kills: %v", err)
	}
	if got := rep.Allowed + rep.Denied; got != uint64(len(acked)) {
		t.Fatalf("the audit saw %d decisions, want %d", got, len(acked))
	}
}

// optInCrashSubjects records WhatsApp marketing opt-ins for four of every
// five subjects of every caller.
func optInCrashSubjects(t *testing.T, c *client.Client) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, crashCallers)
	for w := range crashCallers {
		wg.Go(func() {
			for j := range crashSubjects {
				if j%5 == 0 {
					continue
				}
				_, err := c.Consent.RecordOptIn(context.Background(), connect.NewRequest(&pb.RecordOptInRequest{
					Subject: &pb.Subject{Id: &pb.Subject_Phone{Phone: crashWho(w, j)}},
					Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing"},
					Method: "checkout", NoticeVersion: "2026-01", DoubleOptInConfirmed: true,
				}))
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("RecordOptIn: %v", err)
	}
}

// crashDecisions reads the whole log and returns the crash test's decisions
// by idempotency key, and the log's size. It fails the test if a key is in
// the log twice, or an entry's leaf hash is not the hash of its bytes.
func crashDecisions(t *testing.T, c *client.Client) (map[string]logged, uint64) {
	t.Helper()
	out := map[string]logged{}
	var size uint64
	for next := uint64(0); ; {
		r, err := c.Log.GetEntries(context.Background(), connect.NewRequest(&pb.GetEntriesRequest{Start: next, Count: 1000}))
		if err != nil {
			t.Fatal(err)
		}
		size = r.Msg.Size
		for _, le := range r.Msg.Entries {
			if !bytes.Equal(le.LeafHash, ledger.LeafHash(le.Entry)) {
				t.Fatalf("entry %d: leaf hash %x is not the hash of its bytes", le.Index, le.LeafHash)
			}
			e, err := ledger.DecodeEntry(le.Entry)
			if err != nil {
				t.Fatal(err)
			}
			d := e.GetSendDecision()
			if d == nil || !strings.HasPrefix(e.IdempotencyKey, "crash/") {
				continue
			}
			if prev, ok := out[e.IdempotencyKey]; ok {
				t.Fatalf("request %s is in the log twice: entries %d and %d", e.IdempotencyKey, prev.index, le.Index)
			}
			if d.Request.GetMessageRef() != e.IdempotencyKey {
				t.Fatalf("entry %d: message_ref %q under idempotency key %q", le.Index, d.Request.GetMessageRef(), e.IdempotencyKey)
			}
			out[e.IdempotencyKey] = logged{le.Index, le.LeafHash, d.Allow}
		}
		if len(r.Msg.Entries) == 0 && next < size {
			t.Fatalf("GetEntries from %d returned nothing, the log's size is %d", next, size)
		}
		if len(r.Msg.Entries) > 0 {
			next = r.Msg.Entries[len(r.Msg.Entries)-1].Index + 1
		}
		if next >= size {
			return out, size
		}
	}
}
