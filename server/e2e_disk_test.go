package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/server"
)

// TestFullDiskRefusesWrites runs the real server on a tmpfs mounted by the
// test, fills the file system to just above the configured reserve and
// records opt-ins until the server refuses them: resource_exhausted naming
// the data directory, health NOT_SERVING for the write services, reads and
// evidence still served, the process up. Once space is freed, writes
// resume by themselves and every acknowledged entry is in the log.
func TestFullDiskRefusesWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: the full-disk test fills a tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=192m", "tmpfs", mnt).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a tmpfs for the full-disk test (CI runs as root, so this must work): %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs here (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	const reserveMiB = 32
	s := start(t, server.Config{DataDir: filepath.Join(mnt, "data"), DiskReserveMiB: reserveMiB})
	ctx := context.Background()

	free, err := ledger.FreeSpace(mnt)
	if err != nil {
		t.Fatal(err)
	}
	fill := filepath.Join(mnt, "fill")
	if err := os.WriteFile(fill, make([]byte, int(free)-(reserveMiB+4)<<20), 0o600); err != nil {
		t.Fatal(err)
	}

	// Eight writers, so that a backend with a slower commit (Trillian)
	// fills the 4 MiB as fast as the embedded one.
	var mu sync.Mutex
	acked := 0
	var refusal error
	var wg sync.WaitGroup
	deadline := time.Now().Add(120 * time.Second)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				mu.Lock()
				stop := refusal != nil
				mu.Unlock()
				if stop {
					return
				}
				_, err := s.consent().RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{
					Subject: phone(fmt.Sprintf("+49 170 %d%06d", w, i)), Channel: pb.Channel_CHANNEL_SMS,
					Purposes: []string{"marketing"}, Method: "checkout", NoticeVersion: "2026-01",
					EvidenceDigest: make([]byte, 32),
				}))
				mu.Lock()
				switch {
				case connect.CodeOf(err) == connect.CodeResourceExhausted:
					if refusal == nil {
						refusal = err
					}
				case err != nil:
					t.Errorf("RecordOptIn before the disk filled: %v", err)
					refusal = err
				default:
					acked++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if refusal == nil {
		t.Fatal("no write was refused in 120 s with 4 MiB above the reserve")
	}
	if msg := refusal.Error(); !strings.Contains(msg, filepath.Join(mnt, "data")) || !strings.Contains(msg, "free") {
		t.Errorf("refusal %q does not name the data directory and its free space", msg)
	}
	t.Logf("refused after %d opt-ins: %v", acked, refusal)

	// Health says which services cannot write; reads go on.
	if status := health(t, s, "consentledger.v1.SendService"); status != "SERVING_STATUS_NOT_SERVING" {
		t.Errorf("health of SendService with a full disk = %s, want NOT_SERVING", status)
	}
	if status := health(t, s, "consentledger.v1.LogService"); status != "SERVING_STATUS_SERVING" {
		t.Errorf("health of LogService with a full disk = %s, want SERVING", status)
	}
	size := logSize(t, s)
	if size < uint64(acked) {
		t.Fatalf("log size %d with %d acknowledged opt-ins", size, acked)
	}

	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	var err2 error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err2 = s.consent().RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{
			Subject: phone("+49 170 9999999"), Channel: pb.Channel_CHANNEL_SMS, Purposes: []string{"marketing"}, Method: "checkout",
		})); err2 == nil {
			break
		}
		if connect.CodeOf(err2) != connect.CodeResourceExhausted {
			t.Fatalf("RecordOptIn after freeing space: %v", err2)
		}
	}
	if err2 != nil {
		t.Fatalf("writes did not resume within 10 s of freeing space: %v", err2)
	}
	if status := health(t, s, "consentledger.v1.SendService"); status != "SERVING_STATUS_SERVING" {
		t.Errorf("health of SendService after freeing space = %s, want SERVING", status)
	}
	if got := logSize(t, s); got != size+1 {
		t.Fatalf("log size %d after one more opt-in, want %d", got, size+1)
	}
}

func health(t *testing.T, s *testServer, service string) string {
	t.Helper()
	resp, err := s.http.Post(s.url+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader(`{"service":"`+service+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct{ Status string }
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatalf("health answer: %v", err)
	}
	return answer.Status
}
