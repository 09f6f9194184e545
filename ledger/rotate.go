package ledger

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// RotateKeys adds a new signing key to the log in dir, beside the current
// one: once the server is restarted, every checkpoint carries a signature
// by each active key (one signed note, several signature lines), so
// auditors who pinned the old key and auditors who pinned the new one both
// accept it. The new verifier key is appended to verifier.key; it is
// returned so the operator can hand it to auditors. After the overlap,
// RetireKeys stops signing with the old key.
//
// The data directory must exist and hold its keys; the key files are
// written atomically (signing.key with mode 0600). The server reads keys
// at start: restart it after rotating.
func RotateKeys(dir string) (string, error) {
	keys, err := loadExisting(dir)
	if err != nil {
		return "", err
	}
	_, skey, err := NewKeys(keys.Signer.Name())
	if err != nil {
		return "", err
	}
	vkey, err := verifierKeyOf(skey)
	if err != nil {
		return "", err
	}
	skeyPath := filepath.Join(dir, SigningKeyFile)
	raw, err := os.ReadFile(skeyPath)
	if err != nil {
		return "", fmt.Errorf("read signing key: %w", err)
	}
	// verifier.key first: a crash between the two writes leaves a verifier
	// key no one signs with yet, never a signer no one can verify.
	vkeys := append(keys.VerifierKeys, vkey)
	if err := writeFileAtomic(filepath.Join(dir, VerifierKeyFile), []byte(strings.Join(vkeys, "\n")+"\n"), 0o644); err != nil {
		return "", err
	}
	if err := writeSecret(skeyPath, []byte(strings.Join(append(keyLines(raw), skey), "\n")+"\n")); err != nil {
		return "", err
	}
	return vkey, nil
}

// RetireKeys ends a rotation: only the newest signing key stays in
// signing.key, so checkpoints signed after the next restart carry only its
// signature. verifier.key keeps every key, retired ones included, because
// they still verify the checkpoints they signed. It returns the verifier
// keys retired.
func RetireKeys(dir string) ([]string, error) {
	keys, err := loadExisting(dir)
	if err != nil {
		return nil, err
	}
	if len(keys.Signers) < 2 {
		return nil, fmt.Errorf("the log in %s signs with one key only: there is nothing to retire (rotate first: consentledger keys rotate)", dir)
	}
	skeyPath := filepath.Join(dir, SigningKeyFile)
	raw, err := os.ReadFile(skeyPath)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	lines := keyLines(raw)
	if err := writeSecret(skeyPath, []byte(lines[len(lines)-1]+"\n")); err != nil {
		return nil, err
	}
	var retired []string
	for _, s := range keys.Signers[:len(keys.Signers)-1] {
		for _, vkey := range keys.VerifierKeys {
			if strings.HasPrefix(vkey, s.Name()+"+") && strings.Contains(vkey, fmt.Sprintf("+%08x+", s.KeyHash())) {
				retired = append(retired, vkey)
			}
		}
	}
	return retired, nil
}

// loadExisting loads the keys of an existing data directory, refusing to
// create any.
func loadExisting(dir string) (*Keys, error) {
	if err := checkDataDir(dir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, SigningKeyFile)); err != nil {
		return nil, fmt.Errorf("%s holds no signing key (has a server been started with --data %s?): %w", dir, dir, err)
	}
	return LoadOrCreateKeys(dir, "")
}
