package rpc_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
	"github.com/consentledger/consentledger/rpc"
)

// node is an rpc.Service on a ledger of its own, served on a loopback port
// (Connect, gRPC and gRPC-Web over HTTP/1.1 and h2c).
type node struct {
	l    *ledger.Ledger
	url  string
	http *http.Client
}

func startNode(t *testing.T, opts rpc.Options) *node {
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
	opts.Ledger, opts.Now, opts.Logger = l, now, log
	s, err := rpc.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Mount(mux)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &node{l: l, url: srv.URL, http: &http.Client{Transport: tr}}
}

func (n *node) consent(o ...connect.ClientOption) consentledgerv1connect.ConsentServiceClient {
	return consentledgerv1connect.NewConsentServiceClient(n.http, n.url, o...)
}

func (n *node) logs(o ...connect.ClientOption) consentledgerv1connect.LogServiceClient {
	return consentledgerv1connect.NewLogServiceClient(n.http, n.url, o...)
}

func optInRequest(who string) *pb.RecordOptInRequest {
	return &pb.RecordOptInRequest{
		Subject: &pb.Subject{Id: &pb.Subject_Phone{Phone: who}}, Channel: pb.Channel_CHANNEL_WHATSAPP,
		Purposes: []string{"marketing"}, Method: "checkout", NoticeVersion: "2026-01", DoubleOptInConfirmed: true,
	}
}

func decideRequest(who string) *pb.DecideRequest {
	return &pb.DecideRequest{
		Subject: &pb.Subject{Id: &pb.Subject_Phone{Phone: who}}, Channel: pb.Channel_CHANNEL_WHATSAPP,
		Purpose: "marketing", Category: "marketing", Provider: &pb.Provider{Name: "eu-bsp", Region: "EU"},
		SubjectTimezone: "Europe/Berlin",
	}
}

// leaderHints returns the LeaderHint details of err.
func leaderHints(t *testing.T, err error) []string {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a Connect error", err)
	}
	var out []string
	for _, d := range ce.Details() {
		v, err := d.Value()
		if err != nil {
			t.Fatalf("undecodable error detail %s: %v", d.Type(), err)
		}
		if h, ok := v.(*pb.LeaderHint); ok {
			out = append(out, h.LeaderUrl)
		}
	}
	return out
}

// TestStandbyRefusesWritesWithLeaderHint: a write refused because the node
// is a standby reaches the client, over Connect and gRPC, as unavailable
// with the leader's URL in the message and as a LeaderHint detail, and
// appends nothing.
func TestStandbyRefusesWritesWithLeaderHint(t *testing.T) {
	const leader = "https://node1.example.com:7420"
	var mu sync.Mutex
	var refusal error
	n := startNode(t, rpc.Options{RefuseWrites: func() error {
		mu.Lock()
		defer mu.Unlock()
		return refusal
	}})
	before := n.l.Size()
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		refusal   error
		wantHints []string
		wantMsg   string
	}{
		{"leader known", &ledger.NotLeaderError{Leader: leader}, []string{leader}, "send writes to the leader at " + leader},
		{"no leader holds the lease", &ledger.NotLeaderError{}, nil, "no leader holds the lease"},
		{"wrapped", errors.Join(errors.New("sequencer stopped"), &ledger.NotLeaderError{Leader: leader}), []string{leader}, leader},
		{"plain ErrNotLeader", ledger.ErrNotLeader, nil, "standby"},
	} {
		mu.Lock()
		refusal = tc.refusal
		mu.Unlock()
		for _, proto := range []struct {
			name string
			opts []connect.ClientOption
		}{{"connect", nil}, {"grpc", []connect.ClientOption{connect.WithGRPC()}}} {
			calls := map[string]func() error{
				"RecordOptIn": func() error {
					_, err := n.consent(proto.opts...).RecordOptIn(ctx, connect.NewRequest(optInRequest("+49 170 1000001")))
					return err
				},
				"Decide": func() error {
					_, err := consentledgerv1connect.NewSendServiceClient(n.http, n.url, proto.opts...).Decide(ctx, connect.NewRequest(decideRequest("+49 170 1000001")))
					return err
				},
				"DecideBatch": func() error {
					_, err := consentledgerv1connect.NewSendServiceClient(n.http, n.url, proto.opts...).DecideBatch(ctx, connect.NewRequest(&pb.DecideBatchRequest{
						Requests: []*pb.DecideRequest{decideRequest("+49 170 1000001"), decideRequest("+49 170 1000002")}}))
					return err
				},
			}
			for call, do := range calls {
				err := do()
				name := tc.name + "/" + proto.name + "/" + call
				if connect.CodeOf(err) != connect.CodeUnavailable {
					t.Fatalf("%s: got %v, want unavailable", name, err)
				}
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("%s: message %q does not say %q", name, err.Error(), tc.wantMsg)
				}
				if got := leaderHints(t, err); strings.Join(got, ",") != strings.Join(tc.wantHints, ",") {
					t.Errorf("%s: LeaderHint details %q, want %q", name, got, tc.wantHints)
				}
			}
		}
	}
	if n.l.Size() != before {
		t.Errorf("refused writes appended %d entries", n.l.Size()-before)
	}
	// Reads are served all along.
	if _, err := n.logs().GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{})); err != nil {
		t.Errorf("GetCheckpoint on the standby: %v", err)
	}
}

// TestMinIndex: a read with min_index waits until the node has applied that
// entry: at once when it has, until it arrives when it comes within the
// bound, and unavailable (saying how far the node has got) past the bound,
// for every read that takes min_index.
func TestMinIndex(t *testing.T) {
	const wait = time.Second
	n := startNode(t, rpc.Options{MinIndexWait: wait})
	ctx := context.Background()
	r, err := n.consent().RecordOptIn(ctx, connect.NewRequest(optInRequest("+49 170 2000001")))
	if err != nil {
		t.Fatal(err)
	}
	written := r.Msg.Entry.Index

	t.Run("applied", func(t *testing.T) {
		began := time.Now()
		req := &pb.GetConsentRequest{Subject: optInRequest("+49 170 2000001").Subject, MinIndex: written}
		c, err := n.consent().GetConsent(ctx, connect.NewRequest(req))
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(began); d > wait/2 {
			t.Errorf("a read of an applied index took %v", d)
		}
		if c.Msg.Head.GetIndex() != written {
			t.Errorf("consent head %d, want the write at %d", c.Msg.Head.GetIndex(), written)
		}
	})

	t.Run("arrives while waiting", func(t *testing.T) {
		next := n.l.Size()
		appended := make(chan error, 1)
		go func() {
			time.Sleep(wait / 5)
			_, err := n.consent().RecordOptIn(ctx, connect.NewRequest(optInRequest("+49 170 2000002")))
			appended <- err
		}()
		req := &pb.GetConsentRequest{Subject: optInRequest("+49 170 2000002").Subject, MinIndex: next}
		c, err := n.consent().GetConsent(ctx, connect.NewRequest(req))
		if err != nil {
			t.Fatal(err)
		}
		if err := <-appended; err != nil {
			t.Fatal(err)
		}
		if c.Msg.Head.GetIndex() != next {
			t.Errorf("the read did not see the write at %d it waited for: head %v", next, c.Msg.Head)
		}
	})

	beyond := n.l.Size() + 10
	reads := map[string]func() error{
		"GetConsent": func() error {
			_, err := n.consent().GetConsent(ctx, connect.NewRequest(&pb.GetConsentRequest{Subject: optInRequest("+49 170 2000001").Subject, MinIndex: beyond}))
			return err
		},
		"GetCheckpoint": func() error {
			_, err := n.logs().GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{MinIndex: beyond}))
			return err
		},
		"GetEntries": func() error {
			_, err := n.logs().GetEntries(ctx, connect.NewRequest(&pb.GetEntriesRequest{MinIndex: beyond}))
			return err
		},
		"GetInclusionProof": func() error {
			_, err := n.logs().GetInclusionProof(ctx, connect.NewRequest(&pb.GetInclusionProofRequest{Index: written, MinIndex: beyond}))
			return err
		},
		"GetConsistencyProof": func() error {
			_, err := n.logs().GetConsistencyProof(ctx, connect.NewRequest(&pb.GetConsistencyProofRequest{Size1: 1, MinIndex: beyond}))
			return err
		},
		"GetEvidence": func() error {
			_, err := n.logs().GetEvidence(ctx, connect.NewRequest(&pb.GetEvidenceRequest{DecisionIndex: written, MinIndex: beyond}))
			return err
		},
		"ListBreaches": func() error {
			_, err := consentledgerv1connect.NewBreachServiceClient(n.http, n.url).ListBreaches(ctx, connect.NewRequest(&pb.ListBreachesRequest{MinIndex: beyond}))
			return err
		},
		"WatchEntries": func() error {
			s, err := n.logs().WatchEntries(ctx, connect.NewRequest(&pb.WatchEntriesRequest{MinIndex: beyond}))
			if err != nil {
				return err
			}
			defer s.Close()
			if s.Receive() {
				return errors.New("WatchEntries sent an entry")
			}
			return s.Err()
		},
	}
	t.Run("beyond the log", func(t *testing.T) {
		size := n.l.Size()
		for name, read := range reads {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				began := time.Now()
				err := read()
				took := time.Since(began)
				if connect.CodeOf(err) != connect.CodeUnavailable {
					t.Fatalf("got %v, want unavailable", err)
				}
				for _, want := range []string{"min_index", "applied " + itoa(size) + " entries", "catching up to entry " + itoa(beyond), "retry"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("message %q does not say %q", err.Error(), want)
					}
				}
				if took < wait || took > wait+5*time.Second {
					t.Errorf("answered after %v, want after the %v bound", took, wait)
				}
			})
		}
	})

	t.Run("zero means no wait", func(t *testing.T) {
		began := time.Now()
		if _, err := n.logs().GetEntries(ctx, connect.NewRequest(&pb.GetEntriesRequest{Start: 0, Count: 1})); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(began); d > wait/2 {
			t.Errorf("a read without min_index took %v", d)
		}
	})
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
