package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/server"
)

func init() {
	commands["serve"] = command{run: runServe, summary: "run the server (Connect, gRPC and gRPC-Web on one port)"}
	commands["pubkey"] = command{run: runPubkey, summary: "print the verifier key auditors pin"}
}

const serveUsage = `usage: consentledger serve --data DIR [--addr 127.0.0.1:7420] [--policies DIR] [--config FILE] [--origin NAME] [--metrics-addr ADDR] [--insecure-no-tls]
       [--trillian HOST:PORT --tree ID --sql DSN] [--advertise URL]`

func runServe(args []string) int {
	fs := newFlagSet("serve")
	data := fs.String("data", "", "data directory (created on first start)")
	addr := fs.String("addr", "", "listen address (default 127.0.0.1:7420, or the config's addr)")
	pol := fs.String("policies", "", "policy directory to publish at start when it differs from the active policy")
	cfgPath := fs.String("config", "", "YAML config: addr, origin, tls, principals")
	origin := fs.String("origin", "", "checkpoint origin for a new data directory")
	pprofAddr := fs.String("pprof", "", "serve the Go profiler on this loopback address")
	metricsAddr := fs.String("metrics-addr", "", "serve /metrics and gRPC reflection WITHOUT a token on this separate address (keep it private)")
	insecure := fs.Bool("insecure-no-tls", false, "allow principals on a non-loopback address without TLS (tokens cross the network in clear)")
	trill := fs.String("trillian", "", "keep the log on Trillian: trillian_log_server's gRPC HOST:PORT (with --tree and --sql)")
	tree := fs.Int64("tree", 0, "Trillian tree id (printed by consentledger trillian init)")
	dsn := fs.String("sql", "", "MySQL/MariaDB DSN for the subject table and checkpoints, e.g. user:pass@tcp(127.0.0.1:3306)/trillian")
	advertise := fs.String("advertise", "", "URL this node is reachable at, for other nodes and clients")
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) > 0 {
		return usageError(serveUsage, err, pos)
	}
	var cfg server.Config
	if *cfgPath != "" {
		if cfg, err = server.LoadConfig(*cfgPath); err != nil {
			return errorf(2, "", "%v", err)
		}
	}
	cfg.DataDir, cfg.PoliciesDir, cfg.PprofAddr = *data, *pol, *pprofAddr
	cfg.MetricsAddr, cfg.InsecureNoTLS = *metricsAddr, *insecure
	if *addr != "" {
		cfg.Addr = *addr
	}
	if *origin != "" {
		cfg.Origin = *origin
	}
	if *trill != "" {
		cfg.Storage.Trillian = *trill
	}
	if *tree != 0 {
		cfg.Storage.Tree = *tree
	}
	if *dsn != "" {
		cfg.Storage.SQL = *dsn
	}
	if *advertise != "" {
		cfg.Advertise = *advertise
	}
	if cfg.DataDir == "" {
		return errorf(2, "consentledger serve --data ./data", "--data is required")
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, cfg, log, nil); err != nil {
		return errorf(1, "", "%v", err)
	}
	return 0
}

func runPubkey(args []string) int {
	fs := newFlagSet("pubkey")
	data := fs.String("data", "", "data directory of the server")
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) > 0 || *data == "" {
		return usageError("usage: consentledger pubkey --data DIR", err, pos)
	}
	k, err := ledger.ReadVerifierKey(*data)
	if err != nil {
		return errorf(2, "", "%v", err)
	}
	stdoutln(k)
	return 0
}

// usageError reports a flag error or unexpected arguments with the usage line.
func usageError(usage string, err error, extra []string) int {
	switch {
	case errors.Is(err, flag.ErrHelp):
		stdoutln(usage)
		return 0
	case err != nil:
		return errorf(2, usage, "%v", err)
	case len(extra) > 0:
		return errorf(2, usage, "unexpected arguments %q", extra)
	}
	return errorf(2, usage, "missing a required flag")
}
