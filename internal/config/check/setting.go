package check

import (
	"errors"
	"time"
)

// A Setting is an optional field of a Config: zero means its default. A count, size or
// duration (Field) is also checked: a negative value is an error that names it; a clock
// (Clock) or a logger (logging.Setting) only has a default. A Config lists its settings
// once, with their names and defaults, and both SetDefaults and Validate go through
// that one list, so a field is not named again in each.
type Setting interface {
	// SetDefault fills the field when it is zero.
	SetDefault()
	// Check reports a bad value, naming the field; nil when it is valid.
	Check() error
}

type setting[T Number] struct {
	name string
	p    *T
	def  T
}

func (s setting[T]) SetDefault()  { Default(s.p, s.def) }
func (s setting[T]) Check() error { return NotNegative(s.name, *s.p) }

// Field is the setting name, held at p, whose zero value means def.
func Field[T Number](name string, p *T, def T) Setting {
	return setting[T]{name: name, p: p, def: def}
}

// SetDefaults fills every zero setting with its default.
func SetDefaults(settings ...Setting) {
	for _, s := range settings {
		s.SetDefault()
	}
}

// NotNegatives reports every negative setting, each as NotNegative does.
func NotNegatives(settings ...Setting) error {
	errs := make([]error, 0, len(settings))
	for _, s := range settings {
		errs = append(errs, s.Check())
	}
	return errors.Join(errs...)
}

// clock is the setting of a Config's Now.
type clock struct{ now *func() time.Time }

func (c clock) SetDefault()  { DefaultNow(c.now) }
func (c clock) Check() error { return nil }

// Clock is the setting of a Config's clock: nil means time.Now (DefaultNow).
func Clock(now *func() time.Time) Setting { return clock{now: now} }
