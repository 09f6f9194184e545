package ledger

import (
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Disk-space watermarks. Badger writes its memtable log and value log
// through mmap: on a full file system the page fault kills the process with
// SIGBUS, which no Go code can recover from. So the ledger watches the free
// space of the data directory's file system and refuses appends while it is
// below a reserve that covers what Badger may write before the next check —
// a memtable (64 MiB), its flush to a level-0 table, and compaction
// headroom — and accepts them again once the free space is back above the
// reserve plus a hysteresis. Reads, proofs and evidence keep working.
const (
	// DefaultDiskReserve is the free space below which appends are refused
	// when Options.DiskReserve is 0.
	DefaultDiskReserve = 256 << 20
	// spaceCheckInterval is how often the free space is read while the
	// ledger is idle; it is also read after every commit.
	spaceCheckInterval = 250 * time.Millisecond
)

// FreeSpace returns the bytes available to an unprivileged user on the file
// system that holds dir (statfs).
func FreeSpace(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("read free space of %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// SpaceState is the ledger's view of its disk space.
type SpaceState struct {
	Dir     string // the directory whose file system is watched
	Free    uint64 // free bytes at the last check
	Reserve uint64 // appends are refused below this
	Low     bool   // appends are refused now
}

// spaceGuard holds the watermark state; the zero value watches nothing.
type spaceGuard struct {
	dir       string
	reserve   uint64
	resume    uint64 // reserve plus hysteresis
	freeSpace func(string) (uint64, error)
	free      atomic.Uint64
	low       atomic.Bool
	lastErr   atomic.Pointer[error]
}

func (g *spaceGuard) enabled() bool { return g.freeSpace != nil }

func (l *Ledger) initSpace() {
	o := l.opts
	if o.DiskReserve < 0 || o.SpaceDir == "" {
		return
	}
	g := &l.space
	g.dir, g.reserve, g.freeSpace = o.SpaceDir, uint64(o.DiskReserve), o.FreeSpace
	if g.reserve == 0 {
		g.reserve = DefaultDiskReserve
	}
	if g.freeSpace == nil {
		g.freeSpace = FreeSpace
	}
	g.resume = g.reserve + max(g.reserve/8, 8<<20)
	l.checkSpace()
}

// checkSpace reads the free space and moves between accepting and refusing
// appends at the watermarks.
func (l *Ledger) checkSpace() {
	g := &l.space
	if !g.enabled() {
		return
	}
	free, err := g.freeSpace(g.dir)
	if err != nil {
		// Unknown free space: keep the last state, and say so once.
		if prev := g.lastErr.Swap(&err); prev == nil {
			l.opts.Logger.Warn("cannot read the data directory's free space", "dir", g.dir, "err", err)
		}
		return
	}
	g.lastErr.Store(nil)
	g.free.Store(free)
	switch low := g.low.Load(); {
	case !low && free < g.reserve:
		g.low.Store(true)
		l.opts.Logger.Error("disk space low: refusing appends until space is freed",
			"dir", g.dir, "free_bytes", free, "reserve_bytes", g.reserve, "resume_above_bytes", g.resume)
	case low && free >= g.resume:
		g.low.Store(false)
		l.opts.Logger.Info("disk space recovered: accepting appends again", "dir", g.dir, "free_bytes", free)
	}
}

// spaceErr returns the error an append gets while the disk is low.
func (l *Ledger) spaceErr() error {
	g := &l.space
	if !g.low.Load() {
		return nil
	}
	return fmt.Errorf("%w: the file system of the data directory %s has %s free, below the reserve of %s; free space there (appends resume above %s) — reads, proofs and evidence keep working",
		ErrNoSpace, g.dir, mib(g.free.Load()), mib(g.reserve), mib(g.resume))
}

// Space reports the disk-space watermark state.
func (l *Ledger) Space() SpaceState {
	g := &l.space
	return SpaceState{Dir: g.dir, Free: g.free.Load(), Reserve: g.reserve, Low: g.low.Load()}
}

// spaceLoop re-reads the free space while the ledger runs, so that appends
// resume by themselves once space is freed.
func (l *Ledger) spaceLoop() {
	defer l.bg.Done()
	t := time.NewTicker(spaceCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stopBg:
			return
		case <-t.C:
			l.checkSpace()
		}
	}
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
