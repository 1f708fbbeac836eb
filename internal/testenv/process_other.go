//go:build !linux

package testenv

import "syscall"

// sysProcAttr puts a helper process in its own process group (no parent-death signal here).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
