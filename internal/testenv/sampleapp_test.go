package testenv

import (
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestStartSampleApp(t *testing.T) {
	var addr string
	t.Run("serves its pprof endpoints on the free port it picked", func(t *testing.T) {
		port := StartSampleApp(t, "127.0.0.1:0", "--background-load")
		if port == 0 {
			t.Fatal("port 0")
		}
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/debug/pprof/heap")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /debug/pprof/heap: status %d", resp.StatusCode)
		}
	})
	t.Run("is gone when its test ends", func(t *testing.T) {
		if addr == "" {
			t.Fatal("the app did not start in the subtest before, so its cleanup cannot be checked")
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			t.Fatalf("%s still accepts connections", addr)
		}
	})
}
