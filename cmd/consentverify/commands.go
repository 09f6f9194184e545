package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/client"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/verifier"
)

const (
	evidenceUsage    = "consentverify evidence FILE --key KEY [--json] [--witness VKEY ... [--quorum K]] [--replay-timeout 5s]"
	consistencyUsage = "consentverify consistency OLD_CHECKPOINT NEW_CHECKPOINT --key KEY (--proof FILE | --server URL [--token TOKEN]) [--json] [--witness VKEY ... [--quorum K]]"
	auditUsage       = "consentverify audit FILE --key KEY [--json] [--witness VKEY ... [--quorum K]] [--replay-timeout 5s]"
	breachesUsage    = "consentverify breaches FILE --key KEY [--json]"

	bundleHint = "FILE must be an evidence bundle as `consentledger evidence --decision N -o FILE` writes it"
	exportHint = "FILE must be an export as `consentledger export -o FILE` writes it"
	keyHint    = "--key takes the verifier key that `consentledger pubkey` prints, or a file that holds it"

	maxCheckpointBytes = 64 << 10
	maxProofBytes      = 1 << 20
)

// interruptible returns a context that ends on an interrupt.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt)
}

// common are the flags every command takes.
type common struct {
	fs *flag.FlagSet
	// key holds each --key given (repeatable: during a signing-key
	// rotation, auditors pin the old and the new key).
	key    *[]string
	asJSON *bool
	// witness keys (--witness, repeatable) and --quorum; witnesses is set
	// by parse when either was given.
	witnessKeys *[]string
	quorum      *int
	witnesses   *verifier.Witnesses
}

func newCommon(name string) common {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	keys, logKeys := new([]string), new([]string)
	fs.Func("witness", "", func(v string) error { *keys = append(*keys, v); return nil })
	fs.Func("key", "", func(v string) error { *logKeys = append(*logKeys, v); return nil })
	return common{fs: fs, key: logKeys, asJSON: fs.Bool("json", false, ""), witnessKeys: keys, quorum: fs.Int("quorum", 0, "")}
}

const witnessHint = "--witness takes a witness's verifier key <name>+<hash>+<base64> (or a file holding it); --quorum K defaults to the number of --witness keys"

// parseWitnesses resolves --witness and --quorum into c.witnesses.
func (c *common) parseWitnesses() int {
	quorumSet := false
	c.fs.Visit(func(f *flag.Flag) { quorumSet = quorumSet || f.Name == "quorum" })
	if len(*c.witnessKeys) == 0 && !quorumSet {
		return 0
	}
	if quorumSet && *c.quorum < 1 {
		return errorWithHint(2, fmt.Sprintf("--quorum %d: give a positive number", *c.quorum), witnessHint)
	}
	keys := make([]string, len(*c.witnessKeys))
	for i, k := range *c.witnessKeys {
		v, err := readWitnessKey(k)
		if err != nil {
			return errorWithHint(2, err.Error(), witnessHint)
		}
		keys[i] = v
	}
	w, err := verifier.ParseWitnesses(keys, *c.quorum)
	if err != nil {
		return errorWithHint(2, err.Error(), witnessHint)
	}
	c.witnesses = w
	return 0
}

// parse parses args and checks the number of positional arguments; on
// failure it prints the error and returns exit code 2.
func (c *common) parse(args []string, want int, line, what string) ([]string, string, int) {
	pos, err := parseInterleaved(c.fs, args)
	if err != nil {
		return nil, "", usageError(line, "%v", err)
	}
	if len(pos) != want {
		return nil, "", usageError(line, "%s takes %s, got %d arguments", c.fs.Name(), what, len(pos))
	}
	vkey, err := readKeys(*c.key)
	if err != nil {
		return nil, "", errorWithHint(2, err.Error(), keyHint)
	}
	if code := c.parseWitnesses(); code != 0 {
		return nil, "", code
	}
	return pos, vkey, 0
}

// report prints a report as text or JSON.
func (c common) report(text func() string, v any) {
	if *c.asJSON {
		printJSON(v)
		return
	}
	fmt.Fprint(stdout, text())
}

func runEvidence(args []string) int {
	c := newCommon("evidence")
	timeout := c.fs.Duration("replay-timeout", verifier.DefaultReplayTimeout, "")
	pos, vkey, code := c.parse(args, 1, evidenceUsage, "one bundle file")
	if pos == nil {
		return code
	}
	data, err := readFile(pos[0], verifier.MaxBundleBytes)
	if err != nil {
		return errorWithHint(2, err.Error(), bundleHint)
	}
	// One bundle, one policy compile, then exit: collecting garbage less
	// often saves a quarter of the run (the target is ≤ 50 ms in all).
	debug.SetGCPercent(400)
	ctx, cancel := interruptible()
	defer cancel()
	if *timeout <= 0 {
		return usageError(evidenceUsage, "--replay-timeout must be positive, got %s", *timeout)
	}
	rep, err := verifier.VerifyEvidenceWith(ctx, data, vkey, verifier.Options{ReplayTimeout: *timeout, Witnesses: c.witnesses})
	if rep != nil {
		c.report(rep.Text, rep)
	}
	return verdict(err, bundleHint)
}

func runAudit(args []string) int {
	c := newCommon("audit")
	timeout := c.fs.Duration("replay-timeout", verifier.DefaultReplayTimeout, "")
	pos, vkey, code := c.parse(args, 1, auditUsage, "one export file")
	if pos == nil {
		return code
	}
	if *timeout <= 0 {
		return usageError(auditUsage, "--replay-timeout must be positive, got %s", *timeout)
	}
	f, err := open(pos[0])
	if err != nil {
		return errorWithHint(2, err.Error(), exportHint)
	}
	defer f.Close()
	ctx, cancel := interruptible()
	defer cancel()
	p := &progress{w: stderr, verb: "audited", start: time.Now()}
	rep, err := verifier.AuditWith(ctx, f, vkey, p.update, verifier.Options{ReplayTimeout: *timeout, Witnesses: c.witnesses})
	p.finish()
	if rep != nil {
		c.report(rep.Text, rep)
	}
	return verdict(err, exportHint)
}

func runBreaches(args []string) int {
	c := newCommon("breaches")
	pos, vkey, code := c.parse(args, 1, breachesUsage, "one export file")
	if pos == nil {
		return code
	}
	f, err := open(pos[0])
	if err != nil {
		return errorWithHint(2, err.Error(), exportHint)
	}
	defer f.Close()
	ctx, cancel := interruptible()
	defer cancel()
	rep, err := verifier.Breaches(ctx, f, vkey)
	if rep != nil {
		c.report(rep.Text, rep)
	}
	return verdict(err, exportHint)
}

func runConsistency(args []string) int {
	c := newCommon("consistency")
	proofFile := c.fs.String("proof", "", "")
	server := c.fs.String("server", "", "")
	token := c.fs.String("token", os.Getenv("CONSENTLEDGER_TOKEN"), "")
	pos, vkey, code := c.parse(args, 2, consistencyUsage, "two checkpoint files")
	if pos == nil {
		return code
	}
	if (*proofFile == "") == (*server == "") {
		return usageError(consistencyUsage, "give the proof with exactly one of --proof FILE and --server URL")
	}
	var notes [2][]byte
	for i, name := range pos {
		b, err := readFile(name, maxCheckpointBytes)
		if err != nil {
			return errorWithHint(2, err.Error(), "a checkpoint file holds the signed note GetCheckpoint returns (the \"checkpoint\" field), verbatim")
		}
		notes[i] = b
	}
	ctx, cancel := interruptible()
	defer cancel()
	var p *verifier.ConsistencyProof
	if *proofFile != "" {
		raw, err := readFile(*proofFile, maxProofBytes)
		if err != nil {
			return errorWithHint(2, err.Error(), "")
		}
		if p, err = verifier.ParseConsistencyProof(raw); err != nil {
			return errorWithHint(2, err.Error(), "--proof takes the JSON answer of LogService.GetConsistencyProof, or one hash per line in base64 or hex")
		}
	} else {
		var code int
		if p, code = fetchProof(ctx, vkey, notes, *server, *token); p == nil {
			return code
		}
	}
	rep, err := verifier.VerifyConsistencyProof(notes[0], notes[1], vkey, p)
	if rep != nil && c.witnesses != nil && err == nil {
		return c.printWitnessed(rep.Text, rep, notes[1], vkey, "this checkpoint's entries")
	}
	if rep != nil {
		c.report(rep.Text, rep)
	}
	return verdict(err, "")
}

// fetchProof asks the server for the consistency proof between the sizes of
// the two checkpoints. The answer is not trusted: it is checked against
// the sizes asked for and then against both signed roots.
func fetchProof(ctx context.Context, vkey string, notes [2][]byte, server, token string) (*verifier.ConsistencyProof, int) {
	key, err := verifier.ParseKey(vkey)
	if err != nil {
		return nil, errorWithHint(2, err.Error(), keyHint)
	}
	var sizes [2]uint64
	for i, n := range notes {
		cp, err := verifier.VerifyCheckpoint(n, key)
		if err != nil {
			return nil, verdict(fmt.Errorf("%s %w", [2]string{"old", "new"}[i], err), "")
		}
		sizes[i] = cp.Size
	}
	if sizes[0] >= sizes[1] {
		return &verifier.ConsistencyProof{}, 0 // nothing to fetch; the roots are compared
	}
	cl, err := client.New(server, client.Options{Token: token})
	if err != nil {
		return nil, errorWithHint(2, err.Error(), "--server takes the server's URL, e.g. http://127.0.0.1:7420")
	}
	resp, err := cl.Log.GetConsistencyProof(ctx, connect.NewRequest(&pb.GetConsistencyProofRequest{Size1: sizes[0], Size2: sizes[1]}))
	if err != nil {
		return nil, errorWithHint(2, fmt.Sprintf("fetch the consistency proof from %s: %v", server, err),
			"the proof needs the auditor role: pass --token or set $CONSENTLEDGER_TOKEN; or use --proof FILE")
	}
	return &verifier.ConsistencyProof{Size1: resp.Msg.Size1, Size2: resp.Msg.Size2, Hashes: resp.Msg.Proof}, 0
}

// progress prints a line a second while a long audit runs, and a last line
// with the rate if it printed any.
type progress struct {
	w       io.Writer
	verb    string
	start   time.Time
	last    time.Time
	printed bool
	done    uint64
}

func (p *progress) update(done, total uint64) {
	p.done = done
	now := time.Now()
	if now.Sub(p.start) < time.Second || now.Sub(p.last) < time.Second {
		return
	}
	p.last, p.printed = now, true
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	fmt.Fprintf(p.w, "consentverify: %s %d of %d entries (%.0f%%), %.0f entries/s\n", p.verb, done, total, pct, float64(done)/now.Sub(p.start).Seconds())
}

func (p *progress) finish() {
	if !p.printed {
		return
	}
	d := time.Since(p.start)
	fmt.Fprintf(p.w, "consentverify: %s %d entries in %v, %.0f entries/s\n", p.verb, p.done, d.Round(time.Millisecond), float64(p.done)/d.Seconds())
}

// parseInterleaved parses args with fs, allowing flags before, between and
// after positional arguments, and returns the positional arguments in
// order. After "--" every argument is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}
