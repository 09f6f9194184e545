package verifier

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// Key is a pinned verifier key: the public half of the key a ledger signs
// its checkpoints with, in the C2SP signed-note verifier key format
// "<origin>+<hash>+<base64>" that `consentledger pubkey` prints. The key's
// name is the log's origin. During a signing-key rotation a log signs with
// two keys and auditors pin both: a Key may then hold several verifier keys
// of the same origin, and a checkpoint signed by any of them is accepted.
// A Key is immutable.
type Key struct {
	text string
	vs   []note.Verifier
}

// ParseKey parses a verifier key "<origin>+<hash>+<base64>", or several
// of the same origin, one per line (surrounding white space is ignored).
// A string that is not a verifier key — including the private signing key
// — or keys of different origins are an error wrapping [ErrMalformed].
func ParseKey(vkey string) (*Key, error) {
	k := &Key{}
	var lines []string
	for _, line := range strings.Split(vkey, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "PRIVATE+KEY+") {
			return nil, malformedf("this is a private signing key; pin the public verifier key instead (consentledger pubkey prints it)")
		}
		v, err := note.NewVerifier(line)
		if err != nil {
			return nil, malformedf("not a verifier key of the form <origin>+<hash>+<base64>: %v", err)
		}
		if len(k.vs) > 0 && v.Name() != k.vs[0].Name() {
			return nil, malformedf("the pinned keys belong to different logs (%q and %q): pin the keys of one log", k.vs[0].Name(), v.Name())
		}
		k.vs = append(k.vs, v)
		lines = append(lines, line)
	}
	if len(k.vs) == 0 {
		return nil, malformedf("no verifier key given: want <origin>+<hash>+<base64>")
	}
	k.text = strings.Join(lines, "\n")
	return k, nil
}

// Name returns the key's name, which is the log's origin.
func (k *Key) Name() string { return k.vs[0].Name() }

// Hash returns the key hash that signature lines name, as 8 hex digits
// (for several keys, each, joined by commas).
func (k *Key) Hash() string {
	hs := make([]string, len(k.vs))
	for i, v := range k.vs {
		hs[i] = fmt.Sprintf("%08x", v.KeyHash())
	}
	return strings.Join(hs, ",")
}

// String returns the verifier key text (several keys one per line).
func (k *Key) String() string { return k.text }

// signedBy reports whether a signature line names one of the keys.
func (k *Key) signedBy(name string, hash uint32) bool {
	for _, v := range k.vs {
		if v.Name() == name && v.KeyHash() == hash {
			return true
		}
	}
	return false
}

// Checkpoint is a checkpoint whose signature by a pinned key was verified.
type Checkpoint struct {
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Root   []byte `json:"root"`
	// KeyName and KeyHash name the pinned key whose signature verified.
	KeyName string `json:"key_name"`
	KeyHash string `json:"key_hash"`
	// Cosigners are the other signatures on the note, unverified (names
	// only): a witness may cosign a checkpoint, but only the pinned key's
	// signature makes it acceptable.
	Cosigners []string `json:"cosigners,omitempty"`
}

// CheckpointError says why a checkpoint is not accepted: it is not a signed
// note, it carries no valid signature by the pinned key, or its body is not
// a checkpoint of the key's origin. It wraps [ErrInvalid] and the underlying
// error.
type CheckpointError struct {
	KeyName string // the pinned key's name
	KeyHash string // and hash
	Reason  string // in words
	// Signers are the name+hash of the signatures found on the note that
	// are not the pinned key's.
	Signers []string
	Err     error
}

func (e *CheckpointError) Error() string {
	s := "checkpoint: " + e.Reason
	if len(e.Signers) > 0 {
		s += " (it is signed by " + strings.Join(e.Signers, ", ") + ")"
	}
	return s
}

// Unwrap returns ErrInvalid and the underlying error.
func (e *CheckpointError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalid, e.Err}
	}
	return []error{ErrInvalid}
}

// VerifyCheckpoint verifies that note is a C2SP tlog-checkpoint in a C2SP
// signed note that carries a valid signature by key, and that its origin is
// the key's name. Other signature lines (cosigners, witnesses) are allowed
// and ignored; a key found in the note itself is never trusted. On failure
// the error is a [*CheckpointError].
func VerifyCheckpoint(raw []byte, key *Key) (*Checkpoint, error) {
	cpErr := func(reason string, err error) *CheckpointError {
		return &CheckpointError{KeyName: key.Name(), KeyHash: key.Hash(), Reason: reason, Err: err}
	}
	var (
		cp      *log.Checkpoint
		n       *note.Note
		err     error
		keyHash string
	)
	for i, v := range key.vs {
		others := append(append([]note.Verifier(nil), key.vs[:i]...), key.vs[i+1:]...)
		if cp, _, n, err = log.ParseCheckpoint(raw, key.Name(), v, others...); err == nil {
			keyHash = fmt.Sprintf("%08x", v.KeyHash())
			break
		}
	}
	if err != nil {
		// Find out why, in words, from the note itself.
		_, oerr := note.Open(raw, note.VerifierList(key.vs...))
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(oerr, &unverified):
			e := cpErr(fmt.Sprintf("no signature by the pinned key %s+%s", key.Name(), key.Hash()), oerr)
			for _, s := range unverified.Note.UnverifiedSigs {
				e.Signers = append(e.Signers, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
			}
			return nil, e
		case errors.As(oerr, &invalid):
			return nil, cpErr(fmt.Sprintf("the signature by the pinned key %s+%s does not verify: the checkpoint was altered after signing", key.Name(), key.Hash()), oerr)
		case oerr != nil:
			return nil, cpErr("not a signed note (a text ending in a blank line and signature lines)", oerr)
		case n != nil:
			return nil, cpErr(fmt.Sprintf("signed by the pinned key but not a checkpoint of the log %q", key.Name()), err)
		}
		return nil, cpErr("not accepted", err)
	}
	if len(cp.Hash) != 32 {
		return nil, cpErr(fmt.Sprintf("the root hash is %d bytes, want 32", len(cp.Hash)), nil)
	}
	out := &Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Hash, KeyName: key.Name(), KeyHash: keyHash}
	for _, s := range n.UnverifiedSigs {
		out.Cosigners = append(out.Cosigners, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
	}
	return out, nil
}

// RootHex returns the root hash in lower-case hex.
func (c *Checkpoint) RootHex() string { return hex.EncodeToString(c.Root) }

// RootBase64 returns the root hash in base64, as the checkpoint writes it.
func (c *Checkpoint) RootBase64() string { return base64.StdEncoding.EncodeToString(c.Root) }
