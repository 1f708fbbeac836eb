package serviceid

import "github.com/kprof/kprof/internal/agent/profile"

// PutLabels sets the service labels of id (profile.LabelService…) in labels, the
// empty fields left out.
func (id Identity) PutLabels(labels map[string]string) {
	for k, v := range map[string]string{
		profile.LabelService:          id.Name,
		profile.LabelServiceNamespace: id.Namespace,
		profile.LabelServiceInstance:  id.InstanceID,
		profile.LabelServiceVersion:   id.Version,
	} {
		if v != "" {
			labels[k] = v
		}
	}
}

// FromLabels is the identity of a sample of the agent: its service labels (its pod's
// identity) when the attributor set them, else ForExecutable of its exe and comm
// labels (a process outside a cluster or of an unknown pod).
func FromLabels(labels map[string]string) Identity {
	if name := labels[profile.LabelService]; name != "" {
		return Identity{
			Name:       name,
			Namespace:  labels[profile.LabelServiceNamespace],
			InstanceID: labels[profile.LabelServiceInstance],
			Version:    labels[profile.LabelServiceVersion],
		}
	}
	return ForExecutable(labels[profile.LabelExe], labels[profile.LabelComm])
}
