package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/consentledger/consentledger/client"
	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
	"github.com/consentledger/consentledger/server"
)

// runCLI runs consentverify in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	stdout, stderr = &out, &errOut
	defer func() { stdout, stderr = os.Stdout, os.Stderr }()
	code := run(args)
	return code, out.String(), errOut.String()
}

type liveServer struct {
	url, dataDir string
	c            *client.Client
	now          atomic.Int64
}

// startServer runs a real consentledger server with a fixed clock.
func startServer(t *testing.T) *liveServer {
	t.Helper()
	s := &liveServer{dataDir: t.TempDir()}
	s.now.Store(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).UnixNano())
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	cfg := server.Config{DataDir: s.dataDir, Addr: "127.0.0.1:0", Now: func() time.Time { return time.Unix(0, s.now.Load()).UTC() }}
	go func() {
		done <- server.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(a string) { ready <- a })
	}()
	select {
	case a := <-ready:
		s.url = "http://" + a
	case err := <-done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("server did not start in 60 s")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	var err error
	if s.c, err = client.New(s.url, client.Options{}); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *liveServer) optIn(t *testing.T, phone string, doi bool) {
	t.Helper()
	s.now.Add(int64(time.Minute))
	_, err := s.c.Consent.RecordOptIn(context.Background(), connect.NewRequest(&pb.RecordOptInRequest{
		Subject: &pb.Subject{Id: &pb.Subject_Phone{Phone: phone}}, Channel: pb.Channel_CHANNEL_WHATSAPP,
		Purposes: []string{"marketing"}, Method: "checkout", NoticeVersion: "2026-01", DoubleOptInConfirmed: doi,
	}))
	if err != nil {
		t.Fatal(err)
	}
}

func (s *liveServer) checkpoint(t *testing.T, dir, name string) (string, uint64) {
	t.Helper()
	r, err := s.c.Log.GetCheckpoint(context.Background(), connect.NewRequest(&pb.GetCheckpointRequest{Sign: true}))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(r.Msg.Checkpoint), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, r.Msg.Size
}

// TestLiveServer verifies what a running server hands out: an evidence
// bundle, an export, and a consistency proof fetched with --server.
func TestLiveServer(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	keyFile := filepath.Join(s.dataDir, ledger.VerifierKeyFile)
	s.optIn(t, "+49 170 1234567", true)
	oldCP, _ := s.checkpoint(t, dir, "old.checkpoint")
	s.optIn(t, "+49 170 7654321", false)
	s.now.Add(int64(time.Minute))
	d, err := s.c.Send.Decide(context.Background(), connect.NewRequest(&pb.DecideRequest{
		Subject: &pb.Subject{Id: &pb.Subject_Phone{Phone: "+49 170 1234567"}}, Channel: pb.Channel_CHANNEL_WHATSAPP,
		Purpose: "marketing", Category: "marketing", Provider: &pb.Provider{Name: "eu-bsp", Region: "EU"}, SubjectTimezone: "Europe/Berlin",
	}))
	if err != nil || !d.Msg.Allow {
		t.Fatalf("Decide = %v, %v", d, err)
	}
	newCP, _ := s.checkpoint(t, dir, "new.checkpoint")

	bundle, err := s.c.Evidence(context.Background(), d.Msg.Decision.Index)
	if err != nil {
		t.Fatal(err)
	}
	bundleFile := filepath.Join(dir, "evidence.json")
	os.WriteFile(bundleFile, bundle, 0o644)
	if code, out, errOut := runCLI(t, "evidence", bundleFile, "--key", keyFile); code != 0 || !strings.HasPrefix(out, "VERIFIED: proof of consent") {
		t.Fatalf("evidence: exit %d\n%s%s", code, out, errOut)
	}

	var exp bytes.Buffer
	if _, err := s.c.Export(context.Background(), &exp, nil); err != nil {
		t.Fatal(err)
	}
	exportFile := filepath.Join(dir, "log.export")
	os.WriteFile(exportFile, exp.Bytes(), 0o644)
	if code, out, errOut := runCLI(t, "audit", "--key", keyFile, exportFile); code != 0 {
		t.Fatalf("audit: exit %d\n%s%s", code, out, errOut)
	}

	code, out, errOut := runCLI(t, "consistency", oldCP, newCP, "--key", keyFile, "--server", s.url)
	if code != 0 || !strings.Contains(out, "only grew") {
		t.Fatalf("consistency --server: exit %d\n%s%s", code, out, errOut)
	}
	// Equal checkpoints need no proof.
	if code, out, errOut := runCLI(t, "consistency", newCP, newCP, "--key", keyFile, "--server", "http://127.0.0.1:1"); code != 0 {
		t.Fatalf("consistency of a checkpoint with itself: exit %d\n%s%s", code, out, errOut)
	}
}

// lyingLog answers GetConsistencyProof with whatever answer says.
type lyingLog struct {
	consentledgerv1connect.UnimplementedLogServiceHandler
	answer func(*pb.GetConsistencyProofRequest) *pb.GetConsistencyProofResponse
}

func (l *lyingLog) GetConsistencyProof(_ context.Context, r *connect.Request[pb.GetConsistencyProofRequest]) (*connect.Response[pb.GetConsistencyProofResponse], error) {
	return connect.NewResponse(l.answer(r.Msg)), nil
}

// TestLyingServer: consentverify never trusts the server's answer beyond
// the proof check, and binds it to the sizes it asked for.
func TestLyingServer(t *testing.T) {
	fixtures := "../../testdata"
	oldCP, newCP := filepath.Join(fixtures, "consistency", "old.checkpoint"), filepath.Join(fixtures, "consistency", "new.checkpoint")
	key := filepath.Join(fixtures, "verifier.key")
	raw, err := os.ReadFile(filepath.Join(fixtures, "consistency", "proof.json"))
	if err != nil {
		t.Fatal(err)
	}
	honest := new(pb.GetConsistencyProofResponse)
	if err := protojson.Unmarshal(raw, honest); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		answer func(*pb.GetConsistencyProofRequest) *pb.GetConsistencyProofResponse
		code   int
		want   string
	}{
		{"honest", func(r *pb.GetConsistencyProofRequest) *pb.GetConsistencyProofResponse { return honest }, 0, ""},
		{"other sizes", func(r *pb.GetConsistencyProofRequest) *pb.GetConsistencyProofResponse {
			return &pb.GetConsistencyProofResponse{Size1: r.Size1 - 1, Size2: r.Size2, Proof: honest.Proof}
		}, 1, "the proof is for sizes 10 to 29"},
		{"wrong proof", func(r *pb.GetConsistencyProofRequest) *pb.GetConsistencyProofResponse {
			p := [][]byte{bytes.Repeat([]byte{1}, 32)}
			return &pb.GetConsistencyProofResponse{Size1: r.Size1, Size2: r.Size2, Proof: p}
		}, 1, "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.Handle(consentledgerv1connect.NewLogServiceHandler(&lyingLog{answer: tc.answer}))
			srv := httptest.NewServer(mux)
			defer srv.Close()
			code, out, errOut := runCLI(t, "consistency", oldCP, newCP, "--key", key, "--server", srv.URL)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, want %d with %q\n%s%s", code, tc.code, tc.want, out, errOut)
			}
		})
	}
}
