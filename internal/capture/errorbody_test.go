package capture

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestErrorBodySummarisesHTMLPages(t *testing.T) {
	long := strings.Repeat("word ", 100)
	for _, tc := range []struct {
		name, contentType, body, want string
	}{
		{"an HTML page is named by its title", "text/html; charset=utf-8",
			"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title><style>body{}</style></head><body><h1>Bad Gateway</h1>" + strings.Repeat("x", 4000) + "</body></html>",
			`HTML page "502 Bad Gateway"`},
		{"a page without a Content-Type is recognised by its start", "",
			"  <html><head><TITLE>\n  Service &amp; Co\n unavailable </TITLE></head></html>", `HTML page "Service & Co unavailable"`},
		{"a page without a title is named by its first line of text", "text/html",
			"<html><head><script>var x = 1;</script></head><body>\n<div>\n</div><p>Forbidden:   you\tshall not pass</p><p>more</p></body></html>",
			`HTML page "Forbidden: you shall not pass"`},
		{"a long title is truncated", "text/html", "<title>" + long + "</title>",
			`HTML page "` + strings.TrimSpace(long)[:120] + `…"`},
		{"a text body is quoted as it is", "text/plain; charset=utf-8", "profile duration exceeds server's WriteTimeout\n",
			`"profile duration exceeds server's WriteTimeout\n"`},
		{"a long text body is capped", "text/plain", strings.Repeat("A", 2000), `"` + strings.Repeat("A", maxErrorExcerpt) + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{Header: http.Header{}, Body: io.NopCloser(strings.NewReader(tc.body))}
			if tc.contentType != "" {
				resp.Header.Set("Content-Type", tc.contentType)
			}
			if got := errorBody(resp); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
