package main

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kprof/kprof/internal/index"
	"github.com/kprof/kprof/internal/profdiff"
)

// selectorHelp explains SEL, the argument of merge and of diff's --base and --target.
const selectorHelp = `Each profile set (SEL) is one of:
  FILE or DIR      a profile file, or every profile of --type below a directory
  ID               a profile of --store by its ID, as "kprof profiles list -o name" prints it
                   (shop/checkout/2026-12-07/20261207T140203.000Z_checkout-7d9_cpu.pb.gz)
  KEY=VALUE,...    the profiles of --store that a selector matches, with the keys of the list's
                   filters: namespace (or ns), service, pod, type, reason, since, from, to; e.g.
                   service=checkout,reason=schedule,since=1h or
                   service=checkout,type=cpu,from=2026-12-07T13:00,to=2026-12-07T14:00
A path that exists is a file or directory; a selector starts with KEY=. The filter flags
(--namespace, --service, --pod, --reason, --since, --from, --to) and --type apply to every
selector and fill in the keys it leaves out (a selector's from, to or since replaces the
flags' time range).`

// selection resolves SELs into merge inputs: files and directories from disk, IDs and
// selectors from the store, which is opened on first use.
type selection struct {
	cmd   *cobra.Command
	sf    *storeFlags
	lf    listFlags
	typ   string
	limit int64 // MaxFileBytes, for the type sniffing of directories
	now   time.Time

	x         index.Index
	fromStore bool // some SEL read the store
}

func newSelection(cmd *cobra.Command, sf *storeFlags, lf listFlags, mf mergeFlags) *selection {
	return &selection{cmd: cmd, sf: sf, lf: lf, typ: mf.typ, limit: mf.maxFileBytes, now: time.Now()}
}

// index opens the store once.
func (s *selection) index() (index.Index, error) {
	if s.x == nil {
		x, err := s.sf.open(s.cmd)
		if err != nil {
			return nil, err
		}
		s.x = x
	}
	s.fromStore = true
	return s.x, nil
}

// flagFilter is the filter of the filter flags and --type.
func (s *selection) flagFilter() (index.Filter, error) {
	f, err := s.lf.filter(s.now)
	f.Type = s.typ
	return f, err
}

// resolve returns the inputs that sels name, in order. With no sels, the filter flags
// select from the store.
func (s *selection) resolve(sels []string) ([]profdiff.Input, error) {
	defaults, err := s.flagFilter()
	if err != nil {
		return nil, err
	}
	if len(sels) == 0 {
		x, err := s.index()
		if err != nil {
			return nil, err
		}
		return s.selectIndex(x, defaults)
	}
	var out []profdiff.Input
	for _, sel := range sels {
		in, err := s.resolveOne(sel, defaults)
		if err != nil {
			return nil, err
		}
		out = append(out, in...)
	}
	return out, nil
}

func (s *selection) resolveOne(sel string, defaults index.Filter) ([]profdiff.Input, error) {
	if index.LooksLikeSelector(sel) {
		f, err := index.ParseSelector(sel, s.now)
		if err != nil {
			return nil, err
		}
		x, err := s.index()
		if err != nil {
			return nil, err
		}
		return s.selectIndex(x, f.Or(defaults))
	}
	_, statErr := os.Stat(sel)
	if statErr == nil {
		return profdiff.Select([]string{sel}, s.typ, s.limit)
	}
	if !errors.Is(statErr, iofs.ErrNotExist) || index.CheckID(sel) != nil {
		return nil, fmt.Errorf("profile input: %w", statErr)
	}
	x, err := s.index()
	if err != nil {
		return nil, err
	}
	e, err := x.Stat(s.cmd.Context(), sel)
	if errors.Is(err, index.ErrNotFound) {
		return nil, fmt.Errorf("%s: no such file or directory here, and no profile with this ID in %s (IDs as \"kprof profiles list -o name\" prints them)", sel, x)
	}
	if err != nil {
		return nil, err
	}
	if s.typ != "" && e.Type != "" && e.Type != s.typ {
		return nil, fmt.Errorf("%s: a %s profile, not %s (--type)", sel, e.Type, s.typ)
	}
	return []profdiff.Input{profdiff.EntryInput(x, e)}, nil
}

// selectIndex selects with f, saying "--type" where profdiff says "type".
func (s *selection) selectIndex(x index.Index, f index.Filter) ([]profdiff.Input, error) {
	in, err := profdiff.SelectIndex(s.cmd.Context(), x, f)
	if mt := (*profdiff.MixedTypesError)(nil); errors.As(err, &mt) {
		return nil, fmt.Errorf("%w (--type or type=)", err)
	}
	return in, err
}

// checkFiltersUsed refuses filter flags when no SEL read the store: they would be ignored.
func (s *selection) checkFiltersUsed() error {
	if s.fromStore {
		return nil
	}
	var set []string
	for _, n := range filterFlagNames {
		if fl := s.cmd.Flags().Lookup(n); fl != nil && fl.Changed {
			set = append(set, "--"+n)
		}
	}
	if len(set) == 0 {
		return nil
	}
	slices.Sort(set)
	return fmt.Errorf("%s: these filters select profiles of --store, but only files and directories were given; give a selector or an ID instead", strings.Join(set, ", "))
}
