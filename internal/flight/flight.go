// Package flight is the wire protocol of the agent's flight recorder: the
// agent serves
//
//	GET /flight/v1/pods/{namespace}/{pod}?from=<RFC3339Nano>&to=<RFC3339Nano>[&reason=...]
//	Authorization: Bearer <token>
//
// and answers, once its recorder has samples flushed past `to` (waiting at most
// until to + 2 × collection interval + 5 s), 200 with a gzipped pprof profile
// (Content-Type ContentType) of the pod's CPU samples, and the window it really
// covers in the headers HeaderWindowStart and HeaderWindowEnd (RFC3339Nano).
// Any other answer is text/plain, one line that says why: 400 bad parameters,
// 401 no bearer token, 403 wrong token, 404 a pod not on the agent's node (or
// a window the recorder holds nothing of), 503 when the agent cannot answer (no
// token configured, recorder disabled, samples not attributable to pods). A pod
// on the node that used no CPU gets 200 with an empty profile.
//
// The operator calls it with Client.Fetch; the agent serves it with NewHandler.
package flight

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Protocol constants.
const (
	// PathPrefix is followed by {namespace}/{pod}.
	PathPrefix = "/flight/v1/pods/"
	// ContentType is the type of a 200 answer: gzipped pprof.
	ContentType = "application/vnd.google.protobuf+gzip"
	// HeaderWindowStart and HeaderWindowEnd say what the profile covers.
	HeaderWindowStart = "Kprof-Window-Start"
	HeaderWindowEnd   = "Kprof-Window-End"
	// DefaultMaxBytes bounds the profile a Client reads.
	DefaultMaxBytes = 64 << 20
)

// maxTokenBytes bounds a token file.
const maxTokenBytes = 4 << 10

var (
	// ErrPodNotOnNode is what HandlerConfig.Locate returns for a pod that is not
	// on the agent's node: 404.
	ErrPodNotOnNode = errors.New("pod is not on this node")
	// ErrNoToken means no token is configured: every request is refused (503).
	ErrNoToken = errors.New("no recorder token configured")
)

// FileToken returns a token source that reads the token from path (surrounding
// white space trimmed) on every call, so that a rotated Secret applies at once.
// A missing or empty file (or an empty path) is ErrNoToken.
func FileToken(path string) func() (string, error) {
	return func() (string, error) {
		if path == "" {
			return "", ErrNoToken
		}
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%w: %s does not exist", ErrNoToken, path)
		}
		if err != nil {
			return "", fmt.Errorf("open token file: %w", err)
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, maxTokenBytes+1))
		if err != nil {
			return "", fmt.Errorf("read token file: %w", err)
		}
		if len(data) > maxTokenBytes {
			return "", fmt.Errorf("token file %s is larger than 4 KiB", path)
		}
		tok := strings.TrimSpace(string(data))
		if tok == "" {
			return "", fmt.Errorf("%w: %s is empty", ErrNoToken, path)
		}
		return tok, nil
	}
}
