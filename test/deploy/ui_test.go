package deploy

import (
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kprof/kprof/internal/operator"
	"github.com/kprof/kprof/internal/testenv"
)

// TestEveryReplicaServesTheUISayingWhetherItCaptures: the web UI is no leader-elected part
// of the operator. With two replicas (leader election on, as the chart and config/default
// run it), both serve it over their own profiles directory; the leader's page says it is the
// replica that captures, the standby's that the leader's pod holds the profiles.
func TestEveryReplicaServesTheUISayingWhetherItCaptures(t *testing.T) {
	p := cluster(t)
	withUI := func() (*operatorRun, string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		run := startOperatorWith(t, p.cfg, func(o *operator.Options) { o.UI.Listener = ln })
		return run, "http://" + ln.Addr().String() + "/"
	}
	runA, urlA := withUI()
	runB, urlB := withUI()

	hc := &http.Client{Timeout: 10 * time.Second}
	page := func(url string) (string, error) {
		resp, err := hc.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return html.UnescapeString(string(b)), err
	}
	const leads, waits = "(the replica that captures)", "(a standby replica: the leader captures"
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		var lease coordinationv1.Lease
		if err := p.c.Get(t.Context(), client.ObjectKey{Namespace: systemNamespace, Name: leaseName}, &lease); err != nil {
			return false, "no Lease yet: " + err.Error()
		}
		a, errA := page(urlA)
		b, errB := page(urlB)
		if errA != nil || errB != nil {
			return false, fmt.Sprintf("replica A: %v; replica B: %v", errA, errB)
		}
		if !strings.Contains(a, runA.profilesDir+" in pod ") || !strings.Contains(b, runB.profilesDir+" in pod ") {
			return false, "a page does not name its own replica's profiles directory:\n" + a + "\n----\n" + b
		}
		aLeads, bLeads := strings.Contains(a, leads), strings.Contains(b, leads)
		aWaits, bWaits := strings.Contains(a, waits), strings.Contains(b, waits)
		if !(aLeads && bWaits) && !(bLeads && aWaits) {
			return false, fmt.Sprintf("want one page to say it captures and the other that it is a standby; A captures %v, waits %v; B captures %v, waits %v",
				aLeads, aWaits, bLeads, bWaits)
		}
		return true, ""
	})
}
