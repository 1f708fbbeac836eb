package operator

import (
	"net/http"
	"net/http/pprof"
)

// PprofPath is where PprofHandlers serve, on the operator's metrics port.
const PprofPath = "/debug/pprof/"

// PprofHandlers returns net/http/pprof's handlers by path, for the metrics server's
// ExtraHandlers (--enable-pprof): the operator's own CPU, heap, goroutine, mutex and
// block profiles, for looking at it at scale. Off by default: a profile shows code
// paths and memory contents, so it belongs behind the metrics port's protection.
func PprofHandlers() map[string]http.Handler {
	return map[string]http.Handler{
		PprofPath:             http.HandlerFunc(pprof.Index), // and every named profile: heap, goroutine, allocs, ...
		PprofPath + "cmdline": http.HandlerFunc(pprof.Cmdline),
		PprofPath + "profile": http.HandlerFunc(pprof.Profile),
		PprofPath + "symbol":  http.HandlerFunc(pprof.Symbol),
		PprofPath + "trace":   http.HandlerFunc(pprof.Trace),
	}
}
