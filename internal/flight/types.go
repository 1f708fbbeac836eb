// Package flight is the wire protocol of the node agent's flight recorder: the
// operator asks an agent for one pod's eBPF CPU profile over a time window.
package flight

import (
	"fmt"
	"time"
)

// Request asks for the eBPF CPU profile of one pod over [From, To].
type Request struct {
	Namespace, Pod string
	From, To       time.Time
	// Reason is put into the profile's labels (the trigger reason), when given.
	Reason string
}

// Profile is what an agent answered: a gzipped pprof profile and the window it
// really covers.
type Profile struct {
	Data       []byte
	Start, End time.Time
}

// StatusError is an agent's non-200 answer: its status and its one-line message.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("flight recorder answered HTTP %d: %s", e.Code, e.Message)
}
