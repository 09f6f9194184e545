package policies

import (
	"context"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
)

// TestRegoTests runs the default set's own Rego tests, the ones
// `opa test policies/` runs, through v1/tester.
func TestRegoTests(t *testing.T) {
	s, err := Compile(context.Background(), Default())
	if err != nil {
		t.Fatal(err)
	}
	results, err := s.Test(context.Background())
	for _, r := range results {
		if !r.Pass {
			t.Errorf("%s (%s): failed %s", r.Name, r.Location(), r.Error)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 50 {
		t.Errorf("ran %d Rego tests, want the whole suite", len(results))
	}
	t.Logf("%d Rego tests passed", len(results))
}

// TestRegoFormatted keeps the default set as `opa fmt` writes it, so that a
// legal team running `opa fmt -w` gets no surprise diff (and the policy uses
// no construct the formatter would rewrite).
func TestRegoFormatted(t *testing.T) {
	for _, f := range Default() {
		if !strings.HasSuffix(f.Name, ".rego") {
			continue
		}
		got, err := format.SourceWithOpts(f.Name, []byte(f.Content), format.Opts{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Errorf("%s: %v", f.Name, err)
			continue
		}
		if string(got) != f.Content {
			t.Errorf("%s is not formatted; run `go tool opa fmt -w policies/`", f.Name)
		}
	}
}
