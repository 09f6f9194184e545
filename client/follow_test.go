package client_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/client"
	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/rpc"
)

// node is a real rpc.Service on a ledger of its own, on a loopback port; it
// counts the requests it receives and remembers their Authorization headers.
type node struct {
	l        *ledger.Ledger
	url      string
	requests atomic.Int64
	mu       sync.Mutex
	auth     []string
	refuse   atomic.Pointer[func() error]
}

// startNode starts a node; refuse, if set, then makes it a standby whose
// writes are refused with what refuse returns (rpc.New appends the default
// policy first).
func startNode(t *testing.T, refuse func() error) *node {
	t.Helper()
	noon := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	start := time.Now()
	now := func() time.Time { return noon.Add(time.Since(start)) }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := ledger.Open(t.TempDir(), ledger.Options{Now: now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	n := &node{l: l}
	s, err := rpc.New(context.Background(), rpc.Options{Ledger: l, Now: now, Logger: log, RefuseWrites: func() error {
		if f := n.refuse.Load(); f != nil {
			return (*f)()
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if refuse != nil {
		n.refuse.Store(&refuse)
	}
	mux := http.NewServeMux()
	s.Mount(mux)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.requests.Add(1)
		n.mu.Lock()
		n.auth = append(n.auth, r.Header.Get("Authorization"))
		n.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	n.url = srv.URL
	return n
}

func optIn(who string) *pb.RecordOptInRequest {
	return &pb.RecordOptInRequest{
		Subject: &pb.Subject{Id: &pb.Subject_Phone{Phone: who}}, Channel: pb.Channel_CHANNEL_SMS,
		Purposes: []string{"marketing"}, Method: "checkout", NoticeVersion: "2026-01", DoubleOptInConfirmed: true,
	}
}

// TestWritesFollowTheLeader: a write sent to a standby is refused there
// with a LeaderHint and lands on the leader, over Connect and gRPC, with
// the bearer token; reads stay on the standby.
func TestWritesFollowTheLeader(t *testing.T) {
	leader := startNode(t, nil)
	standby := startNode(t, func() error { return &ledger.NotLeaderError{Leader: leader.url + "/"} })
	ctx := context.Background()
	for _, grpc := range []bool{false, true} {
		c, err := client.New(standby.url, client.Options{Token: "s3cret", GRPC: grpc})
		if err != nil {
			t.Fatal(err)
		}
		leaderBefore, standbyBefore := leader.l.Size(), standby.l.Size()
		for i, who := range []string{"+49 170 3000001", "+49 170 3000002"} {
			r, err := c.Consent.RecordOptIn(ctx, connect.NewRequest(optIn(who)))
			if err != nil {
				t.Fatalf("grpc=%v: RecordOptIn through the standby: %v", grpc, err)
			}
			if want := leaderBefore + uint64(i); r.Msg.Entry.Index != want {
				t.Errorf("grpc=%v: the opt-in was recorded at %d, want the leader's next index %d", grpc, r.Msg.Entry.Index, want)
			}
			data, err := leader.l.Entry(ctx, r.Msg.Entry.Index)
			if err != nil {
				t.Fatal(err)
			}
			if e, err := ledger.DecodeEntry(data); err != nil || e.GetConsentGranted() == nil {
				t.Errorf("grpc=%v: the leader's entry %d is not the opt-in: %v %v", grpc, r.Msg.Entry.Index, e, err)
			}
		}
		if got := leader.l.Size() - leaderBefore; got != 2 {
			t.Errorf("grpc=%v: the leader's log grew by %d entries, want 2", grpc, got)
		}
		if standby.l.Size() != standbyBefore {
			t.Errorf("grpc=%v: the standby appended %d entries", grpc, standby.l.Size()-standbyBefore)
		}
		// Reads are the standby's.
		cp, err := c.Log.GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{Sign: true}))
		if err != nil {
			t.Fatal(err)
		}
		if cp.Msg.Size != standby.l.Size() {
			t.Errorf("grpc=%v: GetCheckpoint answered size %d, want the standby's %d", grpc, cp.Msg.Size, standby.l.Size())
		}
	}
	leader.mu.Lock()
	defer leader.mu.Unlock()
	if len(leader.auth) != 4 {
		t.Errorf("the leader received %d requests, want the 4 writes", len(leader.auth))
	}
	for _, a := range leader.auth {
		if a != "Bearer s3cret" {
			t.Errorf("a request followed to the leader carried Authorization %q", a)
		}
	}
}

// TestFollowsOneHintOnly: two nodes that each name the other as leader get
// one request each; the client returns the second refusal.
func TestFollowsOneHintOnly(t *testing.T) {
	var bURL atomic.Pointer[string]
	a := startNode(t, func() error { return &ledger.NotLeaderError{Leader: *bURL.Load()} })
	b := startNode(t, func() error { return &ledger.NotLeaderError{Leader: a.url} })
	bURL.Store(&b.url)
	c, err := client.New(a.url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a.requests.Store(0)
	b.requests.Store(0)
	_, err = c.Consent.RecordOptIn(context.Background(), connect.NewRequest(optIn("+49 170 3000003")))
	if connect.CodeOf(err) != connect.CodeUnavailable || client.LeaderHint(err) != a.url {
		t.Fatalf("got %v (hint %q), want unavailable naming %s", err, client.LeaderHint(err), a.url)
	}
	if !strings.Contains(err.Error(), a.url) {
		t.Errorf("message %q does not name the leader", err)
	}
	if a.requests.Load() != 1 || b.requests.Load() != 1 {
		t.Errorf("requests: %d to the first node and %d to the second, want 1 each", a.requests.Load(), b.requests.Load())
	}
}

// TestNoLeaderNoRetry: a standby that knows no leader is answered as is.
func TestNoLeaderNoRetry(t *testing.T) {
	s := startNode(t, func() error { return &ledger.NotLeaderError{} })
	c, err := client.New(s.url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.requests.Store(0)
	_, err = c.Consent.RecordOptIn(context.Background(), connect.NewRequest(optIn("+49 170 3000004")))
	if connect.CodeOf(err) != connect.CodeUnavailable || client.LeaderHint(err) != "" {
		t.Fatalf("got %v, want unavailable without a hint", err)
	}
	if s.requests.Load() != 1 {
		t.Errorf("%d requests, want 1", s.requests.Load())
	}
}
