package trilliantest

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// initMariaDB creates a new data directory in Dir/db.
func (e *Env) initMariaDB() error {
	e.sock = filepath.Join(e.Dir, "sock")
	datadir := filepath.Join(e.Dir, "db")
	// Its own temporary directory: installs running at once (one per test
	// binary, and go test runs packages in parallel) otherwise collide on
	// MariaDB's temporary-table names in /tmp.
	if err := os.MkdirAll(e.tmpDir(), 0o700); err != nil {
		return err
	}
	p, err := e.startProc("mariadb-install-db", e.bins.installDB,
		"--no-defaults", "--datadir="+datadir, "--tmpdir="+e.tmpDir(),
		"--auth-root-authentication-method=socket", "--skip-test-db")
	if err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		p.kill()
		return fmt.Errorf("mariadb-install-db did not finish within 2 minutes")
	}
	if p.err != nil {
		return fmt.Errorf("mariadb-install-db: %w; see its log below", p.err)
	}
	return nil
}

// tmpDir is MariaDB's own temporary directory.
func (e *Env) tmpDir() string { return filepath.Join(e.Dir, "tmp") }

// startMariaDB starts mariadbd on Dir/db and waits until it accepts
// connections on its socket.
func (e *Env) startMariaDB() error {
	p, err := e.startProc("mariadbd", e.bins.mariadbd,
		"--no-defaults", "--datadir="+filepath.Join(e.Dir, "db"), "--tmpdir="+e.tmpDir(),
		"--socket="+e.sock, "--port="+strconv.Itoa(e.dbPort), "--bind-address=127.0.0.1",
		"--pid-file="+filepath.Join(e.Dir, "mariadbd.pid"),
		"--user=root", "--skip-name-resolve")
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.db = p
	e.mu.Unlock()
	db, err := e.open("", false)
	if err != nil {
		return err
	}
	defer db.Close()
	err = waitUntil(context.Background(), time.Minute, func(ctx context.Context) error {
		if err := p.exited(); err != nil {
			return err
		}
		return db.PingContext(ctx)
	})
	if err != nil {
		return fmt.Errorf("mariadbd does not accept connections on %s: %w", e.sock, err)
	}
	return nil
}

// open opens database name (none when empty) as root over the socket,
// allowing several statements in one Exec when multi is set.
func (e *Env) open(name string, multi bool) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "unix"
	cfg.Addr = e.sock
	cfg.DBName = name
	cfg.MultiStatements = multi
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// dsn is the DSN of database name as root over the socket.
func (e *Env) dsn(name string) string {
	cfg := mysql.NewConfig()
	cfg.User = "root"
	cfg.Net = "unix"
	cfg.Addr = e.sock
	cfg.DBName = name
	return cfg.FormatDSN()
}

// loadSchema creates the database "trillian" with Trillian's schema.
func (e *Env) loadSchema() error {
	schema, err := schemaPath()
	if err != nil {
		return err
	}
	text, err := os.ReadFile(schema)
	if err != nil {
		return fmt.Errorf("read Trillian's schema: %w", err)
	}
	db, err := e.open("", true)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE trillian"); err != nil {
		return fmt.Errorf("create database trillian: %w", err)
	}
	if _, err := db.ExecContext(ctx, "USE trillian;\n"+string(text)); err != nil {
		return fmt.Errorf("load %s: %w", schema, err)
	}
	// Root over TCP authenticates with a password (only its socket
	// login uses peer credentials).
	if _, err := db.ExecContext(ctx, "CREATE USER root@'127.0.0.1' IDENTIFIED BY '"+tcpPassword+"'; GRANT ALL ON *.* TO root@'127.0.0.1'"); err != nil {
		return fmt.Errorf("create root@127.0.0.1: %w", err)
	}
	e.DSN = e.dsn("trillian")
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = "root", tcpPassword
	cfg.Net, cfg.Addr = "tcp", fmt.Sprintf("127.0.0.1:%d", e.dbPort)
	cfg.DBName = "trillian"
	e.TCPDSN = cfg.FormatDSN()
	return nil
}

// tcpPassword is root's password over TCP (a private instance on loopback).
const tcpPassword = "trilliantest"

// schemaPath returns the path of storage/mysql/schema/storage.sql in the
// Trillian module this module requires (downloading it if needed).
func schemaPath() (string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/google/trillian").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("find the Trillian module (go mod download -json github.com/google/trillian): %w", err)
	}
	var m struct{ Dir, Version string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return "", fmt.Errorf("go mod download -json github.com/google/trillian printed no Dir: %s", out)
	}
	return filepath.Join(m.Dir, "storage", "mysql", "schema", "storage.sql"), nil
}

// NewDatabase creates a new empty database on the Env's MariaDB and returns
// its DSN (root over the socket, like DSN). Tests on a shared Env use it to
// keep their own tables apart.
func (e *Env) NewDatabase(t testing.TB) string {
	t.Helper()
	e.mu.Lock()
	e.nextDB++
	name := fmt.Sprintf("t%d", e.nextDB)
	e.mu.Unlock()
	db, err := e.open("", false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	return e.dsn(name)
}
