package check

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultFillsOnlyTheZeroValue(t *testing.T) {
	d, n := time.Duration(0), 7
	Default(&d, time.Second)
	Default(&n, 3)
	if d != time.Second || n != 7 {
		t.Fatalf("Default: got %s and %d, want 1s (was zero) and 7 (was set)", d, n)
	}
}

func TestNotNegativeNamesTheFieldAndValue(t *testing.T) {
	if err := NotNegative("Timeout", -time.Second); err == nil || err.Error() != "Timeout: must not be negative, got -1s" {
		t.Fatalf("NotNegative(-1s) = %v", err)
	}
	if err := NotNegative("MaxFiles", 0); err != nil {
		t.Fatalf("NotNegative(0) = %v, want nil: zero means the default", err)
	}
}

func TestS3NamesAreChecked(t *testing.T) {
	for _, tc := range []struct {
		name, bucket, endpoint, want string
		userInfo                     bool
	}{
		{name: "a plain bucket and endpoint pass", bucket: "profiles", endpoint: "https://minio:9000/s3"},
		{name: "an empty bucket is required", bucket: "", want: "is required"},
		{name: "a URL as bucket gets a hint", bucket: "s3://p", want: "give the bucket name only"},
		{name: "a host:port endpoint is not a URL", bucket: "profiles", endpoint: "minio:9000", want: "got minio:9000: scheme must be http or https"},
		{name: "an endpoint with a query is refused", bucket: "profiles", endpoint: "http://m:9000/?x=1", want: "query or fragment"},
		{name: "an endpoint with credentials is refused without echoing them", bucket: "profiles", endpoint: "http://u:pa55@m:9000", userInfo: true},
		{name: "an unparsable endpoint is not echoed", bucket: "profiles", endpoint: "http://u:pa55@m 1:9000", want: "<endpoint that does not parse>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := errors.Join(Bucket(tc.bucket), Endpoint(tc.endpoint))
			if tc.endpoint == "" {
				err = Bucket(tc.bucket)
			}
			switch {
			case tc.userInfo:
				if !errors.Is(err, ErrEndpointUserInfo) {
					t.Fatalf("got %v, want ErrEndpointUserInfo", err)
				}
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "pa55") {
				t.Fatalf("%v shows the password", err)
			}
		})
	}
}

func TestSettingsAreDefaultedAndCheckedFromOneList(t *testing.T) {
	var c struct {
		Timeout  time.Duration
		MaxFiles int
		MaxBytes int64
	}
	c.MaxFiles, c.MaxBytes = 9, -1
	settings := []Setting{
		Field("Timeout", &c.Timeout, time.Second),
		Field("MaxFiles", &c.MaxFiles, 3),
		Field("MaxBytes", &c.MaxBytes, 64),
	}
	if err := NotNegatives(settings...); err == nil || err.Error() != "MaxBytes: must not be negative, got -1" {
		t.Fatalf("NotNegatives = %v, want only MaxBytes named", err)
	}
	SetDefaults(settings...)
	if c.Timeout != time.Second || c.MaxFiles != 9 || c.MaxBytes != -1 {
		t.Fatalf("SetDefaults: got %+v, want the zero Timeout filled and the set fields kept", c)
	}
}

func TestNotBelowComparesOnlySetBounds(t *testing.T) {
	if err := NotBelow("MaxBackoff", time.Second, "MinBackoff", time.Minute); err == nil || err.Error() != "MaxBackoff: must not be below MinBackoff (1m0s), got 1s" {
		t.Fatalf("NotBelow(1s, 1m) = %v", err)
	}
	for _, tc := range [][2]time.Duration{{0, time.Minute}, {time.Second, 0}, {time.Minute, time.Minute}} {
		if err := NotBelow("MaxBackoff", tc[0], "MinBackoff", tc[1]); err != nil {
			t.Fatalf("NotBelow(%s, %s) = %v, want nil", tc[0], tc[1], err)
		}
	}
}
