package ledger

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/consentledger/consentledger/internal/trilliantest"
	"github.com/consentledger/consentledger/ledger/trillianlog"
)

// testBackendEnv selects the backend the ledger's tests run on: unset or
// "badger" for the local store alone, "trillian" for a Trillian tree and a
// SQL database (real servers, started by internal/trilliantest). .ci/run
// runs the package on both.
const testBackendEnv = "CONSENTLEDGER_TEST_BACKEND"

// onTrillian reports whether the tests run on Trillian.
func onTrillian() bool { return os.Getenv(testBackendEnv) == "trillian" }

// crashTrillianEnv passes the crash test's child its Trillian config.
const crashTrillianEnv = "CONSENTLEDGER_CRASH_TRILLIAN"

// testRemote returns a remote on a new Trillian tree when the tests run on
// Trillian, else nil.
func testRemote(t testing.TB) Remote {
	t.Helper()
	if !onTrillian() {
		return nil
	}
	cfg := newTrillianConfig(t)
	return openTrillian(t, cfg)
}

// newTrillianConfig creates a tree (and our tables) on the shared Env.
func newTrillianConfig(t testing.TB) trillianlog.Config {
	t.Helper()
	env := trilliantest.Shared(t)
	id, err := trillianlog.Init(context.Background(), env.LogAddr, env.DSN)
	if err != nil {
		t.Fatalf("trillian init: %v", err)
	}
	return trillianlog.Config{Trillian: env.LogAddr, Tree: id, SQL: env.DSN}
}

func openTrillian(t testing.TB, cfg trillianlog.Config) *trillianlog.Log {
	t.Helper()
	r, err := trillianlog.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open the log on Trillian: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// encodeTrillian and decodeTrillian pass a config to the crash child.
func encodeTrillian(c trillianlog.Config) string {
	return fmt.Sprintf("%s|%d|%s", c.Trillian, c.Tree, c.SQL)
}

func decodeTrillian(s string) (trillianlog.Config, error) {
	f := strings.SplitN(s, "|", 3)
	if len(f) != 3 {
		return trillianlog.Config{}, fmt.Errorf("bad %s %q", crashTrillianEnv, s)
	}
	tree, err := strconv.ParseInt(f[1], 10, 64)
	return trillianlog.Config{Trillian: f[0], Tree: tree, SQL: f[2]}, err
}
