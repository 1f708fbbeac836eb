package flight

import (
	"fmt"
	"net/http"
	"time"
)

// Request asks an agent for one pod's recorded eBPF CPU profile over [From, To].
// Reason, when set, becomes the profile's trigger reason label.
type Request struct {
	Namespace, Pod string
	From, To       time.Time
	Reason         string
}

// Profile is what an agent answered: a gzipped pprof profile and the window it
// really covers (the recorder's buckets, clipped to what it still held).
type Profile struct {
	Data       []byte
	Start, End time.Time
}

// StatusError is an agent's answer other than 200: its HTTP status and the one
// line of text that says why.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("agent answered %d %s: %s", e.Code, http.StatusText(e.Code), e.Message)
}
