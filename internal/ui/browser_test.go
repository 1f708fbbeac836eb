package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/kprof/kprof/internal/index"
	"github.com/kprof/kprof/internal/testenv"
	"github.com/kprof/kprof/internal/ui"
)

// browserTimeout bounds one browser step (a navigation, a click, a wait).
const browserTimeout = 45 * time.Second

// browser is a headless Chromium that records every JavaScript exception, console
// error and dialog (alert, confirm) of the pages it shows.
type browser struct {
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	bin, err := testenv.ChromiumPath()
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // as root Chromium runs only without its sandbox
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	b := &browser{}
	var ctx context.Context
	listener := func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := ""
			if d.Exception != nil {
				desc = d.Exception.Description
			}
			b.problem(fmt.Sprintf("JavaScript exception at %s:%d: %s %s", d.URL, d.LineNumber, d.Text, desc))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.problem(fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
			}
		case *page.EventJavascriptDialogOpening:
			b.problem(fmt.Sprintf("JavaScript %s dialog: %q", ev.Type, ev.Message))
			go func() {
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
			}()
		}
	}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(listener))
	t.Cleanup(cancel)
	b.ctx = ctx
	// The first Run starts the browser and lives as long as ctx: no timeout on it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("browser: start Chromium %s: %v", bin, err)
	}
	return b
}

func (b *browser) problem(p string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, p)
}

// checkNoProblems fails t if any page so far logged a JavaScript error or opened a dialog.
func (b *browser) checkNoProblems(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		t.Errorf("page: %s", p)
	}
	b.problems = nil
}

// run runs actions within browserTimeout.
func (b *browser) run(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// eval returns the value of the JavaScript expression js in the current page.
func eval[T any](t *testing.T, b *browser, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("browser: evaluate %s: %v", js, err)
	}
	return v
}

// waitFor polls the JavaScript expression js until it is true.
func (b *browser) waitFor(t *testing.T, what, js string) {
	t.Helper()
	testenv.Eventually(t, browserTimeout, func() (bool, string) {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			return false, fmt.Sprintf("%s: evaluate %s: %v", what, js, err)
		}
		var url, text string
		if !ok {
			url, _ = chromedp.Run(ctx, chromedp.Location())
			text, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 500) : ""`))
		}
		return ok, fmt.Sprintf("%s: %s is false on %s; page text: %q", what, js, url, text)
	})
}

// rows returns the cells (by class: service, type, ...) of the list page's rows.
func rows(t *testing.T, b *browser) []map[string]string {
	t.Helper()
	js := `JSON.stringify(Array.from(document.querySelectorAll("tr.profile")).map(tr => {
		const r = {};
		for (const td of tr.querySelectorAll("td[class]")) if (td.className) r[td.className] = td.textContent;
		const a = tr.querySelector("a.view"); r.link = a ? a.getAttribute("href") : "";
		r.error = tr.classList.contains("error") ? "yes" : "";
		return r;
	}))`
	var out []map[string]string
	if err := json.Unmarshal([]byte(eval[string](t, b, js)), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func column(rs []map[string]string, name string) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r[name])
	}
	return out
}

// TestUIInABrowser starts the UI over a store of real sample-app profiles (and hostile
// and broken entries), in a directory and in MinIO, and drives it in headless Chromium.
func TestUIInABrowser(t *testing.T) {
	b := newBrowser(t)
	t.Cleanup(func() { b.checkNoProblems(t) })
	t.Run("the browser reports a page's console error, exception and alert", func(t *testing.T) {
		// The other subtests rely on these reports to show that no page errs or alerts.
		b.run(t, "open a page that errs", chromedp.Navigate(`data:text/html,<script>console.error("planted error"); alert("planted alert"); null.x;</script>`))
		want := []string{"planted error", "planted alert", "TypeError"}
		testenv.Eventually(t, browserTimeout, func() (bool, string) {
			b.mu.Lock()
			defer b.mu.Unlock()
			all := strings.Join(b.problems, "\n")
			for _, w := range want {
				if !strings.Contains(all, w) {
					return false, fmt.Sprintf("reports %q lack %q", b.problems, w)
				}
			}
			return true, ""
		})
		b.mu.Lock()
		b.problems = nil
		b.mu.Unlock()
	})
	t.Run("local store", func(t *testing.T) { testUI(t, b, newFixture(t, dirBackend(t))) })
	t.Run("MinIO", func(t *testing.T) { testUI(t, b, newFixture(t, minioBackend(t))) })
}

func testUI(t *testing.T, b *browser, st *fixture) {
	srv := httptest.NewServer(st.handler(t))
	t.Cleanup(srv.Close)

	t.Run("the list shows every profile and its filters change the rows", func(t *testing.T) {
		b.run(t, "open the list", chromedp.Navigate(srv.URL+"/"))
		if got := rows(t, b); len(got) != st.total {
			t.Fatalf("list shows %d rows, want %d: %v", len(got), st.total, got)
		}
		b.run(t, "filter by service with the form",
			chromedp.SetValue(chromedp.CSS(`input[name="service"]`), "checkout"),
			chromedp.Click(chromedp.CSS("#apply")))
		b.waitFor(t, "the form's filter is in the URL", `location.search.includes("service=checkout")`)
		b.waitFor(t, "the list shows checkout's 3 profiles", `document.querySelectorAll("tr.profile").length == 3`)
		if got := column(rows(t, b), "service"); strings.Join(got, ",") != "checkout,checkout,checkout" {
			t.Errorf("service=checkout lists services %q", got)
		}
		for _, tc := range []struct {
			query, col string
			want       []string
		}{
			{"type=cpu", "service", []string{"checkout", "payments", "checkout"}},
			{"service=checkout&type=cpu", "type", []string{"cpu", "cpu"}},
			{"reason=threshold", "service", []string{"checkout"}},
			{"service=payments&type=heap", "service", nil},
			{"since=1h&service=checkout", "type", []string{"cpu", "heap", "cpu"}},
		} {
			b.run(t, "open ?"+tc.query, chromedp.Navigate(srv.URL+"/?"+tc.query))
			if got := column(rows(t, b), tc.col); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("?%s lists %s %q, want %q", tc.query, tc.col, got, tc.want)
			}
		}
		b.run(t, "open ?service=checkout", chromedp.Navigate(srv.URL+"/?service=checkout"))
		if n := eval[int](t, b, `document.querySelectorAll("svg.timeline path.threshold").length`); n != 1 {
			t.Errorf("checkout's timeline marks %d threshold triggers, want 1", n)
		}
		if v := eval[string](t, b, `document.querySelector('input[name="service"]').value`); v != "checkout" {
			t.Errorf("the service filter box shows %q, want the query's checkout", v)
		}
		b.run(t, "open ?since=soon", chromedp.Navigate(srv.URL+"/?since=soon"))
		if msg := eval[string](t, b, `document.getElementById("error").textContent`); !strings.Contains(msg, `since "soon"`) {
			t.Errorf("a bad since shows %q, want an error naming since", msg)
		}
		b.checkNoProblems(t)
	})

	t.Run("the flame graph of the sample app's CPU profile shows its hot function", func(t *testing.T) {
		b.run(t, "open checkout's CPU spike", chromedp.Navigate(srv.URL+"/?service=checkout&type=cpu&reason=threshold"))
		b.run(t, "click the profile", chromedp.Click(chromedp.CSS("tr.profile a.view")))
		b.waitFor(t, "the flame graph page", `location.pathname.endsWith("/-/flamegraph")`)
		b.waitFor(t, "the flame graph names burnCPU",
			`!!document.getElementById("stack-chart") && document.getElementById("stack-chart").innerText.includes("burnCPU")`)
		// pprof's view links sit in a menu that opens on hover: click them in the DOM.
		eval[bool](t, b, `(document.getElementById("topbtn").click(), true)`)
		b.waitFor(t, "top lists burnCPU", `location.pathname.endsWith("/-/top") && document.body.innerText.includes("burnCPU")`)
		eval[bool](t, b, `(document.getElementById("list").click(), true)`)
		b.waitFor(t, "source lists burnCPU", `location.pathname.endsWith("/-/source") && document.body.innerText.includes("burnCPU")`)
		eval[bool](t, b, `(document.getElementById("graphbtn").click(), true)`)
		b.waitFor(t, "the call graph (Graphviz) names burnCPU", `location.pathname.endsWith("/-/graph") && !!document.querySelector("#graph svg") && document.querySelector("#graph svg").textContent.includes("burnCPU")`)
		b.checkNoProblems(t)
	})

	t.Run("the list's merge link opens pprof over the merge of the listed profiles of one type", func(t *testing.T) {
		b.run(t, "open checkout's profiles", chromedp.Navigate(srv.URL+"/?service=checkout"))
		links := eval[string](t, b, `Array.from(document.querySelectorAll("a.merge")).map(a => a.dataset.type + ":" + a.textContent).join(" ")`)
		if links != "cpu:2 cpu heap:1 heap" {
			t.Fatalf("the merge links are %q, want one per listed type with its count: cpu:2 cpu heap:1 heap", links)
		}
		b.run(t, "click the cpu merge", chromedp.Click(chromedp.CSS(`a.merge[data-type="cpu"]`)))
		b.waitFor(t, "the merged flame graph", `location.pathname.startsWith("/merge/") && location.pathname.endsWith("/-/flamegraph")`)
		path := eval[string](t, b, `decodeURIComponent(decodeURIComponent(location.pathname))`)
		for _, want := range []string{"service=checkout", "type=cpu", "to="} {
			if !strings.Contains(path, want) {
				t.Errorf("the merge's path %q does not carry %q (the filters, the time range pinned)", path, want)
			}
		}
		b.waitFor(t, "the merged flame graph names burnCPU",
			`!!document.getElementById("stack-chart") && document.getElementById("stack-chart").innerText.includes("burnCPU")`)
		eval[bool](t, b, `(document.getElementById("topbtn").click(), true)`)
		b.waitFor(t, "the merge's top lists burnCPU", `location.pathname.endsWith("/-/top") && document.body.innerText.includes("burnCPU")`)

		b.run(t, "open a merge without a type", chromedp.Navigate(srv.URL+ui.MergeURL(url.Values{"service": {"checkout"}})))
		if msg := eval[string](t, b, `document.getElementById("error").textContent`); !strings.Contains(msg, "type: required to merge") ||
			!strings.Contains(msg, "the 3 profiles that match service=checkout are of the types cpu, heap") {
			t.Errorf("a merge without a type shows %q, want it to name the types of the selection", msg)
		}
		b.run(t, "open a merge of nothing", chromedp.Navigate(srv.URL+ui.MergeURL(url.Values{"service": {"nobody"}, "type": {"cpu"}})))
		b.waitFor(t, "the error page of an empty merge", `!!document.getElementById("error")`)
		if msg := eval[string](t, b, `document.getElementById("error").textContent`); !strings.Contains(msg, "match service=nobody,type=cpu") {
			t.Errorf("a merge of nothing shows %q, want it to name the selection", msg)
		}
		b.checkNoProblems(t)
	})

	t.Run("the diff view of the sample app's spike shows burnCPU grown against its baseline", func(t *testing.T) {
		b.run(t, "open the threshold captures", chromedp.Navigate(srv.URL+"/?reason=threshold"))
		if n := eval[int](t, b, `document.querySelectorAll("a.diff").length`); n != 1 {
			t.Fatalf("the list of threshold captures has %d diff links, want 1", n)
		}
		b.run(t, "open the list", chromedp.Navigate(srv.URL+"/"))
		if n := eval[int](t, b, `document.querySelectorAll("a.diff").length`); n != 1 {
			t.Errorf("the whole list has %d diff links, want 1 (only threshold captures have a default base)", n)
		}
		b.run(t, "click the spike's diff", chromedp.Click(chromedp.CSS("a.diff")))
		b.waitFor(t, "the diff page", `location.pathname.startsWith("/diff/") && !!document.getElementById("grew")`)
		if base := eval[string](t, b, `document.getElementById("base").textContent`); !strings.HasPrefix(base, "1 scheduled cpu profile of shop/checkout captured from ") ||
			!strings.Contains(base, "in the hour before the threshold capture at ") {
			t.Errorf("the diff page says the base is %q, want the one scheduled checkout cpu profile of the hour before", base)
		}
		if sum := eval[string](t, b, `document.getElementById("summary").textContent`); !strings.Contains(sum, "cpu/nanoseconds, per second") {
			t.Errorf("the diff page's summary %q does not say the CPU profiles compare per second", sum)
		}
		// burnCPU's own samples may land in runtime.asyncPreempt, which it calls, on a
		// busy machine: its cumulative value is what grows for certain.
		grewCum := eval[string](t, b, `Array.from(document.querySelectorAll("#grew-cum tr.func")).map(tr => tr.querySelector("td.name").textContent + " " + tr.querySelector("td.cum").textContent).join("\n")`)
		var burn string
		for _, line := range strings.Split(grewCum, "\n") {
			if name, _, _ := strings.Cut(line, " "); strings.HasSuffix(name, ".burnCPU") {
				burn = line
			}
		}
		if _, change, _ := strings.Cut(burn, " "); !strings.HasPrefix(change, "+") {
			t.Errorf("the functions that grew most by cumulative change are\n%s\nwant burnCPU among them, grown", grewCum)
		}
		b.run(t, "open pprof's top of the diff", chromedp.Click(chromedp.CSS("#pprof-top")))
		b.waitFor(t, "pprof's top of the diff lists burnCPU", `location.pathname.endsWith("/-/top") && document.body.innerText.includes("burnCPU")`)
		// The diff profile's top row for burnCPU: its cumulative value (the 4th column)
		// is the growth, positive.
		top := eval[string](t, b, `Array.from(document.querySelectorAll("#toptable tr")).map(tr => tr.innerText).find(t => t.includes("burnCPU")) || ""`)
		if f := strings.Fields(top); len(f) < 4 || strings.HasPrefix(f[3], "-") || strings.HasPrefix(f[3], "0") {
			t.Errorf("pprof's top of the diff shows burnCPU as %q, want a positive cumulative value", top)
		}
		eval[bool](t, b, `(document.getElementById("flamegraph").click(), true)`)
		b.waitFor(t, "the diff's flame graph names burnCPU", `location.pathname.endsWith("/-/flamegraph") && !!document.getElementById("stack-chart") && document.getElementById("stack-chart").innerText.includes("burnCPU")`)

		b.run(t, "open the diff of a scheduled capture", chromedp.Navigate(srv.URL+ui.DiffURL(st.id(t, "payments-5f2_cpu"))))
		if msg := eval[string](t, b, `document.getElementById("error").textContent`); !strings.Contains(msg, "is not a threshold capture (trigger schedule)") {
			t.Errorf("the diff of a scheduled capture shows %q, want it refused as no threshold capture", msg)
		}
		b.checkNoProblems(t)
	})

	t.Run("names from pods, labels and keys are shown escaped and run nothing", func(t *testing.T) {
		b.run(t, "open the list", chromedp.Navigate(srv.URL+"/?namespace=shop"))
		var evil, hostileKey map[string]string
		for _, r := range rows(t, b) {
			if r["service"] == evilService {
				evil = r
			}
			if strings.HasSuffix(r["link"], "/-/flamegraph") && strings.Contains(r["link"], "img") {
				hostileKey = r
			}
		}
		if evil == nil || evil["pod"] != evilPod {
			t.Fatalf("no row shows service %q with pod %q as text: %v", evilService, evilPod, rows(t, b))
		}
		if hostileKey == nil {
			t.Fatalf("no row links to the profile whose key holds an <img> tag: %v", rows(t, b))
		}
		if n := eval[int](t, b, `document.querySelectorAll("script, img, [onerror]").length`); n != 0 {
			t.Errorf("the list page has %d script/img/onerror elements, want 0 (a name became markup)", n)
		}
		if title := eval[string](t, b, `document.querySelector('svg.timeline a title') ? Array.from(document.querySelectorAll('.timeline-service')).map(e => e.textContent).join("|") : ""`); !strings.Contains(title, evilService) {
			t.Errorf("timeline services %q do not show %q as text", title, evilService)
		}
		// A filter value is echoed in its box, never as markup.
		hostileQuery := `"><script>alert(2)</script><img src=x onerror=alert(3)>`
		b.run(t, "open a hostile query", chromedp.Navigate(srv.URL+"/?service="+url.QueryEscape(hostileQuery)+"&pod="+url.QueryEscape(evilPod)))
		if v := eval[string](t, b, `document.querySelector('input[name="service"]').value`); v != hostileQuery {
			t.Errorf("the service box shows %q, want the query's value %q as text", v, hostileQuery)
		}
		if n := eval[int](t, b, `document.querySelectorAll("script, img, [onerror]").length`); n != 0 {
			t.Errorf("a hostile query put %d script/img/onerror elements in the page, want 0", n)
		}
		b.run(t, "open the evil pod's profiles", chromedp.Navigate(srv.URL+"/?pod="+url.QueryEscape(evilPod)))
		if got := column(rows(t, b), "service"); len(got) != 1 || got[0] != evilService {
			t.Errorf("?pod=%s lists services %q, want only %q", evilPod, got, evilService)
		}
		for _, link := range []string{evil["link"], hostileKey["link"]} {
			b.run(t, "open "+link, chromedp.Navigate(srv.URL+link))
			b.waitFor(t, "the flame graph of "+link, `!!document.getElementById("stack-chart") && document.getElementById("stack-chart").childElementCount > 0`)
			if n := eval[int](t, b, `document.querySelectorAll('img[src="x"], [onerror]').length`); n != 0 {
				t.Errorf("%s: %d injected elements", link, n)
			}
		}
		b.checkNoProblems(t)
	})

	t.Run("broken profiles and escaping ids show an error and break nothing", func(t *testing.T) {
		for _, tc := range []struct{ path, want string }{
			{st.link(t, "empty.pb.gz"), "empty (0 bytes)"},
			{st.link(t, "corrupt.pb.gz"), "not a valid pprof profile"},
			{st.link(t, "huge.pb.gz"), "larger than the limit"},
			{"/profile/..%2F..%2F..%2Fetc%2Fpasswd/-/flamegraph", "invalid profile ID"},
			{"/profile/%2Fetc%2Fpasswd/-/top", "absolute path"},
			{"/profile/shop%252F..%252Fx/-/top", "invalid profile ID"},
			{"/profile/shop/nothing.pb.gz/-/flamegraph", "no such profile"},
		} {
			b.run(t, "open "+tc.path, chromedp.Navigate(srv.URL+tc.path))
			if msg := eval[string](t, b, `document.getElementById("error") ? document.getElementById("error").textContent : document.body.innerText.slice(0, 300)`); !strings.Contains(msg, tc.want) {
				t.Errorf("%s shows %q, want an error saying %q", tc.path, msg, tc.want)
			}
		}
		b.run(t, "open the list", chromedp.Navigate(srv.URL+"/"))
		got := rows(t, b)
		if len(got) != st.total {
			t.Errorf("after the broken profiles the list shows %d rows, want %d", len(got), st.total)
		}
		// The listed size shows these two as broken before anyone opens them.
		errRows := eval[string](t, b, `Array.from(document.querySelectorAll("tr.profile.error")).map(tr => tr.lastElementChild.textContent).join("|")`)
		for _, want := range []string{"profile is empty (0 bytes)", "profile is larger than the limit (1.0Mi, the limit is 1.0Mi"} {
			if !strings.Contains(errRows, want) {
				t.Errorf("the list's error rows %q do not say %q", errRows, want)
			}
		}
		if n := strings.Count(errRows, "|") + 1; errRows == "" || n != 3 {
			t.Errorf("the list has error rows %q, want 3 (the broken files, which have no metadata)", errRows)
		}
		// A profile without metadata can still be opened: its row links it; the empty
		// and the oversized ones cannot, and theirs do not.
		links := strings.Join(column(got, "link"), " ")
		if !strings.Contains(links, "corrupt.pb.gz") || strings.Contains(links, "empty.pb.gz") || strings.Contains(links, "huge.pb.gz") {
			t.Errorf("the list links %q; want corrupt.pb.gz linked, empty.pb.gz and huge.pb.gz not", links)
		}
		b.run(t, "open the CPU flame graph", chromedp.Navigate(srv.URL+st.link(t, "checkout-7d9_cpu")))
		b.waitFor(t, "the flame graph still names burnCPU", `!!document.getElementById("stack-chart") && document.getElementById("stack-chart").innerText.includes("burnCPU")`)
		b.checkNoProblems(t)
	})
}

// TestProfileViewAnswersWithStatus checks the statuses behind the error pages.
func TestProfileViewAnswersWithStatus(t *testing.T) {
	st := newFixture(t, dirBackend(t))
	srv := httptest.NewServer(st.handler(t))
	t.Cleanup(srv.Close)
	hc := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/", http.StatusOK},
		{"/?since=-1h", http.StatusBadRequest},
		{st.link(t, "checkout-7d9_cpu"), http.StatusOK},
		{strings.TrimSuffix(st.link(t, "checkout-7d9_cpu"), "flamegraph"), http.StatusMovedPermanently},
		{strings.TrimSuffix(st.link(t, "checkout-7d9_cpu"), "flamegraph") + "download", http.StatusOK},
		{strings.TrimSuffix(st.link(t, "checkout-7d9_cpu"), "flamegraph") + "nosuchview", http.StatusNotFound},
		{st.link(t, "empty.pb.gz"), http.StatusUnprocessableEntity},
		{st.link(t, "corrupt.pb.gz"), http.StatusUnprocessableEntity},
		{st.link(t, "huge.pb.gz"), http.StatusRequestEntityTooLarge},
		{"/profile/..%2F..%2Fetc%2Fpasswd/-/top", http.StatusBadRequest},
		{"/profile/a%252e/-/top", http.StatusBadRequest},
		{"/profile/nothing", http.StatusNotFound},
	} {
		resp, err := hc.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s: status %d, want %d", tc.path, resp.StatusCode, tc.want)
		}
	}
	t.Run("a 1 GiB profile is refused without being read", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "shop", "big", "gigantic.pb.gz")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 1<<30); err != nil { // sparse: no GiB on disk
			t.Fatal(err)
		}
		x, err := index.New(t.Context(), index.Config{Store: dir})
		if err != nil {
			t.Fatal(err)
		}
		h, err := ui.New(ui.Config{Index: x, Logger: slog.New(slog.DiscardHandler)}) // default limit, 64 MiB
		if err != nil {
			t.Fatal(err)
		}
		big := httptest.NewServer(h)
		t.Cleanup(big.Close)
		resp, err := hc.Get(big.URL + ui.ProfileURL("shop/big/gigantic.pb.gz"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "larger than the limit") {
			t.Errorf("GET the 1 GiB profile: %d %s, want 413 saying it is larger than the limit", resp.StatusCode, body)
		}
		resp, err = hc.Get(big.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "1.0Gi, the limit is 64.0Mi") {
			t.Errorf("GET /: %d, want 200 with the 1 GiB profile's row saying it is over the limit:\n%s", resp.StatusCode, body)
		}
	})

	t.Run("without LocalFiles the source and disassembly views are refused", func(t *testing.T) {
		h, err := ui.New(ui.Config{Index: st.index(t), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		remote := httptest.NewServer(h)
		t.Cleanup(remote.Close)
		view := strings.TrimSuffix(st.link(t, "checkout-7d9_cpu"), "flamegraph")
		for v, want := range map[string]int{"flamegraph": 200, "top": 200, "source": 403, "disasm": 403} {
			resp, err := hc.Get(remote.URL + view + v)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("GET %s%s: status %d, want %d", view, v, resp.StatusCode, want)
			}
		}
	})

	req, _ := http.NewRequest(http.MethodPost, srv.URL+strings.TrimSuffix(st.link(t, "checkout-7d9_cpu"), "flamegraph")+"saveconfig", strings.NewReader("{}"))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Errorf("POST saveconfig: status %d, want a refusal (the UI is read-only)", resp.StatusCode)
	}
}

// TestProfilesOpenConcurrently opens several profiles at once, with a cache of one
// profile, so pprof's web UI is made and dropped concurrently (run it with -race).
func TestProfilesOpenConcurrently(t *testing.T) {
	st := newFixture(t, dirBackend(t))
	h, err := ui.New(ui.Config{Index: st.index(t), MaxProfileBytes: testMaxProfileBytes, CachedProfiles: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	hc := &http.Client{Timeout: 60 * time.Second}
	paths := []string{st.link(t, "checkout-7d9_cpu"), st.link(t, "payments-5f2_cpu"), st.link(t, "checkout-7d9_heap"),
		strings.TrimSuffix(st.link(t, "payments-5f2_cpu"), "flamegraph") + "top"}
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(paths))
	for range 4 {
		for _, p := range paths {
			wg.Go(func() {
				resp, err := hc.Get(srv.URL + p)
				if err != nil {
					errs <- err
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "burnCPU") && strings.Contains(p, "cpu") {
					errs <- fmt.Errorf("GET %s: status %d, want 200 naming burnCPU", p, resp.StatusCode)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
