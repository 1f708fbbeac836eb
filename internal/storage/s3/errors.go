package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kprof/kprof/internal/storage"
)

// errCredentials marks a failure to obtain credentials (nothing in the chain, STS
// refused the web identity token, ...); credentialsProvider wraps every such error.
type errCredentials struct{ err error }

func (e *errCredentials) Error() string { return "retrieve credentials: " + e.err.Error() }
func (e *errCredentials) Unwrap() error { return e.err }

// API error codes, by what they mean for the user.
var (
	noSuchBucketCodes = map[string]bool{"NoSuchBucket": true}
	accessDeniedCodes = map[string]bool{
		"AccessDenied": true, "AllAccessDisabled": true, "Forbidden": true, "AccountProblem": true,
	}
	invalidCredentialsCodes = map[string]bool{
		"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "ExpiredToken": true,
		"InvalidToken": true, "TokenRefreshRequired": true, "InvalidClientTokenId": true,
		"ExpiredTokenException": true, "InvalidIdentityToken": true, "IDPCommunicationError": true,
	}
	regionCodes = map[string]bool{
		"PermanentRedirect": true, "AuthorizationHeaderMalformed": true, "MovedPermanently": true,
		"IllegalLocationConstraintException": true, "InvalidRegion": true, "AuthorizationQueryParametersError": true,
	}
	checksumCodes = map[string]bool{
		"BadDigest": true, "XAmzContentSHA256Mismatch": true, "InvalidDigest": true, "InvalidChecksum": true,
	}
)

// classify turns an error from an S3 call into a *storage.Error whose message names the
// problem, or, when the caller's ctx ended, into an error that wraps ctx.Err() and is
// not classified. op names what was being done ("put s3://bucket/key (endpoint ...)").
func (s *Store) classify(caller context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := caller.Err(); cerr != nil {
		return fmt.Errorf("%s: %w: %w", op, cerr, err)
	}
	kind, why := s.kindOf(err)
	return &storage.Error{Kind: kind, Op: op, Err: fmt.Errorf("%s: %w", why, err)}
}

// kindOf returns the kind of err and a sentence that names the problem.
func (s *Store) kindOf(err error) (storage.ErrorKind, string) {
	var credErr *errCredentials
	if errors.As(err, &credErr) {
		return storage.KindInvalidCredentials, "no usable credentials"
	}

	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		switch {
		case noSuchBucketCodes[code]:
			return storage.KindNoSuchBucket, fmt.Sprintf("bucket %q does not exist", s.bucket)
		case invalidCredentialsCodes[code]:
			return storage.KindInvalidCredentials, fmt.Sprintf("the store rejected the credentials (%s)", code)
		case accessDeniedCodes[code]:
			return storage.KindAccessDenied, fmt.Sprintf("access to bucket %q denied (%s)", s.bucket, code)
		case regionCodes[code]:
			return storage.KindStoreError, s.regionProblem(err, code)
		case checksumCodes[code]:
			return storage.KindVerifyFailed, fmt.Sprintf("the store's checksum of the received bytes does not match (%s)", code)
		case strings.Contains(strings.ToLower(code), "kms"):
			return storage.KindStoreError, fmt.Sprintf("server-side encryption with KMS key %q failed (%s)", s.kmsKeyID, code)
		}
		return storage.KindStoreError, fmt.Sprintf("the store answered %s", code)
	}

	if errors.Is(err, context.DeadlineExceeded) {
		return storage.KindEndpointUnreachable, fmt.Sprintf("no answer from %s within %s", s.endpointName(), s.timeout)
	}
	if unreachable(err) {
		return storage.KindEndpointUnreachable, fmt.Sprintf("cannot reach %s", s.endpointName())
	}
	return storage.KindStoreError, "request failed"
}

// regionProblem explains a redirect or region error, with the bucket's region when S3
// said it (x-amz-bucket-region).
func (s *Store) regionProblem(err error, code string) string {
	msg := fmt.Sprintf("bucket %q is not in region %q (%s): set Region to the bucket's region", s.bucket, s.region, code)
	if r := bucketRegionHeader(err); r != "" && r != s.region {
		msg = fmt.Sprintf("bucket %q is in region %q, not %q (%s): set Region to %q", s.bucket, r, s.region, code, r)
	}
	return msg
}

func bucketRegionHeader(err error) string {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.Header.Get("X-Amz-Bucket-Region")
	}
	return ""
}

// httpStatus returns the HTTP status of the response behind err, 0 without one.
func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}

// unreachable reports errors of reaching the endpoint: DNS, refused or reset
// connections, TLS and certificate failures, timeouts, a connection closed mid-answer.
func unreachable(err error) bool {
	var (
		dnsErr     *net.DNSError
		opErr      *net.OpError
		netErr     net.Error
		sendErr    *smithyhttp.RequestSendError
		recordErr  tls.RecordHeaderError
		certErr    *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &dnsErr), errors.As(err, &opErr), errors.As(err, &sendErr),
		errors.As(err, &recordErr), errors.As(err, &certErr), errors.As(err, &unknownCA),
		errors.As(err, &hostErr), errors.As(err, &invalidErr):
		return true
	case errors.As(err, &netErr) && netErr.Timeout():
		return true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	}
	return false
}
