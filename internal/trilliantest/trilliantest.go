// Package trilliantest runs a real Trillian log (github.com/google/trillian
// v1.8.0: trillian_log_server and trillian_log_signer) over a private MariaDB
// instance for tests (Debian's MariaDB binaries, never the system service).
//
// Start gives a test its own Env: a new MariaDB data directory (never the
// system service), the database "trillian" with Trillian's schema
// (storage/mysql/schema/storage.sql from the Trillian module), and both
// Trillian servers on free loopback ports. Everything is stopped and removed
// when the test ends; the children's logs are printed when it failed.
// Starting an Env takes a few seconds (see README), so a package whose tests
// only need trees shares one Env for the whole test binary:
//
//	func TestMain(m *testing.M) { os.Exit(trilliantest.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		env := trilliantest.Shared(t)
//		tree := env.NewTree(t) // a fresh PREORDERED_LOG tree per test
//		dsn := env.NewDatabase(t) // a fresh empty database per test, for our own tables
//		...
//	}
//
// Tests that stop or restart a server (StopTrillian, StopSigner,
// RestartMariaDB …) use their own Start, never the shared Env.
//
// The binaries are found on PATH or in $(go env GOPATH)/bin: mariadbd and
// mariadb-install-db (apt-get install -y mariadb-server), trillian_log_server
// and trillian_log_signer (go install
// github.com/google/trillian/cmd/{trillian_log_server,trillian_log_signer,createtree}@v1.8.0).
// When one is missing the test is skipped, unless the environment variable CI
// is "true": then it fails. .ci/run installs them.
package trilliantest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/trillian"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Version is the Trillian version the tests are written against (the one in
// go.mod, and the one .ci/run installs).
const Version = "v1.8.0"

// Env is one running MariaDB with Trillian's schema and one
// trillian_log_server and trillian_log_signer over it.
type Env struct {
	// LogAddr is the host:port of trillian_log_server's gRPC endpoint
	// (the log API and the admin API).
	LogAddr string
	// DSN is the go-sql-driver/mysql DSN of the database holding
	// Trillian's schema, root@unix(DIR/sock)/trillian. Root authenticates
	// by the socket's peer credentials, so it works for processes of the
	// same user only, and only over the socket.
	DSN string
	// TCPDSN is the same database over TCP, root@tcp(127.0.0.1:PORT)/trillian
	// with a password: the form a DSN has between machines.
	TCPDSN string
	// Dir is the Env's working directory: MariaDB's data directory
	// (Dir/db), its socket and the servers' logs (Dir/*.log).
	Dir string

	bins     binaries
	sock     string
	dbPort   int
	logHTTP  string
	signRPC  string
	signHTTP string

	mu     sync.Mutex
	db     *proc
	server *proc
	signer *proc
	conn   *grpc.ClientConn
	nextDB int
}

// Start starts a new Env for t and stops it (removing its files) when t
// ends. It skips t when a binary is missing (fails under CI=true).
func Start(t testing.TB) *Env {
	t.Helper()
	e, err := start()
	if err != nil {
		if e != nil {
			defer e.stop() // after fail has read the logs
		}
		fail(t, e, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(e.Logs())
		}
		e.stop()
	})
	return e
}

var shared struct {
	main bool
	once sync.Once
	env  *Env
	err  error
}

// Main runs m's tests for a package that uses Shared, then stops the shared
// Env; it prints the servers' logs when a test failed. Call it from
// TestMain: os.Exit(trilliantest.Main(m)).
func Main(m *testing.M) int {
	shared.main = true
	code := m.Run()
	if e := shared.env; e != nil {
		if code != 0 {
			fmt.Fprintln(os.Stderr, e.Logs())
		}
		e.stop()
	}
	return code
}

// Shared returns the Env shared by all tests of the test binary, starting it
// on first use. The package's TestMain must call Main, which stops it. Tests
// on the shared Env must not stop its servers and should work in their own
// tree (NewTree) and database (NewDatabase).
func Shared(t testing.TB) *Env {
	t.Helper()
	if !shared.main {
		t.Fatal("trilliantest.Shared needs the package's TestMain to run os.Exit(trilliantest.Main(m)), which stops the shared Env")
	}
	shared.once.Do(func() { shared.env, shared.err = start() })
	if shared.err != nil {
		fail(t, shared.env, shared.err)
	}
	return shared.env
}

// missingError says which binary is not installed.
type missingError struct{ what string }

func (e *missingError) Error() string {
	return fmt.Sprintf("%s; this test requires MariaDB (apt-get install -y mariadb-server) and Trillian %s's servers (go install github.com/google/trillian/cmd/{trillian_log_server,trillian_log_signer,createtree}@%s), found on PATH or in $(go env GOPATH)/bin", e.what, Version, Version)
}

// fail skips t for a missing binary (fails it under CI=true) and fails it
// with the servers' logs for anything else.
func fail(t testing.TB, e *Env, err error) {
	t.Helper()
	var m *missingError
	if errors.As(err, &m) {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if e != nil {
		t.Fatalf("start Trillian and MariaDB: %v\n%s", err, e.Logs())
	}
	t.Fatalf("start Trillian and MariaDB: %v", err)
}

// start starts MariaDB, loads the schema and starts both Trillian servers.
// On error it has stopped what it started; the Env it returns (if not nil)
// still has the logs.
func start() (*Env, error) {
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	// A short directory: MariaDB's socket path must fit sun_path (108 bytes),
	// which t.TempDir's long names can exceed.
	dir, err := os.MkdirTemp("", "trillian")
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, bins: bins}
	if err := e.init(); err != nil {
		e.stopProcs()
		return e, err
	}
	return e, nil
}

func (e *Env) init() error {
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	e.dbPort = ports[0]
	e.LogAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	e.logHTTP = fmt.Sprintf("127.0.0.1:%d", ports[2])
	e.signRPC = fmt.Sprintf("127.0.0.1:%d", ports[3])
	e.signHTTP = fmt.Sprintf("127.0.0.1:%d", ports[4])
	if err := e.initMariaDB(); err != nil {
		return err
	}
	if err := e.startMariaDB(); err != nil {
		return err
	}
	if err := e.loadSchema(); err != nil {
		return err
	}
	conn, err := grpc.NewClient(e.LogAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("grpc client for %s: %w", e.LogAddr, err)
	}
	e.conn = conn
	return e.startTrillian()
}

// stop stops every process and removes the Env's directory.
func (e *Env) stop() {
	e.stopProcs()
	if e.conn != nil {
		e.conn.Close()
	}
	os.RemoveAll(e.Dir)
}

// stopProcs kills the Trillian servers (they keep no state of their own,
// and a SIGTERM makes them drain for 5–10 s) and stops MariaDB cleanly.
func (e *Env) stopProcs() {
	e.StopTrillian()
	e.StopMariaDB()
}

// LogClient returns a client of the Trillian log API on LogAddr. It stays
// usable across StopTrillian and StartTrillian (calls in between fail with
// codes.Unavailable).
func (e *Env) LogClient() trillian.TrillianLogClient { return trillian.NewTrillianLogClient(e.conn) }

// AdminClient returns a client of the Trillian admin API on LogAddr.
func (e *Env) AdminClient() trillian.TrillianAdminClient {
	return trillian.NewTrillianAdminClient(e.conn)
}

// StopTrillian stops trillian_log_server and trillian_log_signer (kill -9),
// so that LogAddr refuses connections; MariaDB keeps running.
func (e *Env) StopTrillian() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range []**proc{&e.signer, &e.server} {
		if *p != nil {
			(*p).kill()
			*p = nil
		}
	}
}

// StartTrillian starts the Trillian servers StopTrillian or StopSigner
// stopped, on the same addresses, and waits until they answer.
func (e *Env) StartTrillian(t testing.TB) {
	t.Helper()
	if err := e.startTrillian(); err != nil {
		t.Fatalf("restart Trillian: %v\n%s", err, e.Logs())
	}
}

// StopSigner stops only trillian_log_signer (kill -9): AddSequencedLeaves
// still commits leaves, but nothing is integrated into the tree until
// StartTrillian starts the signer again.
func (e *Env) StopSigner() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.signer != nil {
		e.signer.kill()
		e.signer = nil
	}
}

// StopMariaDB shuts MariaDB down (cleanly, as a service stop would); the
// Trillian servers keep running and fail their requests meanwhile.
func (e *Env) StopMariaDB() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.db != nil {
		e.db.stop()
		e.db = nil
	}
}

// KillMariaDB kills MariaDB with SIGKILL (a crash: committed transactions
// survive through InnoDB's recovery at the next start).
func (e *Env) KillMariaDB() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.db != nil {
		e.db.kill()
		e.db = nil
	}
}

// StartMariaDB starts MariaDB again on the same data directory, socket and
// port, and waits until it accepts connections.
func (e *Env) StartMariaDB(t testing.TB) {
	t.Helper()
	if err := e.startMariaDB(); err != nil {
		t.Fatalf("restart MariaDB: %v\n%s", err, e.Logs())
	}
}

// RestartMariaDB stops MariaDB cleanly and starts it again.
func (e *Env) RestartMariaDB(t testing.TB) {
	t.Helper()
	e.StopMariaDB()
	e.StartMariaDB(t)
}

// Logs returns the last lines of every child process's log.
func (e *Env) Logs() string {
	var s string
	for _, name := range []string{"mariadb-install-db", "mariadbd", "trillian_log_server", "trillian_log_signer"} {
		s += tail(e.logPath(name), 40)
	}
	return s
}

// waitUntil polls ok every 50 ms until it returns nil or d has passed, and
// returns ok's last error then.
func waitUntil(ctx context.Context, d time.Duration, ok func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		err := ok(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tail returns the last n lines of the file at path, with a header.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	lines := 0
	i := len(b)
	for i > 0 && lines <= n {
		i--
		if b[i] == '\n' {
			lines++
		}
	}
	if lines > n {
		i++
	}
	return fmt.Sprintf("--- %s (last %d lines)\n%s\n", path, n, b[i:])
}
