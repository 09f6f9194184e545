package trilliantest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/client"
	"google.golang.org/protobuf/types/known/durationpb"
	"k8s.io/klog/v2"
)

// startTrillian starts whichever of trillian_log_server and
// trillian_log_signer is not running, and waits until they answer.
func (e *Env) startTrillian() error {
	storage := []string{
		"--storage_system=mysql", "--quota_system=mysql", "--mysql_uri=" + e.DSN,
	}
	e.mu.Lock()
	server, signer := e.server, e.signer
	e.mu.Unlock()
	if server == nil {
		p, err := e.startProc("trillian_log_server", e.bins.logServer, append(storage,
			"--rpc_endpoint="+e.LogAddr, "--http_endpoint="+e.logHTTP)...)
		if err != nil {
			return err
		}
		e.mu.Lock()
		e.server = p
		e.mu.Unlock()
		server = p
	}
	if signer == nil {
		p, err := e.startProc("trillian_log_signer", e.bins.logSigner, append(storage,
			"--rpc_endpoint="+e.signRPC, "--http_endpoint="+e.signHTTP,
			"--force_master", "--sequencer_interval=100ms", "--batch_size=1000",
			// The signer waits a random pause of up to this before it
			// integrates a tree it has not seen (default 1 s): a new
			// tree's first leaves would wait for it in every test.
			"--pre_election_pause=10ms")...)
		if err != nil {
			return err
		}
		e.mu.Lock()
		e.signer = p
		e.mu.Unlock()
		signer = p
	}
	if err := healthy(server, e.logHTTP); err != nil {
		return err
	}
	if err := healthy(signer, e.signHTTP); err != nil {
		return err
	}
	// /healthz answers before the gRPC port may; ask the admin API.
	return waitUntil(context.Background(), time.Minute, func(ctx context.Context) error {
		if err := server.exited(); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := e.AdminClient().ListTrees(ctx, &trillian.ListTreesRequest{})
		if err != nil {
			return fmt.Errorf("trillian_log_server on %s does not answer: %w", e.LogAddr, err)
		}
		return nil
	})
}

// healthy waits until p's /healthz on addr (which checks its database)
// answers 200.
func healthy(p *proc, addr string) error {
	return waitUntil(context.Background(), time.Minute, func(ctx context.Context) error {
		if err := p.exited(); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("%s is not healthy: %w", p.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s is not healthy: /healthz answers %s", p.name, resp.Status)
		}
		return nil
	})
}

var quietKlog sync.Once

// NewTree creates an ACTIVE PREORDERED_LOG tree (RFC 6962 hashing, no
// periodic roots: MaxRootDuration 0), initialises it the way Trillian's
// createtree does (client.CreateAndInitTree: CreateTree, then InitLog, then
// waiting until GetLatestSignedLogRoot answers), and returns its id. The
// new tree's root has size 0.
func (e *Env) NewTree(t testing.TB) int64 {
	t.Helper()
	quietKlog.Do(func() {
		// Trillian's client logs every step through klog on stderr;
		// NewTree reports its own errors.
		klog.LogToStderr(false)
		klog.SetOutput(io.Discard)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tree, err := client.CreateAndInitTree(ctx, &trillian.CreateTreeRequest{Tree: &trillian.Tree{
		TreeType:        trillian.TreeType_PREORDERED_LOG,
		TreeState:       trillian.TreeState_ACTIVE,
		DisplayName:     "trilliantest",
		MaxRootDuration: durationpb.New(0),
	}}, e.AdminClient(), e.LogClient())
	if err != nil {
		t.Fatalf("create a PREORDERED_LOG tree on %s: %v\n%s", e.LogAddr, err, e.Logs())
	}
	return tree.TreeId
}
