package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/consentledger/consentledger/ledger"
)

// ContentTypeSize is the content type of a 409 answer that carries the
// witness's latest cosigned size (C2SP tlog-witness).
const ContentTypeSize = "text/x.tlog.size"

// maxResponse bounds what is read of a witness's answer.
const maxResponse = 64 << 10

// ErrRejected is wrapped by every error about a witness refusing or
// garbling a submission that is not a fork: the operator fixes the
// configuration or waits for the witness; the submitter retries later.
var ErrRejected = errors.New("witness rejected the checkpoint")

// ForkError says a witness has seen a log under our origin that is not
// ours: a larger tree (a rollback of ours, or another log), or a root at a
// size we share that differs from ours. It is never retried.
type ForkError struct {
	Witness     string
	OurSize     uint64
	WitnessSize uint64
	Reason      string
}

func (e *ForkError) Error() string {
	return fmt.Sprintf("witness %s: %s (our checkpoint has size %d, the witness's latest cosigned size is %d): it has seen another log under our origin, or ours was rolled back; investigate before trusting either", e.Witness, e.Reason, e.OurSize, e.WitnessSize)
}

// update submits cp to w, following 409 answers from the size the witness
// reports, and stores the verified cosignature.
func (s *Submitter) update(ctx context.Context, w *witness, cp *ledger.Checkpoint) error {
	w.mu.Lock()
	old := w.hint
	w.mu.Unlock()
	for range maxConflicts {
		if old > cp.Size {
			return &ForkError{Witness: w.Name, OurSize: cp.Size, WitnessSize: old, Reason: "the witness cosigned a larger tree than ours"}
		}
		status, ctype, body, err := s.post(ctx, w, cp, old)
		if err != nil {
			return err
		}
		switch {
		case status == http.StatusOK:
			line, sig, err := verifyCosignature(w, cp.Note, body)
			if err != nil {
				return err
			}
			if err := s.log.AddCosignature(ctx, cp.Size, w.Name, line); err != nil {
				return fmt.Errorf("witness %s: store its cosignature of size %d: %w", w.Name, cp.Size, err)
			}
			w.mu.Lock()
			w.hint = cp.Size
			w.st.LastCosignedSize = cp.Size
			if t, err := fnote.CoSigV1Timestamp(sig); err == nil {
				w.st.LastCosignedAt = t
			}
			w.mu.Unlock()
			return nil
		case status == http.StatusConflict && ctype == ContentTypeSize:
			// "If [the old size] doesn't match, the witness MUST respond with a
			// 409 Conflict HTTP status code. The response body MUST consist of the
			// tree size of the latest cosigned checkpoint in decimal, followed by a
			// newline (U+000A). The response MUST have a Content-Type of
			// text/x.tlog.size."
			n, err := strconv.ParseUint(strings.TrimSuffix(string(body), "\n"), 10, 64)
			if err != nil || !bytes.HasSuffix(body, []byte("\n")) {
				return fmt.Errorf("%w: witness %s answered 409 %s with %q, not a size and a newline", ErrRejected, w.Name, ContentTypeSize, truncate(body))
			}
			if n > cp.Size {
				// Never retry: the witness holds a tree we never had.
				return &ForkError{Witness: w.Name, OurSize: cp.Size, WitnessSize: n, Reason: "the witness cosigned a larger tree than ours"}
			}
			s.opts.Logger.Info("witness: retrying from the size the witness reports", "witness", w.Name, "sent_old", old, "witness_size", n)
			old = n
			w.mu.Lock()
			w.hint = n
			w.mu.Unlock()
		case status == http.StatusConflict || status == http.StatusUnprocessableEntity:
			// Spec: "If the old size matches the checkpoint size, the witness MUST
			// check that the root hashes are also identical. If they don't match,
			// the witness MUST respond with a 409 Conflict"; "If the Merkle
			// Consistency Proof doesn't verify, the witness MUST respond with a
			// 422 Unprocessable Entity". litewitness answers 422 for both. Our
			// proof is from our own tree: either way, the witness's root at size
			// old is not ours.
			return &ForkError{Witness: w.Name, OurSize: cp.Size, WitnessSize: old, Reason: fmt.Sprintf("the witness's root at size %d is not ours (HTTP %d: %q)", old, status, truncate(body))}
		case status == http.StatusNotFound || status == http.StatusForbidden:
			// Spec: "If the checkpoint origin is unknown, the witness MUST respond
			// with a 404 Not Found"; "If none of the signatures verify against a
			// trusted public key, the witness MUST respond with a 403 Forbidden".
			// litewitness answers 403 for an unknown origin too.
			return fmt.Errorf("%w: witness %s answered HTTP %d (%q): it does not know our origin %q or our verifier key; register the log at the witness (origin and `consentledger pubkey`)", ErrRejected, w.Name, status, truncate(body), originOf(cp.Note))
		case status == http.StatusBadRequest:
			// Spec: "The old size MUST be equal to or lower than the checkpoint
			// size. Otherwise, the witness MUST respond with a 400 Bad Request".
			return fmt.Errorf("%w: witness %s answered 400 Bad Request (%q) to old size %d and checkpoint size %d", ErrRejected, w.Name, truncate(body), old, cp.Size)
		default:
			return fmt.Errorf("%w: witness %s answered HTTP %d (%q)", ErrRejected, w.Name, status, truncate(body))
		}
	}
	return fmt.Errorf("%w: witness %s answered 409 %d times in a row; retrying later", ErrRejected, w.Name, maxConflicts)
}

// post sends one add-checkpoint request. An error is a transport failure
// (the witness is down, slow or unreachable).
func (s *Submitter) post(ctx context.Context, w *witness, cp *ledger.Checkpoint, old uint64) (status int, ctype string, body []byte, err error) {
	var proof [][]byte
	if old > 0 && old < cp.Size {
		if proof, err = s.log.ConsistencyProof(ctx, old, cp.Size); err != nil {
			return 0, "", nil, fmt.Errorf("witness %s: consistency proof from its size %d to %d: %w", w.Name, old, cp.Size, err)
		}
	}
	// "The request body MUST be a sequence of a previous size line, zero or
	// more consistency proof lines, and an empty line, followed by a
	// checkpoint."
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", old)
	for _, p := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(p))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(cp.Note)
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.endpoint, &b)
	if err != nil {
		return 0, "", nil, fmt.Errorf("witness %s: %w", w.Name, err)
	}
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return 0, "", nil, fmt.Errorf("witness %s is unreachable at %s: %w", w.Name, w.endpoint, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return 0, "", nil, fmt.Errorf("witness %s: read its answer: %w", w.Name, err)
	}
	ctype, _, _ = mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return resp.StatusCode, ctype, body, nil
}

// verifyCosignature checks the witness's answer: signature lines of which
// one is a valid cosignature/v1 by w's pinned key over our note. It returns
// that line alone, as stored, and the parsed signature.
func verifyCosignature(w *witness, signed, body []byte) ([]byte, note.Signature, error) {
	if len(body) == 0 || !bytes.HasSuffix(body, []byte("\n")) {
		return nil, note.Signature{}, fmt.Errorf("%w: witness %s answered 200 with %q, not signature lines", ErrRejected, w.Name, truncate(body))
	}
	// The witness's lines are appended to our note; note.Open verifies the
	// ones made by the pinned key and leaves the log's own line unverified.
	n, err := note.Open(append(append([]byte(nil), signed...), body...), note.VerifierList(w.verifier))
	if err != nil {
		return nil, note.Signature{}, fmt.Errorf("%w: witness %s's cosignature does not verify with its pinned key %s: %v", ErrRejected, w.Name, w.VKey, err)
	}
	for _, sig := range n.Sigs {
		if sig.Name == w.verifier.Name() && sig.Hash == w.verifier.KeyHash() {
			return fmt.Appendf(nil, "— %s %s\n", sig.Name, sig.Base64), sig, nil
		}
	}
	return nil, note.Signature{}, fmt.Errorf("%w: witness %s answered no signature by its pinned key", ErrRejected, w.Name)
}

// parseLine parses one stored signature line.
func parseLine(line []byte) (note.Signature, error) {
	s := strings.TrimSuffix(strings.TrimPrefix(string(line), "— "), "\n")
	name, b64, ok := strings.Cut(s, " ")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || len(raw) < 4 {
		return note.Signature{}, fmt.Errorf("malformed signature line %q", line)
	}
	return note.Signature{Name: name, Hash: uint32(raw[0])<<24 | uint32(raw[1])<<16 | uint32(raw[2])<<8 | uint32(raw[3]), Base64: b64}, nil
}

func originOf(signed []byte) string {
	origin, _, _ := strings.Cut(string(signed), "\n")
	return origin
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
