//go:build linux

package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	googlepprof "github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pprofile"

	"github.com/kprof/kprof/internal/agent/consumer/datadog"
	"github.com/kprof/kprof/internal/agent/consumer/otlp"
	"github.com/kprof/kprof/internal/agent/consumer/perfdata/perfdatatest"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/router"
	"github.com/kprof/kprof/internal/testenv"
)

// One agent runs every consumer behind its router: perf.data files, Datadog
// (whose endpoint accepts the connection and never answers), OTLP profiles and
// metrics to a real OpenTelemetry Collector, and a capture consumer that sees
// what the collectors published. While Datadog hangs, perf.data and OTLP keep
// up with every event; at the end, the perf.data files and the collector hold
// exactly the samples of every event published, and only Datadog's events are
// undelivered.
func TestAllConsumersTogetherAHangingDatadogDelaysNothing(t *testing.T) {
	requireBPF(t)
	burner := startBurner(t)
	col := testenv.StartOTelCollector(t)

	var ddRequests atomic.Int64
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ddRequests.Add(1)
		select { // never answers while the test runs
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })

	dir, out, pprofOut := t.TempDir(), t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(dir, "cpu.yaml"), plainConfig("cpu", 1, "cpu-clock"))
	capture := newCaptureConsumer()
	a, err := New(Config{
		ConfigDir: dir, NoCluster: true, MetricsAddr: "0", HealthAddr: "0", NodeName: "node-all",
		EnablePerfData: true, PerfDataPath: out,
		EnablePprofFiles: true, PprofFilesPath: pprofOut,
		EnableDatadog: true, Datadog: datadog.Config{AgentURL: hang.URL + "/profiling/v1/input", Service: "kprof-agent", Timeout: 30 * time.Second},
		EnableOTLP: true, OTLP: otlp.Config{Endpoint: col.Endpoint(), Insecure: true},
		// Usage metrics go only to their own endpoint: the same collector here.
		OTLPMetricsEndpoint: col.Endpoint(),
		Consumers:           []router.Consumer{capture},
		Logger:              slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry:            prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}

	// While Datadog hangs on its first upload, the other consumers keep up:
	// each has consumed every event published so far.
	const events = 5
	var published []*profile.Event
	for len(published) < events {
		published = append(published, capture.waitEvent(t, 90*time.Second, "from the collector", nil, func(*profile.Event) bool { return true }))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := a.router.Stats()
		if st["perfdata"].Delivered >= events && st["otlp-profiles"].Delivered >= events && st["pprof-files"].Delivered >= events {
			if st["datadog"].Delivered != 0 || ddRequests.Load() == 0 {
				t.Fatalf("datadog should be stuck in its first upload: stats %+v, %d requests", st["datadog"], ddRequests.Load())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("perf.data and OTLP fell behind while Datadog hangs: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var want uint64
	for _, ev := range published {
		want += sampleCount(ev)
	}
	col.WaitProfiles(t, func(pds []pprofile.Profiles) bool { return otlpSamples(pds) >= want })

	// Long enough for the other consumers' last export on a loaded machine (CI); Datadog's
	// hanging one is cut short by its own 30 s timeout or this deadline, either is allowed.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = a.Shutdown(ctx)
	// Only Datadog may report undelivered events.
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			if !strings.Contains(line, `"datadog"`) && !strings.Contains(line, "datadog") {
				t.Errorf("shutdown error not about Datadog: %s", line)
			}
		}
	}
	close(capture.events)
	for ev := range capture.events {
		published = append(published, ev)
	}
	var total, withStack uint64
	for _, ev := range published {
		total += sampleCount(ev)
		for _, s := range ev.Samples {
			if len(s.Frames) > 0 {
				withStack += s.Count
			}
		}
	}
	st := a.router.Stats()
	for _, name := range []string{"perfdata", "pprof-files", "otlp-profiles", "capture"} {
		if s := st[name]; s.Delivered != uint64(len(published)) || s.Failed != 0 || s.Dropped != 0 {
			t.Errorf("consumer %s: %+v, want all %d events delivered", name, s, len(published))
		}
	}
	if st["datadog"].Delivered != 0 {
		t.Errorf("datadog delivered %d events to an endpoint that never answers", st["datadog"].Delivered)
	}

	// perf.data: every sample with a stack, period-weighted.
	files, _ := filepath.Glob(filepath.Join(out, "perf-*.data"))
	var perfSamples uint64
	for _, f := range files {
		pf, err := perfdatatest.Read(f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		period := uint64(1_000_000_000) / 99
		for _, s := range pf.Samples {
			perfSamples += s.Period / period
		}
	}
	if perfSamples != withStack {
		t.Errorf("perf.data files hold %d samples, the events had %d with a stack", perfSamples, withStack)
	}
	// pprof files: one per event with samples, holding all of them.
	pprofFiles, _ := filepath.Glob(filepath.Join(pprofOut, "pprof-cpu-*.pb.gz"))
	var pprofSamples uint64
	for _, f := range pprofFiles {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		p, err := googlepprof.Parse(r)
		r.Close()
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		for _, s := range p.Sample {
			pprofSamples += uint64(s.Value[0])
		}
	}
	if pprofSamples != total {
		t.Errorf("pprof files hold %d samples, the events had %d", pprofSamples, total)
	}
	// OTLP: the collector emitted every sample of every event.
	pds := col.WaitProfiles(t, func(pds []pprofile.Profiles) bool { return otlpSamples(pds) >= total })
	if got := otlpSamples(pds); got != total {
		t.Errorf("the collector emitted %d samples, the events had %d", got, total)
	}
	// OTLP metrics: the final reading's sample counter equals every sample
	// published (the collectors flushed before it was taken).
	col.WaitMetrics(t, func(ms []pmetric.Metrics) bool { return lastSum(ms, profile.AgentSamples) == float64(total) })
	if !hasResource(pds, int64(burner), "node-all") {
		t.Errorf("no OTLP resource with process.pid=%d and k8s.node.name=node-all", burner)
	}
	t.Logf("%d events, %d samples (%d with a stack); datadog: %d requests, none answered", len(published), total, withStack, ddRequests.Load())
}

// otlpSamples sums the samples/count profiles the collector emitted.
func otlpSamples(pds []pprofile.Profiles) uint64 {
	var n uint64
	for _, pd := range pds {
		strs := pd.Dictionary().StringTable()
		for i := range pd.ResourceProfiles().Len() {
			sps := pd.ResourceProfiles().At(i).ScopeProfiles()
			for j := range sps.Len() {
				ps := sps.At(j).Profiles()
				for k := range ps.Len() {
					p := ps.At(k)
					if strs.At(int(p.SampleType().TypeStrindex())) != "samples" {
						continue
					}
					for s := range p.Samples().Len() {
						v := p.Samples().At(s).Values()
						for x := range v.Len() {
							n += uint64(v.At(x))
						}
					}
				}
			}
		}
	}
	return n
}

// hasResource tells whether a resource of pds is process pid on node.
func hasResource(pds []pprofile.Profiles, pid int64, node string) bool {
	for _, pd := range pds {
		for i := range pd.ResourceProfiles().Len() {
			attrs := pd.ResourceProfiles().At(i).Resource().Attributes()
			p, okP := attrs.Get("process.pid")
			n, okN := attrs.Get("k8s.node.name")
			if okP && okN && p.Int() == pid && n.Str() == node {
				return true
			}
		}
	}
	return false
}

// lastSum is the value of the last data point of the Sum metric name in ms.
func lastSum(ms []pmetric.Metrics, name string) float64 {
	v := -1.0
	for _, md := range ms {
		for i := range md.ResourceMetrics().Len() {
			sms := md.ResourceMetrics().At(i).ScopeMetrics()
			for j := range sms.Len() {
				mets := sms.At(j).Metrics()
				for k := range mets.Len() {
					if m := mets.At(k); m.Name() == name && m.Type() == pmetric.MetricTypeSum && m.Sum().DataPoints().Len() > 0 {
						dp := m.Sum().DataPoints().At(m.Sum().DataPoints().Len() - 1)
						v = dp.DoubleValue()
						if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
							v = float64(dp.IntValue())
						}
					}
				}
			}
		}
	}
	return v
}
