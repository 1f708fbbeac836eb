// Package ui serves kprof's web UI over a profile index (internal/index): a list of
// the stored profiles with the CLI's filters, a per-service timeline of captures with
// threshold triggers marked, and each profile in google/pprof's own web UI (flame
// graph, top, graph, source), embedded through its driver package. It only reads.
package ui

import (
	"container/list"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/index"
	"github.com/kprof/kprof/internal/logging"
	"github.com/kprof/kprof/internal/profdiff"
)

// Defaults of Config.
const (
	DefaultMaxProfileBytes  int64 = 64 << 20
	DefaultCachedProfiles         = 8
	DefaultMaxMergeProfiles       = 1000
	// concurrentMerges bounds the merges (and diffs) made at once: each holds a merged
	// profile in memory while it is made.
	concurrentMerges = 2
)

// ProfilePrefix is where a profile's pprof views live: /profile/ID/-/VIEW.
const ProfilePrefix = "/profile/"

// viewSep ends a profile ID in a profile URL ("-" names no pprof view, and pprof's
// view names hold no "/").
const viewSep = "/-/"

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"profileURL": ProfileURL,
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"size":    index.FormatSize,
	"diffURL": DiffURL,
}).ParseFS(templateFS, "templates/*.html"))

// Config configures New.
type Config struct {
	// Index lists and opens the profiles. Required.
	Index index.Index
	// Logger logs failed requests. Nil discards.
	Logger *slog.Logger
	// MaxProfileBytes bounds a profile opened for viewing. Default 64 MiB.
	MaxProfileBytes int64
	// CachedProfiles is how many opened profiles (or merges, or diffs) stay in memory. Default 8.
	CachedProfiles int
	// MaxMergeProfiles is the most profiles one merge or diff view reads (each at most
	// MaxProfileBytes; profdiff's defaults bound the samples and total bytes). Default 1000.
	MaxMergeProfiles int
	// LocalFiles lets pprof's source and disassembly views read the source files and
	// binaries that a profile names from this machine's disk, as go tool pprof -http
	// does. Off, those views answer 403: a profile can name any path, so a UI that
	// others reach must not read the files of the machine it runs on.
	LocalFiles bool
	// Now is the clock for ?since= (default time.Now).
	Now func() time.Time
}

// settings are the optional bounds, the logger and the clock, each with its default.
func (c *Config) settings() []check.Setting {
	return []check.Setting{
		check.Field("MaxProfileBytes", &c.MaxProfileBytes, DefaultMaxProfileBytes),
		check.Field("CachedProfiles", &c.CachedProfiles, DefaultCachedProfiles),
		check.Field("MaxMergeProfiles", &c.MaxMergeProfiles, DefaultMaxMergeProfiles),
		logging.Setting(&c.Logger),
		check.Clock(&c.Now),
	}
}

// SetDefaults fills in the zero fields.
func (c *Config) SetDefaults() { check.SetDefaults(c.settings()...) }

// Validate reports every bad field by name.
func (c Config) Validate() error {
	var errs []error
	if c.Index == nil {
		errs = append(errs, errors.New("Index: required"))
	}
	return errors.Join(append(errs, check.NotNegatives(c.settings()...))...)
}

// UI is the web UI's http.Handler.
type UI struct {
	cfg Config
	mux *http.ServeMux

	merges chan struct{} // a slot per merge under way

	mu     sync.Mutex
	cache  map[string]*list.Element // of *viewer, most recent first in lru
	lru    *list.List
	opened map[string]*sync.Mutex // one open at a time per key
}

// viewer is the pprof handlers of one profile, merge or diff.
type viewer struct {
	key      string
	handlers map[string]http.Handler
	diff     *diffSummary // of a diff
}

// New returns the UI over cfg.Index.
func New(cfg Config) (*UI, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ui: %w", err)
	}
	u := &UI{cfg: cfg, mux: http.NewServeMux(), cache: map[string]*list.Element{}, lru: list.New(), opened: map[string]*sync.Mutex{},
		merges: make(chan struct{}, concurrentMerges)}
	u.mux.HandleFunc("GET /{$}", u.list)
	u.mux.HandleFunc("GET "+ProfilePrefix+"{rest...}", u.profile)
	u.mux.HandleFunc("GET "+MergePrefix+"{$}", u.mergeStart)
	u.mux.HandleFunc("GET "+MergePrefix+"{sel}/-/{view...}", u.merge)
	u.mux.HandleFunc("GET "+DiffPrefix+"{rest...}", u.diff)
	u.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return u, nil
}

// ServeHTTP serves the UI, with headers that keep its pages from being framed.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	u.mux.ServeHTTP(w, r)
}

// ProfileURL is the path of the flame graph of the profile id.
func ProfileURL(id string) string {
	return ProfilePrefix + (&url.URL{Path: id}).EscapedPath() + viewSep + "flamegraph"
}

// profile serves /profile/ID/-/VIEW with pprof's handler of VIEW over the profile ID.
func (u *UI) profile(w http.ResponseWriter, r *http.Request) {
	rest := r.PathValue("rest")
	i := strings.LastIndex("/"+rest, viewSep)
	if i < 0 {
		u.errorPage(w, r, http.StatusNotFound, fmt.Errorf("no profile view in %q: want %sID%sflamegraph", r.URL.Path, ProfilePrefix, viewSep))
		return
	}
	id, view := rest[:max(i-1, 0)], "/"+("/" + rest)[i+len(viewSep):]
	if err := index.CheckID(id); err != nil {
		u.errorPage(w, r, http.StatusBadRequest, err)
		return
	}
	v, err := u.viewer(r.Context(), "profile:"+id, func(ctx context.Context) (*viewer, error) { return u.open(ctx, id) })
	if err != nil {
		u.errorPage(w, r, statusOf(err), err)
		return
	}
	u.servePprof(w, r, v, view)
}

// servePprof serves pprof's view (its handler's path, "/flamegraph") of v.
func (u *UI) servePprof(w http.ResponseWriter, r *http.Request, v *viewer, view string) {
	h, ok := v.handlers[view]
	if !ok {
		u.errorPage(w, r, http.StatusNotFound, fmt.Errorf("pprof has no view %q", strings.TrimPrefix(view, "/")))
		return
	}
	h.ServeHTTP(w, r)
}

// statusOf maps an error of opening, merging or diffing profiles to an HTTP status.
func statusOf(err error) int {
	var le *profdiff.LimitError
	var mt *profdiff.MixedTypesError
	switch {
	case errors.As(err, &le):
		return http.StatusRequestEntityTooLarge
	case errors.As(err, &mt), errors.Is(err, profdiff.ErrNotThreshold), errors.Is(err, errBadQuery):
		return http.StatusBadRequest
	case errors.Is(err, profdiff.ErrNoMatch), errors.Is(err, profdiff.ErrNoBase):
		return http.StatusNotFound
	case errors.Is(err, profdiff.ErrIncompatible):
		return http.StatusUnprocessableEntity
	case errors.Is(err, index.ErrBadID):
		return http.StatusBadRequest
	case errors.Is(err, index.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, index.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, index.ErrEmpty), errors.Is(err, index.ErrCorrupt):
		return http.StatusUnprocessableEntity
	}
	return http.StatusBadGateway
}

// viewer returns the viewer of key (profile:ID, merge:QUERY, diff:ID), from the cache
// or made now by open, one open at a time per key.
func (u *UI) viewer(ctx context.Context, key string, open func(context.Context) (*viewer, error)) (*viewer, error) {
	u.mu.Lock()
	if el, ok := u.cache[key]; ok {
		u.lru.MoveToFront(el)
		u.mu.Unlock()
		return el.Value.(*viewer), nil
	}
	m, ok := u.opened[key]
	if !ok {
		m = &sync.Mutex{}
		u.opened[key] = m
	}
	u.mu.Unlock()

	m.Lock()
	defer m.Unlock()
	u.mu.Lock()
	if el, ok := u.cache[key]; ok { // opened while this request waited
		u.mu.Unlock()
		return el.Value.(*viewer), nil
	}
	u.mu.Unlock()

	v, err := open(ctx)

	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.opened, key)
	if err != nil {
		return nil, err
	}
	v.key = key
	u.cache[key] = u.lru.PushFront(v)
	for u.lru.Len() > u.cfg.CachedProfiles {
		old := u.lru.Remove(u.lru.Back()).(*viewer)
		delete(u.cache, old.key)
	}
	return v, nil
}

// open reads, parses and hands the profile id to pprof.
func (u *UI) open(ctx context.Context, id string) (*viewer, error) {
	data, err := u.cfg.Index.Open(ctx, id, u.cfg.MaxProfileBytes)
	if err != nil {
		return nil, err
	}
	p, err := profile.ParseData(data)
	if err != nil {
		return nil, fmt.Errorf("profile %q: %w: %v", id, index.ErrCorrupt, err)
	}
	h, err := pprofHandlers(id, p, u.cfg.LocalFiles)
	if err != nil {
		return nil, err
	}
	return &viewer{handlers: h}, nil
}

type errorData struct {
	Status int
	Title  string
	Err    string
}

// errorPage shows err on kprof's error page.
func (u *UI) errorPage(w http.ResponseWriter, r *http.Request, status int, err error) {
	u.cfg.Logger.Info("ui request failed", "path", r.URL.Path, "status", status, "err", err)
	u.render(w, status, "error.html", errorData{Status: status, Title: http.StatusText(status), Err: err.Error()})
}

// render executes the template name into w with status.
func (u *UI) render(w http.ResponseWriter, status int, name string, data any) {
	var b strings.Builder
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		u.cfg.Logger.Error("ui template failed", "template", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// kprof's own pages run no script at all; pprof's pages (served by pprof's
	// handlers) carry their own inline scripts and do not get this header.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}
