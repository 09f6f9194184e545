package policies

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
)

// extract writes the files of testdata/name.txtar to a new directory.
func extract(t *testing.T, name string) string {
	t.Helper()
	a, err := txtar.ParseFile(filepath.Join("testdata", name+".txtar"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range a.Files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestDigestVectors(t *testing.T) {
	b, err := os.ReadFile("testdata/digest_vectors.golden")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []struct {
		Desc   string
		Files  []File
		Digest string
	}
	if err := json.Unmarshal(b, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vectors {
		if got := Digest(v.Files); got != v.Digest {
			t.Errorf("%s: Digest = %s, want %s", v.Desc, got, v.Digest)
		}
	}
}

func TestDigestOfSet(t *testing.T) {
	s := mustDefault(t)
	files := Default()
	slices.Reverse(files)
	if got := Digest(files); got != s.Digest() {
		t.Errorf("Digest(reversed files) = %s, Set.Digest = %s", got, s.Digest())
	}
	files[0].Content += " "
	if Digest(files) == s.Digest() {
		t.Error("changing one byte kept the digest")
	}
}

func TestDefault(t *testing.T) {
	files := Default()
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	for _, want := range []string{"data.json", "send.rego", "send_test.rego", "inbound.rego", "inbound_test.rego"} {
		if !slices.Contains(names, want) {
			t.Errorf("Default() = %v, missing %s", names, want)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("Default() not sorted: %v", names)
	}
	// The embedded set is the directory's set.
	dir, err := LoadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	if Digest(dir) != Digest(files) {
		t.Error("LoadDir(\".\") differs from Default()")
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b.rego", "package b\n")
	write("a.rego", "package a\n")
	write("data.json", "{}")
	write("README.md", "# not policy")
	write("other.json", "{}")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("sub/c.rego", "package c\n")
	files, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	if want := []string{"a.rego", "b.rego", "data.json"}; !slices.Equal(names, want) {
		t.Errorf("LoadDir = %v, want %v", names, want)
	}

	write("big.rego", strings.Repeat("#", MaxFileSize+1))
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "big.rego") {
		t.Errorf("LoadDir with an oversized file = %v, want an error naming it", err)
	}
	if _, err := LoadDir(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadDir(missing) = %v, want ErrNotExist", err)
	}
	empty := t.TempDir()
	if _, err := LoadDir(empty); err == nil {
		t.Error("LoadDir(empty dir) succeeded")
	}
}

func TestCompileRejectsBadFileLists(t *testing.T) {
	ok := File{Name: "a.rego", Content: "package a\n"}
	for _, files := range [][]File{
		nil,
		{{Name: "data.json", Content: "{}"}},
		{ok, {Name: "../b.rego", Content: "package b\n"}},
		{ok, {Name: "dir/b.rego", Content: "package b\n"}},
		{ok, {Name: "notes.txt"}},
		{ok, ok},
		{ok, {Name: "big.rego", Content: strings.Repeat("#", MaxFileSize+1)}},
	} {
		if _, err := Compile(t.Context(), files); !errors.Is(err, ErrInvalidFiles) {
			t.Errorf("Compile(%v...) = %v, want ErrInvalidFiles", names(files), err)
		}
	}
}

func names(files []File) []string {
	var n []string
	for _, f := range files {
		n = append(n, f.Name)
	}
	return n
}

func TestCompileErrorNamesFileAndLine(t *testing.T) {
	files, err := LoadDir(extract(t, "broken"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(t.Context(), files)
	ce, ok := errors.AsType[*CompileError](err)
	if !ok {
		t.Fatalf("Compile = %v, want a *CompileError", err)
	}
	p := ce.Problems[0]
	if p.File != "send.rego" || p.Line != 9 || !strings.Contains(p.Message, "rego_parse_error") {
		t.Errorf("problem = %+v, want send.rego:9 with rego_parse_error", p)
	}
	if msg := err.Error(); !strings.Contains(msg, "send.rego:") {
		t.Errorf("error %q does not name file:line", msg)
	}
}

func TestCompileErrors(t *testing.T) {
	inbound := File{Name: "inbound.rego", Content: "package consentledger.inbound\n\naction := \"none\"\n\nkeyword := \"\"\n"}
	tests := []struct {
		name string
		file File
		line int
		want string
	}{
		{"type error", File{"send.rego", "package consentledger.send\n\ndecision := {\"allow\": true, \"reasons\": [x]} if {\n\tx := no_such_function(1)\n}\n"}, 4, "rego_type_error"},
		{"strict: unused variable", File{"send.rego", "package consentledger.send\n\ndecision := {\"allow\": true, \"reasons\": [\"a: b\"]} if {\n\tx := 1\n}\n"}, 4, "rego_compile_error"},
		{"non-deterministic built-in", File{"send.rego", "package consentledger.send\n\ndecision := {\"allow\": true, \"reasons\": [\"a: b\"]} if {\n\ttime.now_ns() > 0\n}\n"}, 4, "time.now_ns"},
		{"no decision", File{"send.rego", "package consentledger.send\n\nallow := true\n"}, 0, "no rule defines data.consentledger.send.decision"},
		{"invalid data.json", File{"data.json", "{\n  \"a\": 1,\n  \"b\": \n}\n"}, 4, "invalid JSON"},
		{"data.json not an object", File{"data.json", "[1]"}, 1, "want an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := []File{inbound, tt.file}
			if tt.file.Name == DataFile {
				files = append(files, File{"send.rego", "package consentledger.send\n\ndecision := {\"allow\": true, \"reasons\": [\"a: b\"]}\n"})
			}
			_, err := Compile(t.Context(), files)
			ce, ok := errors.AsType[*CompileError](err)
			if !ok {
				t.Fatalf("Compile = %v, want a *CompileError", err)
			}
			if !slices.ContainsFunc(ce.Problems, func(p Problem) bool {
				return p.Line == tt.line && strings.Contains(p.Message, tt.want)
			}) {
				t.Errorf("problems %+v: want line %d with %q", ce.Problems, tt.line, tt.want)
			}
		})
	}
}

func TestTestFailureNamesTests(t *testing.T) {
	files, err := LoadDir(extract(t, "failing"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(t.Context(), files)
	if err != nil {
		t.Fatal(err)
	}
	results, err := s.Test(t.Context())
	tf, ok := errors.AsType[*TestFailure](err)
	if !ok {
		t.Fatalf("Test = %v, want a *TestFailure", err)
	}
	var failed []string
	for _, r := range tf.Failed {
		failed = append(failed, r.Name)
		if r.File != "send_test.rego" || r.Line == 0 {
			t.Errorf("%s at %s, want a line in send_test.rego", r.Name, r.Location())
		}
	}
	want := []string{"data.consentledger.send_test.test_allows_sms", "data.consentledger.send_test.test_refuses_email"}
	if !slices.Equal(failed, want) {
		t.Errorf("failed = %v, want %v", failed, want)
	}
	if len(results) != 3 || tf.Total != 3 {
		t.Errorf("%d results, total %d; want 3", len(results), tf.Total)
	}
	if !strings.Contains(err.Error(), "test_allows_sms") {
		t.Errorf("error %q does not name the failing test", err)
	}

	if _, err := Check(t.Context(), files); !errors.As(err, &tf) {
		t.Errorf("Check = %v, want a *TestFailure", err)
	}
}

func TestCheckDefault(t *testing.T) {
	s, err := Check(t.Context(), Default())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.Digest(), "sha256:") || len(s.Digest()) != len("sha256:")+64 {
		t.Errorf("Digest = %q", s.Digest())
	}
	files := s.Files()
	files[0].Content = "changed"
	if s.Files()[0].Content == "changed" {
		t.Error("Files returned the set's own slice")
	}
}
