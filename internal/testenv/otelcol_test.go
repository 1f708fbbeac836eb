package testenv

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/pprofile"
	"go.opentelemetry.io/collector/pdata/pprofile/pprofileotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// fatalRecorder is a testing.TB whose Fatal ends only the goroutine that
// called it, recording the message.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func TestOTelCollectorWithoutTheBinaryFailsNamingTheInstallScript(t *testing.T) {
	t.Setenv("KPROF_OTELCOL", "/nonexistent/otelcol")
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		StartOTelCollector(r)
	}()
	<-done
	if !strings.Contains(r.msg, "hack/install-otelcol.sh") {
		t.Fatalf("StartOTelCollector without the binary failed with %q, want the install script named", r.msg)
	}
}

func TestOTelCollectorWritesWhatItReceives(t *testing.T) {
	col := StartOTelCollector(t)
	cc, err := grpc.NewClient(col.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	send := func(t *testing.T, value float64) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		md := pmetric.NewMetrics()
		g := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		g.SetName("testenv.gauge")
		g.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(value)
		if _, err := pmetricotlp.NewGRPCClient(cc).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md), grpc.WaitForReady(true)); err != nil {
			t.Fatalf("export metrics: %v", err)
		}
	}
	gauges := func(mds []pmetric.Metrics) []float64 {
		var out []float64
		for _, md := range mds {
			rms := md.ResourceMetrics()
			for i := range rms.Len() {
				ms := rms.At(i).ScopeMetrics().At(0).Metrics()
				for j := range ms.Len() {
					if ms.At(j).Name() == "testenv.gauge" {
						out = append(out, ms.At(j).Gauge().DataPoints().At(0).DoubleValue())
					}
				}
			}
		}
		return out
	}

	t.Run("metrics are written", func(t *testing.T) {
		send(t, 42)
		got := gauges(col.WaitMetrics(t, func(mds []pmetric.Metrics) bool { return len(gauges(mds)) >= 1 }))
		if len(got) != 1 || got[0] != 42 {
			t.Errorf("gauges %v, want [42]", got)
		}
	})
	t.Run("profiles are written", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pd := pprofile.NewProfiles()
		d := pd.Dictionary()
		d.StringTable().Append("", "cpu", "nanoseconds")
		p := pd.ResourceProfiles().AppendEmpty().ScopeProfiles().AppendEmpty().Profiles().AppendEmpty()
		p.SampleType().SetTypeStrindex(1)
		p.SampleType().SetUnitStrindex(2)
		p.Samples().AppendEmpty().Values().Append(1234)
		if _, err := pprofileotlp.NewGRPCClient(cc).Export(ctx, pprofileotlp.NewExportRequestFromProfiles(pd)); err != nil {
			t.Fatalf("export profiles: %v", err)
		}
		pds := col.WaitProfiles(t, func(pds []pprofile.Profiles) bool { return len(pds) >= 1 })
		got := pds[0].ResourceProfiles().At(0).ScopeProfiles().At(0).Profiles().At(0).Samples().At(0).Values().At(0)
		if len(pds) != 1 || got != 1234 {
			t.Errorf("%d profiles written, first sample %d; want one with 1234", len(pds), got)
		}
	})
	t.Run("what was written survives a restart", func(t *testing.T) {
		col.Stop(t)
		col.Start(t)
		send(t, 43)
		got := gauges(col.WaitMetrics(t, func(mds []pmetric.Metrics) bool { return len(gauges(mds)) >= 2 }))
		if len(got) != 2 || got[0] != 42 || got[1] != 43 {
			t.Errorf("gauges %v, want [42 43]", got)
		}
	})
}
