package main

import (
	"context"
	"fmt"
	"time"

	"github.com/consentledger/consentledger/ledger/trillianlog"
)

func init() {
	commands["trillian"] = command{run: runTrillian, summary: "set up the log on Trillian (trillian init)"}
}

const trillianUsage = `usage: consentledger trillian init --trillian HOST:PORT --sql DSN`

// runTrillian implements "consentledger trillian init": it creates a
// PREORDERED_LOG tree and consentledger's tables, and prints the tree id.
func runTrillian(args []string) int {
	if len(args) == 0 || args[0] != "init" {
		return errorf(2, trillianUsage, "the only subcommand is init")
	}
	fs := newFlagSet("trillian init")
	addr := fs.String("trillian", "", "trillian_log_server's gRPC HOST:PORT")
	dsn := fs.String("sql", "", "MySQL/MariaDB DSN of the database Trillian uses (or another), e.g. user:pass@tcp(127.0.0.1:3306)/trillian")
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil || len(pos) > 0 || *addr == "" || *dsn == "" {
		return usageError(trillianUsage, err, pos)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := trillianlog.Init(ctx, *addr, *dsn)
	if err != nil {
		return errorf(1, "", "%v", err)
	}
	stdoutln(fmt.Sprint(id))
	return 0
}
