// Package witness submits the ledger's checkpoints to C2SP tlog-witness
// witnesses (https://c2sp.org/tlog-witness) and keeps the cosignatures
// they return (https://c2sp.org/tlog-cosignature, cosignature/v1).
//
// Each new checkpoint goes to every configured witness with
// POST <url>/add-checkpoint: "old N", the consistency proof from N, a blank
// line and the signed note. Every witness is driven by its own goroutine with
// a request timeout, so a witness that is slow or down never blocks another
// witness, and never the ledger's appends. A cosignature is verified with
// the witness's pinned key (github.com/transparency-dev/formats/note) before
// the ledger stores it. A witness that claims a larger tree than ours, or a
// different root at a size we share, has seen another log under our name (a
// fork, a split view, or a rollback of ours): the submitter stops talking to
// it and raises an alarm that only an operator can clear (by restarting).
package witness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/consentledger/consentledger/ledger"
)

// Defaults of [Options].
const (
	DefaultInterval = 10 * time.Second
	DefaultTimeout  = 10 * time.Second
	// MinSubmitGap is how often at most a new checkpoint is submitted.
	MinSubmitGap = time.Second
	// maxConflicts bounds the 409 retries of one submission.
	maxConflicts = 3
)

// Witness names one witness: Name is how the operator calls it (metrics,
// logs, the storage key of its cosignatures), URL its tlog-witness prefix
// (the submitter POSTs to URL + "/add-checkpoint"), VKey its verifier key
// ("<name>+<hash>+<base64>", Ed25519 or cosignature/v1).
type Witness struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	VKey string `yaml:"vkey"`
}

// Log is what the submitter needs from the ledger; *ledger.Ledger has it.
type Log interface {
	Size() uint64
	LatestCheckpoint() *ledger.Checkpoint
	SignCheckpoint(ctx context.Context) (*ledger.Checkpoint, error)
	ConsistencyProof(ctx context.Context, size1, size2 uint64) ([][]byte, error)
	AddCosignature(ctx context.Context, size uint64, witness string, line []byte) error
	LastCosigned(ctx context.Context) (map[string]ledger.Cosignature, error)
}

// Options configure a [Submitter]. The zero value of each field is its
// documented default.
type Options struct {
	Witnesses []Witness
	// Interval is the longest a grown log waits for a checkpoint to be
	// submitted, and how long a failed witness waits before the next try;
	// 0 means DefaultInterval.
	Interval time.Duration
	// Timeout bounds one request to a witness; 0 means DefaultTimeout.
	Timeout time.Duration
	// Client sends the requests; nil means a client with no other timeout.
	Client *http.Client
	// Logger receives failures and alarms; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock for ages; nil means time.Now.
	Now func() time.Time
}

// Status is what the submitter knows about one witness.
type Status struct {
	Name string
	URL  string
	// LastCosignedSize is the largest size this witness cosigned (0: none).
	LastCosignedSize uint64
	// LastCosignedAt is the witness's own timestamp in that cosignature.
	LastCosignedAt time.Time
	// Failures counts failed submissions since start.
	Failures uint64
	// LastError is the last failure, empty after a success.
	LastError string
	// Alarm is set when the witness showed a fork or rollback; the
	// submitter no longer talks to it.
	Alarm string
}

// Submitter sends checkpoints to witnesses. Create it with [New] and start
// it with [Submitter.Run].
type Submitter struct {
	log  Log
	opts Options
	ws   []*witness
}

type witness struct {
	Witness
	endpoint string
	verifier note.Verifier

	mu       sync.Mutex
	busy     bool
	hint     uint64 // the old size to send: the witness's latest cosigned size as we know it
	failedAt time.Time
	st       Status
}

// New checks the witnesses' configuration (a name, an http(s) URL, a
// verifier key per witness, names unique) and returns a submitter.
func New(l Log, opts Options) (*Submitter, error) {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Submitter{log: l, opts: opts}
	seen := map[string]bool{}
	for i, w := range opts.Witnesses {
		if w.Name == "" || strings.ContainsAny(w.Name, " \t\n+") {
			return nil, fmt.Errorf("witness %d: name %q: give a name without spaces or '+' (it names the witness in metrics and storage)", i+1, w.Name)
		}
		if seen[w.Name] {
			return nil, fmt.Errorf("witness %q is configured twice: give each witness its own name", w.Name)
		}
		seen[w.Name] = true
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("witness %q: url %q: give the witness's http(s) URL prefix, such as https://witness.example/", w.Name, w.URL)
		}
		v, err := fnote.NewVerifierForCosignatureV1(w.VKey)
		if err != nil {
			return nil, fmt.Errorf("witness %q: vkey %q is not a verifier key (<name>+<hash>+<base64>, as the witness prints it): %w", w.Name, w.VKey, err)
		}
		s.ws = append(s.ws, &witness{
			Witness:  w,
			endpoint: strings.TrimSuffix(w.URL, "/") + "/add-checkpoint",
			verifier: v,
			st:       Status{Name: w.Name, URL: w.URL},
		})
	}
	return s, nil
}

// VKey returns the configured verifier key of the named witness.
func (s *Submitter) VKey(name string) string {
	for _, w := range s.ws {
		if w.Name == name {
			return w.VKey
		}
	}
	return ""
}

// Status returns the state of every witness, in configuration order.
func (s *Submitter) Status() []Status {
	out := make([]Status, len(s.ws))
	for i, w := range s.ws {
		w.mu.Lock()
		out[i] = w.st
		w.mu.Unlock()
	}
	return out
}

// Run submits checkpoints until ctx ends: at most about once a second, and
// at least every Interval while the log grows (it signs a checkpoint itself
// when the latest one is older than that). It returns when ctx ends and
// every request in flight has returned.
func (s *Submitter) Run(ctx context.Context) {
	if len(s.ws) == 0 {
		return
	}
	s.loadCosigned(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(min(MinSubmitGap, s.opts.Interval))
	defer tick.Stop()
	// lastSize and since: the latest checkpoint's size, and when it was
	// first seen; a log that grew without a new checkpoint for Interval
	// gets one signed here.
	var lastSize uint64
	since := s.opts.Now()
	for {
		if cp := s.log.LatestCheckpoint(); cp != nil && s.log.Size() > cp.Size && s.opts.Now().Sub(since) >= s.opts.Interval {
			if _, err := s.log.SignCheckpoint(ctx); err != nil && ctx.Err() == nil {
				s.opts.Logger.Error("witness: sign a checkpoint to submit", "err", err)
			}
		}
		if cp := s.log.LatestCheckpoint(); cp != nil {
			if cp.Size != lastSize {
				lastSize, since = cp.Size, s.opts.Now()
			}
			for _, w := range s.ws {
				if s.due(w, cp) {
					wg.Go(func() { s.submit(ctx, w, cp) })
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// SubmitAll submits the latest checkpoint to every witness that has not
// cosigned it, and waits for the answers. It is Run's one round, for tests
// and for a caller that needs cosignatures now.
func (s *Submitter) SubmitAll(ctx context.Context) {
	cp := s.log.LatestCheckpoint()
	if cp == nil || cp.Size == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, w := range s.ws {
		w.mu.Lock()
		ok := !w.busy && w.st.Alarm == "" && w.st.LastCosignedSize < cp.Size
		if ok {
			w.busy = true
		}
		w.mu.Unlock()
		if ok {
			wg.Go(func() { s.submit(ctx, w, cp) })
		}
	}
	wg.Wait()
}

// loadCosigned starts each witness from the largest size it cosigned
// before a restart, so the first request usually needs no 409 round trip.
func (s *Submitter) loadCosigned(ctx context.Context) {
	last, err := s.log.LastCosigned(ctx)
	if err != nil {
		s.opts.Logger.Warn("witness: read stored cosignatures; starting every witness from size 0", "err", err)
		return
	}
	for _, w := range s.ws {
		c, ok := last[w.Name]
		if !ok {
			continue
		}
		w.mu.Lock()
		w.hint = c.Size
		w.st.LastCosignedSize = c.Size
		if sig, err := parseLine(c.Line); err == nil {
			if t, err := fnote.CoSigV1Timestamp(sig); err == nil {
				w.st.LastCosignedAt = t
			}
		}
		w.mu.Unlock()
	}
}

// due reports whether w should get cp now, and marks it busy if so.
func (s *Submitter) due(w *witness, cp *ledger.Checkpoint) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.busy || w.st.Alarm != "" || cp.Size == 0 || w.st.LastCosignedSize >= cp.Size {
		return false
	}
	if !w.failedAt.IsZero() && s.opts.Now().Sub(w.failedAt) < s.opts.Interval {
		return false
	}
	w.busy = true
	return true
}

// submit sends cp to w and records the outcome.
func (s *Submitter) submit(ctx context.Context, w *witness, cp *ledger.Checkpoint) {
	err := s.update(ctx, w, cp)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.busy = false
	var fork *ForkError
	switch {
	case err == nil:
		w.failedAt = time.Time{}
		w.st.LastError = ""
	case errors.As(err, &fork):
		w.st.Failures++
		w.st.LastError = err.Error()
		w.st.Alarm = err.Error()
		s.opts.Logger.Error("ALARM: witness saw another log under our origin (fork, split view or rollback); no longer submitting to it", "witness", w.Name, "url", w.URL, "err", err)
	case ctx.Err() != nil:
		// Shutting down: not the witness's failure.
	default:
		w.st.Failures++
		w.st.LastError = err.Error()
		w.failedAt = s.opts.Now()
		s.opts.Logger.Warn("witness: submission failed; will retry", "witness", w.Name, "url", w.URL, "size", cp.Size, "retry_in", s.opts.Interval, "err", err)
	}
}
