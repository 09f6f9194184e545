// Command consentverify is the auditor's offline verifier for consentledger
// (README.md: For auditors): it checks an evidence bundle for one send decision, a
// consistency proof between two checkpoints, or a whole exported log,
// against the log's pinned verifier key, and explains the result in plain
// words. The checking is done by package verifier; this command parses
// flags, reads files, prints reports and maps the result to an exit code.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	_ "time/tzdata" // zones from the embedded tzdata only, on any host (see package zones)

	"github.com/consentledger/consentledger/verifier"
)

const usage = `Usage:
    consentverify evidence FILE --key KEY [--json] [--witness VKEY ... [--quorum K]] [--replay-timeout 5s]
    consentverify consistency OLD_CHECKPOINT NEW_CHECKPOINT --key KEY (--proof FILE | --server URL [--token TOKEN]) [--json]
                 [--witness VKEY ... [--quorum K]]
    consentverify audit FILE --key KEY [--json] [--witness VKEY ... [--quorum K]] [--replay-timeout 5s]
    consentverify breaches FILE --key KEY [--json]

KEY is the log's verifier key, <origin>+<hash>+<base64>, as printed by
"consentledger pubkey", or the path of a file that holds it. Get it from the
log's operator once, out of band, and keep it: it is the only thing
consentverify trusts. --key is repeatable: during a signing-key rotation pin
both keys (a checkpoint signed by either is accepted). FILE may be - for
standard input.

--witness VKEY (repeatable; a key or a file) pins a witness's key, and
--quorum K (default: the number of --witness keys) requires K valid
cosignatures by pinned witnesses; a cosignature by an unpinned key is
ignored, and a quorum larger than the keys given fails the verification.

Commands:
    evidence     verify the evidence bundle of one send decision
                 (consentledger evidence --decision N): signature, inclusion,
                 consent chain, grant, policy replay, the recorded input
                 against what the bundle shows
    consistency  verify that the log of NEW_CHECKPOINT extends the log of
                 OLD_CHECKPOINT, with a proof from a file or from the server
    audit        verify a whole exported log (consentledger export -o FILE):
                 hash chain, Merkle root, subject chains, every decision's
                 input derived from the log and replayed, every breach's
                 72-hour deadline
    breaches     verify an exported log and report each data breach:
                 detected, deadline, notified, in time or late, closed

Flags may stand before or after the arguments. --json prints the report as
JSON instead of text. --replay-timeout bounds each policy evaluation
(default 5s): a policy that does not finish in time fails the check, naming
the decision's index. The server's token comes from --token or
$CONSENTLEDGER_TOKEN.

Exit codes:
    0  verified
    1  verification failed; the first failing check is named
    2  usage error, or input that cannot be read

Examples:
    consentverify evidence evidence-57.json --key verifier.key
    consentverify evidence --json --key 'consent.example.com/ledger+a0335246+ARFg…' evidence-57.json
    consentverify consistency cp-1042.txt cp-2000.txt --key verifier.key --server http://127.0.0.1:7420
    consentverify consistency cp-1042.txt cp-2000.txt --key verifier.key --proof proof.json
    consentverify audit ledger.export --key verifier.key
    consentverify breaches ledger.export --key verifier.key
`

// stdin, stdout and stderr are where commands read and write.
var (
	stdin  io.Reader = os.Stdin
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// commands maps each command name to its implementation, which returns the
// exit code.
var commands = map[string]func(args []string) int{
	"evidence":    runEvidence,
	"consistency": runConsistency,
	"audit":       runAudit,
	"breaches":    runBreaches,
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return errorWithHint(2, fmt.Sprintf("unknown command %q", args[0]), "the commands are evidence, consistency, audit and breaches; run consentverify help")
	}
	return cmd(args[1:])
}

// errorf prints "consentverify: error: …" and returns code.
func errorf(code int, format string, args ...any) int {
	fmt.Fprintf(stderr, "consentverify: error: %s\n", verifier.EscapeControls(fmt.Sprintf(format, args...)))
	return code
}

// errorWithHint prints the error and a hint and returns code.
func errorWithHint(code int, msg, hint string) int {
	errorf(code, "%s", msg)
	if hint != "" {
		fmt.Fprintf(stderr, "consentverify: hint: %s\n", hint)
	}
	return code
}

// usageError reports a usage error for a command: exit 2.
func usageError(line string, format string, args ...any) int {
	return errorWithHint(2, fmt.Sprintf(format, args...), "usage: "+line)
}

// verdict maps the error of a verification to the exit code and prints it:
// exit 1 for a failed verification, 2 for input that cannot be read (with
// the hint malformedHint).
func verdict(err error, malformedHint string) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, verifier.ErrInvalid):
		hint := ""
		var cpErr *verifier.CheckpointError
		if errors.As(err, &cpErr) {
			hint = "is --key the verifier key of the log that wrote this file? `consentledger pubkey` prints it; never take a key from the file itself"
		}
		return errorWithHint(1, err.Error(), hint)
	default:
		return errorWithHint(2, err.Error(), malformedHint)
	}
}

// printJSON writes v as indented JSON.
func printJSON(v any) {
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// readKeys resolves every --key given and returns the keys one per line.
func readKeys(flagValues []string) (string, error) {
	if len(flagValues) == 0 {
		return readKey("")
	}
	var keys []string
	for _, v := range flagValues {
		k, err := readKey(v)
		if err != nil {
			return "", err
		}
		keys = append(keys, k)
	}
	all := strings.Join(keys, "\n")
	if _, err := verifier.ParseKey(all); err != nil {
		return "", fmt.Errorf("--key: %w", err)
	}
	return all, nil
}

// readKey resolves one --key: the verifier key itself, or a file holding
// it (or several keys of one log, one per line).
func readKey(flagValue string) (string, error) {
	if flagValue == "" {
		return "", errors.New("--key is required: the log's verifier key, or a file that holds it")
	}
	if _, err := verifier.ParseKey(flagValue); err == nil {
		return flagValue, nil
	}
	b, err := os.ReadFile(flagValue)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("--key %q is neither a verifier key (<origin>+<hash>+<base64>) nor a file", flagValue)
		}
		return "", fmt.Errorf("--key: %w", err)
	}
	if _, err := verifier.ParseKey(string(b)); err != nil {
		return "", fmt.Errorf("--key file %s: %w", flagValue, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// open opens a named input; "-" is standard input.
func open(name string) (io.ReadCloser, error) {
	if name == "-" {
		return io.NopCloser(stdin), nil
	}
	return os.Open(name)
}

// readFile reads a named input of at most limit bytes.
func readFile(name string, limit int64) ([]byte, error) {
	f, err := open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return b, nil
}
