// Package trillianlog runs consentledger's log on Trillian
// (github.com/google/trillian): a PREORDERED_LOG tree holds the entries,
// and tables of ours in a MySQL/MariaDB database (it may be Trillian's own)
// hold what must not go into a log.
//
// Where each piece lives, and why:
//   - Entries: in the Trillian tree. consentledger's sequencer assigns the
//     indexes (hash chains need them before an entry is encoded), and each
//     group commit is one AddSequencedLeaves call whose leaf values are the
//     stored entry bytes, so Trillian's RFC 6962 leaf hashes and roots are
//     the ledger's. An entry is acknowledged only after Trillian accepted
//     every leaf of its call.
//   - The subject table (HMAC of an identifier → salt, subject_id): in the
//     SQL table consentledger_subjects. It is personal data that must be
//     erasable, so it never goes into a log; erasure deletes its row.
//   - Signed checkpoints: in the SQL table consentledger_checkpoints, so
//     every node serves the same ones and none is lost with a machine.
//   - The state index and the tree tiles: in each node's local data
//     directory (Badger), as a cache derived from Trillian's leaves,
//     extended at every start and rebuilt when the directory is new.
//
// Trillian's behaviour that this package relies on (v1.8.0, MySQL storage):
// AddSequencedLeaves answers OK with a status per leaf and commits the
// leaves that do not conflict, so any per-leaf status other than OK is a
// fatal error here (never a retry at another index); leaves are committed
// before they are integrated by trillian_log_signer, and GetLeavesByRange
// returns nothing from the integrated size on.
//
// Standby nodes share one tree; only the holder of the leader lease writes.
// The lease is a row in the SQL table consentledger_lease (Lease), timed by
// the database's clock and changed only by conditional UPDATEs, so the
// database alone decides who holds it. Trillian's index refusal is not a
// fence: a stale writer's AddSequencedLeaves commits the leaves that do not
// conflict, so its batch half-commits and breaks the hash chain. The fence is
// time instead: a leader gives each write a deadline before its lease ends
// minus a margin (Lease.Deadline) and stops when it cannot renew, and a new
// leader waits the lease's length plus that write deadline plus a margin,
// counted from the previous lease's expiry, before its first write
// (AcquireResult.FenceUntil). A node whose clock differs from the database's
// by more than a bound does not take the lease.
package trillianlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/trillian"
	"github.com/google/trillian/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"k8s.io/klog/v2"

	"github.com/consentledger/consentledger/ledger/remote"
)

// Config names the Trillian log server, the tree and the SQL database.
type Config struct {
	// Trillian is the host:port of trillian_log_server's gRPC endpoint.
	Trillian string
	// Tree is the PREORDERED_LOG tree's id (printed by Init).
	Tree int64
	// SQL is the database's DSN in go-sql-driver/mysql form, e.g.
	// "user:password@tcp(127.0.0.1:3306)/trillian".
	SQL string
}

// Log is a remote.Log on a Trillian tree and a SQL database.
type Log struct {
	cfg  Config
	conn *grpc.ClientConn
	log  trillian.TrillianLogClient
	db   *sql.DB
}

var _ remote.Log = (*Log)(nil)

func init() {
	// Trillian's client library logs every tree it creates through klog
	// to stderr; errors reach our callers as errors instead.
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
}

// schema creates our tables; every statement is idempotent.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS consentledger_subjects (
		tree_id BIGINT NOT NULL,
		table_key VARBINARY(64) NOT NULL,
		row_value VARBINARY(255) NOT NULL,
		PRIMARY KEY (tree_id, table_key)
	)`,
	`CREATE TABLE IF NOT EXISTS consentledger_checkpoints (
		tree_id BIGINT NOT NULL,
		size BIGINT UNSIGNED NOT NULL,
		note BLOB NOT NULL,
		PRIMARY KEY (tree_id, size)
	)`,
	leaseSchema,
}

// Open connects to Trillian and the database, and checks that both answer,
// that the tree exists and that our tables are there; it adds the lease
// table (consentledger_lease) to a database initialised before it existed.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	l, err := dial(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.pingSQL(ctx); err != nil {
		l.Close()
		return nil, err
	}
	var n int
	err = l.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM consentledger_checkpoints WHERE tree_id = ?`, cfg.Tree).Scan(&n)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("the database %s lacks consentledger's tables (%v): run consentledger trillian init first", redact(cfg.SQL), err)
	}
	// Trees initialised before standby nodes have no lease table yet.
	if _, err := l.db.ExecContext(ctx, leaseSchema); err != nil {
		l.Close()
		return nil, fmt.Errorf("create the table consentledger_lease in %s (does the --sql user have the CREATE privilege?): %w", redact(cfg.SQL), err)
	}
	if _, _, err := l.Integrated(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func dial(cfg Config) (*Log, error) {
	if cfg.Trillian == "" {
		return nil, errors.New("no Trillian address: give --trillian HOST:PORT (trillian_log_server's gRPC endpoint)")
	}
	if cfg.SQL == "" {
		return nil, errors.New("no database: give --sql DSN (e.g. user:password@tcp(127.0.0.1:3306)/trillian)")
	}
	if _, err := mysql.ParseDSN(cfg.SQL); err != nil {
		return nil, fmt.Errorf("the --sql DSN is not valid (expected user:password@tcp(host:port)/database): %w", err)
	}
	conn, err := grpc.NewClient(cfg.Trillian, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("connect to Trillian at %s: %w", cfg.Trillian, err)
	}
	db, err := sql.Open("mysql", cfg.SQL)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("open the database %s: %w", redact(cfg.SQL), err)
	}
	db.SetMaxOpenConns(8)
	db.SetConnMaxLifetime(5 * time.Minute)
	return &Log{cfg: cfg, conn: conn, log: trillian.NewTrillianLogClient(conn), db: db}, nil
}

func (l *Log) pingSQL(ctx context.Context) error {
	if err := l.db.PingContext(ctx); err != nil {
		return fmt.Errorf("the database %s is unreachable (is MariaDB/MySQL running, and the --sql DSN right?): %w", redact(l.cfg.SQL), err)
	}
	return nil
}

// redact drops the password from a DSN for messages.
func redact(dsn string) string {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "(invalid DSN)"
	}
	if c.Passwd != "" {
		c.Passwd = "xxxxx"
	}
	return c.FormatDSN()
}

// Close releases the connections.
func (l *Log) Close() error {
	return errors.Join(l.conn.Close(), l.db.Close())
}

// Init creates our tables in the database and a new PREORDERED_LOG tree in
// Trillian, and returns the tree's id.
func Init(ctx context.Context, trillianAddr, dsn string) (int64, error) {
	l, err := dial(Config{Trillian: trillianAddr, SQL: dsn})
	if err != nil {
		return 0, err
	}
	defer l.Close()
	if err := l.pingSQL(ctx); err != nil {
		return 0, err
	}
	for _, stmt := range schema {
		if _, err := l.db.ExecContext(ctx, stmt); err != nil {
			return 0, fmt.Errorf("create consentledger's tables in %s: %w", redact(dsn), err)
		}
	}
	tree, err := client.CreateAndInitTree(ctx, &trillian.CreateTreeRequest{Tree: &trillian.Tree{
		TreeState:       trillian.TreeState_ACTIVE,
		TreeType:        trillian.TreeType_PREORDERED_LOG,
		DisplayName:     "consentledger",
		Description:     "consentledger's log: every consent event, decision, policy and breach event",
		MaxRootDuration: durationpb.New(time.Hour),
	}}, trillian.NewTrillianAdminClient(l.conn), l.log)
	if err != nil {
		return 0, unreachable(trillianAddr, "create a tree", err)
	}
	return tree.TreeId, nil
}

// unreachable words a Trillian error so that an operator knows what to check.
func unreachable(addr, what string, err error) error {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return fmt.Errorf("the Trillian server at %s is unreachable (is trillian_log_server running, and --trillian right?): %s: %w", addr, what, err)
	case codes.NotFound:
		return fmt.Errorf("the Trillian server at %s has no such tree (check --tree, or run consentledger trillian init): %s: %w", addr, what, err)
	}
	return fmt.Errorf("the Trillian server at %s: %s: %w", addr, what, err)
}
