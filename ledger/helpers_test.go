package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/ledger/storage"
	"github.com/consentledger/consentledger/ledger/storage/memstore"
	"github.com/consentledger/consentledger/ledger/subject"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// newTestLedger returns a ledger on a fresh in-memory store.
func newTestLedger(t testing.TB, opts Options) (*Ledger, storage.Store, *Keys) {
	t.Helper()
	keys, _, err := NewKeys("test.example/ledger")
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New()
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = -1
	}
	if opts.Remote == nil {
		opts.Remote = testRemote(t)
	}
	l, err := New(st, keys, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, st, keys
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func phone(n int) *subject.Identifier {
	return &subject.Identifier{Kind: subject.KindPhone, Value: fmt.Sprintf("+4917%08d", n)}
}

func grant(ch pb.Channel, purposes ...string) *pb.Entry {
	return &pb.Entry{Actor: "test", Event: &pb.Entry_ConsentGranted{ConsentGranted: &pb.ConsentGranted{
		Channel: ch, Purposes: purposes, Method: "checkout", NoticeVersion: "2026-01",
	}}}
}

func confirm(ch pb.Channel, purposes ...string) *pb.Entry {
	return &pb.Entry{Actor: "test", Event: &pb.Entry_ConsentConfirmed{ConsentConfirmed: &pb.ConsentConfirmed{Channel: ch, Purposes: purposes}}}
}

func withdraw(ch pb.Channel, purposes ...string) *pb.Entry {
	return &pb.Entry{Actor: "test", Event: &pb.Entry_ConsentWithdrawn{ConsentWithdrawn: &pb.ConsentWithdrawn{Channel: ch, Purposes: purposes, Method: "api"}}}
}

func decision(ch pb.Channel, purpose string, allow bool) *pb.Entry {
	return &pb.Entry{Actor: "test", Event: &pb.Entry_SendDecision{SendDecision: &pb.SendDecision{
		Request: &pb.SendRequest{Channel: ch, Purpose: purpose, Category: "marketing"},
		Allow:   allow, PolicyDigest: "sha256:00", Input: []byte(`{}`),
	}}}
}

func breach(id string) *pb.Entry {
	return &pb.Entry{Actor: "test", Event: &pb.Entry_BreachDetected{BreachDetected: &pb.BreachDetected{BreachId: id, Description: "lost laptop"}}}
}

// filler is an entry about no subject whose content is n bytes.
func filler(n int) *pb.Entry {
	return &pb.Entry{Actor: "bench", Event: &pb.Entry_PolicyPublished{PolicyPublished: &pb.PolicyPublished{
		Files: []*pb.PolicyFile{{Name: "pad.rego", Content: string(bytes.Repeat([]byte("x"), n))}}, Digest: "sha256:pad",
	}}}
}

func mustAppend(t testing.TB, l *Ledger, req *Request) Receipt {
	t.Helper()
	r, err := l.Append(context.Background(), req)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return r
}

// appendRaw appends entries that need no state (policy publications).
func appendRaw(t testing.TB, l *Ledger, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		mustAppend(t, l, &Request{Entry: policyEntry(i)})
	}
}

func policyEntry(i int) *pb.Entry {
	d := sha256.Sum256([]byte(fmt.Sprint(i)))
	return &pb.Entry{Actor: "legal", Event: &pb.Entry_PolicyPublished{PolicyPublished: &pb.PolicyPublished{
		Files: []*pb.PolicyFile{{Name: "send.rego", Content: fmt.Sprintf("package p%d", i)}}, Digest: fmt.Sprintf("sha256:%x", d),
	}}}
}

// referenceRoot computes the RFC 6962 root of leaf hashes by the recursive
// definition (MTH), independent of the ledger's tiles and compact ranges.
// Hashes of perfect subtrees are memoised, keyed by their first leaf's
// address, level and position, so repeated calls over one growing slice
// are cheap.
func referenceRoot(leaves [][]byte) []byte {
	if len(leaves) == 0 {
		return hasher.EmptyRoot()
	}
	return mth(leaves)
}

type memoKey struct {
	first *byte
	n     int
}

var (
	memoMu sync.Mutex
	memo   = map[memoKey][]byte{}
)

func mth(leaves [][]byte) []byte {
	n := len(leaves)
	if n == 1 {
		return leaves[0]
	}
	perfect := n&(n-1) == 0
	key := memoKey{&leaves[0][0], n}
	if perfect {
		memoMu.Lock()
		h, ok := memo[key]
		memoMu.Unlock()
		if ok {
			return h
		}
	}
	k := 1
	for k*2 < n {
		k *= 2
	}
	h := hasher.HashChildren(mth(leaves[:k]), mth(leaves[k:]))
	if perfect {
		memoMu.Lock()
		memo[key] = h
		memoMu.Unlock()
	}
	return h
}

// allLeaves returns the leaf hashes of every committed entry.
func allLeaves(t testing.TB, l *Ledger) [][]byte {
	t.Helper()
	var leaves [][]byte
	err := l.Scan(context.Background(), 0, 0, func(_ uint64, data []byte) error {
		leaves = append(leaves, hasher.HashLeaf(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return leaves
}

func timestampOf(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func sleep(ms int) { time.Sleep(time.Duration(ms) * time.Millisecond) }
