package flight

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	googlepprof "github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/testenv"
)

func TestTheTokenIsRequiredAndCheckedWithOneLineAnswers(t *testing.T) {
	f := newFixture(t, nil)
	now := time.Now()
	f.record(t, now.Add(-2*time.Second), now.Add(-time.Second), 3)
	path := PathPrefix + "shop/web-0?from=" + url.QueryEscape(rfc(now.Add(-2*time.Second))) + "&to=" + url.QueryEscape(rfc(now.Add(-time.Second)))
	for _, tc := range []struct {
		name   string
		header map[string]string
		code   int
		msg    string
	}{
		{"a request without a token is unauthorized", nil, http.StatusUnauthorized, "missing bearer token"},
		{"a request with another scheme is unauthorized", map[string]string{"Authorization": "Basic " + testToken}, http.StatusUnauthorized, "missing bearer token"},
		{"a request with an empty bearer token is unauthorized", map[string]string{"Authorization": "Bearer "}, http.StatusUnauthorized, "missing bearer token"},
		{"a request with a wrong token is forbidden", map[string]string{"Authorization": "Bearer nope"}, http.StatusForbidden, "wrong recorder token"},
		{"a request with the token's prefix is forbidden", map[string]string{"Authorization": "Bearer " + testToken[:4]}, http.StatusForbidden, "wrong recorder token"},
		{"a request with the token gets the profile", map[string]string{"Authorization": "Bearer " + testToken}, http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, hdr := f.get(t, path, tc.header)
			if code != tc.code {
				t.Fatalf("status %d (%q), want %d", code, body, tc.code)
			}
			if tc.code == http.StatusOK {
				return
			}
			oneLine(t, body, hdr)
			if !strings.Contains(body, tc.msg) {
				t.Errorf("body %q lacks %q", body, tc.msg)
			}
		})
	}

	t.Run("the client reports the agent's status and words", func(t *testing.T) {
		c := *f.client
		c.Token = func(context.Context) (string, error) { return "nope", nil }
		_, err := c.Fetch(t.Context(), f.srv.URL, Request{Namespace: "shop", Pod: "web-0", From: now.Add(-2 * time.Second), To: now.Add(-time.Second)})
		var se *StatusError
		if !errors.As(err, &se) || se.Code != http.StatusForbidden || se.Message != "wrong recorder token" {
			t.Fatalf("err = %v, want a StatusError 403 wrong recorder token", err)
		}
		if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "shop/web-0") || !strings.Contains(err.Error(), "403 Forbidden: wrong recorder token") {
			t.Errorf("error %q is not one line naming the pod, the status and the agent's words", err)
		}
	})

	t.Run("a rotated token file applies at once", func(t *testing.T) {
		writeToken(t, f.tokenFile, "rotated")
		if code, _, _ := f.get(t, path, map[string]string{"Authorization": "Bearer " + testToken}); code != http.StatusForbidden {
			t.Errorf("old token: status %d, want 403", code)
		}
		if code, body, _ := f.get(t, path, map[string]string{"Authorization": "Bearer rotated"}); code != http.StatusOK {
			t.Errorf("new token: status %d (%q), want 200", code, body)
		}
	})

	t.Run("without a token file every request is refused", func(t *testing.T) {
		writeToken(t, f.tokenFile, "  \n")
		code, body, hdr := f.get(t, path, map[string]string{"Authorization": "Bearer " + testToken})
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "no recorder token configured") {
			t.Errorf("empty token file: %d %q, want 503 no recorder token configured", code, body)
		}
		oneLine(t, body, hdr)
		g := newFixture(t, func(c *HandlerConfig) { c.Token = FileToken("/nonexistent/token") })
		if code, body, _ := g.get(t, path, map[string]string{"Authorization": "Bearer " + testToken}); code != http.StatusServiceUnavailable || !strings.Contains(body, "no recorder token configured") {
			t.Errorf("missing token file: %d %q, want 503 no recorder token configured", code, body)
		}
	})
}

func TestBadParametersUnknownPodsAndADisabledRecorderAreRefused(t *testing.T) {
	f := newFixture(t, nil)
	now := time.Now().UTC()
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	q := func(from, to string) string { return "?from=" + url.QueryEscape(from) + "&to=" + url.QueryEscape(to) }
	ok := q(rfc(now.Add(-time.Minute)), rfc(now))
	for _, tc := range []struct {
		name, path string
		code       int
		msg        string
	}{
		{"from is required", PathPrefix + "shop/web-0?to=" + url.QueryEscape(rfc(now)), 400, "from: required"},
		{"to must be a time", PathPrefix + "shop/web-0" + q(rfc(now), "soon"), 400, `to: "soon" is not an RFC 3339 time`},
		{"to must be after from", PathPrefix + "shop/web-0" + q(rfc(now), rfc(now.Add(-time.Second))), 400, "must be after from"},
		{"the window is bounded", PathPrefix + "shop/web-0" + q(rfc(now.Add(-2*time.Hour)), rfc(now)), 400, "more than the 1h0m0s allowed"},
		{"to may not be far ahead", PathPrefix + "shop/web-0" + q(rfc(now), rfc(now.Add(time.Hour))), 400, "ahead of the agent's clock"},
		{"a namespace must be a DNS label", PathPrefix + "Shop/web-0" + ok, 400, `namespace "Shop"`},
		{"a reason is one line", PathPrefix + "shop/web-0" + ok + "&reason=a%0Ab", 400, "reason:"},
		{"a pod elsewhere is not found", PathPrefix + "shop/web-9" + ok, 404, "pod shop/web-9 is not on node node-a"},
		{"another path is not found", "/flight/v1/pods/shop", 404, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, hdr := f.get(t, tc.path, auth)
			if code != tc.code || !strings.Contains(body, tc.msg) {
				t.Errorf("%d %q, want %d with %q", code, body, tc.code, tc.msg)
			}
			oneLine(t, body, hdr)
		})
	}
	t.Run("a POST is not allowed", func(t *testing.T) {
		resp, err := f.srv.Client().Post(f.srv.URL+PathPrefix+"shop/web-0"+ok, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("status %d, want 405", resp.StatusCode)
		}
	})
	t.Run("an agent that cannot list pods says so", func(t *testing.T) {
		g := newFixture(t, func(c *HandlerConfig) {
			c.Locate = func(string, string) error {
				return errors.New(`pods is forbidden: User "system:serviceaccount:kprof-system:kprof-agent" cannot list resource "pods"`)
			}
		})
		code, body, hdr := g.get(t, PathPrefix+"shop/web-0"+ok, auth)
		if code != 503 || !strings.Contains(body, "agent on node node-a cannot attribute samples to pods: pods is forbidden") {
			t.Errorf("%d %q, want 503 naming the node and the API server's words", code, body)
		}
		oneLine(t, body, hdr)
	})
	t.Run("a disabled recorder says so", func(t *testing.T) {
		g := newFixture(t, func(c *HandlerConfig) { c.Source = nil })
		code, body, hdr := g.get(t, PathPrefix+"shop/web-0"+ok, auth)
		if code != 503 || !strings.Contains(body, "flight recorder is disabled on node node-a") {
			t.Errorf("%d %q, want 503 disabled", code, body)
		}
		oneLine(t, body, hdr)
	})
	t.Run("a window the recorder holds nothing of is not found", func(t *testing.T) {
		f.record(t, now.Add(-2*time.Second), now.Add(-time.Second), 1)
		code, body, _ := f.get(t, PathPrefix+"shop/web-0"+q(rfc(now.Add(-50*time.Second)), rfc(now.Add(-40*time.Second))), auth)
		if code != 404 || !strings.Contains(body, "no CPU samples of shop/web-0") {
			t.Errorf("%d %q, want 404 saying what the recorder holds", code, body)
		}
	})
}

func TestTheAnswerWaitsForTheSamplesOfTheWindowsEnd(t *testing.T) {
	f := newFixture(t, nil)
	base := time.Now().Truncate(time.Second)
	f.record(t, base.Add(-3*time.Second), base.Add(-2*time.Second), 1)
	f.record(t, base.Add(-2*time.Second), base.Add(-time.Second), 2)

	type result struct {
		p   Profile
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := f.client.Fetch(context.Background(), f.srv.URL, Request{Namespace: "shop", Pod: "web-0",
			From: base.Add(-3 * time.Second), To: base.Add(time.Second), Reason: "spike"})
		done <- result{p, err}
	}()
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return f.src.waiting.Load() == 1, "the request is not waiting for samples"
	})
	f.record(t, base.Add(-time.Second), base, 4) // not yet past `to`
	f.record(t, base, base.Add(time.Second), 8)
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !res.p.Start.Equal(base.Add(-3*time.Second)) || !res.p.End.Equal(base.Add(time.Second)) {
		t.Errorf("window [%s, %s], want [base-3s, base+1s]", res.p.Start, res.p.End)
	}
	p, err := googlepprof.ParseData(res.p.Data)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Sample) != 1 || p.Sample[0].Value[0] != 15 || p.Sample[0].Label["reason"][0] != "spike" {
		t.Errorf("samples %v, want one stack of 1+2+4+8 samples with reason spike", p.Sample)
	}

	t.Run("an idle pod on the node gets an empty profile", func(t *testing.T) {
		p, err := f.client.Fetch(t.Context(), f.srv.URL, Request{Namespace: "shop", Pod: "idle-0", From: base.Add(-3 * time.Second), To: base})
		if err != nil {
			t.Fatal(err)
		}
		if pp, err := googlepprof.ParseData(p.Data); err != nil || len(pp.Sample) != 0 {
			t.Errorf("idle pod: %v, %d samples; want an empty profile", err, len(pp.Sample))
		}
	})

	t.Run("the wait is bounded by the collection interval", func(t *testing.T) {
		g := newFixture(t, func(c *HandlerConfig) { c.FlushGrace = 100 * time.Millisecond })
		now := time.Now()
		g.record(t, now.Add(-2*time.Second), now.Add(-time.Second), 1)
		// Nothing is recorded past now-1s: the answer comes once to + 2 × 1s + 0.1s
		// has passed, with what is recorded.
		p, err := g.client.Fetch(t.Context(), g.srv.URL, Request{Namespace: "shop", Pod: "web-0", From: now.Add(-2 * time.Second), To: now})
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().Before(now.Add(2100 * time.Millisecond)) {
			t.Errorf("answered at %s, before the bound to + 2.1s", time.Since(now))
		}
		if !p.End.Equal(now.Add(-time.Second)) {
			t.Errorf("window end %s, want the last recorded, now-1s", p.End.Sub(now))
		}
	})

	t.Run("the client's deadline ends the call", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err := f.client.Fetch(ctx, f.srv.URL, Request{Namespace: "shop", Pod: "web-0", From: base, To: time.Now().Add(time.Minute)})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want the deadline exceeded", err)
		}
	})
}
