package portforward

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/client-go/rest"

	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/logging"
)

// Defaults applied by Config.SetDefaults.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultIdleTimeout = 30 * time.Second
)

// Config configures NewTransport.
type Config struct {
	// RESTConfig reaches the API server. Required. Its identity needs RBAC verb
	// "create" on pods/portforward; with "get" as well, the websocket protocol
	// that API servers >= 1.31 prefer is used, else plain SPDY after one refusal.
	RESTConfig *rest.Config
	// DialTimeout bounds opening one forwarded connection: upgrading a port-forward
	// connection to the pod through the API server when there is none, and creating
	// the connection's streams. Default 10s.
	DialTimeout time.Duration
	// IdleTimeout is how long a pod's port-forward connection stays open once no
	// forwarded connection uses it. Default 30s.
	IdleTimeout time.Duration
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// SetDefaults fills in the zero fields.
func (c *Config) SetDefaults() {
	check.Default(&c.DialTimeout, DefaultDialTimeout)
	check.Default(&c.IdleTimeout, DefaultIdleTimeout)
	c.Logger = logging.OrDiscard(c.Logger)
}

// Validate reports every bad field by name; zero values other than RESTConfig's are
// valid (SetDefaults fills them).
func (c *Config) Validate() error {
	var errs []error
	if c.RESTConfig == nil {
		errs = append(errs, errors.New("RESTConfig is required"))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("DialTimeout %s is negative", c.DialTimeout))
	}
	if c.IdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("IdleTimeout %s is negative", c.IdleTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("port-forward config: %w", err)
	}
	return nil
}
