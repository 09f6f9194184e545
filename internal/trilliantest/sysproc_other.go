//go:build unix && !linux

package trilliantest

import "syscall"

// sysProcAttr puts a child in its own process group, so that stopping it
// stops everything it started.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
