package main

import (
	"bytes"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseInterleaved(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		wantPos []string
		wantKey string
		wantJ   bool
	}{
		{[]string{"f.json", "--key", "k"}, []string{"f.json"}, "k", false},
		{[]string{"--key", "k", "f.json", "--json"}, []string{"f.json"}, "k", true},
		{[]string{"old", "--key=k", "new"}, []string{"old", "new"}, "k", false},
		{[]string{"-", "--key", "k"}, []string{"-"}, "k", false},
		{[]string{"--key", "k", "--", "--json"}, []string{"--json"}, "k", false},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		key, j := fs.String("key", "", ""), fs.Bool("json", false, "")
		pos, err := parseInterleaved(fs, tt.args)
		if err != nil || !slices.Equal(pos, tt.wantPos) || *key != tt.wantKey || *j != tt.wantJ {
			t.Errorf("parseInterleaved(%q) = %q, --key=%q, --json=%v, %v", tt.args, pos, *key, *j, err)
		}
	}
}

func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := &progress{w: &b, verb: "audited", start: time.Now()}
	p.update(10, 100) // within the first second: quiet
	p.finish()
	if b.Len() != 0 {
		t.Fatalf("a short audit printed progress: %q", b.String())
	}
	p = &progress{w: &b, verb: "audited", start: time.Now().Add(-2 * time.Second)}
	p.update(50, 100)
	p.update(60, 100) // within a second of the last line: quiet
	p.finish()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "consentverify: audited 50 of 100 entries (50%), ") || !strings.HasPrefix(lines[1], "consentverify: audited 60 entries in ") {
		t.Fatalf("progress printed %q", lines)
	}
}
