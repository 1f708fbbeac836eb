package local

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/logging"
)

const (
	progressBarWidth = 20
	// DefaultTerminalRefresh is how often a terminal progress bar is redrawn.
	DefaultTerminalRefresh = 500 * time.Millisecond
	// DefaultLogEvery is how often a progress line is logged when stderr is not a terminal.
	DefaultLogEvery = 5 * time.Second
	// waitingSlack is how late a profile may be before the bar says it is waited for.
	waitingSlack = time.Second
)

// ProgressConfig configures a progress display of a recording of known length
// (a CPU profile).
type ProgressConfig struct {
	// Label names what is recorded, e.g. "cpu".
	Label string
	// Total is the expected recording time. Required.
	Total time.Duration
	// Terminal draws a bar redrawn in place on Out; otherwise progress is logged to Logger.
	Terminal bool
	// Out receives the bar when Terminal. Required when Terminal.
	Out io.Writer
	// Logger receives progress lines when not Terminal.
	Logger *slog.Logger
	// Every is the redraw or log interval: DefaultTerminalRefresh or DefaultLogEvery when zero.
	Every time.Duration

	// ticks and now replace the clock in tests.
	ticks <-chan time.Time
	now   func() time.Time
}

// SetDefaults fills in Every (by Terminal) and the clock.
func (c *ProgressConfig) SetDefaults() {
	c.Logger = logging.OrDiscard(c.Logger)
	if c.Every == 0 {
		c.Every = DefaultLogEvery
		if c.Terminal {
			c.Every = DefaultTerminalRefresh
		}
	}
	if c.now == nil {
		c.now = time.Now
	}
}

// Validate reports a bad field; a zero Every is valid (SetDefaults fills it).
func (c *ProgressConfig) Validate() error {
	if c.Total <= 0 {
		return fmt.Errorf("progress config: Total must be positive, got %s", c.Total)
	}
	if c.Terminal && c.Out == nil {
		return fmt.Errorf("progress config: Out is required with Terminal")
	}
	if c.Every < 0 {
		return fmt.Errorf("progress config: Every must not be negative, got %s", c.Every)
	}
	return nil
}

// Progress shows how far a recording has got until Stop is called.
type Progress struct {
	cfg      ProgressConfig
	start    time.Time
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// StartProgress starts displaying progress in a goroutine that Stop ends.
func StartProgress(cfg ProgressConfig) (*Progress, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Progress{cfg: cfg, start: cfg.now(), stop: make(chan struct{}), done: make(chan struct{})}
	if cfg.Terminal {
		p.draw(0)
	}
	go p.loop()
	return p, nil
}

func (p *Progress) loop() {
	defer close(p.done)
	ticks := p.cfg.ticks
	if ticks == nil {
		t := time.NewTicker(p.cfg.Every)
		defer t.Stop()
		ticks = t.C
	}
	for {
		select {
		case <-p.stop:
			return
		case now := <-ticks:
			elapsed := now.Sub(p.start)
			if p.cfg.Terminal {
				p.draw(elapsed)
			} else {
				p.cfg.Logger.Info("recording profile", "type", p.cfg.Label,
					"elapsed", elapsed.Round(time.Second).String(), "total", p.cfg.Total.String())
			}
		}
	}
}

func (p *Progress) draw(elapsed time.Duration) {
	// \r returns to the line start, ESC[K clears what a longer previous line left.
	_, _ = fmt.Fprintf(p.cfg.Out, "\r%s\x1b[K", RenderBar(p.cfg.Label, elapsed, p.cfg.Total, progressBarWidth))
}

// Stop ends the display; with a terminal it draws the final state (the recording is
// over, so at most the full bar) and ends the line. It is idempotent.
func (p *Progress) Stop() {
	p.stopOnce.Do(func() {
		close(p.stop)
		<-p.done
		if p.cfg.Terminal {
			p.draw(min(p.cfg.now().Sub(p.start), p.cfg.Total))
			_, _ = fmt.Fprintln(p.cfg.Out)
		}
	})
}

// RenderBar renders `cpu [#########.........] 12s/30s`. Elapsed time more than a
// second past total shows a full bar and "waiting" (the target is late to send the profile).
func RenderBar(label string, elapsed, total time.Duration, width int) string {
	elapsed = max(elapsed, 0)
	filled := width
	if elapsed < total {
		filled = int(int64(width) * int64(elapsed) / int64(total))
	}
	suffix := ""
	if elapsed > total+waitingSlack {
		suffix = " waiting for the target"
	}
	elapsed = min(elapsed, total)
	return fmt.Sprintf("%s %s %s/%s%s", label, cells(filled, width),
		elapsed.Truncate(time.Second), total.Truncate(time.Second), suffix)
}

// cells renders `[#####.....]` with filled of width cells filled.
func cells(filled, width int) string {
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "]"
}

// RenderCountBar renders `merge [#########...........] 12/27 profiles`, the bar of
// work counted in items rather than time.
func RenderCountBar(label string, done, total int, unit string, width int) string {
	done = max(done, 0)
	filled := width
	if total > 0 && done < total {
		filled = width * done / total
	}
	return fmt.Sprintf("%s %s %d/%d %s", label, cells(filled, width), done, total, unit)
}

// CountProgress shows how many of a known number of items are done: a bar redrawn
// in place on a terminal (at most every DefaultTerminalRefresh), else a log line at
// most every DefaultLogEvery. It draws from the caller's goroutine only.
type CountProgress struct {
	label, unit string
	total       int
	terminal    bool
	out         io.Writer
	log         *slog.Logger
	every       time.Duration
	now         func() time.Time
	last        time.Time
	done        int
}

// NewCountProgress starts a count display of total items (out is required with terminal).
func NewCountProgress(label, unit string, total int, terminal bool, out io.Writer, log *slog.Logger) *CountProgress {
	c := &CountProgress{label: label, unit: unit, total: total, terminal: terminal && out != nil, out: out,
		log: logging.OrDiscard(log), every: DefaultLogEvery, now: time.Now}
	if c.terminal {
		c.every = DefaultTerminalRefresh
		c.draw()
	}
	c.last = c.now()
	return c
}

// Set records that done items are done, redrawing or logging when the interval has passed.
func (c *CountProgress) Set(done int) {
	c.done = done
	if now := c.now(); now.Sub(c.last) >= c.every {
		c.last = now
		if c.terminal {
			c.draw()
		} else {
			c.log.Info("progress", "task", c.label, "done", done, "total", c.total, "unit", c.unit)
		}
	}
}

// Stop draws the final state and ends the line on a terminal.
func (c *CountProgress) Stop() {
	if c.terminal {
		c.draw()
		_, _ = fmt.Fprintln(c.out)
	}
}

func (c *CountProgress) draw() {
	_, _ = fmt.Fprintf(c.out, "\r%s\x1b[K", RenderCountBar(c.label, c.done, c.total, c.unit, progressBarWidth))
}

// cpuProgressConfig configures a cpuProgress.
type cpuProgressConfig struct {
	// Types are the profile types of a round, in capture order.
	Types []capture.ProfileType
	// Targets is how many targets the round captures (concurrently).
	Targets     int
	CPUDuration time.Duration
	// Terminal, Out and Logger are as in ProgressConfig.
	Terminal bool
	Out      io.Writer
	Logger   *slog.Logger
}

// cpuProgress shows the progress of the CPU profiles of one round of captures, the
// one display of `kprof capture` and `kprof run --once`: it starts when the first
// target reaches its CPU profile (before the round when cpu is the first type, else
// when the type before cpu has a result) and stops when every target's CPU profile
// has its result. Without cpu among the types it shows nothing.
type cpuProgress struct {
	cfg     cpuProgressConfig
	cpu     int // index of cpu in Types, -1 without
	mu      sync.Mutex
	p       *Progress
	pending int // targets whose CPU profile has no result yet
}

func newCPUProgress(cfg cpuProgressConfig) *cpuProgress {
	return &cpuProgress{cfg: cfg, cpu: slices.Index(cfg.Types, capture.TypeCPU), pending: cfg.Targets}
}

// beforeRound is called just before the round starts.
func (c *cpuProgress) beforeRound() {
	if c.cpu == 0 {
		c.start()
	}
}

// onResult sees every result of the round.
func (c *cpuProgress) onResult(res capture.Result) {
	switch {
	case c.cpu < 0:
	case res.Type == capture.TypeCPU:
		c.mu.Lock()
		c.pending--
		done := c.pending <= 0
		c.mu.Unlock()
		if done {
			c.stop()
		}
	case c.cpu > 0 && res.Type == c.cfg.Types[c.cpu-1]:
		c.start()
	}
}

func (c *cpuProgress) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.p != nil || c.pending <= 0 {
		return
	}
	label := string(capture.TypeCPU)
	if c.cfg.Targets > 1 {
		label = fmt.Sprintf("%s (%d targets)", label, c.cfg.Targets)
	}
	p, err := StartProgress(ProgressConfig{
		Label: label, Total: c.cfg.CPUDuration, Terminal: c.cfg.Terminal,
		Out: c.cfg.Out, Logger: c.cfg.Logger,
	})
	if err != nil { // only on a bad config, which the callers' Validate rules out
		c.cfg.Logger.Error("cannot show CPU profile progress", "err", err)
		return
	}
	c.p = p
}

// stop ends the display, for good: a round has one.
func (c *cpuProgress) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = 0
	if c.p != nil {
		c.p.Stop()
	}
}
