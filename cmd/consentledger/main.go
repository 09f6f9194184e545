// Command consentledger runs the consent ledger server and its operator and
// legal-team commands. README.md documents the command line and
// policies/README.md the policy workflow.
package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	_ "time/tzdata" // zones from the embedded tzdata only, on any host (see package zones)
)

// command is one subcommand: run gets the arguments after the command name
// and returns the process exit code.
type command struct {
	run     func(args []string) int
	summary string
}

// commands maps each subcommand name to its implementation. Files that add
// a subcommand register it here (or from an init function) and describe it
// in usage.
var commands = map[string]command{
	"policy": {run: runPolicy, summary: "test and check Rego policy sets"},
}

const usage = `Usage:
    consentledger <command> [arguments]

Server and operators:
    consentledger serve --data DIR [--addr 127.0.0.1:7420] [--policies DIR] [--config FILE] [--origin NAME]
                        [--metrics-addr ADDR] [--insecure-no-tls]
    consentledger pubkey --data DIR             print the verifier key auditors pin
    consentledger evidence --decision N [-o FILE]   the evidence bundle of a send decision
    consentledger evidence --decision N --witnessed [--wait 2m] [-o FILE]
                                                wait for a checkpoint the witnesses cosigned,
                                                and prove the decision in it
    consentledger evidence --upgrade BUNDLE [-o FILE]
                                                add a later cosigned checkpoint to a bundle
    consentledger export -o FILE                every entry and a signed checkpoint, for consentverify audit
    consentledger bench [--concurrency 64] [--duration 10s] [--subjects 10000]
                                                load-test Decide; the last line is
                                                "N decisions/s p50=… p99=… errors=E"
    consentledger subject reveal (--phone N | --email E | --external-id X)
                                                admin: a subject's pseudonym, salt and commitment
    consentledger backup -o FILE                admin: an online backup through the server
    consentledger restore --data EMPTY_DIR FILE restore offline; the restored log has the same root
    consentledger keys rotate --data DIR        a new signing key signs beside the old one (restart after)
    consentledger keys retire --data DIR        end the overlap: only the newest key signs (restart after)
    consentledger breach notification BREACH_ID [-o FILE] [--format md|html|pdf] [--lang de|en]
                                                the Art. 33 notification draft, from the log
    consentledger breach communication BREACH_ID [--lang de|en] [-o FILE]
                                                the Art. 34(2) notice to the persons concerned
    consentledger report consents [--csv|--json] [--channel C] [--purpose P] [--as-of TIME] [-o FILE]
                                                auditor: the consent report (recorded in the log)

Policy commands (for legal teams):
    consentledger policy test DIR               run the policy set's own tests
    consentledger policy check DIR              compile strictly, run the tests, print the digest
    consentledger policy publish DIR [--note TEXT]  compile, test and publish through the server

Client commands take --server URL (default http://127.0.0.1:7420) and a
bearer token from --token-file FILE (one line) or $CONSENTLEDGER_TOKEN;
--token TOKEN also works but shows the token to every user of ps. Flags may
stand before or after positional arguments.

serve also takes --metrics-addr ADDR (Prometheus metrics and gRPC
reflection without a token on their own listener; on the API port they need
a token when principals are configured) and --insecure-no-tls (allow
principals on a non-loopback address without TLS: tokens then cross the
network in clear; the server warns at start).

Exit codes:
    0  success
    1  the policy's tests fail, or the server refused or failed the request
    2  usage error, unreadable input, or a policy that does not compile

Examples:
    consentledger serve --data ./data
    consentledger policy test policies/
    consentledger policy publish policies/ --note "quiet hours for AT"
    consentledger evidence --decision 57 -o evidence-57.json
`

// stdout and stderr are where commands write; tests may replace them.
var (
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		printCommands(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		printCommands(stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return errorf(2, "run 'consentledger help' for the list of commands", "unknown command %q", args[0])
	}
	return cmd.run(args[1:])
}

func printCommands(w io.Writer) {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	slices.Sort(names)
	fmt.Fprintln(w, "\nCommands:")
	for _, name := range names {
		fmt.Fprintf(w, "    %-12s %s\n", name, commands[name].summary)
	}
}

// errorf is the one error path of the command: it prints
// "consentledger: error: …" and, if hint is not empty, one
// "consentledger: hint: …" line per line of hint, to stderr, and returns
// code so that callers can write `return errorf(2, hint, …)`.
func errorf(code int, hint, format string, args ...any) int {
	msg := fmt.Sprintf(format, args...)
	for i, line := range strings.Split(msg, "\n") {
		if i == 0 {
			fmt.Fprintf(stderr, "consentledger: error: %s\n", line)
		} else {
			fmt.Fprintf(stderr, "consentledger: error:   %s\n", strings.TrimLeft(line, "\t"))
		}
	}
	if hint != "" {
		for line := range strings.SplitSeq(hint, "\n") {
			fmt.Fprintf(stderr, "consentledger: hint: %s\n", line)
		}
	}
	return code
}
