package flight

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/logging"
)

// Defaults applied by HandlerConfig.SetDefaults.
const (
	// DefaultInterval stands for the collection interval while the recorder
	// has recorded none.
	DefaultInterval = 10 * time.Second
	// DefaultMaxAhead bounds how far in the future `to` may be (the longest
	// CPU profile of a capture is 300 s).
	DefaultMaxAhead = 10 * time.Minute
	// DefaultMaxSpan bounds to − from.
	DefaultMaxSpan = time.Hour
	// DefaultFlushGrace is added to the wait for samples past `to`.
	DefaultFlushGrace = 5 * time.Second
	// maxReason bounds the reason parameter.
	maxReason = 1024
)

// Source is the flight recorder as the handler reads it.
type Source interface {
	// WaitFlushed returns nil once samples up to t are recorded, else the
	// cause of ctx's end or why it never will.
	WaitFlushed(ctx context.Context, t time.Time) error
	// Interval is the recorder's collection interval (0 when unknown yet).
	Interval() time.Duration
	// Profile returns the pod's profile over [from, to] with reason as label.
	// A *StatusError is answered as it says; other errors are 500.
	Profile(namespace, pod string, from, to time.Time, reason string) (Profile, error)
}

// HandlerConfig configures the agent's side.
type HandlerConfig struct {
	// Node is the agent's node, named in messages. Required.
	Node string
	// Source is the recorder; nil answers 503: the recorder is disabled.
	Source Source
	// Token returns the token requests must bear; ErrNoToken (or any error)
	// answers 503. Required (see FileToken).
	Token func() (string, error)
	// Locate returns nil when the pod is on the node, an error wrapping
	// ErrPodNotOnNode when it is not (404), a *StatusError to answer as it
	// says, or another error saying why samples cannot be attributed to pods
	// (503). Required.
	Locate func(namespace, pod string) error
	// Logger; nil discards.
	Logger *slog.Logger
	// DefaultInterval, MaxAhead, MaxSpan, FlushGrace: see the Default…
	// constants of the same names.
	DefaultInterval, MaxAhead, MaxSpan, FlushGrace time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// settings are the optional durations, the logger and the clock, each with its default.
func (c *HandlerConfig) settings() []check.Setting {
	return []check.Setting{
		check.Field("DefaultInterval", &c.DefaultInterval, DefaultInterval),
		check.Field("MaxAhead", &c.MaxAhead, DefaultMaxAhead),
		check.Field("MaxSpan", &c.MaxSpan, DefaultMaxSpan),
		check.Field("FlushGrace", &c.FlushGrace, DefaultFlushGrace),
		logging.Setting(&c.Logger),
		check.Clock(&c.Now),
	}
}

// SetDefaults fills in the zero optional fields.
func (c *HandlerConfig) SetDefaults() { check.SetDefaults(c.settings()...) }

// Validate reports every bad field by name; zero optional fields are valid
// (SetDefaults fills them).
func (c *HandlerConfig) Validate() error {
	var errs []error
	if c.Node == "" {
		errs = append(errs, errors.New("Node: required"))
	}
	if c.Token == nil {
		errs = append(errs, errors.New("Token: required"))
	}
	if c.Locate == nil {
		errs = append(errs, errors.New("Locate: required"))
	}
	return errors.Join(append(errs, check.NotNegatives(c.settings()...))...)
}

type handler struct {
	cfg HandlerConfig
	mux *http.ServeMux
}

// NewHandler fills in cfg's defaults, validates it and returns the handler of
// PathPrefix.
func NewHandler(cfg HandlerConfig) (http.Handler, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("flight handler config: %w", err)
	}
	h := &handler{cfg: cfg, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET "+PathPrefix+"{namespace}/{pod}", h.serve)
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	began := h.cfg.Now()
	ns, pod := r.PathValue("namespace"), r.PathValue("pod")
	log := h.cfg.Logger.With("namespace", ns, "pod", pod, "remote", r.RemoteAddr)
	if code, msg := h.authorize(r); code != 0 {
		fail(w, log, code, msg)
		return
	}
	src := h.cfg.Source
	if src == nil {
		fail(w, log, http.StatusServiceUnavailable, fmt.Sprintf("the flight recorder is disabled on node %s (--recorder-window=0)", h.cfg.Node))
		return
	}
	req, err := h.parse(ns, pod, r.URL.Query())
	if err != nil {
		fail(w, log, http.StatusBadRequest, err.Error())
		return
	}
	if err := h.cfg.Locate(ns, pod); err != nil {
		var se *StatusError
		switch {
		case errors.Is(err, ErrPodNotOnNode):
			fail(w, log, http.StatusNotFound, fmt.Sprintf("pod %s/%s is not on node %s", ns, pod, h.cfg.Node))
		case errors.As(err, &se):
			fail(w, log, se.Code, se.Message)
		default:
			fail(w, log, http.StatusServiceUnavailable, fmt.Sprintf("agent on node %s cannot attribute samples to pods: %v", h.cfg.Node, err))
		}
		return
	}

	interval := src.Interval()
	if interval <= 0 {
		interval = h.cfg.DefaultInterval
	}
	ctx, cancel := context.WithDeadline(r.Context(), req.To.Add(2*interval+h.cfg.FlushGrace))
	err = src.WaitFlushed(ctx, req.To)
	cancel()
	switch {
	case err == nil:
	case r.Context().Err() != nil:
		fail(w, log, http.StatusServiceUnavailable, fmt.Sprintf("request ended while waiting for the samples up to %s: %v",
			req.To.Format(time.RFC3339Nano), context.Cause(r.Context())))
		return
	case errors.Is(err, context.DeadlineExceeded):
		log.Warn("samples past the window's end not recorded in time; answering with what is", "to", req.To, "interval", interval)
	default:
		fail(w, log, http.StatusServiceUnavailable, fmt.Sprintf("flight recorder on node %s: %v", h.cfg.Node, err))
		return
	}

	prof, err := src.Profile(ns, pod, req.From, req.To, req.Reason)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) {
			fail(w, log, se.Code, se.Message)
		} else {
			fail(w, log, http.StatusInternalServerError, fmt.Sprintf("flight recorder on node %s: %v", h.cfg.Node, err))
		}
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", ContentType)
	hd.Set("Content-Length", strconv.Itoa(len(prof.Data)))
	hd.Set(HeaderWindowStart, prof.Start.UTC().Format(time.RFC3339Nano))
	hd.Set(HeaderWindowEnd, prof.End.UTC().Format(time.RFC3339Nano))
	if _, err := w.Write(prof.Data); err != nil {
		log.Info("sending a flight recorder profile failed", "err", err)
		return
	}
	log.Info("served a flight recorder profile", "from", req.From, "to", req.To, "window_start", prof.Start,
		"window_end", prof.End, "bytes", len(prof.Data), "duration", h.cfg.Now().Sub(began))
}

// authorize returns 0 when the request bears the token, else the status and
// message to answer.
func (h *handler) authorize(r *http.Request) (int, string) {
	want, err := h.cfg.Token()
	if err != nil {
		if errors.Is(err, ErrNoToken) {
			return http.StatusServiceUnavailable, err.Error()
		}
		return http.StatusServiceUnavailable, fmt.Sprintf("cannot read the recorder token: %v", err)
	}
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(got) == "" {
		return http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <recorder token>"
	}
	// Hashes of equal length: the comparison's time says nothing of the token.
	g, w := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256([]byte(want))
	if subtle.ConstantTimeCompare(g[:], w[:]) != 1 {
		return http.StatusForbidden, "wrong recorder token"
	}
	return 0, ""
}

// parse checks the request's parameters; the error names the bad one.
func (h *handler) parse(ns, pod string, q url.Values) (Request, error) {
	req := Request{Namespace: ns, Pod: pod, Reason: q.Get("reason")}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return req, fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(pod); len(errs) > 0 {
		return req, fmt.Errorf("pod %q: %s", pod, strings.Join(errs, "; "))
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &req.From}, {"to", &req.To}} {
		v := q.Get(p.name)
		if v == "" {
			return req, fmt.Errorf("%s: required (RFC 3339 time)", p.name)
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return req, fmt.Errorf("%s: %q is not an RFC 3339 time", p.name, v)
		}
		*p.dst = t
	}
	now := h.cfg.Now()
	switch {
	case !req.To.After(req.From):
		return req, fmt.Errorf("to (%s) must be after from (%s)", req.To.Format(time.RFC3339Nano), req.From.Format(time.RFC3339Nano))
	case req.To.Sub(req.From) > h.cfg.MaxSpan:
		return req, fmt.Errorf("to − from is %s, more than the %s allowed", req.To.Sub(req.From), h.cfg.MaxSpan)
	case req.To.After(now.Add(h.cfg.MaxAhead)):
		return req, fmt.Errorf("to (%s) is more than %s ahead of the agent's clock (%s)", req.To.Format(time.RFC3339Nano), h.cfg.MaxAhead, now.Format(time.RFC3339Nano))
	case len(req.Reason) > maxReason || !utf8.ValidString(req.Reason) || strings.ContainsAny(req.Reason, "\r\n"):
		return req, fmt.Errorf("reason: at most %d bytes of UTF-8 on one line", maxReason)
	}
	return req, nil
}

// fail answers code with msg as one line of text.
func fail(w http.ResponseWriter, log *slog.Logger, code int, msg string) {
	msg = strings.Join(strings.Fields(strings.ToValidUTF8(msg, "?")), " ")
	level := slog.LevelInfo
	switch {
	case code >= 500:
		level = slog.LevelError
		if code == http.StatusServiceUnavailable {
			level = slog.LevelWarn
		}
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		level = slog.LevelWarn
	}
	log.Log(context.Background(), level, "flight recorder request refused", "status", code, "reason", msg)
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, msg, code)
}
