package testenv

import "syscall"

// sysProcAttr puts a helper process in its own process group, so a terminal's ^C reaches only
// `go test` (which then stops it), and kills it when the test binary dies without cleaning up
// (a -timeout panic), so no kwok or metrics-server outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
