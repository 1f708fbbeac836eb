package check

import "errors"

// A Setting is an optional count, size or duration field of a Config: zero means its
// default, and a negative value is an error that names it. A Config lists its settings
// once, with their names and defaults, and both SetDefaults and Validate go through
// that one list, so a field is not named again in each.
type Setting interface {
	setDefault()
	notNegative() error
}

type setting[T Number] struct {
	name string
	p    *T
	def  T
}

func (s setting[T]) setDefault()        { Default(s.p, s.def) }
func (s setting[T]) notNegative() error { return NotNegative(s.name, *s.p) }

// Field is the setting name, held at p, whose zero value means def.
func Field[T Number](name string, p *T, def T) Setting {
	return setting[T]{name: name, p: p, def: def}
}

// SetDefaults fills every zero setting with its default.
func SetDefaults(settings ...Setting) {
	for _, s := range settings {
		s.setDefault()
	}
}

// NotNegatives reports every negative setting, each as NotNegative does.
func NotNegatives(settings ...Setting) error {
	errs := make([]error, 0, len(settings))
	for _, s := range settings {
		errs = append(errs, s.notNegative())
	}
	return errors.Join(errs...)
}
