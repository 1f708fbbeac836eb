package s3

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/kprof/kprof/internal/config/check"
)

// Defaults and limits of Config.
const (
	DefaultPartSize          int64 = 16 << 20 // multipart part size and threshold
	MinPartSize              int64 = 5 << 20  // S3's smallest part (all but the last)
	MaxPartSize              int64 = 5 << 30  // S3's largest part
	DefaultTimeout                 = 2 * time.Minute
	DefaultMaxMetadataLabels       = 8

	// SSEAES256 is server-side encryption with S3-managed keys (SSE-S3).
	SSEAES256 = "AES256"
	// SSEKMS is server-side encryption with a KMS key (SSE-KMS).
	SSEKMS = "aws:kms"

	dialTimeout           = 10 * time.Second
	tlsHandshakeTimeout   = 10 * time.Second
	responseHeaderTimeout = 30 * time.Second
)

// Credentials are static S3 credentials, for stores outside AWS (MinIO, Ceph RGW, R2,
// GCS interoperability keys). Every way of printing them (fmt, slog, logr, JSON) shows
// only whether each field is set, never its value.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
}

// redacted says whether a secret is set without showing it.
func redacted(v string) string {
	if v == "" {
		return "<unset>"
	}
	return "<redacted>"
}

// String implements fmt.Stringer (%v, %s, %+v) without the secrets.
func (c Credentials) String() string {
	return fmt.Sprintf("{AccessKeyID:%s SecretAccessKey:%s SessionToken:%s}",
		redacted(c.AccessKeyID), redacted(c.SecretAccessKey), redacted(c.SessionToken))
}

// GoString implements fmt.GoStringer (%#v) without the secrets.
func (c Credentials) GoString() string {
	return fmt.Sprintf("s3.Credentials{AccessKeyID:%q, SecretAccessKey:%q, SessionToken:%q}",
		redacted(c.AccessKeyID), redacted(c.SecretAccessKey), redacted(c.SessionToken))
}

// LogValue implements slog.LogValuer.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalLog implements logr.Marshaler, which zapr honors.
func (c Credentials) MarshalLog() any { return c.String() }

// MarshalJSON keeps the secrets out of JSON (zap's reflection encoder uses it too).
func (c Credentials) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, "%q", c.String()), nil
}

// Config configures a Store. SetDefaults fills in the defaults.
type Config struct {
	// Bucket receives the profiles. Required.
	Bucket string
	// Region of the bucket. Default: the AWS configuration chain (AWS_REGION, the shared
	// config file), else "us-east-1" when Endpoint is set; required for AWS.
	Region string
	// Endpoint of an S3-compatible store ("http://minio.storage:9000"); empty means AWS.
	Endpoint string
	// UsePathStyle addresses the bucket in the path, not the host name. Default: true
	// when Endpoint is set (MinIO and most S3-compatibles), false for AWS.
	UsePathStyle *bool
	// SSE is the server-side encryption of stored objects: "", "AES256" or "aws:kms".
	SSE string
	// KMSKeyID is the KMS key for SSE "aws:kms" (default: the bucket's or account's key).
	KMSKeyID string
	// Credentials are static credentials. nil uses the AWS SDK's default chain:
	// environment, shared config and credentials files, web identity token file (IRSA:
	// AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE), container credentials (ECS, EKS Pod
	// Identity), EC2 instance metadata.
	Credentials *Credentials
	// PartSize is the multipart part size and the size from which an object is uploaded
	// in parts. Default 16 MiB, at least 5 MiB.
	PartSize int64
	// Timeout bounds one operation: a whole Put including its verification, one Check,
	// one CredentialSource. Default 2m. Aborting a failed multipart upload may take up
	// to 10s more.
	Timeout time.Duration
	// MaxMetadataLabels is how many target labels are stored as "label-<key>" object
	// metadata. Default 8. Labels that would take the metadata past S3's 2 KiB limit are
	// left out.
	MaxMetadataLabels int
	// HTTPClient sends the requests (S3, and STS/IMDS for the credential chain).
	// Default: the SDK's client with a 10s dial timeout, 10s TLS handshake timeout and
	// 30s response header timeout; Timeout bounds every operation as a whole. A custom
	// CA bundle (AWS_CA_BUNDLE) works only with the default client: with a CA bundle
	// configured, New fails for a custom one, whose trusted CAs are its own business.
	HTTPClient *http.Client
}

// String describes c without credentials.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "{Bucket:%s Region:%s Endpoint:%s", c.Bucket, c.Region, check.DisplayEndpoint(c.Endpoint))
	if c.UsePathStyle != nil {
		fmt.Fprintf(&b, " UsePathStyle:%t", *c.UsePathStyle)
	}
	fmt.Fprintf(&b, " SSE:%s KMSKeyID:%s", c.SSE, c.KMSKeyID)
	if c.Credentials != nil {
		fmt.Fprintf(&b, " Credentials:%s", c.Credentials.String())
	}
	fmt.Fprintf(&b, " PartSize:%d Timeout:%s MaxMetadataLabels:%d}", c.PartSize, c.Timeout, c.MaxMetadataLabels)
	return b.String()
}

// GoString implements fmt.GoStringer (%#v) without credentials.
func (c Config) GoString() string { return "s3.Config" + c.String() }

// LogValue implements slog.LogValuer.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalLog implements logr.Marshaler, which zapr honors.
func (c Config) MarshalLog() any { return c.String() }

// SetDefaults fills in the zero fields: the part size, timeout and metadata bound, the
// addressing style (path style with an Endpoint), and an Endpoint without its trailing '/'.
func (c *Config) SetDefaults() {
	c.Endpoint = strings.TrimSuffix(c.Endpoint, "/")
	if c.UsePathStyle == nil {
		pathStyle := c.Endpoint != ""
		c.UsePathStyle = &pathStyle
	}
	check.Default(&c.PartSize, DefaultPartSize)
	check.Default(&c.Timeout, DefaultTimeout)
	check.Default(&c.MaxMetadataLabels, DefaultMaxMetadataLabels)
}

// Validate checks c; zero values are valid (SetDefaults fills them). An error names the field.
func (c *Config) Validate() error {
	if c.Bucket == "" {
		return errors.New("s3 store config: Bucket is required")
	}
	if err := check.Bucket(c.Bucket); err != nil {
		return fmt.Errorf("s3 store config: Bucket %q: %w", c.Bucket, err)
	}
	if err := check.Region(c.Region); err != nil {
		return fmt.Errorf("s3 store config: Region: %w", err)
	}
	if c.Endpoint != "" {
		switch err := check.Endpoint(c.Endpoint); {
		case errors.Is(err, check.ErrEndpointUserInfo):
			return errors.New("s3 store config: Endpoint must not contain user information; set Credentials instead")
		case err != nil:
			return fmt.Errorf("s3 store config: Endpoint: %w", err)
		}
	}
	switch c.SSE {
	case "", SSEAES256, SSEKMS:
	default:
		return fmt.Errorf("s3 store config: SSE %q: must be empty, %q or %q", c.SSE, SSEAES256, SSEKMS)
	}
	if c.KMSKeyID != "" && c.SSE != SSEKMS {
		return fmt.Errorf("s3 store config: KMSKeyID is set but SSE is %q: KMSKeyID requires SSE %q", c.SSE, SSEKMS)
	}
	if c.Credentials != nil {
		switch {
		case c.Credentials.AccessKeyID == "":
			return errors.New("s3 store config: Credentials.AccessKeyID is empty (leave Credentials nil to use the default credential chain)")
		case c.Credentials.SecretAccessKey == "":
			return errors.New("s3 store config: Credentials.SecretAccessKey is empty")
		}
	}
	if c.PartSize != 0 && (c.PartSize < MinPartSize || c.PartSize > MaxPartSize) {
		return fmt.Errorf("s3 store config: PartSize %d: must be between %d (5 MiB) and %d (5 GiB)", c.PartSize, MinPartSize, MaxPartSize)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("s3 store config: Timeout %s: must be positive", c.Timeout)
	}
	if c.MaxMetadataLabels < 0 {
		return fmt.Errorf("s3 store config: MaxMetadataLabels %d: must not be negative", c.MaxMetadataLabels)
	}
	return nil
}

// defaultHTTPClient bounds connecting and waiting for response headers; the operation
// timeout bounds the rest. It is the SDK's buildable client, so a custom CA bundle
// (AWS_CA_BUNDLE, ca_bundle in the shared config) can be added to it.
func defaultHTTPClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = dialTimeout }).
		WithTransportOptions(func(t *http.Transport) {
			t.TLSHandshakeTimeout = tlsHandshakeTimeout
			t.ResponseHeaderTimeout = responseHeaderTimeout
			t.MaxIdleConnsPerHost = 16
		})
}
