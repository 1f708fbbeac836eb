//go:build linux

package collector

import "syscall"

var interrupt = syscall.SIGINT
