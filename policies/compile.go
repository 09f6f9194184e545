package policies

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/util"

	// Time zones for time.format/time.weekday on machines without a zone
	// database: quiet hours are evaluated in the subject's zone.
	_ "time/tzdata"
)

// The documents a policy set must define.
const (
	// DecisionRef is the send decision, {"allow": bool, "reasons": [string]}.
	DecisionRef = "data.consentledger.send.decision"
	// InboundActionRef is the action for an inbound text: "opt_out",
	// "opt_in", "help" or "none".
	InboundActionRef = "data.consentledger.inbound.action"
	// InboundKeywordRef is the normalised keyword that matched, "" if none.
	InboundKeywordRef = "data.consentledger.inbound.keyword"
)

// Set is a compiled policy set with its decision and inbound queries
// prepared once. A Set is immutable and safe for concurrent use.
type Set struct {
	files    []File
	digest   string
	store    storage.Store
	decision rego.PreparedEvalQuery
	inbound  rego.PreparedEvalQuery
}

// Problem is one compile error: the file and line it points at (File is
// empty and Line 0 when the compiler gives no location) and the compiler's
// message, prefixed with its code ("rego_parse_error: unexpected eof token").
type Problem struct {
	File    string
	Line    int
	Message string
}

// String formats p as "file:line: message".
func (p Problem) String() string {
	switch {
	case p.File == "":
		return p.Message
	case p.Line == 0:
		return p.File + ": " + p.Message
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
}

// CompileError reports why a policy set does not compile: a parse, type or
// strict-mode error in a module, invalid JSON in data.json, a missing
// required document, or a test module that fails to compile.
type CompileError struct {
	Problems []Problem // sorted by file and line
}

// Error lists every problem, one per line after the first.
func (e *CompileError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "policies: compile: " + strings.Join(lines, "\n\t")
}

func compileErrorFrom(errs ast.Errors) *CompileError {
	ce := &CompileError{}
	for _, e := range errs {
		p := Problem{Message: e.Code + ": " + e.Message}
		if e.Location != nil {
			p.File, p.Line = e.Location.File, e.Location.Row
		}
		ce.Problems = append(ce.Problems, p)
	}
	slices.SortStableFunc(ce.Problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	return ce
}

// Compile compiles a policy set strictly (Rego v1, strict mode, only
// deterministic built-ins) and prepares its decision and inbound queries.
// Tests (*_test.rego) are compiled too, so that a set whose tests do not
// compile is rejected, but they are not run; see [Set.Test] and [Check].
// Errors in the files are reported as a [*CompileError]; a malformed file
// list (bad names, duplicates, limits) wraps [ErrInvalidFiles].
func Compile(ctx context.Context, files []File) (*Set, error) {
	files, err := checkFiles(files)
	if err != nil {
		return nil, err
	}
	modules, data, err := parseFiles(files)
	if err != nil {
		return nil, err
	}
	c := newCompiler(false)
	if c.Compile(modules); c.Failed() {
		return nil, compileErrorFrom(c.Errors)
	}
	var missing []Problem
	for _, ref := range []string{DecisionRef, InboundActionRef, InboundKeywordRef} {
		if len(c.GetRules(ast.MustParseRef(ref))) == 0 {
			missing = append(missing, Problem{Message: "no rule defines " + ref})
		}
	}
	if missing != nil {
		return nil, &CompileError{Problems: missing}
	}

	s := &Set{files: files, digest: Digest(files), store: inmem.NewFromASTObject(data)}
	s.decision, err = rego.New(
		rego.Query(DecisionRef),
		rego.Compiler(c),
		rego.Store(s.store),
		rego.StrictBuiltinErrors(true),
		rego.GenerateJSON(astResult),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policies: prepare decision: %w", err)
	}
	s.inbound, err = rego.New(
		rego.Query("action := "+InboundActionRef+"; keyword := "+InboundKeywordRef),
		rego.Compiler(c),
		rego.Store(s.store),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policies: prepare inbound: %w", err)
	}
	return s, nil
}

// Digest returns the set's digest; see [Digest].
func (s *Set) Digest() string { return s.digest }

// Files returns a copy of the set's files, sorted by name.
func (s *Set) Files() []File { return slices.Clone(s.files) }

// capabilities are this OPA version's built-ins minus the non-deterministic
// ones (time.now_ns, rand.intn, http.send, …): a decision must be
// reproducible from its recorded input.
var capabilities = func() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = slices.DeleteFunc(caps.Builtins, func(b *ast.Builtin) bool { return b.Nondeterministic })
	return caps
}()

func newCompiler(print bool) *ast.Compiler {
	return ast.NewCompiler().
		WithStrict(true).
		WithDefaultRegoVersion(ast.RegoV1).
		WithCapabilities(capabilities).
		WithEnablePrintStatements(print)
}

var parserOptions = ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true}

// parseFiles parses the modules of checked files, keyed by file name, and
// data.json as an AST object (empty without one).
func parseFiles(files []File) (map[string]*ast.Module, ast.Object, error) {
	modules := make(map[string]*ast.Module, len(files))
	data := ast.NewObject()
	var errs ast.Errors
	var problems []Problem
	for _, f := range files {
		if f.Name == DataFile {
			d, p := parseData(f.Content)
			if p != nil {
				problems = append(problems, *p)
			}
			data = d
			continue
		}
		m, err := ast.ParseModuleWithOpts(f.Name, f.Content, parserOptions)
		if err != nil {
			var astErrs ast.Errors
			if errors.As(err, &astErrs) {
				errs = append(errs, astErrs...)
				continue
			}
			problems = append(problems, Problem{File: f.Name, Message: err.Error()})
			continue
		}
		if m == nil {
			problems = append(problems, Problem{File: f.Name, Message: "rego_parse_error: empty module"})
			continue
		}
		modules[f.Name] = m
	}
	if len(errs) > 0 || len(problems) > 0 {
		ce := compileErrorFrom(errs)
		ce.Problems = append(ce.Problems, problems...)
		slices.SortStableFunc(ce.Problems, func(a, b Problem) int {
			return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
		})
		return nil, nil, ce
	}
	return modules, data, nil
}

// parseData parses data.json, which must be a JSON object.
func parseData(content string) (ast.Object, *Problem) {
	var x any
	if err := util.UnmarshalJSON([]byte(content), &x); err != nil {
		p := &Problem{File: DataFile, Message: "invalid JSON: " + err.Error()}
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			p.Line = 1 + strings.Count(content[:min(int(se.Offset), len(content))], "\n")
		}
		return nil, p
	}
	m, ok := x.(map[string]any)
	if !ok {
		return nil, &Problem{File: DataFile, Line: 1, Message: fmt.Sprintf("got JSON %s, want an object", jsonKind(x))}
	}
	v, err := ast.InterfaceToValue(m)
	if err != nil {
		return nil, &Problem{File: DataFile, Message: err.Error()}
	}
	return v.(ast.Object), nil
}

func jsonKind(x any) string {
	switch x.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	}
	return "object"
}
