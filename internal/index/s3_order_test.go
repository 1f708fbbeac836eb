package index

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/storage"
)

// TestListS3TakesAMarkerListedBeforeItsProfile serves a listing in which the index
// marker comes before its profile, as a store that does not list keys in order
// would: S3 and MinIO list in order, so this needs a stand-in for the server.
func TestListS3TakesAMarkerListedBeforeItsProfile(t *testing.T) {
	meta := testMetas()[2]
	key := storage.RenderKey(storage.DefaultKeyTemplate, "p", meta)
	marker, ok := storage.MarkerKey(key, meta)
	if !ok {
		t.Fatal("no marker for the test metadata")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Query().Get("list-type") != "2" {
			http.Error(w, "only ListObjectsV2 here", http.StatusNotImplemented)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>%s</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>
<Contents><Key>%s</Key><Size>0</Size></Contents>
<Contents><Key>%s</Key><Size>123</Size></Contents>
</ListBucketResult>`, testBucket, html.EscapeString(marker), html.EscapeString(key))
	}))
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	x, err := New(context.Background(), Config{Store: "s3://" + testBucket + "/p", S3Endpoint: srv.URL, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	es, err := x.List(t.Context(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 {
		t.Fatalf("listed %q, want the one profile", ids(es))
	}
	if e := es[0]; e.Source != "marker" || e.Service != "cart" || e.Node != meta.Node || e.Trigger != TriggerThreshold || e.Size != 123 || e.Error != "" {
		t.Errorf("entry %+v, want the metadata of its marker", e)
	}
}
