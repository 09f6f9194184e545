package trilliantest

import "syscall"

// sysProcAttr puts a child in its own process group (so that stopping it
// stops everything it started) and has the kernel kill it when the test
// binary dies without running its cleanups (a panic, a timeout, kill -9).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
