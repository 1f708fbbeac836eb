package datadog

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/router"
)

func TestConsumerUploadsEventsPublishedToARouter(t *testing.T) {
	in := newIntake(t)
	c := newTestConsumer(t, in, io.Discard)
	r, err := router.New(router.Config{QueueSize: c.cfg.QueueSize})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Register(c); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.Publish(testEvent())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Fatalf("router shutdown: %v", err)
	}
	if _, ups := in.counts(); len(ups) != 1 {
		t.Fatalf("got %d uploads, want 1", len(ups))
	}
	if st := r.Stats()["datadog"]; st.Delivered != 1 || st.Failed != 0 {
		t.Errorf("router stats = %+v", st)
	}
}
