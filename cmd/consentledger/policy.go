package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"

	"github.com/consentledger/consentledger/policies"
)

// policyCommands are the subcommands of "consentledger policy". The server's
// files add "publish" here.
var policyCommands = map[string]command{
	"test":  {run: runPolicyTest, summary: "run the policy set's own tests"},
	"check": {run: runPolicyCheck, summary: "compile strictly, run the tests and print the digest"},
}

func runPolicy(args []string) int {
	names := make([]string, 0, len(policyCommands))
	for name := range policyCommands {
		names = append(names, name)
	}
	slices.Sort(names)
	hint := "usage: consentledger policy <" + strings.Join(names, "|") + "> DIR"
	if len(args) == 0 {
		return errorf(2, hint, "missing policy subcommand")
	}
	sub, ok := policyCommands[args[0]]
	if !ok {
		return errorf(2, hint, "unknown policy subcommand %q", args[0])
	}
	return sub.run(args[1:])
}

// policyArgs parses "DIR [-v]" for policy test and policy check.
func policyArgs(name string, args []string) (dir string, verbose bool, code int) {
	fs := newFlagSet("policy " + name)
	v := fs.Bool("v", false, "list every test, not only the failing ones")
	hint := "usage: consentledger policy " + name + " DIR [-v]"
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, hint)
		return "", false, 0
	}
	if err != nil {
		return "", false, errorf(2, hint, "%v", err)
	}
	if len(pos) != 1 {
		return "", false, errorf(2, hint, "policy %s takes one directory, got %d arguments", name, len(pos))
	}
	return pos[0], *v, -1
}

func runPolicyTest(args []string) int {
	dir, verbose, code := policyArgs("test", args)
	if code >= 0 {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	set, code := compileDir(ctx, dir)
	if set == nil {
		return code
	}
	_, code = testSet(ctx, set, dir, verbose)
	return code
}

func runPolicyCheck(args []string) int {
	dir, verbose, code := policyArgs("check", args)
	if code >= 0 {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	set, code := compileDir(ctx, dir)
	if set == nil {
		return code
	}
	if ok, code := testSet(ctx, set, dir, verbose); !ok {
		return code
	}
	fmt.Fprintf(stdout, "files: %d\n", len(set.Files()))
	fmt.Fprintf(stdout, "digest: %s\n", set.Digest())
	return 0
}

// compileDir loads and compiles the policy set in dir. On failure it
// reports every problem as DIR/file:line: message and returns a nil set
// and exit code 2.
func compileDir(ctx context.Context, dir string) (*policies.Set, int) {
	files, err := policies.LoadDir(dir)
	if err != nil {
		return nil, errorf(2, "DIR must be a directory holding the policy's *.rego files and data.json", "%v", err)
	}
	set, err := policies.Compile(ctx, files)
	if ce, ok := errors.AsType[*policies.CompileError](err); ok {
		for _, p := range ce.Problems {
			if p.File != "" {
				p.File = filepath.Join(dir, p.File)
			}
			fmt.Fprintf(stderr, "consentledger: error: %s\n", p)
		}
		problems := "1 problem"
		if len(ce.Problems) != 1 {
			problems = fmt.Sprintf("%d problems", len(ce.Problems))
		}
		return nil, errorf(2, "fix the lines above; `opa check --strict "+dir+"` reports the same problems",
			"policy set %s does not compile (%s)", dir, problems)
	}
	if err != nil {
		return nil, errorf(2, "", "%v", err)
	}
	return set, 0
}

// testSet runs the set's tests and prints the failing ones (every one with
// verbose) and a "PASS: n/n" or "FAIL: n/m" summary. It reports whether all
// passed, and the exit code.
func testSet(ctx context.Context, set *policies.Set, dir string, verbose bool) (bool, int) {
	results, err := set.Test(ctx)
	if err != nil && !isTestFailure(err) {
		if ce, ok := errors.AsType[*policies.CompileError](err); ok {
			for _, p := range ce.Problems {
				p.File = filepath.Join(dir, p.File)
				fmt.Fprintf(stderr, "consentledger: error: %s\n", p)
			}
			return false, errorf(2, "", "the tests of %s do not compile", dir)
		}
		return false, errorf(2, "", "%v", err)
	}
	passed, skipped := 0, 0
	for _, r := range results {
		loc := filepath.Join(dir, r.File) + fmt.Sprintf(":%d", r.Line)
		switch {
		case r.Skip:
			skipped++
			if verbose {
				fmt.Fprintf(stdout, "SKIP %s (%s)\n", r.Name, loc)
			}
		case r.Pass:
			passed++
			if verbose {
				fmt.Fprintf(stdout, "PASS %s (%s)\n", r.Name, loc)
			}
		case r.Error != "":
			fmt.Fprintf(stdout, "ERROR %s (%s)\n    %s\n", r.Name, loc, r.Error)
		default:
			fmt.Fprintf(stdout, "FAIL %s (%s)\n", r.Name, loc)
		}
	}
	run := len(results) - skipped
	if err != nil {
		fmt.Fprintf(stdout, "FAIL: %d/%d\n", run-passed, run)
		return false, errorf(1, "`opa test "+dir+" -v` shows the expression each failing test stopped at",
			"%d of %d policy tests failed", run-passed, run)
	}
	fmt.Fprintf(stdout, "PASS: %d/%d\n", passed, run)
	return true, 0
}

func isTestFailure(err error) bool {
	_, ok := errors.AsType[*policies.TestFailure](err)
	return ok
}
