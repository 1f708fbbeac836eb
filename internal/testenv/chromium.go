package testenv

import (
	"fmt"
	"os"
	"os/exec"
)

// ChromiumPath returns the Chromium (or Chrome) binary the browser tests drive:
// $KPROF_CHROMIUM, else chromium, chromium-browser or google-chrome on PATH. The
// error says how to install it (hack/install-chromium.sh, part of make tools).
func ChromiumPath() (string, error) {
	if p := os.Getenv("KPROF_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("KPROF_CHROMIUM=%s: %w", p, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("chromium not found on PATH (install it with hack/install-chromium.sh or `make tools`, or set KPROF_CHROMIUM)")
}
