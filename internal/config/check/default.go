package check

// Default sets *p to def when *p is the zero value: the one way a SetDefaults fills a
// field that was left out.
func Default[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}
