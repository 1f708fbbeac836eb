package check

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Bounds of an S3 bucket name.
const (
	minBucketLen      = 3
	maxBucketLen      = 255
	regionChars       = "abcdefghijklmnopqrstuvwxyz0123456789-"
	bucketPunctuation = "-._"
)

// ErrEndpointUserInfo is Endpoint's answer to an endpoint with user information. The
// caller says where credentials belong instead: that differs between the s3 package
// (Credentials) and the `kprof run` file (the AWS default chain).
var ErrEndpointUserInfo = errors.New("endpoint contains user information")

// Bucket accepts the characters S3 and its compatibles allow in bucket names
// (including legacy upper-case and '_'), so a URL or a path given as a bucket is caught
// with a hint. The reason does not name the field: the caller does.
func Bucket(b string) error {
	switch {
	case b == "":
		return errors.New("is required")
	case len(b) < minBucketLen || len(b) > maxBucketLen:
		return fmt.Errorf("must be %d to 63 characters (%d for legacy names), got %q", minBucketLen, maxBucketLen, b)
	}
	for _, r := range b {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(bucketPunctuation, r)) {
			return fmt.Errorf("character %q is not allowed in %q: give the bucket name only, without s3:// or a path", r, b)
		}
	}
	return nil
}

// Region accepts an AWS region name's characters; "" (the SDK's default) is accepted.
func Region(r string) error {
	if r != "" && strings.Trim(r, regionChars) != "" {
		return fmt.Errorf("only lower-case letters, digits and '-' are allowed, got %q", r)
	}
	return nil
}

// Endpoint requires an http(s) URL with a host, without a query or fragment, and
// without user information (ErrEndpointUserInfo), which would put credentials into
// logs and status. No reason echoes user information.
func Endpoint(e string) error {
	u, err := url.Parse(e)
	if err != nil {
		// url.Error repeats the URL, user information included: keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("must be an http(s) URL such as http://127.0.0.1:9000, got %s: %w", DisplayEndpoint(e), err)
	}
	switch {
	case u.User != nil:
		return ErrEndpointUserInfo
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("must be an http(s) URL such as http://127.0.0.1:9000, got %s: scheme must be http or https", DisplayEndpoint(e))
	case u.Host == "":
		return fmt.Errorf("must be an http(s) URL such as http://127.0.0.1:9000, got %s: host is missing", DisplayEndpoint(e))
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("must not have a query or fragment, got %s", DisplayEndpoint(e))
	}
	return nil
}

// DisplayEndpoint shows an endpoint without any user information in it.
func DisplayEndpoint(e string) string {
	if !strings.Contains(e, "@") {
		return e
	}
	u, err := url.Parse(e)
	if err != nil {
		return "<endpoint that does not parse>"
	}
	u.User = nil
	return u.String()
}
