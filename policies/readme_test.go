package policies

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestREADME checks that the guide's snippets work: the example input gives
// the example decision, and the worked "add a rule" example, applied to the
// default set as the guide says, passes Check.
func TestREADME(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)

	block := func(marker string) string {
		t.Helper()
		_, after, ok := strings.Cut(readme, "<!-- "+marker+" -->\n```json\n")
		if !ok {
			t.Fatalf("README has no %s block", marker)
		}
		body, _, _ := strings.Cut(after, "```")
		return body
	}
	d, err := mustDefault(t).Decide(t.Context(), []byte(block("example-input")))
	if err != nil {
		t.Fatal(err)
	}
	var want Decision
	if err := json.Unmarshal([]byte(block("example-decision")), &want); err != nil {
		t.Fatal(err)
	}
	if d.Allow != want.Allow || !slices.Equal(d.Reasons, want.Reasons) {
		t.Errorf("example input decides %+v, README shows %+v", d, want)
	}

	// The worked example: files marked "# file: NAME", and the data line.
	files := Default()
	fence := regexp.MustCompile("(?s)```rego\n(.*?)```")
	added := 0
	for _, m := range fence.FindAllStringSubmatch(readme, -1) {
		code := dedent(m[1])
		name, ok := strings.CutPrefix(strings.SplitN(code, "\n", 2)[0], "# file: ")
		if !ok {
			continue
		}
		files = append(files, File{Name: name, Content: code})
		added++
	}
	if added != 2 {
		t.Fatalf("found %d worked-example files in README, want 2", added)
	}
	line := regexp.MustCompile(`(?m)^\s*"min_notice_version": "2026-01",$`).FindString(readme)
	if line == "" {
		t.Fatal("README lacks the min_notice_version line")
	}
	for i := range files {
		if files[i].Name == DataFile {
			files[i].Content = strings.Replace(files[i].Content, `"config": {`, `"config": {`+"\n"+line, 1)
		}
	}
	s, err := Check(t.Context(), files)
	if err != nil {
		t.Fatalf("the README's worked example does not pass: %v", err)
	}
	results, _ := s.Test(t.Context())
	if !slices.ContainsFunc(results, func(r TestResult) bool {
		return r.Name == "data.consentledger.notice_test.test_old_notice_denied" && r.Pass
	}) {
		t.Error("the worked example's test did not run")
	}
}

// dedent removes the indentation of a snippet nested in a list item.
func dedent(s string) string {
	lines := strings.Split(s, "\n")
	indent := len(lines[0]) - len(strings.TrimLeft(lines[0], " "))
	for i, l := range lines {
		if len(l) >= indent && strings.TrimSpace(l[:indent]) == "" {
			lines[i] = l[indent:]
		}
	}
	return strings.Join(lines, "\n")
}
