package ui

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/pprof/driver"
	"github.com/google/pprof/profile"
)

// pprofMu serializes driver.PProf: it keeps its settings in package variables.
var pprofMu sync.Mutex

// readOnlyViews are pprof's handlers that write files (saved configurations); kprof
// ui is read-only, so they answer 403.
var readOnlyViews = map[string]string{
	"/saveconfig":   "kprof ui is read-only: pprof configurations cannot be saved here",
	"/deleteconfig": "kprof ui is read-only: pprof configurations cannot be deleted here",
}

// localFileViews are pprof's handlers that read the files a profile names (source
// files, binaries) from the local disk.
var localFileViews = map[string]string{
	"/source": "the source view reads files named by the profile from this machine's disk; kprof ui serves it only on loopback (or with --local-files)",
	"/disasm": "the disassembly view reads binaries named by the profile from this machine's disk; kprof ui serves it only on loopback (or with --local-files)",
}

// pprofHandlers runs google/pprof's web UI over p and returns its handlers, keyed by
// path ("/", "/flamegraph", "/top", "/source", ...). Every link they render is
// relative ("./top", "?si=..."), so they work under any prefix ending in "/".
func pprofHandlers(name string, p *profile.Profile, localFiles bool) (map[string]http.Handler, error) {
	pprofMu.Lock()
	defer pprofMu.Unlock()
	var handlers map[string]http.Handler
	fs := &flags{fs: flag.NewFlagSet("pprof", flag.ContinueOnError), args: []string{"-http=127.0.0.1:0", "-no_browser", name}}
	fs.fs.SetOutput(io.Discard)
	err := driver.PProf(&driver.Options{
		Flagset: fs,
		Fetch:   fetcher{p},
		Sym:     noSymbolizer{},
		UI:      quietUI{},
		HTTPServer: func(args *driver.HTTPServerArgs) error {
			handlers = args.Handlers
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("pprof web UI for %s: %w", name, err)
	}
	if handlers == nil {
		return nil, fmt.Errorf("pprof web UI for %s: pprof did not start its web interface", name)
	}
	refuse := func(views map[string]string) {
		for path, why := range views {
			handlers[path] = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, why, http.StatusForbidden)
			})
		}
	}
	refuse(readOnlyViews)
	if !localFiles {
		refuse(localFileViews)
	}
	return handlers, nil
}

// flags is the FlagSet pprof parses: a fixed argument list, never os.Args.
type flags struct {
	fs    *flag.FlagSet
	args  []string
	usage []string
}

func (f *flags) Bool(n string, d bool, u string) *bool          { return f.fs.Bool(n, d, u) }
func (f *flags) Int(n string, d int, u string) *int             { return f.fs.Int(n, d, u) }
func (f *flags) Float64(n string, d float64, u string) *float64 { return f.fs.Float64(n, d, u) }
func (f *flags) String(n, d, u string) *string                  { return f.fs.String(n, d, u) }
func (f *flags) StringList(n, d, u string) *[]*string           { return &[]*string{f.fs.String(n, d, u)} }
func (f *flags) ExtraUsage() string                             { return strings.Join(f.usage, "\n") }
func (f *flags) AddExtraUsage(eu string)                        { f.usage = append(f.usage, eu) }
func (f *flags) Parse(usage func()) []string {
	if err := f.fs.Parse(f.args); err != nil {
		usage()
		return nil
	}
	return f.fs.Args()
}

// fetcher hands pprof the profile kprof already read and checked.
type fetcher struct{ p *profile.Profile }

func (f fetcher) Fetch(string, time.Duration, time.Duration) (*profile.Profile, string, error) {
	if f.p == nil {
		return nil, "", errors.New("no profile")
	}
	return f.p.Copy(), "", nil
}

// noSymbolizer leaves profiles as stored: kprof symbolizes when it captures, and the
// UI must not reach out to binaries or URLs named in a profile.
type noSymbolizer struct{}

func (noSymbolizer) Symbolize(string, driver.MappingSources, *profile.Profile) error { return nil }

// quietUI drops pprof's console messages and never opens a browser.
type quietUI struct{}

func (quietUI) ReadLine(string) (string, error)     { return "", io.EOF }
func (quietUI) Print(...interface{})                {}
func (quietUI) PrintErr(...interface{})             {}
func (quietUI) IsTerminal() bool                    { return false }
func (quietUI) WantBrowser() bool                   { return false }
func (quietUI) SetAutoComplete(func(string) string) {}
