// Package backup writes and restores consentledger backups: a tar archive
// holding the data directory's keys and a consistent Badger backup of the
// ledger's store, taken online (`consentledger backup`) and restored offline
// into an empty directory (`consentledger restore`). The restored log has the
// same entries, checkpoints and root.
//
// A backup holds the signing key and the subject table's key: keep it as
// safe as the data directory itself.
package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/ledger/storage/badgerstore"
)

// Member names in the archive.
const (
	versionMember = "consentledger-backup"
	storeMember   = "badger.backup"
	version       = "consentledger backup v1\n"
)

var keyFiles = []string{ledger.SigningKeyFile, ledger.SubjectKeyFile, ledger.VerifierKeyFile}

// Write writes a backup of the ledger l, whose data directory is dataDir, to w.
func Write(ctx context.Context, l *ledger.Ledger, dataDir string, w io.Writer) error {
	st, ok := l.Store().(*badgerstore.Store)
	if !ok {
		return errors.New("backup: only a ledger on Badger can be backed up")
	}
	tmp, err := os.CreateTemp("", "consentledger-backup-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := st.DB().Backup(tmp, 0); err != nil {
		return fmt.Errorf("backup: badger: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	now := time.Now()
	add := func(name string, mode int64, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: size, ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	if err := add(versionMember, 0o644, int64(len(version)), strings.NewReader(version)); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	for _, name := range keyFiles {
		b, err := os.ReadFile(filepath.Join(dataDir, name))
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		mode := int64(0o600)
		if name == ledger.VerifierKeyFile {
			mode = 0o644
		}
		if err := add(name, mode, int64(len(b)), bytes.NewReader(b)); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	size, err := tmp.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := add(storeMember, 0o600, size, tmp); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return tw.Close()
}

// Restore restores a backup from r into dir, which must be empty or not
// exist, and returns the restored log's size and root.
func Restore(dir string, r io.Reader) (uint64, []byte, error) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return 0, nil, fmt.Errorf("restore: %s is not empty; restore into a new directory", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, nil, fmt.Errorf("restore: %w", err)
	}
	tr := tar.NewReader(r)
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, nil, fmt.Errorf("restore: not a consentledger backup: %w", err)
		}
		switch h.Name {
		case versionMember:
			b, err := io.ReadAll(io.LimitReader(tr, 1<<10))
			if err != nil || string(b) != version {
				return 0, nil, fmt.Errorf("restore: unsupported backup version %q", b)
			}
		case ledger.SigningKeyFile, ledger.SubjectKeyFile, ledger.VerifierKeyFile:
			b, err := io.ReadAll(io.LimitReader(tr, 64<<10))
			if err != nil {
				return 0, nil, fmt.Errorf("restore: %w", err)
			}
			mode := os.FileMode(0o600)
			if h.Name == ledger.VerifierKeyFile {
				mode = 0o644
			}
			if err := os.WriteFile(filepath.Join(dir, h.Name), b, mode); err != nil {
				return 0, nil, fmt.Errorf("restore: %w", err)
			}
		case storeMember:
			if !seen[versionMember] {
				return 0, nil, errors.New("restore: not a consentledger backup (no version member first)")
			}
			st, err := badgerstore.Open(filepath.Join(dir, "db"), badgerstore.Options{})
			if err != nil {
				return 0, nil, fmt.Errorf("restore: %w", err)
			}
			err = st.DB().Load(tr, 256)
			if cerr := st.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return 0, nil, fmt.Errorf("restore: load the store: %w", err)
			}
		default:
			return 0, nil, fmt.Errorf("restore: unexpected member %q in the backup", h.Name)
		}
		seen[h.Name] = true
	}
	for _, name := range append([]string{versionMember, storeMember}, keyFiles...) {
		if !seen[name] {
			return 0, nil, fmt.Errorf("restore: the backup lacks %s", name)
		}
	}
	l, err := ledger.Open(dir, ledger.Options{CheckpointInterval: -1})
	if err != nil {
		return 0, nil, fmt.Errorf("restore: the restored ledger does not open: %w", err)
	}
	size, root := l.Size(), l.Root()
	if err := l.Close(); err != nil {
		return 0, nil, err
	}
	return size, root, nil
}
