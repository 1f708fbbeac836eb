// Package datadog is a router consumer that uploads each profile event to
// Datadog's profiling intake, through a Datadog Agent or directly (agentless),
// in the multipart "event.json + attachments" format of Datadog's profilers.
package datadog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kprof/kprof/internal/agent/router"
	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/logging"
)

// Defaults and limits applied by Config.SetDefaults and Config.Validate.
const (
	DefaultAgentURL       = "http://localhost:8126/profiling/v1/input"
	DefaultTimeout        = 10 * time.Second
	DefaultMaxRetries     = 3
	DefaultRetryBaseDelay = 200 * time.Millisecond
	DefaultRetryMaxDelay  = 10 * time.Second
	DefaultFamily         = "native"
	// DefaultService is the service tag of an upload whose workload has no name.
	DefaultService = "kprof-agent"
	MaxRetries     = 10
	// APIKeyEnv is read when neither APIKey nor APIKeyFile is set.
	APIKeyEnv = "DD_API_KEY"
	// maxAPIKeyFile bounds the read of APIKeyFile.
	maxAPIKeyFile = 4 << 10
)

// Secret is a credential: it prints, logs and marshals as "[redacted]".
type Secret string

const redacted = "[redacted]"

func (Secret) String() string               { return redacted }
func (Secret) GoString() string             { return redacted }
func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (s Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// Config configures a Consumer.
//
// Agent mode (the default) posts to AgentURL without a key. Agentless mode
// (Site set) posts to https://intake.profile.<Site>/api/v2/profile with the API
// key from APIKey, else APIKeyFile, else the DD_API_KEY environment variable.
type Config struct {
	// AgentURL is the Datadog Agent's profiling endpoint. Default
	// DefaultAgentURL; must be empty when Site is set.
	AgentURL string
	// Site is the Datadog site for agentless uploads, e.g. "datadoghq.com".
	Site string
	// APIKey is the agentless API key; APIKeyFile a file holding it.
	APIKey     Secret
	APIKeyFile string

	// Service, when set, is the service tag of every upload; by default each upload has
	// its workload's (serviceid.FromLabels: the pod's service identity, else the
	// executable's name; DefaultService when neither is known).
	Service string
	// Env is the env tag of every upload; Version, when set, the version tag of every
	// upload, else the workload's service version.
	Env, Version string
	// Tags are more "key:value" tags for every upload.
	Tags []string
	// Host is the host tag; default the event's "node" label, else os.Hostname.
	Host string
	// Family is the profiler family of the upload; default "native" (the agent
	// profiles any language from outside the process).
	Family string

	// Timeout bounds each HTTP attempt. Default 10s.
	Timeout time.Duration
	// MaxRetries is how many times a 5xx or network failure is retried, with
	// exponential backoff from RetryBaseDelay to RetryMaxDelay (lifecycle.Backoff).
	// Default 3; negative means no retry.
	MaxRetries                    int
	RetryBaseDelay, RetryMaxDelay time.Duration
	// QueueSize is how many events the router should queue for this consumer;
	// default router.DefaultQueueSize. The wiring passes it to the router.
	QueueSize int

	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Client sends the requests; nil uses a client of its own.
	Client *http.Client

	// Set by build.
	url string
	// apiKey is behind a pointer so that formatting a Config, which cannot
	// call Secret's methods on an unexported field, prints an address.
	apiKey *Secret
}

// settings are the optional timeout and retry delays and the logger, each with its default.
func (c *Config) settings() []check.Setting {
	return []check.Setting{
		check.Field("Timeout", &c.Timeout, DefaultTimeout),
		check.Field("RetryBaseDelay", &c.RetryBaseDelay, DefaultRetryBaseDelay),
		check.Field("RetryMaxDelay", &c.RetryMaxDelay, DefaultRetryMaxDelay),
		logging.Setting(&c.Logger),
	}
}

// SetDefaults fills in the zero fields; a negative MaxRetries becomes 0 (no retry).
func (c *Config) SetDefaults() {
	if c.Site == "" {
		check.Default(&c.AgentURL, DefaultAgentURL)
	}
	check.Default(&c.Family, DefaultFamily)
	check.SetDefaults(c.settings()...)
	check.Default(&c.MaxRetries, DefaultMaxRetries)
	c.MaxRetries = max(c.MaxRetries, 0)
	check.Default(&c.QueueSize, router.DefaultQueueSize)
}

// Validate reports every bad field by name, resolving the agentless API key to check
// that there is one; zero values are valid (SetDefaults fills them). It never puts
// the API key in an error.
func (c *Config) Validate() error {
	var errs []error
	switch {
	case c.Site != "" && c.AgentURL != "":
		errs = append(errs, errors.New("AgentURL: must be empty when Site (agentless) is set"))
	case c.Site != "":
		if strings.ContainsAny(c.Site, "/:@?# ") {
			errs = append(errs, fmt.Errorf("Site: must be a host name such as datadoghq.com, got %q", c.Site))
		}
		switch key, err := c.resolveAPIKey(); {
		case err != nil:
			errs = append(errs, err)
		case key == "":
			errs = append(errs, fmt.Errorf("APIKey: required when Site is set (set APIKey, APIKeyFile or %s)", APIKeyEnv))
		}
	default:
		if u, err := url.Parse(c.AgentURL); c.AgentURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			errs = append(errs, fmt.Errorf("AgentURL: must be an http(s) URL, got %q", c.AgentURL))
		}
		if c.APIKey != "" || c.APIKeyFile != "" {
			errs = append(errs, errors.New("APIKey: only used with Site (agentless); the Datadog Agent holds its own key"))
		}
	}
	for _, t := range c.Tags {
		if t == "" || strings.Contains(t, ",") {
			errs = append(errs, fmt.Errorf("Tags: %q must be non-empty key:value without commas", t))
		}
	}
	errs = append(errs, check.NotNegatives(c.settings()...))
	if c.MaxRetries > MaxRetries {
		errs = append(errs, fmt.Errorf("MaxRetries: must be at most %d, got %d", MaxRetries, c.MaxRetries))
	}
	if c.QueueSize < 0 || c.QueueSize > router.MaxQueueSize {
		errs = append(errs, fmt.Errorf("QueueSize: must be from 1 to %d, got %d", router.MaxQueueSize, c.QueueSize))
	}
	return errors.Join(errs...)
}

// build is what New does: fill in the defaults, validate, then resolve the endpoint
// and the agentless API key.
func (c *Config) build() error {
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	c.url = c.AgentURL
	if c.Site != "" {
		c.url = "https://intake.profile." + c.Site + "/api/v2/profile"
		key, err := c.resolveAPIKey()
		if err != nil {
			return err
		}
		s := Secret(key)
		c.apiKey = &s
	}
	return nil
}

// key returns the resolved agentless API key, "" in agent mode.
func (c *Config) key() string {
	if c.apiKey == nil {
		return ""
	}
	return string(*c.apiKey)
}

// resolveAPIKey returns the key from APIKey, APIKeyFile or the environment.
// Its errors name the file, never its content.
func (c *Config) resolveAPIKey() (string, error) {
	if c.APIKey != "" {
		return strings.TrimSpace(string(c.APIKey)), nil
	}
	if c.APIKeyFile != "" {
		f, err := os.Open(c.APIKeyFile)
		if err != nil {
			return "", fmt.Errorf("APIKeyFile: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxAPIKeyFile+1))
		if err != nil {
			return "", fmt.Errorf("APIKeyFile: read %s: %w", c.APIKeyFile, err)
		}
		if len(b) > maxAPIKeyFile {
			return "", fmt.Errorf("APIKeyFile: %s is larger than %d bytes", c.APIKeyFile, maxAPIKeyFile)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return strings.TrimSpace(os.Getenv(APIKeyEnv)), nil
}
