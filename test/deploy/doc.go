// Package deploy tests what kprof ships to a cluster: the kustomize manifests under config/
// rendered by the real kustomize binary and created in a real kube-apiserver (envtest), their
// hardening, and the RBAC generated from the code's markers, proven least privilege with
// SubjectAccessReviews and by running the operator under its ServiceAccount's identity.
//
// It needs kustomize, kube-apiserver and etcd (hack/install-tools.sh); without them the tests
// fail and say so. Run: go test -race ./test/deploy/
package deploy
