package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Key files in a data directory. The two secrets are created with mode 0600.
const (
	SigningKeyFile  = "signing.key"  // note signer key (PRIVATE+KEY+origin+hash+base64)
	SubjectKeyFile  = "subject.key"  // hex HMAC key of the erasable subject table
	VerifierKeyFile = "verifier.key" // the verifier key auditors pin (public)
)

// DefaultOrigin is the checkpoint origin used when none is configured.
const DefaultOrigin = "consentledger.local/ledger"

// Keys are the ledger's secrets and the public key auditors pin.
type Keys struct {
	// Signer is the newest signing key; its name is the log's origin.
	Signer note.Signer
	// Signers are every active signing key, oldest first: checkpoints are
	// signed by all of them (two during a key rotation, see RotateKeys).
	Signers []note.Signer
	// VerifierKey is the newest signing key's note verifier key
	// "<origin>+<hash>+<base64>".
	VerifierKey string
	// VerifierKeys are every verifier key of the log, oldest first: the
	// active keys' and the retired ones', which still verify the
	// checkpoints they signed.
	VerifierKeys []string
	// SubjectKey is the 32-byte HMAC key of the erasable subject table.
	SubjectKey []byte
}

// NewKeys returns fresh keys for origin without storing them (for tests and
// for LoadOrCreateKeys).
func NewKeys(origin string) (*Keys, string, error) {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return nil, "", fmt.Errorf("generate signing key for origin %q: %w", origin, err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("load generated signing key: %w", err)
	}
	sk := make([]byte, 32)
	if _, err := rand.Read(sk); err != nil {
		return nil, "", fmt.Errorf("generate subject key: %w", err)
	}
	return &Keys{Signer: signer, Signers: []note.Signer{signer}, VerifierKey: vkey, VerifierKeys: []string{vkey}, SubjectKey: sk}, skey, nil
}

// LoadOrCreateKeys reads the keys in dir, creating them on first use. An
// empty origin means the origin of the existing key, or DefaultOrigin for a
// new directory; a non-empty origin must match an existing key's.
func LoadOrCreateKeys(dir, origin string) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	skeyPath := filepath.Join(dir, SigningKeyFile)
	skeyText, err := os.ReadFile(skeyPath)
	if errors.Is(err, fs.ErrNotExist) {
		if origin == "" {
			origin = DefaultOrigin
		}
		keys, skey, err := NewKeys(origin)
		if err != nil {
			return nil, err
		}
		if err := writeSecret(filepath.Join(dir, SubjectKeyFile), []byte(hex.EncodeToString(keys.SubjectKey)+"\n")); err != nil {
			return nil, err
		}
		if err := writeFileAtomic(filepath.Join(dir, VerifierKeyFile), []byte(keys.VerifierKey+"\n"), 0o644); err != nil {
			return nil, err
		}
		// The signing key goes last: its presence marks a complete key set.
		if err := writeSecret(skeyPath, []byte(skey+"\n")); err != nil {
			return nil, err
		}
		return keys, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	var signers []note.Signer
	var vkeys []string
	for _, skey := range keyLines(skeyText) {
		signer, err := note.NewSigner(skey)
		if err != nil {
			return nil, fmt.Errorf("signing key %s is not a valid note signer key: %w", skeyPath, err)
		}
		if len(signers) > 0 && signer.Name() != signers[0].Name() {
			return nil, fmt.Errorf("%w: %s holds keys of two logs (%q and %q): restore the key files from a backup", ErrDataDir, skeyPath, signers[0].Name(), signer.Name())
		}
		vkey, err := verifierKeyOf(skey)
		if err != nil {
			return nil, err
		}
		signers, vkeys = append(signers, signer), append(vkeys, vkey)
	}
	if len(signers) == 0 {
		return nil, fmt.Errorf("%w: %s holds no key: restore the key files from a backup", ErrDataDir, skeyPath)
	}
	if origin != "" && signers[0].Name() != origin {
		return nil, fmt.Errorf("the data directory %s belongs to the log with origin %q, not %q: start without --origin, or use another data directory", dir, signers[0].Name(), origin)
	}
	vkeyPath := filepath.Join(dir, VerifierKeyFile)
	all := vkeys
	switch old, err := os.ReadFile(vkeyPath); {
	case errors.Is(err, fs.ErrNotExist):
		if err := writeFileAtomic(vkeyPath, []byte(strings.Join(vkeys, "\n")+"\n"), 0o644); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("read verifier key: %w", err)
	default:
		all = keyLines(old)
		for _, vkey := range vkeys {
			if !slices.Contains(all, vkey) {
				return nil, fmt.Errorf("%w: %s does not match %s: one of the two was replaced; restore the key files from a backup of this data directory (auditors pin the verifier key)", ErrDataDir, vkeyPath, skeyPath)
			}
		}
	}
	skHex, err := os.ReadFile(filepath.Join(dir, SubjectKeyFile))
	if err != nil {
		return nil, fmt.Errorf("read subject key: %w", err)
	}
	sk, err := hex.DecodeString(strings.TrimSpace(string(skHex)))
	if err != nil || len(sk) != 32 {
		return nil, fmt.Errorf("subject key %s must hold 32 bytes in hex", filepath.Join(dir, SubjectKeyFile))
	}
	return &Keys{Signer: signers[len(signers)-1], Signers: signers, VerifierKey: vkeys[len(vkeys)-1], VerifierKeys: all, SubjectKey: sk}, nil
}

// keyLines returns the non-empty lines of a key file.
func keyLines(b []byte) []string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// ReadVerifierKey returns the verifier key of the log in dir, without
// opening the log (so it works while a server runs). During and after a
// key rotation the file holds several keys, one per line, oldest first;
// auditors pin them all.
func ReadVerifierKey(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, VerifierKeyFile))
	if err != nil {
		return "", fmt.Errorf("read verifier key (has a server been started with --data %s?): %w", dir, err)
	}
	lines := keyLines(b)
	if len(lines) == 0 {
		return "", fmt.Errorf("verifier key file in %s is empty", dir)
	}
	for _, vkey := range lines {
		if _, err := note.NewVerifier(vkey); err != nil {
			return "", fmt.Errorf("verifier key in %s is malformed: %w", dir, err)
		}
	}
	return strings.Join(lines, "\n"), nil
}

// verifierKeyOf derives the verifier key from a note signer key
// "PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>".
func verifierKeyOf(skey string) (string, error) {
	parts := strings.SplitN(strings.TrimPrefix(skey, "PRIVATE+KEY+"), "+", 3)
	if len(parts) != 3 {
		return "", fmt.Errorf("signing key is malformed")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", fmt.Errorf("signing key is not an Ed25519 note key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[0], pub)
}

func writeSecret(path string, data []byte) error { return writeFileAtomic(path, data, 0o600) }

// writeFileAtomic writes data to path through a synced temporary file with
// the given mode, so a crash leaves either no file or the whole file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
