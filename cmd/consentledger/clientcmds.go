package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/client"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

func init() {
	commands["evidence"] = command{run: runEvidence, summary: "fetch the evidence bundle of a send decision"}
	commands["export"] = command{run: runExport, summary: "export the whole log for consentverify audit"}
	commands["bench"] = command{run: runBench, summary: "load-test Decide and print throughput and latency"}
	policyCommands["publish"] = command{run: runPublish, summary: "compile, test and publish a policy set through the server"}
}

func stdoutln(s string) { fmt.Fprintln(stdout, s) }

func stderrln(s string) { fmt.Fprintln(stderr, s) }

// clientFlags adds --server, --token-file and --token to fs.
func clientFlags(fs *flag.FlagSet) func() (*client.Client, error) {
	srv := fs.String("server", client.DefaultServer, "server URL")
	tokFile := fs.String("token-file", "", "read the bearer token from FILE (preferred: a token on the command line shows in ps)")
	tok := fs.String("token", "", "bearer token; visible to other users in ps, prefer --token-file or $CONSENTLEDGER_TOKEN")
	return func() (*client.Client, error) {
		t, err := tokenFrom(*tokFile, *tok, os.Getenv("CONSENTLEDGER_TOKEN"))
		if err != nil {
			return nil, err
		}
		return client.New(*srv, client.Options{Token: t})
	}
}

// tokenFrom picks the bearer token: from --token-file, else --token, else
// the environment variable CONSENTLEDGER_TOKEN.
func tokenFrom(file, flagToken, env string) (string, error) {
	if file != "" && flagToken != "" {
		return "", errors.New("give either --token-file or --token, not both")
	}
	if file == "" {
		if flagToken != "" {
			return flagToken, nil
		}
		return strings.TrimSpace(env), nil
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	t := strings.TrimSpace(string(raw))
	if t == "" || strings.ContainsAny(t, "\r\n") {
		return "", fmt.Errorf("--token-file %s: want one line holding the token", file)
	}
	return t, nil
}

// rpcError reports a failed call in words, with a hint for the usual causes.
func rpcError(err error) int {
	hint := ""
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable:
		hint = "is the server running? start it with: consentledger serve --data ./data"
	case connect.CodeUnauthenticated:
		hint = "give a token with --token-file FILE or CONSENTLEDGER_TOKEN"
	case connect.CodePermissionDenied:
		hint = "this command needs a principal with another role"
	}
	return errorf(1, hint, "%v", err)
}

// writeOutput writes data to path atomically, or to stdout for "" or "-".
func writeOutput(path string, write func(io.Writer) error) error {
	if path == "" || path == "-" {
		return write(stdout)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

const evidenceUsage = "usage: consentledger evidence --decision N [--witnessed [--wait 2m]] [-o FILE] [--server URL] [--token-file FILE]; or consentledger evidence --upgrade BUNDLE [--wait 2m] [-o FILE]"

func runEvidence(args []string) int {
	fs := newFlagSet("evidence")
	dec := fs.Int64("decision", -1, "index of the send decision")
	out := fs.String("o", "", "output file (default stdout)")
	witnessed := fs.Bool("witnessed", false, "wait for a checkpoint the witnesses cosigned, and prove the decision in it")
	upgrade := fs.String("upgrade", "", "add a later cosigned checkpoint to this existing bundle (field 7)")
	wait := fs.Duration("wait", client.DefaultWitnessWait, "how long --witnessed and --upgrade wait for the witnesses")
	newClient := clientFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) > 0 || (*dec < 0) == (*upgrade == "") || (*upgrade != "" && *witnessed) {
		return usageError(evidenceUsage, err, pos)
	}
	c, err := newClient()
	if err != nil {
		return errorf(2, evidenceUsage, "%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var b []byte
	switch {
	case *upgrade != "":
		old, rerr := os.ReadFile(*upgrade)
		if rerr != nil {
			return errorf(2, "", "%v", rerr)
		}
		b, err = c.UpgradeEvidence(ctx, old, *wait, stderr)
	case *witnessed:
		b, err = c.WitnessedEvidence(ctx, uint64(*dec), *wait, stderr)
	default:
		b, err = c.Evidence(ctx, uint64(*dec))
	}
	if err != nil {
		return rpcError(err)
	}
	if err := writeOutput(*out, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
		return errorf(2, "", "write %s: %v", *out, err)
	}
	return 0
}

const exportUsage = "usage: consentledger export -o FILE [--server URL] [--token-file FILE]"

func runExport(args []string) int {
	fs := newFlagSet("export")
	out := fs.String("o", "", "output file")
	newClient := clientFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) > 0 || *out == "" {
		return usageError(exportUsage, err, pos)
	}
	c, err := newClient()
	if err != nil {
		return errorf(2, exportUsage, "%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var rpcErr error
	err = writeOutput(*out, func(w io.Writer) error {
		_, rpcErr = c.Export(ctx, w, stderr)
		return rpcErr
	})
	if rpcErr != nil {
		return rpcError(rpcErr)
	}
	if err != nil {
		return errorf(2, "", "write %s: %v", *out, err)
	}
	return 0
}

const benchUsage = "usage: consentledger bench [--concurrency 64] [--duration 10s] [--subjects 10000] [--batch N] [--opa URL] [--server URL] [--token-file FILE]"

func runBench(args []string) int {
	fs := newFlagSet("bench")
	conc := fs.Int("concurrency", 64, "concurrent clients")
	dur := fs.Duration("duration", 10*time.Second, "how long to decide")
	subj := fs.Int("subjects", 10000, "subjects given consent before the run")
	batch := fs.Int("batch", 1, "decisions per call: above 1, each call is a DecideBatch of this many")
	opa := fs.String("opa", "", "URL of an OPA server with the same policies: query it instead, with an input this server recorded")
	newClient := clientFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) > 0 {
		return usageError(benchUsage, err, pos)
	}
	if *conc < 1 || *subj < 1 || *dur <= 0 || *batch < 1 {
		return errorf(2, benchUsage, "--concurrency, --subjects, --batch and --duration must be positive")
	}
	if *opa != "" && *batch > 1 {
		return errorf(2, benchUsage, "--opa and --batch exclude each other: OPA is asked one decision at a time")
	}
	c, err := newClient()
	if err != nil {
		return errorf(2, benchUsage, "%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := c.Bench(ctx, client.BenchOptions{Concurrency: *conc, Duration: *dur, Subjects: *subj, Progress: stderr, Batch: *batch, OPA: *opa})
	if err != nil {
		return rpcError(err)
	}
	stdoutln(res.String())
	if res.Errors > 0 {
		return 1
	}
	return 0
}

const publishUsage = "usage: consentledger policy publish DIR [--note TEXT] [--server URL] [--token-file FILE]"

// runPublish loads, checks and publishes a policy directory through the server.
func runPublish(args []string) int {
	fs := newFlagSet("policy publish")
	note := fs.String("note", "", "the author's note, recorded with the policy")
	newClient := clientFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) != 1 {
		return usageError(publishUsage, err, pos)
	}
	files, err := policies.LoadDir(pos[0])
	if err != nil {
		return errorf(2, "", "%v", err)
	}
	c, err := newClient()
	if err != nil {
		return errorf(2, publishUsage, "%v", err)
	}
	req := &pb.PublishPolicyRequest{Note: *note}
	for _, f := range files {
		req.Files = append(req.Files, &pb.PolicyFile{Name: f.Name, Content: f.Content})
	}
	r, err := c.Policy.PublishPolicy(context.Background(), connect.NewRequest(req))
	if err != nil {
		switch connect.CodeOf(err) {
		case connect.CodeInvalidArgument:
			return errorf(2, "the active policy is unchanged", "%v", err)
		case connect.CodeFailedPrecondition:
			return errorf(1, "the active policy is unchanged", "%v", err)
		}
		return rpcError(err)
	}
	fmt.Fprintf(stdout, "published %s as entry %d\n", r.Msg.Digest, r.Msg.Entry.Index)
	return 0
}
