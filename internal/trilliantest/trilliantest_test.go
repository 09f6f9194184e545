package trilliantest_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/consentledger/consentledger/internal/trilliantest"
	_ "github.com/go-sql-driver/mysql"
	"github.com/google/trillian"
	"github.com/google/trillian/types"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { os.Exit(trilliantest.Main(m)) }

// leaves returns count LogLeafs for indexes first…, with values
// prefix+index.
func leaves(first, count int64, prefix string) []*trillian.LogLeaf {
	var ls []*trillian.LogLeaf
	for i := first; i < first+count; i++ {
		ls = append(ls, &trillian.LogLeaf{LeafIndex: i, LeafValue: fmt.Appendf(nil, "%s%d", prefix, i)})
	}
	return ls
}

// rfc6962Root is the RFC 6962 root of the leaf values, computed with
// transparency-dev/merkle, not with Trillian.
func rfc6962Root(t *testing.T, values [][]byte) []byte {
	t.Helper()
	h := rfc6962.DefaultHasher
	if len(values) == 0 {
		return h.EmptyRoot()
	}
	r := (&compact.RangeFactory{Hash: h.HashChildren}).NewEmptyRange(0)
	for _, v := range values {
		if err := r.Append(h.HashLeaf(v), nil); err != nil {
			t.Fatal(err)
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func values(ls []*trillian.LogLeaf) [][]byte {
	var vs [][]byte
	for _, l := range ls {
		vs = append(vs, l.LeafValue)
	}
	return vs
}

// latestRoot returns Trillian's latest log root of tree.
func latestRoot(t *testing.T, c trillian.TrillianLogClient, tree int64) types.LogRootV1 {
	t.Helper()
	resp, err := c.GetLatestSignedLogRoot(context.Background(), &trillian.GetLatestSignedLogRootRequest{LogId: tree})
	if err != nil {
		t.Fatalf("GetLatestSignedLogRoot: %v", err)
	}
	var root types.LogRootV1
	if err := root.UnmarshalBinary(resp.SignedLogRoot.LogRoot); err != nil {
		t.Fatalf("unmarshal log root: %v", err)
	}
	return root
}

// waitSize waits until the signer has integrated size leaves.
func waitSize(t *testing.T, c trillian.TrillianLogClient, tree int64, size uint64) types.LogRootV1 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		root := latestRoot(t, c, tree)
		if root.TreeSize == size {
			return root
		}
		if root.TreeSize > size || time.Now().After(deadline) {
			t.Fatalf("tree size %d, want %d", root.TreeSize, size)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// add calls AddSequencedLeaves and returns the per-leaf status codes.
func add(t *testing.T, c trillian.TrillianLogClient, tree int64, ls []*trillian.LogLeaf) []codes.Code {
	t.Helper()
	resp, err := c.AddSequencedLeaves(context.Background(), &trillian.AddSequencedLeavesRequest{LogId: tree, Leaves: ls})
	if err != nil {
		t.Fatalf("AddSequencedLeaves: %v", err)
	}
	if len(resp.Results) != len(ls) {
		t.Fatalf("AddSequencedLeaves: %d results for %d leaves", len(resp.Results), len(ls))
	}
	var got []codes.Code
	for _, r := range resp.Results {
		got = append(got, codes.Code(r.Status.GetCode()))
	}
	return got
}

func allOK(n int) []codes.Code {
	c := make([]codes.Code, n)
	return c // codes.OK is 0
}

func equalCodes(a, b []codes.Code) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// getRange returns the leaves GetLeavesByRange(start, count) returns.
func getRange(t *testing.T, c trillian.TrillianLogClient, tree, start, count int64) []*trillian.LogLeaf {
	t.Helper()
	resp, err := c.GetLeavesByRange(context.Background(), &trillian.GetLeavesByRangeRequest{LogId: tree, StartIndex: start, Count: count})
	if err != nil {
		t.Fatalf("GetLeavesByRange(%d, %d): %v", start, count, err)
	}
	return resp.Leaves
}

// TestAddSequencedLeaves shows how a PREORDERED_LOG tree answers: a new tree
// has the empty root; three leaves become a root of size 3 equal to the RFC
// 6962 root of their values; a re-sent batch is "accepted" with
// FAILED_PRECONDITION per leaf; a gap in a batch's indexes is refused.
func TestAddSequencedLeaves(t *testing.T) {
	env := trilliantest.Shared(t)
	c := env.LogClient()
	tree := env.NewTree(t)

	root := latestRoot(t, c, tree)
	if root.TreeSize != 0 || !bytes.Equal(root.RootHash, rfc6962.DefaultHasher.EmptyRoot()) {
		t.Fatalf("new tree: size %d root %x, want 0 and the empty root", root.TreeSize, root.RootHash)
	}

	batch := leaves(0, 3, "entry ")
	if got := add(t, c, tree, batch); !equalCodes(got, allOK(3)) {
		t.Fatalf("AddSequencedLeaves statuses %v, want all OK", got)
	}
	root = waitSize(t, c, tree, 3)
	if want := rfc6962Root(t, values(batch)); !bytes.Equal(root.RootHash, want) {
		t.Fatalf("root at size 3 %x, want the RFC 6962 root %x", root.RootHash, want)
	}
	got := getRange(t, c, tree, 0, 10)
	if len(got) != 3 {
		t.Fatalf("GetLeavesByRange(0, 10) returned %d leaves, want 3", len(got))
	}
	for i, l := range got {
		if l.LeafIndex != int64(i) || !bytes.Equal(l.LeafValue, batch[i].LeafValue) ||
			!bytes.Equal(l.MerkleLeafHash, rfc6962.DefaultHasher.HashLeaf(batch[i].LeafValue)) {
			t.Errorf("leaf %d: index %d value %q hash %x", i, l.LeafIndex, l.LeafValue, l.MerkleLeafHash)
		}
	}

	// The same batch again: the call succeeds, every leaf says
	// FAILED_PRECONDITION, nothing changes.
	if got := add(t, c, tree, batch); !equalCodes(got, []codes.Code{codes.FailedPrecondition, codes.FailedPrecondition, codes.FailedPrecondition}) {
		t.Fatalf("re-sent batch: statuses %v, want FAILED_PRECONDITION for every leaf", got)
	}
	// A batch whose indexes are not consecutive is refused as a whole.
	gap := []*trillian.LogLeaf{{LeafIndex: 3, LeafValue: []byte("a")}, {LeafIndex: 5, LeafValue: []byte("b")}}
	_, err := c.AddSequencedLeaves(context.Background(), &trillian.AddSequencedLeavesRequest{LogId: tree, Leaves: gap})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("batch with a gap: %v, want FAILED_PRECONDITION", err)
	}
	time.Sleep(300 * time.Millisecond) // three sequencer passes
	if root := latestRoot(t, c, tree); root.TreeSize != 3 {
		t.Fatalf("size %d after refused batches, want 3", root.TreeSize)
	}
}

// TestCommittedNotIntegrated shows what the ledger relies on about committed
// leaves the signer has not integrated yet (the signer is stopped to hold
// them there), that a conflicting batch is half-committed, that identical
// values conflict even at new indexes, and what a stopped Trillian and a
// stopped and restarted MariaDB look like to a client.
func TestCommittedNotIntegrated(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: starts its own servers (CI runs it without -short, where a missing binary fails it)")
	}
	env := trilliantest.Start(t)
	c := env.LogClient()
	tree := env.NewTree(t)
	ctx := context.Background()

	var log []*trillian.LogLeaf
	log = append(log, leaves(0, 2, "v")...)
	add(t, c, tree, log)
	waitSize(t, c, tree, 2)

	env.StopSigner()
	log = append(log, leaves(2, 3, "v")...)
	if got := add(t, c, tree, log[2:]); !equalCodes(got, allOK(3)) {
		t.Fatalf("AddSequencedLeaves with the signer stopped: %v, want all OK", got)
	}
	if size := latestRoot(t, c, tree).TreeSize; size != 2 {
		t.Fatalf("integrated size %d with the signer stopped, want 2", size)
	}
	// From the integrated size on, nothing; below it, committed leaves past it too.
	if got := getRange(t, c, tree, 2, 10); len(got) != 0 {
		t.Fatalf("GetLeavesByRange(2, 10) at integrated size 2 returned %d leaves, want none", len(got))
	}
	if got := getRange(t, c, tree, 1, 10); len(got) != 4 || got[3].LeafIndex != 4 {
		t.Fatalf("GetLeavesByRange(1, 10) at integrated size 2 with 5 committed returned %d leaves, want 4 (indexes 1–4)", len(got))
	}
	if got := getRange(t, c, tree, 1, 2); len(got) != 2 {
		t.Fatalf("GetLeavesByRange(size-1, 2) returned %d leaves, want 2 while a committed leaf exists past the integrated size", len(got))
	}
	// Proofs past the integrated size: OK with no proof ("not yet").
	ip, err := c.GetInclusionProof(ctx, &trillian.GetInclusionProofRequest{LogId: tree, LeafIndex: 3, TreeSize: 5})
	if err != nil || ip.Proof != nil {
		t.Fatalf("GetInclusionProof(3, 5) at integrated size 2: proof %v, err %v; want no proof and no error", ip.GetProof(), err)
	}
	cp, err := c.GetConsistencyProof(ctx, &trillian.GetConsistencyProofRequest{LogId: tree, FirstTreeSize: 1, SecondTreeSize: 5})
	if err != nil || cp.Proof != nil {
		t.Fatalf("GetConsistencyProof(1, 5) at integrated size 2: proof %v, err %v; want no proof and no error", cp.GetProof(), err)
	}
	// No consistency proof from size 0.
	_, err = c.GetConsistencyProof(ctx, &trillian.GetConsistencyProofRequest{LogId: tree, FirstTreeSize: 0, SecondTreeSize: 2})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("GetConsistencyProof(0, 2): %v, want INVALID_ARGUMENT", err)
	}

	// A stale writer's batch 4–6 with a different leaf 4: leaf 4 is
	// refused, 5 and 6 are committed, and the call itself succeeds.
	stale := leaves(4, 3, "stale ")
	if got := add(t, c, tree, stale); !equalCodes(got, []codes.Code{codes.FailedPrecondition, codes.OK, codes.OK}) {
		t.Fatalf("half-conflicting batch: statuses %v, want [FailedPrecondition OK OK]", got)
	}
	log = append(log, stale[1:]...)
	// A value already in the log, at a new index: refused too (Trillian
	// keys leaves by their identity hash, by default the leaf hash).
	dup := []*trillian.LogLeaf{{LeafIndex: 7, LeafValue: log[0].LeafValue}}
	if got := add(t, c, tree, dup); !equalCodes(got, []codes.Code{codes.FailedPrecondition}) {
		t.Fatalf("a value already in the log at a new index: %v, want FAILED_PRECONDITION", got)
	}

	env.StartTrillian(t)
	root := waitSize(t, c, tree, 7)
	if want := rfc6962Root(t, values(log)); !bytes.Equal(root.RootHash, want) {
		t.Fatalf("root at size 7 %x, want %x (leaves 0–4, then the stale batch's 5 and 6)", root.RootHash, want)
	}
	if got := getRange(t, c, tree, 6, 2); len(got) != 1 {
		t.Fatalf("GetLeavesByRange(size-1, 2) when caught up returned %d leaves, want exactly 1", len(got))
	}

	// Trillian down: calls fail with UNAVAILABLE.
	env.StopTrillian()
	_, err = c.AddSequencedLeaves(ctx, &trillian.AddSequencedLeavesRequest{LogId: tree, Leaves: leaves(7, 1, "v")})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("AddSequencedLeaves with Trillian stopped: %v, want UNAVAILABLE", err)
	}
	env.StartTrillian(t)

	// MariaDB down: Trillian answers UNKNOWN, not UNAVAILABLE, with the
	// driver's error ("dial unix …: connect: no such file or directory").
	env.StopMariaDB()
	_, err = c.AddSequencedLeaves(ctx, &trillian.AddSequencedLeavesRequest{LogId: tree, Leaves: leaves(7, 1, "v")})
	if status.Code(err) != codes.Unknown {
		t.Fatalf("AddSequencedLeaves with MariaDB stopped: %v, want UNKNOWN", err)
	}
	_, err = c.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: tree})
	if status.Code(err) != codes.Unknown {
		t.Fatalf("GetLatestSignedLogRoot with MariaDB stopped: %v, want UNKNOWN", err)
	}

	// MariaDB back: the tree is still there, and writes work again.
	env.StartMariaDB(t)
	var code []codes.Code
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := c.AddSequencedLeaves(ctx, &trillian.AddSequencedLeavesRequest{LogId: tree, Leaves: leaves(7, 1, "v")})
		if err == nil {
			code = []codes.Code{codes.Code(resp.Results[0].Status.GetCode())}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("AddSequencedLeaves after a MariaDB restart: %v", err)
		}
	}
	if !equalCodes(code, allOK(1)) {
		t.Fatalf("AddSequencedLeaves after a MariaDB restart: %v, want OK", code)
	}
	log = append(log, leaves(7, 1, "v")...)
	root = waitSize(t, c, tree, 8)
	if want := rfc6962Root(t, values(log)); !bytes.Equal(root.RootHash, want) {
		t.Fatalf("root at size 8 after a MariaDB restart %x, want %x", root.RootHash, want)
	}
}

// TestSharedAndNewDatabase: Shared is one Env for the test binary, and
// NewDatabase gives each caller its own empty database behind a DSN the
// MySQL driver accepts; DSN and TCPDSN reach Trillian's schema.
func TestSharedAndNewDatabase(t *testing.T) {
	env := trilliantest.Shared(t)
	if again := trilliantest.Shared(t); again != env {
		t.Fatal("Shared started a second Env")
	}
	count := func(dsn, query string) int {
		t.Helper()
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow(query).Scan(&n); err != nil {
			t.Fatalf("%s on %s: %v", query, dsn, err)
		}
		return n
	}
	const tables = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()"
	if n := count(env.DSN, tables); n < 7 {
		t.Fatalf("%d tables in %s, want Trillian's schema (Trees, TreeControl, Subtree, TreeHead, LeafData, SequencedLeafData, Unsequenced)", n, env.DSN)
	}
	if n := count(env.TCPDSN, tables); n < 7 {
		t.Fatalf("%d tables over %s, want Trillian's schema", n, env.TCPDSN)
	}
	a, b := env.NewDatabase(t), env.NewDatabase(t)
	if a == b {
		t.Fatalf("NewDatabase returned %s twice", a)
	}
	db, err := sql.Open("mysql", a)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE subjects (id INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if n := count(a, tables); n != 1 {
		t.Fatalf("%d tables in %s after creating one, want 1", n, a)
	}
	if n := count(b, tables); n != 0 {
		t.Fatalf("%d tables in the second new database %s, want 0", n, b)
	}
}
