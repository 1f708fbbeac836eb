package controller

// RBAC of the ProfileCapture controller. The operator executes ProfileCaptures (reads them,
// writes their status), creates one for every trigger of the metrics-server path, and
// deletes finished ones after their TTL or past the per-namespace bound. It creates the
// Secret holding the token the agents' flight recorders require, when it is missing.
//
// +kubebuilder:rbac:groups=profiling.io,resources=profilecaptures,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=profiling.io,resources=profilecaptures/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",namespace=kprof-system,resources=secrets,verbs=create
