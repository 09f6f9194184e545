package trillianlog_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/consentledger/consentledger/internal/trilliantest"
	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/ledger/subject"
	"github.com/consentledger/consentledger/ledger/trillianlog"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

func TestMain(m *testing.M) { os.Exit(trilliantest.Main(m)) }

func optIn(n string) *ledger.Request {
	return &ledger.Request{
		Entry: &pb.Entry{Actor: "test", Event: &pb.Entry_ConsentGranted{ConsentGranted: &pb.ConsentGranted{
			Channel: pb.Channel_CHANNEL_SMS, Purposes: []string{"marketing"}, Method: "checkout", NoticeVersion: "2026-01",
		}}},
		Subject: &subject.Identifier{Kind: subject.KindPhone, Value: n},
	}
}

// TestOpenNamesWhatToCheck: each wrong setting is refused at start with a
// message naming what to check.
func TestOpenNamesWhatToCheck(t *testing.T) {
	env := trilliantest.Shared(t)
	ctx := context.Background()
	tree, err := trillianlog.Init(ctx, env.LogAddr, env.DSN)
	if err != nil {
		t.Fatal(err)
	}
	bare := env.NewDatabase(t) // no consentledger tables
	for _, tc := range []struct {
		name string
		cfg  trillianlog.Config
		want string
	}{
		{"Trillian down", trillianlog.Config{Trillian: "127.0.0.1:1", Tree: tree, SQL: env.DSN}, "trillian_log_server"},
		{"database down", trillianlog.Config{Trillian: env.LogAddr, Tree: tree, SQL: "root@tcp(127.0.0.1:1)/trillian"}, "unreachable"},
		{"no tables", trillianlog.Config{Trillian: env.LogAddr, Tree: tree, SQL: bare}, "consentledger trillian init"},
		{"unknown tree", trillianlog.Config{Trillian: env.LogAddr, Tree: 12345, SQL: env.DSN}, "--tree"},
		{"bad DSN", trillianlog.Config{Trillian: env.LogAddr, Tree: tree, SQL: "not a dsn"}, "--sql"},
		{"no address", trillianlog.Config{Tree: tree, SQL: env.DSN}, "--trillian"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := trillianlog.Open(ctx, tc.cfg)
			if err == nil {
				r.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v; want a message naming %q", err, tc.want)
			}
		})
	}
}

// TestLedgerOnTrillian: entries reach Trillian with Trillian's root equal
// to the ledger's, checkpoints are stored in the database, and a ledger on
// an empty directory rebuilds the same log from Trillian alone.
func TestLedgerOnTrillian(t *testing.T) {
	env := trilliantest.Shared(t)
	ctx := context.Background()
	tree, err := trillianlog.Init(ctx, env.LogAddr, env.DSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg := trillianlog.Config{Trillian: env.LogAddr, Tree: tree, SQL: env.DSN}
	r, err := trillianlog.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dir := t.TempDir()
	l, err := ledger.Open(dir, ledger.Options{Remote: r, CheckpointInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"+491701", "+491702", "+491703"} {
		if _, err := l.Append(ctx, optIn(n)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := l.SignCheckpoint(ctx)
	if err != nil || c.Size != 3 {
		t.Fatalf("SignCheckpoint = %+v, %v; want size 3", c, err)
	}
	size, root, err := r.Integrated(ctx)
	if err != nil || size != 3 || !bytes.Equal(root, l.Root()) {
		t.Fatalf("Trillian: size %d root %x (%v); ledger root %x", size, root, err, l.Root())
	}
	var stored []byte
	if err := r.Checkpoints(ctx, 0, func(s uint64, note []byte) error {
		if s == 3 {
			stored = note
		}
		return nil
	}); err != nil || !bytes.Equal(stored, c.Note) {
		t.Fatalf("checkpoint of size 3 in the database: %q, %v", stored, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Trillian stops: a ledger does not start, and names Trillian.
	env.StopTrillian()
	if _, err := trillianlog.Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("Open with Trillian stopped: %v, want unreachable", err)
	}
	env.StartTrillian(t)
}

// TestUnavailableWhileTrillianIsDown: once Trillian stops answering, an
// append is not acknowledged and fails as unavailable (ErrClosed, wrapping
// ErrRemote); reads keep working; after Trillian is back, a restarted
// ledger catches up and accepts writes again.
func TestUnavailableWhileTrillianIsDown(t *testing.T) {
	env := trilliantest.Start(t) // its own servers: this test stops them
	ctx := context.Background()
	tree, err := trillianlog.Init(ctx, env.LogAddr, env.DSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg := trillianlog.Config{Trillian: env.LogAddr, Tree: tree, SQL: env.DSN}
	r, err := trillianlog.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dir := t.TempDir()
	l, err := ledger.Open(dir, ledger.Options{Remote: r, CheckpointInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, optIn("+491701")); err != nil {
		t.Fatal(err)
	}
	env.StopTrillian()
	_, err = l.Append(ctx, optIn("+491702"))
	if !errors.Is(err, ledger.ErrClosed) || !errors.Is(err, ledger.ErrRemote) {
		t.Fatalf("append with Trillian down: %v, want ErrClosed wrapping ErrRemote", err)
	}
	if l.Size() != 1 {
		t.Errorf("size %d after a refused append, want 1", l.Size())
	}
	if _, err := l.Entry(ctx, 0); err != nil {
		t.Errorf("read with Trillian down: %v", err)
	}
	l.Close()

	env.StartTrillian(t)
	r2, err := trillianlog.Open(ctx, cfg) // as a restarted server does
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	l, err = ledger.Open(dir, ledger.Options{Remote: r2, CheckpointInterval: -1})
	if err != nil {
		t.Fatalf("restart once Trillian is back: %v", err)
	}
	defer l.Close()
	rc, err := l.Append(ctx, optIn("+491703"))
	if err != nil {
		t.Fatalf("append after the restart: %v", err)
	}
	if rc.Index != l.Size()-1 || l.Size() < 2 {
		t.Errorf("receipt %d, size %d", rc.Index, l.Size())
	}
}
