package policies

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestResult is the outcome of one Rego test (a rule named test_… in any
// module of the set).
type TestResult struct {
	Name     string // full rule path, e.g. "data.consentledger.send_test.test_allow_with_consent"
	File     string // file defining the test
	Line     int    // line of the test rule
	Pass     bool
	Skip     bool   // a todo_test_… rule: neither passed nor failed
	Error    string // evaluation error, if the test errored rather than failed
	Duration time.Duration
}

// Location formats the test's file and line as "file:line".
func (r TestResult) Location() string { return fmt.Sprintf("%s:%d", r.File, r.Line) }

// TestFailure reports the tests of a set that failed or errored.
type TestFailure struct {
	Failed []TestResult // sorted by file and line
	Total  int          // tests run, skipped ones included
}

// Error names every failed test.
func (e *TestFailure) Error() string {
	names := make([]string, len(e.Failed))
	for i, r := range e.Failed {
		names[i] = r.Name
	}
	return fmt.Sprintf("policies: %d of %d tests failed: %s", len(e.Failed), e.Total, strings.Join(names, ", "))
}

// testTimeout bounds one Rego test.
const testTimeout = 10 * time.Second

// Test runs the set's tests with OPA's v1/tester, against the set's
// data.json, and returns every result sorted by file and line. If a test
// fails or errors, the error is a [*TestFailure] and the results are
// returned too. A set without tests passes.
func (s *Set) Test(ctx context.Context) ([]TestResult, error) {
	// The compiler rewrites modules in place, so the tester gets its own.
	modules, _, err := parseFiles(s.files)
	if err != nil {
		return nil, err
	}
	ch, err := tester.NewRunner().
		SetCompiler(newCompiler(true)).
		SetStore(s.store).
		SetModules(modules).
		SetTimeout(testTimeout).
		RunTests(ctx, nil)
	if err != nil {
		if errs, ok := errors.AsType[ast.Errors](err); ok {
			return nil, compileErrorFrom(errs)
		}
		return nil, fmt.Errorf("policies: test: %w", err)
	}
	var results []TestResult
	for r := range ch {
		tr := TestResult{
			Name:     r.Package + "." + r.Name,
			Pass:     r.Pass(),
			Skip:     r.Skip,
			Duration: r.Duration,
		}
		if r.Location != nil {
			tr.File, tr.Line = r.Location.File, r.Location.Row
		}
		if r.Error != nil {
			tr.Error = r.Error.Error()
		}
		results = append(results, tr)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("policies: test: %w", err)
	}
	slices.SortFunc(results, func(a, b TestResult) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Name, b.Name))
	})
	var failed []TestResult
	for _, r := range results {
		if !r.Pass && !r.Skip {
			failed = append(failed, r)
		}
	}
	if failed != nil {
		return results, &TestFailure{Failed: failed, Total: len(results)}
	}
	return results, nil
}

// Check is what publishing a policy set requires: it compiles files strictly
// ([Compile]), runs the set's own tests ([Set.Test]) and returns the set,
// whose digest is [Set.Digest]. It returns a set only if every step passed,
// so nothing is half-activated; the error is a [*CompileError], a
// [*TestFailure] or wraps [ErrInvalidFiles].
func Check(ctx context.Context, files []File) (*Set, error) {
	s, err := Compile(ctx, files)
	if err != nil {
		return nil, err
	}
	if _, err := s.Test(ctx); err != nil {
		return nil, err
	}
	return s, nil
}
