package ledger

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// SidecarFile names the copy of the latest signed checkpoint that the
// ledger keeps beside the store, outside it. A store that lost entries —
// a damaged or truncated storage manifest makes Badger open an older or
// empty database without complaint — would otherwise be served as a
// shorter log with a different root. At open, the store must still extend
// the sidecar's checkpoint.
const SidecarFile = "checkpoint"

// writeSidecar keeps signed as the sidecar checkpoint. A failure is logged,
// not fatal: the sidecar only guards against the store's silent loss.
func (l *Ledger) writeSidecar(signed []byte) {
	if l.opts.SidecarPath == "" {
		return
	}
	if err := writeFileAtomic(l.opts.SidecarPath, signed, 0o644); err != nil {
		l.opts.Logger.Warn("keep a copy of the latest checkpoint beside the store", "path", l.opts.SidecarPath, "err", err)
	}
}

// checkSidecar refuses a store that does not extend the sidecar checkpoint.
func (l *Ledger) checkSidecar() error {
	if l.opts.SidecarPath == "" {
		return nil
	}
	raw, err := os.ReadFile(l.opts.SidecarPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: read %s: %v", ErrDataDir, l.opts.SidecarPath, err)
	}
	c, err := l.parseCheckpoint(raw)
	if err != nil {
		return fmt.Errorf("%w: %s: %v — restore the data directory from a backup", ErrDataDir, l.opts.SidecarPath, err)
	}
	if c.Size > l.Size() {
		return fmt.Errorf("%w: the store holds %d entries but a checkpoint of size %d was signed (%s): the store lost entries; restore the data directory from a backup, never serve this log", ErrDataDir, l.Size(), c.Size, l.opts.SidecarPath)
	}
	return l.checkSigned(context.Background(), c)
}
