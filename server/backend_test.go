package server_test

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/consentledger/consentledger/internal/trilliantest"
	"github.com/consentledger/consentledger/ledger/trillianlog"
	"github.com/consentledger/consentledger/server"
)

// testBackendEnv selects the backend the end-to-end suite runs on: unset or
// "badger" for the embedded store, "trillian" for a Trillian tree and a SQL
// database (real servers, started by internal/trilliantest). .ci/run runs
// the suite on both.
const testBackendEnv = "CONSENTLEDGER_TEST_BACKEND"

func onTrillian() bool { return os.Getenv(testBackendEnv) == "trillian" }

func TestMain(m *testing.M) {
	if onTrillian() {
		os.Exit(trilliantest.Main(m))
	}
	os.Exit(m.Run())
}

// trees remembers the Trillian storage of each data directory, so that a
// server restarted on a data directory finds its tree again.
var trees sync.Map // data dir → server.StorageConfig

// withBackend puts cfg's log on a Trillian tree of its own when the suite
// runs on Trillian (the same tree again for a data directory seen before).
func withBackend(t testing.TB, cfg *server.Config) {
	t.Helper()
	if !onTrillian() || cfg.Storage.Enabled() {
		return
	}
	if sc, ok := trees.Load(cfg.DataDir); ok {
		cfg.Storage = sc.(server.StorageConfig)
		return
	}
	cfg.Storage = newTrillianStorage(t)
	trees.Store(cfg.DataDir, cfg.Storage)
}

// newTrillianStorage creates a tree and consentledger's tables on the
// shared Trillian environment.
func newTrillianStorage(t testing.TB) server.StorageConfig {
	t.Helper()
	env := trilliantest.Shared(t)
	id, err := trillianlog.Init(context.Background(), env.LogAddr, env.DSN)
	if err != nil {
		t.Fatalf("trillian init: %v", err)
	}
	return server.StorageConfig{Trillian: env.LogAddr, Tree: id, SQL: env.DSN}
}
