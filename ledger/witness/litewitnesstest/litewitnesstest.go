// Package litewitnesstest runs the real litewitness (filippo.io/torchwood
// v0.6.1, a C2SP tlog-witness no one here wrote) for tests: each instance
// with its own ssh-agent holding its own key and its own SQLite file, on a
// loopback port. See .ci/run for the recipe.
//
// The binary is found on PATH or in $(go env GOPATH)/bin; install it with
// `go install filippo.io/torchwood/cmd/litewitness@v0.6.1`. Logs are
// registered with Debian's sqlite3 and keys made with OpenSSH's ssh-keygen,
// ssh-agent and ssh-add. When one is missing the test is skipped, unless
// the environment variable CI is "true": then it fails.
package litewitnesstest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the litewitness version the tests are written against.
const Version = "v0.6.1"

// emptyRoot is the RFC 6962 root of the empty tree, base64.
const emptyRoot = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

// Witness is one running litewitness.
type Witness struct {
	Name string // its name, as in its cosignatures
	URL  string // its tlog-witness URL prefix (add-checkpoint is below it)
	VKey string // its verifier key, as it logs it at start

	t      testing.TB
	bin    string
	dir    string
	db     string
	sock   string
	fp     string
	listen string

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	agent *exec.Cmd
}

// missing skips or fails the test about a missing tool.
func missing(t testing.TB, what string) {
	t.Helper()
	msg := fmt.Sprintf("%s; the witness tests need litewitness %s (go install filippo.io/torchwood/cmd/litewitness@%s), sqlite3 and openssh-client (apt-get install -y sqlite3 openssh-client)", what, Version, Version)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Binary returns the path of litewitness, from PATH or $(go env GOPATH)/bin.
func Binary(t testing.TB) string {
	t.Helper()
	for _, tool := range []string{"sqlite3", "ssh-keygen", "ssh-agent", "ssh-add"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing(t, tool+" is not installed")
		}
	}
	if p, err := exec.LookPath("litewitness"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "litewitness")
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	missing(t, "litewitness is not on PATH nor in $(go env GOPATH)/bin")
	return ""
}

// Start starts a litewitness named name (URL-like, e.g.
// "w1.example/witness") with a new key, a new ssh-agent and a new SQLite
// file. It is stopped when the test ends.
func Start(t testing.TB, name string) *Witness {
	t.Helper()
	bin := Binary(t)
	// A short directory: ssh-agent's socket path must fit sun_path.
	dir, err := os.MkdirTemp("", "lw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	w := &Witness{Name: name, t: t, bin: bin, dir: dir, db: filepath.Join(dir, "db"), sock: filepath.Join(dir, "s")}
	key := filepath.Join(dir, "k")
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key)
	w.agent = exec.Command("ssh-agent", "-D", "-a", w.sock)
	if err := w.agent.Start(); err != nil {
		t.Fatalf("start ssh-agent: %v", err)
	}
	t.Cleanup(func() { w.agent.Process.Kill(); w.agent.Wait() })
	waitFor(t, func() bool { _, err := os.Stat(w.sock); return err == nil }, "ssh-agent's socket")
	add := exec.Command("ssh-add", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+w.sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	fp := run(t, "ssh-keygen", "-lf", key+".pub")
	w.fp = strings.Fields(fp)[1]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.listen = ln.Addr().String()
	ln.Close()
	w.URL = "http://" + w.listen
	w.start()
	t.Cleanup(w.Stop)
	return w
}

var vkeyRE = regexp.MustCompile(`vkey=(\S+)`)

// start runs litewitness and waits until it listens.
func (w *Witness) start() {
	t := w.t
	t.Helper()
	cmd := exec.Command(w.bin, "-name", w.Name, "-db", w.db, "-ssh-agent", w.sock, "-key", w.fp, "-listen", w.listen)
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start litewitness: %v", err)
	}
	done := make(chan struct{})
	listening := make(chan string, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		var vkey string
		for sc.Scan() {
			line := sc.Text()
			if m := vkeyRE.FindStringSubmatch(line); m != nil {
				vkey = m[1]
			}
			if strings.Contains(line, "msg=listening") {
				listening <- vkey
			}
		}
		cmd.Wait()
	}()
	select {
	case vkey := <-listening:
		if vkey == "" {
			t.Fatal("litewitness did not log its verifier key")
		}
		w.VKey = vkey
	case <-done:
		t.Fatal("litewitness exited at start")
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("litewitness did not listen within 30 s")
	}
	w.mu.Lock()
	w.cmd, w.done = cmd, done
	w.mu.Unlock()
}

// Register tells the witness about a log: its origin and verifier key,
// with an empty tree as the latest cosigned checkpoint (witnessctl does
// not build here, so straight into its SQLite file, as .ci/run says).
func (w *Witness) Register(origin, logVKey string) {
	w.t.Helper()
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	run(w.t, "sqlite3", w.db, fmt.Sprintf("INSERT INTO log (origin, tree_size, tree_hash) VALUES (%s, 0, %s); INSERT INTO key (origin, key) VALUES (%s, %s);",
		q(origin), q(emptyRoot), q(origin), q(logVKey)))
}

// Stop stops the witness (its state stays in its SQLite file).
func (w *Witness) Stop() {
	w.mu.Lock()
	cmd, done := w.cmd, w.done
	w.cmd = nil
	w.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// Restart starts the witness again on the same address, key and database.
func (w *Witness) Restart() {
	w.t.Helper()
	w.Stop()
	w.start()
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func waitFor(t testing.TB, ok func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
