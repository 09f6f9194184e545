package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/consentledger/consentledger/client"
	"github.com/consentledger/consentledger/internal/keycopy"
	"github.com/consentledger/consentledger/internal/trilliantest"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// buildBinaries builds consentledger and consentverify into a temporary
// directory.
func buildBinaries(t *testing.T) (cl, cv string) {
	t.Helper()
	dir := t.TempDir()
	cl, cv = filepath.Join(dir, "consentledger"), filepath.Join(dir, "consentverify")
	for bin, pkg := range map[string]string{cl: ".", cv: "../consentverify"} {
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return cl, cv
}

// node is one consentledger serve process.
type node struct {
	cmd  *exec.Cmd
	url  string
	logs *bytes.Buffer
	done chan struct{}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startNode runs consentledger serve on data with the given extra flags and
// waits until it answers.
func startNode(t *testing.T, bin, data string, flags ...string) *node {
	t.Helper()
	return startNodeAt(t, bin, data, freeAddr(t), flags...)
}

// startNodeAt is startNode on the given address.
func startNodeAt(t *testing.T, bin, data, addr string, flags ...string) *node {
	t.Helper()
	args := append([]string{"serve", "--data", data, "--addr", addr, "--policies", "../../policies"}, flags...)
	n := &node{cmd: exec.Command(bin, args...), url: "http://" + addr, logs: new(bytes.Buffer), done: make(chan struct{})}
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		n.cmd.Process.Kill()
		<-n.done
		if t.Failed() {
			t.Logf("server log (%s):\n%s", data, tail(n.logs.String(), 4000))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Post(n.url+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n
			}
		}
		select {
		case <-n.done:
			t.Fatalf("consentledger serve exited at start: %s", tail(n.logs.String(), 4000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("consentledger serve did not answer in 60 s: %s", tail(n.logs.String(), 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (n *node) stop(t *testing.T) {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		t.Fatal("consentledger serve did not stop in 30 s after SIGTERM")
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// acked is one acknowledged write and how to repeat it.
type acked struct {
	index    uint64
	leaf     []byte
	decision bool
	retry    func(ctx context.Context, c *client.Client) (*pb.EntryRef, error)
}

// TestTrillianKillAndRebuild runs consentledger serve on Trillian under
// concurrent opt-ins, opt-outs and decisions, kills it with SIGKILL, and
// restarts it on an EMPTY data directory with the same key files. No
// acknowledged entry may be lost; the root, the consent state and the
// idempotency answers must be those of a node that kept its directory; an
// export passes consentverify audit and an evidence bundle passes
// consentverify evidence and an independent x/mod/sumdb/tlog check.
func TestTrillianKillAndRebuild(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: starts real servers and their database (CI runs it without -short, where a missing binary fails it)")
	}
	env := trilliantest.Start(t)
	cl, cv := buildBinaries(t)
	out, err := exec.Command(cl, "trillian", "init", "--trillian", env.LogAddr, "--sql", env.DSN).CombinedOutput()
	if err != nil {
		t.Fatalf("consentledger trillian init: %v\n%s", err, out)
	}
	tree := strings.TrimSpace(string(out))
	if _, err := strconv.ParseInt(tree, 10, 64); err != nil {
		t.Fatalf("trillian init printed %q, want a tree id", out)
	}
	storage := []string{"--trillian", env.LogAddr, "--tree", tree, "--sql", env.DSN}
	orig := t.TempDir()
	n1 := startNode(t, cl, orig, storage...)

	// Concurrent load; every acknowledged write is remembered.
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var acks []acked
	subjects := 40
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := client.New(n1.url, client.Options{})
			if err != nil {
				t.Error(err)
				return
			}
			for i := 0; ctx.Err() == nil; i++ {
				who := fmt.Sprintf("+4917%08d", (w*7+i)%subjects)
				key := fmt.Sprintf("w%d-%d", w, i)
				var retry func(context.Context, *client.Client) (*pb.EntryRef, error)
				switch i % 4 {
				case 0, 1:
					req := &pb.RecordOptInRequest{Subject: subjectOf(who), Channel: pb.Channel_CHANNEL_SMS, Purposes: []string{"marketing"},
						Method: "checkout", NoticeVersion: "2026-01", DoubleOptInConfirmed: true, IdempotencyKey: key}
					retry = func(ctx context.Context, c *client.Client) (*pb.EntryRef, error) {
						r, err := c.Consent.RecordOptIn(ctx, connect.NewRequest(proto.Clone(req).(*pb.RecordOptInRequest)))
						if err != nil {
							return nil, err
						}
						return r.Msg.GetEntry(), nil
					}
				case 2:
					req := &pb.RecordOptOutRequest{Subject: subjectOf(who), Channel: pb.Channel_CHANNEL_SMS, IdempotencyKey: key}
					retry = func(ctx context.Context, c *client.Client) (*pb.EntryRef, error) {
						r, err := c.Consent.RecordOptOut(ctx, connect.NewRequest(proto.Clone(req).(*pb.RecordOptOutRequest)))
						if err != nil {
							return nil, err
						}
						return r.Msg.GetEntry(), nil
					}
				default:
					req := &pb.DecideRequest{Subject: subjectOf(who), Channel: pb.Channel_CHANNEL_SMS, Purpose: "marketing",
						SubjectTimezone: "Europe/Berlin", IdempotencyKey: key}
					retry = func(ctx context.Context, c *client.Client) (*pb.EntryRef, error) {
						r, err := c.Send.Decide(ctx, connect.NewRequest(proto.Clone(req).(*pb.DecideRequest)))
						if err != nil {
							return nil, err
						}
						return r.Msg.GetDecision(), nil
					}
				}
				ref, err := retry(ctx, c)
				if err != nil || ref == nil {
					continue // refused, or the server was killed: not acknowledged
				}
				mu.Lock()
				acks = append(acks, acked{index: ref.Index, leaf: ref.LeafHash, retry: retry})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(3 * time.Second)
	if err := n1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-n1.done
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(acks) < 20 {
		t.Fatalf("only %d writes were acknowledged before the kill", len(acks))
	}
	t.Logf("%d writes acknowledged before SIGKILL", len(acks))

	// Restart on an EMPTY data directory with the same key files.
	empty := t.TempDir()
	keycopy.Into(t, orig, empty)
	n2 := startNode(t, cl, empty, storage...)
	// It leads once the killed node's lease expired and its fence passed.
	for deadline := time.Now().Add(30 * time.Second); !sendServing(n2.url); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the restarted node did not take the leader lease within 30 s")
		}
	}
	c2, err := client.New(n2.url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	for _, a := range acks {
		r, err := c2.Log.GetEntries(bg, connect.NewRequest(&pb.GetEntriesRequest{Start: a.index, Count: 1}))
		if err != nil || len(r.Msg.Entries) != 1 {
			t.Fatalf("acknowledged entry %d is missing after the rebuild: %v", a.index, err)
		}
		if got := leafHash(r.Msg.Entries[0].Entry); !bytes.Equal(got, a.leaf) {
			t.Fatalf("entry %d has leaf %x after the rebuild, acknowledged %x", a.index, got, a.leaf)
		}
	}
	for i, a := range acks {
		if i%5 != 0 {
			continue
		}
		ref, err := a.retry(bg, c2)
		if err != nil || ref.Index != a.index || !bytes.Equal(ref.LeafHash, a.leaf) {
			t.Fatalf("retrying acknowledged write %d (entry %d) after the rebuild: %v, %v; want the same entry", i, a.index, ref, err)
		}
	}
	size2, root2 := checkpointOf(t, c2)
	states2 := consentStates(t, c2, subjects)

	// Export, audit, evidence — from the rebuilt node.
	work := t.TempDir()
	vkey := filepath.Join(work, "verifier.key")
	pub, err := exec.Command(cl, "pubkey", "--data", empty).Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vkey, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	export := filepath.Join(work, "ledger.export")
	runBin(t, cl, "export", "--server", n2.url, "-o", export)
	runBin(t, cv, "audit", export, "--key", vkey)
	var decision uint64
	found := false
	for _, a := range acks {
		r, _ := c2.Log.GetEntries(bg, connect.NewRequest(&pb.GetEntriesRequest{Start: a.index, Count: 1}))
		if e, err := decodeEntry(r.Msg.Entries[0].Entry); err == nil && e.GetSendDecision() != nil {
			decision, found = a.index, true
			break
		}
	}
	if !found {
		t.Fatal("no decision was acknowledged")
	}
	bundle := filepath.Join(work, "evidence.json")
	runBin(t, cl, "evidence", "--server", n2.url, "--decision", fmt.Sprint(decision), "-o", bundle)
	runBin(t, cv, "evidence", bundle, "--key", vkey)
	crossCheckTlog(t, c2, bundle)
	n2.stop(t)

	// A node that kept its directory must agree on everything.
	n3 := startNode(t, cl, orig, storage...)
	c3, err := client.New(n3.url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	size3, root3 := checkpointOf(t, c3)
	if size3 < size2 {
		t.Fatalf("the node on its old directory reports size %d, the rebuilt one %d", size3, size2)
	}
	if size3 == size2 && !bytes.Equal(root2, root3) {
		t.Fatalf("roots differ at size %d: rebuilt %x, kept %x", size2, root2, root3)
	}
	if states3 := consentStates(t, c3, subjects); !equalStates(states2, states3) {
		t.Fatalf("consent states differ between the rebuilt node and the node that kept its directory:\nrebuilt: %v\nkept:    %v", states2, states3)
	}
	n3.stop(t)
}

func subjectOf(phone string) *pb.Subject { return &pb.Subject{Id: &pb.Subject_Phone{Phone: phone}} }

func runBin(t *testing.T, bin string, args ...string) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
}

func leafHash(data []byte) []byte {
	h := tlog.RecordHash(data)
	return h[:]
}

func decodeEntry(data []byte) (*pb.Entry, error) {
	e := new(pb.Entry)
	return e, proto.Unmarshal(data, e)
}

// checkpointOf asks the node to sign (on Trillian: once integrated) and
// returns the checkpoint's size and root.
func checkpointOf(t *testing.T, c *client.Client) (uint64, []byte) {
	t.Helper()
	r, err := c.Log.GetCheckpoint(context.Background(), connect.NewRequest(&pb.GetCheckpointRequest{Sign: true}))
	if err != nil {
		t.Fatal(err)
	}
	return r.Msg.Size, r.Msg.RootHash
}

func consentStates(t *testing.T, c *client.Client, n int) []string {
	t.Helper()
	var out []string
	for i := range n {
		r, err := c.Consent.GetConsent(context.Background(), connect.NewRequest(&pb.GetConsentRequest{Subject: subjectOf(fmt.Sprintf("+4917%08d", i))}))
		if err != nil {
			out = append(out, connect.CodeOf(err).String())
			continue
		}
		b, _ := protojson.Marshal(r.Msg)
		out = append(out, string(b))
	}
	return out
}

func equalStates(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// crossCheckTlog checks the bundle's decision proof and checkpoint root with
// golang.org/x/mod/sumdb/tlog over the node's entries.
func crossCheckTlog(t *testing.T, c *client.Client, bundlePath string) {
	t.Helper()
	raw, err := os.ReadFile(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	var b pb.EvidenceBundle
	if err := protojson.Unmarshal(raw, &b); err != nil {
		t.Fatalf("read the bundle: %v", err)
	}
	lines := strings.Split(b.Checkpoint, "\n")
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("checkpoint size line %q: %v", lines[1], err)
	}
	var stored []tlog.Hash
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for start := int64(0); start < size; {
		r, err := c.Log.GetEntries(context.Background(), connect.NewRequest(&pb.GetEntriesRequest{Start: uint64(start), Count: uint32(min(size-start, 1000))}))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range r.Msg.Entries {
			hs, err := tlog.StoredHashes(start, e.Entry, hr)
			if err != nil {
				t.Fatal(err)
			}
			stored = append(stored, hs...)
			start++
		}
	}
	root, err := tlog.TreeHash(size, hr)
	if err != nil {
		t.Fatal(err)
	}
	if got := lines[2]; got != root.String() {
		t.Fatalf("tlog computes root %s for size %d, the bundle's checkpoint says %s", root, size, got)
	}
	p, err := tlog.ProveRecord(size, int64(b.Decision.Index), hr)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != len(b.Decision.InclusionProof) {
		t.Fatalf("tlog proof has %d hashes, the bundle's %d", len(p), len(b.Decision.InclusionProof))
	}
	for i := range p {
		if !bytes.Equal(p[i][:], b.Decision.InclusionProof[i]) {
			t.Fatalf("inclusion proof hash %d differs from tlog's", i)
		}
	}
}

// runOut runs bin and returns its combined output.
func runOut(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
