//go:build !linux

package perfdata

import "runtime"

func uname() (release, machine string) { return "", runtime.GOARCH }

func kernelText() uint64    { return 0 }
func kernelBuildID() []byte { return nil }
