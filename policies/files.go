package policies

import (
	"cmp"
	"crypto/sha256"
	"embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Limits on a policy set, enforced by [LoadDir] and [Compile].
const (
	// MaxFileSize is the largest policy file accepted, in bytes.
	MaxFileSize = 1 << 20
	// MaxFiles is the largest number of files in a policy set.
	MaxFiles = 256
)

// DataFile is the name of the set's data document.
const DataFile = "data.json"

// File is one file of a policy set: a Rego module (*.rego, tests are
// *_test.rego) or the data document data.json. Name is a base name without
// directories.
type File struct {
	Name    string
	Content string
}

//go:embed *.rego data.json
var defaultFS embed.FS

// Default returns the policy set shipped with the ledger, tests included,
// sorted by name. The caller may modify the returned slice.
func Default() []File {
	entries, err := defaultFS.ReadDir(".")
	if err != nil {
		panic(fmt.Sprintf("policies: embedded set: %v", err))
	}
	files := make([]File, 0, len(entries))
	for _, e := range entries {
		b, err := defaultFS.ReadFile(e.Name())
		if err != nil {
			panic(fmt.Sprintf("policies: embedded set: %v", err))
		}
		files = append(files, File{Name: e.Name(), Content: string(b)})
	}
	sortFiles(files)
	return files
}

// IsPolicyFile reports whether a base name belongs in a policy set: a
// *.rego file or data.json.
func IsPolicyFile(name string) bool {
	return name == DataFile || (strings.HasSuffix(name, ".rego") && len(name) > len(".rego"))
}

// LoadDir reads the policy set in dir: every *.rego file and data.json
// directly in dir (subdirectories are not read), sorted by name. Other files,
// such as README.md, are ignored. It fails if dir holds no .rego file, more
// than [MaxFiles] policy files, or a file larger than [MaxFileSize].
func LoadDir(dir string) ([]File, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("policies: load: %w", err)
	}
	var files []File
	for _, e := range entries {
		if !IsPolicyFile(e.Name()) {
			continue
		}
		if e.IsDir() {
			continue
		}
		if len(files) == MaxFiles {
			return nil, fmt.Errorf("policies: load %s: more than %d policy files", dir, MaxFiles)
		}
		content, err := readLimited(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("policies: load: %w", err)
		}
		files = append(files, File{Name: e.Name(), Content: content})
	}
	if !slices.ContainsFunc(files, func(f File) bool { return f.Name != DataFile }) {
		return nil, fmt.Errorf("policies: load %s: no .rego files", dir)
	}
	sortFiles(files)
	return files, nil
}

func readLimited(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return "", err
	}
	if len(b) > MaxFileSize {
		return "", fmt.Errorf("%s: larger than %d bytes", path, MaxFileSize)
	}
	return string(b), nil
}

// ErrInvalidFiles is wrapped by errors about the shape of a file list (names,
// sizes, duplicates), as opposed to its content.
var ErrInvalidFiles = errors.New("invalid policy files")

// checkFiles returns a sorted copy of files after checking names and limits.
func checkFiles(files []File) ([]File, error) {
	if len(files) > MaxFiles {
		return nil, fmt.Errorf("policies: %w: got %d files, want at most %d", ErrInvalidFiles, len(files), MaxFiles)
	}
	out := slices.Clone(files)
	sortFiles(out)
	rego := 0
	for i, f := range out {
		switch {
		case !fs.ValidPath(f.Name) || strings.ContainsAny(f.Name, `/\`) || !IsPolicyFile(f.Name):
			return nil, fmt.Errorf("policies: %w: file name %q: want a base name ending in .rego, or %s", ErrInvalidFiles, f.Name, DataFile)
		case len(f.Content) > MaxFileSize:
			return nil, fmt.Errorf("policies: %w: %s: %d bytes, want at most %d", ErrInvalidFiles, f.Name, len(f.Content), MaxFileSize)
		case i > 0 && out[i-1].Name == f.Name:
			return nil, fmt.Errorf("policies: %w: duplicate file %s", ErrInvalidFiles, f.Name)
		}
		if f.Name != DataFile {
			rego++
		}
	}
	if rego == 0 {
		return nil, fmt.Errorf("policies: %w: no .rego files", ErrInvalidFiles)
	}
	return out, nil
}

func sortFiles(files []File) {
	slices.SortFunc(files, func(a, b File) int { return cmp.Compare(a.Name, b.Name) })
}

// Digest returns the digest that names a policy set: "sha256:" followed by
// the lower-case hex SHA-256 of the files sorted by name (byte order), each
// encoded as
//
//	uvarint(len(name)) || name || uvarint(len(content)) || content
//
// where uvarint is the unsigned LEB128 varint of encoding/binary and lengths
// are in bytes. The order of files does not matter; every byte of every file
// does. Verifiers recompute it from the files of a PolicyPublished entry.
func Digest(files []File) string {
	sorted := slices.Clone(files)
	sortFiles(sorted)
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, f := range sorted {
		h.Write(binary.AppendUvarint(n[:0], uint64(len(f.Name))))
		io.WriteString(h, f.Name)
		h.Write(binary.AppendUvarint(n[:0], uint64(len(f.Content))))
		io.WriteString(h, f.Content)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
