package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/consentledger/consentledger/server"
)

func TestMain(m *testing.M) {
	// The crash test runs the command in a child process of this binary.
	if args := os.Getenv(serveChildEnv); args != "" {
		os.Exit(run(strings.Split(args, "\n")))
	}
	testscript.Main(m, map[string]func(){
		"consentledger": main,
	})
}

// TestScripts runs testdata/script/*.txt. Scripts see the repository's
// default policy set as $POLICIES and can assert an exit code with
// "exitcode N command args...".
func TestScripts(t *testing.T) {
	policiesDir, err := filepath.Abs("../../policies")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("POLICIES", policiesDir)
			// Every script gets a real server on a loopback port with its
			// own data directory: $SERVER is its URL, $DATA its directory.
			data := filepath.Join(env.WorkDir, "data")
			ctx, cancel := context.WithCancel(context.Background())
			ready, done := make(chan string, 1), make(chan error, 1)
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			go func() {
				done <- server.Run(ctx, server.Config{DataDir: data, Addr: "127.0.0.1:0"}, log, func(a string) { ready <- a })
			}()
			select {
			case addr := <-ready:
				env.Setenv("SERVER", "http://"+addr)
			case err := <-done:
				cancel()
				return err
			}
			env.Setenv("DATA", data)
			env.Defer(func() {
				cancel()
				<-done
			})
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode": cmdExitCode,
		},
	})
}

// cmdExitCode runs a command and checks its exit code; its stdout and
// stderr are then available to the stdout and stderr commands.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N command [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: %v", err)
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

func TestParseInterleaved(t *testing.T) {
	tests := []struct {
		args    []string
		wantPos []string
		wantV   bool
		wantN   string
	}{
		{[]string{"dir"}, []string{"dir"}, false, ""},
		{[]string{"-v", "dir"}, []string{"dir"}, true, ""},
		{[]string{"dir", "-v"}, []string{"dir"}, true, ""},
		{[]string{"a", "--note", "hello world", "b"}, []string{"a", "b"}, false, "hello world"},
		{[]string{"a", "--note=x", "-v", "b", "c"}, []string{"a", "b", "c"}, true, "x"},
		{[]string{"a", "--", "-v", "b"}, []string{"a", "-v", "b"}, false, ""},
		{[]string{"-"}, []string{"-"}, false, ""},
		{nil, nil, false, ""},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		v := fs.Bool("v", false, "")
		n := fs.String("note", "", "")
		pos, err := parseInterleaved(fs, tt.args)
		if err != nil {
			t.Errorf("parseInterleaved(%q): %v", tt.args, err)
			continue
		}
		if !slices.Equal(pos, tt.wantPos) || *v != tt.wantV || *n != tt.wantN {
			t.Errorf("parseInterleaved(%q) = %q, -v=%v, --note=%q; want %q, %v, %q", tt.args, pos, *v, *n, tt.wantPos, tt.wantV, tt.wantN)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := parseInterleaved(fs, []string{"dir", "-nope"}); err == nil {
		t.Error("unknown flag accepted")
	}
}
