package otlp

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/pdata/pprofile"
	"go.opentelemetry.io/collector/pdata/pprofile/pprofileotlp"
	"google.golang.org/grpc"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/router"
)

// ProfilesName is the name of the Profiles consumer.
const ProfilesName = "otlp-profiles"

var _ router.Consumer = (*Profiles)(nil)

// Profiles exports each profile event to an OTLP gRPC endpoint as OTLP
// profiles (see Convert).
type Profiles struct {
	cfg  Config
	conn *conn
}

// NewProfiles fills in cfg's defaults, validates it and returns a Profiles consumer. It
// does not connect: the first export does.
func NewProfiles(cfg Config) (*Profiles, error) {
	if err := cfg.build(); err != nil {
		return nil, fmt.Errorf("%s consumer: %w", ProfilesName, err)
	}
	return &Profiles{cfg: cfg, conn: newConn(cfg, ProfilesName)}, nil
}

// Name implements router.Consumer.
func (p *Profiles) Name() string { return ProfilesName }

// Consume implements router.Consumer: it converts ev and exports it, in one
// request or, above MaxRequestBytes, in several (split by process), each
// retried on its own within the event's MaxElapsed. An event without samples exports nothing. A request
// whose profiles were all rejected is an error; a partial rejection is logged.
func (p *Profiles) Consume(ctx context.Context, ev *profile.Event) error {
	if ev == nil {
		return fmt.Errorf("%s: nil event", ProfilesName)
	}
	if len(ev.Samples) == 0 {
		return nil
	}
	// MaxElapsed bounds the whole event, however many requests it takes.
	ctx, cancel := p.conn.withMaxElapsed(ctx)
	defer cancel()
	var errs []error
	reqs := p.split(ev, groupByProcess(ev))
	for i, pd := range reqs {
		what := fmt.Sprintf("config %q (%d profiles, %d samples)", ev.Config, pd.ProfileCount(), pd.SampleCount())
		if len(reqs) > 1 {
			what = fmt.Sprintf("config %q part %d/%d (%d profiles, %d samples)", ev.Config, i+1, len(reqs), pd.ProfileCount(), pd.SampleCount())
		}
		if err := p.export(ctx, what, pd); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ProfilesName, err))
			if errors.Is(err, errShutdown) || ctx.Err() != nil {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// split converts groups into requests of at most MaxRequestBytes each, halving
// the groups until they fit; one process is never split.
func (p *Profiles) split(ev *profile.Event, groups []sampleGroup) []pprofile.Profiles {
	pd := convertGroups(ev, groups, convertOptions{threadIDs: p.cfg.ThreadIDs})
	if len(groups) < 2 || (&pprofile.ProtoMarshaler{}).ProfilesSize(pd) <= p.cfg.MaxRequestBytes {
		return []pprofile.Profiles{pd}
	}
	half := len(groups) / 2
	return append(p.split(ev, groups[:half]), p.split(ev, groups[half:])...)
}

func (p *Profiles) export(ctx context.Context, what string, pd pprofile.Profiles) error {
	req := pprofileotlp.NewExportRequestFromProfiles(pd)
	res, err := p.conn.export(ctx, what, func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) (result, error) {
		resp, err := pprofileotlp.NewGRPCClient(cc).Export(ctx, req, opts...)
		if err != nil {
			return result{}, err
		}
		ps := resp.PartialSuccess()
		return result{rejected: ps.RejectedProfiles(), message: ps.ErrorMessage()}, nil
	})
	if err != nil {
		return err
	}
	return p.conn.partial(what, res, int64(pd.ProfileCount()), "profiles")
}

// Shutdown implements router.Consumer: it closes the connection. It is
// idempotent and safe without a Consume.
func (p *Profiles) Shutdown(context.Context) error {
	return p.conn.close()
}

// partial logs a partial success and makes it an error when all total items
// were rejected.
func (c *conn) partial(what string, res result, total int64, items string) error {
	if res.rejected == 0 && res.message == "" {
		return nil
	}
	c.log.Warn("export partially rejected", "request", what, "rejected_"+items, res.rejected, "total_"+items, total, "message", res.message)
	if res.rejected > 0 && res.rejected >= total {
		return fmt.Errorf("export %s to %s: all %d %s rejected: %q", what, c.cfg.Endpoint, res.rejected, items, res.message)
	}
	return nil
}
