package verifier

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// hashSize is the size of an RFC 6962 SHA-256 hash.
const hashSize = 32

// LeafHash returns the RFC 6962 leaf hash of stored entry bytes:
// SHA-256(0x00 ‖ data).
func LeafHash(data []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(data) }

// ProofError says why an inclusion or consistency proof does not verify.
// Got and Want are the computed and expected root hashes in hex when the
// proof was well-formed but led elsewhere. It wraps [ErrInvalid].
type ProofError struct {
	Reason    string
	Got, Want string
}

func (e *ProofError) Error() string {
	if e.Got != "" || e.Want != "" {
		return fmt.Sprintf("%s: computed root %s, checkpoint root %s", e.Reason, orNone(e.Got), orNone(e.Want))
	}
	return e.Reason
}

// Unwrap returns ErrInvalid.
func (e *ProofError) Unwrap() error { return ErrInvalid }

// VerifyInclusion verifies that the stored entry bytes entry sit at index in
// the tree of the verified checkpoint cp, by the RFC 6962 audit path proof
// (leaf to root). It requires index < cp.Size; on failure the error is a
// [*ProofError].
func VerifyInclusion(cp *Checkpoint, index uint64, entry []byte, path [][]byte) error {
	if index >= cp.Size {
		return &ProofError{Reason: fmt.Sprintf("index %d is beyond the checkpoint's tree size %d", index, cp.Size)}
	}
	for i, h := range path {
		if len(h) != hashSize {
			return &ProofError{Reason: fmt.Sprintf("hash %d of the inclusion proof is %d bytes, want %d", i, len(h), hashSize)}
		}
	}
	root, err := proof.RootFromInclusionProof(rfc6962.DefaultHasher, index, cp.Size, LeafHash(entry), path)
	if err != nil {
		return &ProofError{Reason: "the inclusion proof is malformed: " + err.Error()}
	}
	if !bytes.Equal(root, cp.Root) {
		return &ProofError{Reason: "the inclusion proof does not lead to the checkpoint's root", Got: hex.EncodeToString(root), Want: cp.RootHex()}
	}
	return nil
}

// ConsistencyReport is what a verified consistency proof shows: the later
// checkpoint's log extends the earlier one, nothing changed or removed.
type ConsistencyReport struct {
	Old         *Checkpoint `json:"old"`
	New         *Checkpoint `json:"new"`
	ProofHashes int         `json:"proof_hashes"`
}

// Text describes the result for people.
func (r *ConsistencyReport) Text() string {
	return EscapeControls(fmt.Sprintf("VERIFIED: the log %s only grew: its checkpoint of size %d (root %s) is a prefix of its checkpoint of size %d (root %s); both are signed by %s+%s, and the consistency proof of %d hashes checks with RFC 6962.\n",
		r.New.Origin, r.Old.Size, r.Old.RootHex(), r.New.Size, r.New.RootHex(), r.New.KeyName, r.New.KeyHash, r.ProofHashes))
}

// VerifyConsistency verifies two checkpoints against the pinned verifier
// key vkey and the RFC 6962 consistency proof between their sizes, which
// shows that the log of newCheckpoint extends the log of oldCheckpoint. An
// unreadable key wraps [ErrMalformed]; a checkpoint that does not verify is
// a [*CheckpointError] and a proof that does not a [*ProofError], both
// wrapping [ErrInvalid].
func VerifyConsistency(oldCheckpoint, newCheckpoint []byte, vkey string, hashes [][]byte) (*ConsistencyReport, error) {
	key, err := ParseKey(vkey)
	if err != nil {
		return nil, err
	}
	oldCP, err := VerifyCheckpoint(oldCheckpoint, key)
	if err != nil {
		return nil, fmt.Errorf("old %w", err)
	}
	newCP, err := VerifyCheckpoint(newCheckpoint, key)
	if err != nil {
		return nil, fmt.Errorf("new %w", err)
	}
	if err := CheckConsistency(oldCP, newCP, hashes); err != nil {
		return nil, err
	}
	return &ConsistencyReport{Old: oldCP, New: newCP, ProofHashes: len(hashes)}, nil
}

// CheckConsistency verifies the RFC 6962 consistency proof between two
// verified checkpoints. The old checkpoint must not be larger than the new.
func CheckConsistency(oldCP, newCP *Checkpoint, hashes [][]byte) error {
	if oldCP.Size > newCP.Size {
		return &ProofError{Reason: fmt.Sprintf("the old checkpoint (size %d) is larger than the new one (size %d); give them in order", oldCP.Size, newCP.Size)}
	}
	for i, h := range hashes {
		if len(h) != hashSize {
			return &ProofError{Reason: fmt.Sprintf("hash %d of the consistency proof is %d bytes, want %d", i, len(h), hashSize)}
		}
	}
	err := proof.VerifyConsistency(rfc6962.DefaultHasher, oldCP.Size, newCP.Size, hashes, oldCP.Root, newCP.Root)
	if err != nil {
		var rm proof.RootMismatchError
		if errors.As(err, &rm) {
			return &ProofError{Reason: fmt.Sprintf("the consistency proof from size %d to %d does not match the checkpoints: the log was rewritten, or the proof is wrong", oldCP.Size, newCP.Size),
				Got: hex.EncodeToString(rm.CalculatedRoot), Want: hex.EncodeToString(rm.ExpectedRoot)}
		}
		return &ProofError{Reason: fmt.Sprintf("the consistency proof from size %d to %d does not verify: %v", oldCP.Size, newCP.Size, err)}
	}
	return nil
}

// ConsistencyProof is a consistency proof read by [ParseConsistencyProof].
type ConsistencyProof struct {
	// Size1 and Size2 are the tree sizes the proof is for; 0 when the file
	// does not say.
	Size1, Size2 uint64
	Hashes       [][]byte
}

// ParseConsistencyProof reads a consistency proof file: either the JSON
// answer of LogService.GetConsistencyProof ({"size1": "…", "size2": "…",
// "proof": ["<base64>", …]}), or a text file with one hash per line in
// base64 or hex (blank lines and lines starting with # are ignored). An
// unreadable file wraps [ErrMalformed].
func ParseConsistencyProof(data []byte) (*ConsistencyProof, error) {
	trimmed := bytes.TrimSpace(data)
	if bytes.HasPrefix(trimmed, []byte("{")) {
		var m struct {
			Size1 json.Number `json:"size1"`
			Size2 json.Number `json:"size2"`
			Proof []string    `json:"proof"`
		}
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return nil, malformedf("consistency proof: %v", err)
		}
		p := &ConsistencyProof{}
		for _, f := range []struct {
			n   json.Number
			dst *uint64
		}{{m.Size1, &p.Size1}, {m.Size2, &p.Size2}} {
			if f.n == "" {
				continue
			}
			if _, err := fmt.Sscan(string(f.n), f.dst); err != nil {
				return nil, malformedf("consistency proof: size %q is not a number", f.n)
			}
		}
		for i, s := range m.Proof {
			h, err := decodeHash(s)
			if err != nil {
				return nil, malformedf("consistency proof: hash %d: %v", i, err)
			}
			p.Hashes = append(p.Hashes, h)
		}
		return p, nil
	}
	p := &ConsistencyProof{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		h, err := decodeHash(s)
		if err != nil {
			return nil, malformedf("consistency proof: line %d: %v", line, err)
		}
		p.Hashes = append(p.Hashes, h)
	}
	if err := sc.Err(); err != nil {
		return nil, malformedf("consistency proof: %v", err)
	}
	return p, nil
}

// decodeHash decodes a 32-byte hash written in hex or base64.
func decodeHash(s string) ([]byte, error) {
	if len(s) == 2*hashSize {
		if h, err := hex.DecodeString(s); err == nil {
			return h, nil
		}
	}
	h, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if h, err = base64.URLEncoding.DecodeString(s); err != nil {
			return nil, fmt.Errorf("%q is neither hex nor base64", s)
		}
	}
	if len(h) != hashSize {
		return nil, fmt.Errorf("a hash of %d bytes, want %d", len(h), hashSize)
	}
	return h, nil
}

// VerifyConsistencyProof is [VerifyConsistency] for a proof read by
// [ParseConsistencyProof] or fetched from a server. A proof that names its
// tree sizes must name the two checkpoints' sizes: a proof is only
// evidence about the sizes it was asked for.
func VerifyConsistencyProof(oldCheckpoint, newCheckpoint []byte, vkey string, p *ConsistencyProof) (*ConsistencyReport, error) {
	key, err := ParseKey(vkey)
	if err != nil {
		return nil, err
	}
	oldCP, err := VerifyCheckpoint(oldCheckpoint, key)
	if err != nil {
		return nil, fmt.Errorf("old %w", err)
	}
	newCP, err := VerifyCheckpoint(newCheckpoint, key)
	if err != nil {
		return nil, fmt.Errorf("new %w", err)
	}
	if (p.Size1 != 0 || p.Size2 != 0) && (p.Size1 != oldCP.Size || p.Size2 != newCP.Size) {
		return nil, &ProofError{Reason: fmt.Sprintf("the proof is for sizes %d to %d, the checkpoints have sizes %d and %d", p.Size1, p.Size2, oldCP.Size, newCP.Size)}
	}
	if err := CheckConsistency(oldCP, newCP, p.Hashes); err != nil {
		return nil, err
	}
	return &ConsistencyReport{Old: oldCP, New: newCP, ProofHashes: len(p.Hashes)}, nil
}
