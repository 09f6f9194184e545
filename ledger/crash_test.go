package ledger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/consentledger/consentledger/internal/keycopy"
	"github.com/consentledger/consentledger/internal/trilliantest"
	"github.com/consentledger/consentledger/ledger/trillianlog"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

const crashChildEnv = "CONSENTLEDGER_CRASH_CHILD_DIR"

// TestMain lets the test binary act as the crash test's child process.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	var code int
	if onTrillian() {
		code = trilliantest.Main(m)
	} else {
		code = m.Run()
	}
	if benchLog.dir != "" {
		os.RemoveAll(benchLog.dir)
	}
	os.Exit(code)
}

// crashChild appends under load, one at a time and in batches, until it is
// killed, printing "index leafhash" for every entry after Append or
// AppendBatch has acknowledged it.
func crashChild(dir string) {
	opts := Options{CheckpointInterval: 50 * time.Millisecond}
	if tc := os.Getenv(crashTrillianEnv); tc != "" {
		cfg, err := decodeTrillian(tc)
		if err == nil {
			opts.Remote, err = trillianlog.Open(context.Background(), cfg)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "child open Trillian:", err)
			os.Exit(3)
		}
	}
	l, err := Open(dir, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	out := os.Stdout
	for w := 0; w < 32; w++ {
		go func(w int) {
			rnd := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			next := func() *Request {
				switch rnd.IntN(4) {
				case 0:
					return &Request{Entry: grant(pb.Channel_CHANNEL_SMS, "marketing"), Subject: phone(rnd.IntN(100))}
				case 1:
					return &Request{Entry: withdraw(pb.Channel_CHANNEL_SMS), Subject: phone(rnd.IntN(100))}
				case 2:
					return &Request{Entry: decision(pb.Channel_CHANNEL_SMS, "marketing", true), Subject: phone(rnd.IntN(100))}
				default:
					return &Request{Entry: filler(200 + rnd.IntN(200))}
				}
			}
			for {
				// A quarter of the workers append batches of up to 200
				// entries (AppendBatch), the others one entry at a time.
				if w%4 == 0 {
					reqs := make([]*Request, 1+rnd.IntN(200))
					for i := range reqs {
						reqs[i] = next()
					}
					res, err := l.AppendBatch(context.Background(), reqs)
					if err != nil {
						fmt.Fprintln(os.Stderr, "child append batch:", err)
						os.Exit(4)
					}
					mu.Lock()
					for _, r := range res {
						if r.Err != nil {
							fmt.Fprintln(os.Stderr, "child append batch entry:", r.Err)
							os.Exit(4)
						}
						fmt.Fprintf(out, "%d %x\n", r.Receipt.Index, r.Receipt.LeafHash)
					}
					mu.Unlock()
					continue
				}
				r, err := l.Append(context.Background(), next())
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintf(out, "%d %x\n", r.Index, r.LeafHash)
				mu.Unlock()
			}
		}(w)
	}
	select {}
}

// TestCrashRecovery kills an appending child process with SIGKILL at random
// moments, 20 times, and checks after each kill that every acknowledged entry
// is present with the same leaf hash, the root recomputes from the entries,
// and the chains hold.
func TestCrashRecovery(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var trill *trillianlog.Config
	if onTrillian() {
		// On Trillian every restart is on an EMPTY data directory with the
		// same key files: the local store is only a cache.
		cfg := newTrillianConfig(t)
		trill = &cfg
	}
	acked := map[uint64][]byte{}
	rnd := rand.New(rand.NewPCG(11, 13))
	const rounds = 20
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		if trill != nil {
			cmd.Env = append(cmd.Env, crashTrillianEnv+"="+encodeTrillian(*trill))
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1<<16)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Wait for the first acknowledgement, then kill at a random moment.
		first, ok := <-lines
		if !ok {
			cmd.Wait()
			t.Fatalf("round %d: child acknowledged nothing; stderr: %s", round, stderr.String())
		}
		time.Sleep(time.Duration(5+rnd.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		n := 0
		for line := range append1(first, lines) {
			f := strings.Fields(line)
			if len(f) != 2 {
				continue // a line cut by the kill was never fully acknowledged
			}
			idx, err1 := strconv.ParseUint(f[0], 10, 64)
			leaf, err2 := hex.DecodeString(f[1])
			if err1 != nil || err2 != nil || len(leaf) != 32 {
				continue
			}
			acked[idx] = leaf
			n++
		}
		cmd.Wait()
		if n == 0 {
			t.Fatalf("round %d: no acknowledgements read", round)
		}

		opts := Options{CheckpointInterval: -1}
		if trill != nil {
			dir = keycopy.Dir(t, dir)
			opts.Remote = openTrillian(t, *trill)
		}
		l, err := Open(dir, opts)
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		leaves := allLeaves(t, l)
		for idx, leaf := range acked {
			if idx >= uint64(len(leaves)) {
				t.Fatalf("round %d: acknowledged entry %d lost (log has %d)", round, idx, len(leaves))
			}
			if !bytes.Equal(leaves[idx], leaf) {
				t.Fatalf("round %d: entry %d has leaf %x, acknowledged %x", round, idx, leaves[idx], leaf)
			}
		}
		if !bytes.Equal(l.Root(), referenceRoot(leaves)) {
			t.Fatalf("round %d: root %x does not recompute from the %d entries (%x)", round, l.Root(), len(leaves), referenceRoot(leaves))
		}
		if c := l.LatestCheckpoint(); c.Size > l.Size() {
			t.Fatalf("round %d: checkpoint of size %d beyond the log (%d)", round, c.Size, l.Size())
		}
		checkChains(t, l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d acknowledged this round, log size %d", round, n, len(leaves))
	}
}

// append1 yields first, then everything from rest.
func append1(first string, rest <-chan string) <-chan string {
	out := make(chan string, 1)
	go func() {
		out <- first
		for s := range rest {
			out <- s
		}
		close(out)
	}()
	return out
}
