package ledger

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FormatFile names the data directory's format version file. A data
// directory written by a newer format than this binary understands is
// refused, never half-read.
const FormatFile = "FORMAT"

// formatVersion is the data-directory format this binary writes and reads.
const formatVersion = 1

const formatPrefix = "consentledger data directory, format "

// ErrDataDir marks a data directory that cannot be opened safely: a missing
// or unprotected key, a newer format, a damaged store. The message says
// what is wrong and how to recover.
var ErrDataDir = errors.New("data directory cannot be used")

// checkDataDir refuses a data directory that is unsafe to open, before
// anything is created or read in it:
//   - one written by a newer format version;
//   - one that holds a log but no signing key or no subject key (creating
//     fresh keys would sign a different log and lose every pseudonym);
//   - secret key files readable by others (they must be 0600).
//
// A new, empty directory passes; its format file is written by
// writeFormat once the keys exist.
func checkDataDir(dir string) error {
	raw, err := os.ReadFile(filepath.Join(dir, FormatFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A new directory, or one written before the format file existed (format 1).
	case err != nil:
		return fmt.Errorf("%w: read %s: %v", ErrDataDir, filepath.Join(dir, FormatFile), err)
	default:
		v, ok := strings.CutPrefix(strings.TrimSpace(string(raw)), formatPrefix)
		n, perr := strconv.Atoi(v)
		if !ok || perr != nil {
			return fmt.Errorf("%w: %s does not name a format version (%q); it was not written by consentledger — restore the data directory from a backup", ErrDataDir, filepath.Join(dir, FormatFile), firstLine(raw))
		}
		if n > formatVersion {
			return fmt.Errorf("%w: %s was written by a newer consentledger (data format %d; this binary reads up to %d): run the newer version, or restore a backup made for this one", ErrDataDir, dir, n, formatVersion)
		}
	}
	hasLog := false
	if entries, err := os.ReadDir(filepath.Join(dir, "db")); err == nil && len(entries) > 0 {
		hasLog = true
	}
	for _, name := range []string{SigningKeyFile, SubjectKeyFile} {
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if hasLog {
				return fmt.Errorf("%w: %s holds a log but its %s is missing: restore the key files from a backup of this data directory (new keys would sign a different log and lose every subject's pseudonym)", ErrDataDir, dir, name)
			}
		case err != nil:
			return fmt.Errorf("%w: %v", ErrDataDir, err)
		case fi.Mode().Perm()&0o077 != 0:
			return fmt.Errorf("%w: %s is readable by others (mode %04o): it is a secret; run chmod 600 %s and check who may have copied it", ErrDataDir, path, fi.Mode().Perm(), path)
		}
	}
	return nil
}

// writeFormat records the data directory's format version if it is not
// recorded yet.
func writeFormat(dir string) error {
	path := filepath.Join(dir, FormatFile)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return writeFileAtomic(path, []byte(formatPrefix+strconv.Itoa(formatVersion)+"\n"), 0o644)
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}
