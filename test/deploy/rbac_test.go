package deploy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// access is one request a ServiceAccount may or may not make.
type access struct {
	verb, group, resource, subresource, namespace string
}

func (a access) String() string {
	res := a.resource
	if a.group != "" {
		res += "." + a.group
	}
	if a.subresource != "" {
		res += "/" + a.subresource
	}
	where := "cluster-wide"
	if a.namespace != "" {
		where = "in " + a.namespace
	}
	return fmt.Sprintf("%s %s %s", a.verb, res, where)
}

// allowed asks the API server whether user (a ServiceAccount, with its groups) may do a.
func allowed(ctx context.Context, c client.Client, user string, a access) (bool, string, error) {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: saGroups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource, Namespace: a.namespace,
		},
	}}
	if err := c.Create(ctx, sar); err != nil {
		return false, "", err
	}
	return sar.Status.Allowed, sar.Status.Reason, nil
}

// expectAccess checks each access for user; an expected allow is polled for a few seconds,
// since the RBAC authorizer learns of new bindings through its informers.
func expectAccess(t *testing.T, c client.Client, user string, want bool, accesses []access) {
	t.Helper()
	for _, a := range accesses {
		var got bool
		var reason string
		err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			var err error
			got, reason, err = allowed(ctx, c, user, a)
			return err != nil || got == want, err
		})
		if err != nil && !wait.Interrupted(err) {
			t.Fatalf("SubjectAccessReview %s for %s: %v", a, user, err)
		}
		if got != want {
			verdict := "denied"
			if got {
				verdict = "allowed"
			}
			t.Errorf("%s may %s: %s, want the opposite (%s)", user, a, verdict, reason)
		}
	}
}

// Every request the operator's code makes (internal/controller, internal/operator,
// internal/threshold, controller-runtime's cache, events broadcaster and leader election).
var operatorUses = []access{
	// The pod informer (cluster-wide) and reads through the cache.
	{"get", "", "pods", "", "shop"}, {"list", "", "pods", "", ""}, {"watch", "", "pods", "", ""},
	{"list", "", "pods", "", "shop"}, {"watch", "", "pods", "", "shop"},
	// ProfilingConfigs: informer, APIReader retries, status writes (reconciler, cooldowns).
	{"get", "profiling.io", "profilingconfigs", "", "shop"}, {"list", "profiling.io", "profilingconfigs", "", ""},
	{"watch", "profiling.io", "profilingconfigs", "", ""},
	{"update", "profiling.io", "profilingconfigs", "status", "shop"}, {"patch", "profiling.io", "profilingconfigs", "status", "shop"},
	// Events: the events.k8s.io recorder of the reconciler; core events of leader election.
	{"create", "events.k8s.io", "events", "", "shop"}, {"patch", "events.k8s.io", "events", "", "shop"},
	{"create", "", "events", "", "shop"}, {"patch", "", "events", "", "shop"},
	{"create", "", "events", "", systemNamespace},
	// Threshold triggers read pod usage from metrics-server through the API server.
	{"get", "metrics.k8s.io", "pods", "", "shop"}, {"list", "metrics.k8s.io", "pods", "", "shop"},
	// Leader election (Lease kprof-operator.profiling.io in its own namespace).
	{"get", "coordination.k8s.io", "leases", "", systemNamespace}, {"create", "coordination.k8s.io", "leases", "", systemNamespace},
	{"update", "coordination.k8s.io", "leases", "", systemNamespace},
	// s3Config.credentialsSecretRef and the flight recorder's token: one GET of a Secret in
	// its own namespace; the token's Secret is created when missing.
	{"get", "", "secrets", "", systemNamespace}, {"create", "", "secrets", "", systemNamespace},
	// ProfileCaptures: the informer, the metrics-server path's creates, status writes,
	// deletes after their TTL or past the per-namespace bound.
	{"get", "profiling.io", "profilecaptures", "", "shop"}, {"list", "profiling.io", "profilecaptures", "", ""},
	{"watch", "profiling.io", "profilecaptures", "", ""}, {"create", "profiling.io", "profilecaptures", "", "shop"},
	{"delete", "profiling.io", "profilecaptures", "", "shop"},
	{"update", "profiling.io", "profilecaptures", "status", "shop"}, {"patch", "profiling.io", "profilecaptures", "status", "shop"},
}

// What the operator must not be able to do.
var operatorDenied = []access{
	// Secrets only by name in its own namespace: never elsewhere, never listed or watched.
	{"get", "", "secrets", "", "shop"}, {"get", "", "secrets", "", "kube-system"}, {"get", "", "secrets", "", ""},
	{"list", "", "secrets", "", systemNamespace}, {"watch", "", "secrets", "", systemNamespace}, {"list", "", "secrets", "", ""},
	{"create", "", "secrets", "", "shop"}, {"update", "", "secrets", "", systemNamespace},
	{"delete", "", "secrets", "", systemNamespace}, {"patch", "", "secrets", "", systemNamespace},
	// Leases elsewhere (another controller's leader election).
	{"update", "coordination.k8s.io", "leases", "", "kube-system"}, {"get", "coordination.k8s.io", "leases", "", "shop"},
	// Its own Lease only as leader election uses it (get, create, update): never listed, watched or deleted.
	{"list", "coordination.k8s.io", "leases", "", systemNamespace}, {"watch", "coordination.k8s.io", "leases", "", systemNamespace},
	{"delete", "coordination.k8s.io", "leases", "", systemNamespace}, {"patch", "coordination.k8s.io", "leases", "", systemNamespace},
	// Into pods: exec, attach, port-forward (only with config/portforward), logs, proxies.
	{"create", "", "pods", "exec", "shop"}, {"get", "", "pods", "exec", "shop"}, {"create", "", "pods", "attach", "shop"},
	{"create", "", "pods", "portforward", "shop"}, {"get", "", "pods", "portforward", "shop"},
	{"get", "", "pods", "log", "shop"}, {"get", "", "pods", "proxy", "shop"}, {"get", "", "nodes", "proxy", ""},
	{"create", "", "pods", "eviction", "shop"}, {"create", "", "serviceaccounts", "token", systemNamespace},
	// Writes to workloads and the cluster: every delete, and creates/updates.
	{"delete", "", "pods", "", "shop"}, {"deletecollection", "", "pods", "", "shop"}, {"create", "", "pods", "", "shop"},
	{"update", "", "pods", "", "shop"}, {"patch", "", "pods", "", "shop"}, {"update", "", "pods", "status", "shop"},
	{"delete", "apps", "deployments", "", "shop"}, {"patch", "apps", "deployments", "", "shop"},
	{"delete", "apps", "daemonsets", "", systemNamespace}, {"delete", "", "nodes", "", ""}, {"get", "", "nodes", "", ""},
	{"delete", "", "namespaces", "", ""}, {"create", "", "namespaces", "", ""}, {"delete", "", "configmaps", "", systemNamespace},
	{"get", "", "configmaps", "", "shop"}, {"delete", "", "events", "", "shop"},
	{"delete", "apiextensions.k8s.io", "customresourcedefinitions", "", ""},
	// Its own CRD: it reads specs and writes status only.
	{"create", "profiling.io", "profilingconfigs", "", "shop"}, {"update", "profiling.io", "profilingconfigs", "", "shop"},
	{"patch", "profiling.io", "profilingconfigs", "", "shop"}, {"delete", "profiling.io", "profilingconfigs", "", "shop"},
	// A ProfileCapture's spec is the requester's: the operator never rewrites it.
	{"update", "profiling.io", "profilecaptures", "", "shop"}, {"patch", "profiling.io", "profilecaptures", "", "shop"},
	// Privilege escalation paths.
	{"create", "rbac.authorization.k8s.io", "rolebindings", "", systemNamespace}, {"create", "rbac.authorization.k8s.io", "clusterrolebindings", "", ""},
	{"escalate", "rbac.authorization.k8s.io", "clusterroles", "", ""}, {"bind", "rbac.authorization.k8s.io", "clusterroles", "", ""},
	{"impersonate", "", "users", "", ""}, {"impersonate", "", "serviceaccounts", "", systemNamespace},
	{"create", "certificates.k8s.io", "certificatesigningrequests", "", ""},
	{"create", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", ""},
}

// Every request the agent's code makes: the attributor's pod informer (this node's pods, a
// field selector on spec.nodeName) and single-pod reads; node thresholds' ProfilingConfig
// informer and the ProfileCapture it creates on a crossing, its only write.
var agentUses = []access{
	{"list", "", "pods", "", ""}, {"watch", "", "pods", "", ""}, {"get", "", "pods", "", "shop"},
	{"get", "profiling.io", "profilingconfigs", "", "shop"}, {"list", "profiling.io", "profilingconfigs", "", ""},
	{"watch", "profiling.io", "profilingconfigs", "", ""},
	{"create", "profiling.io", "profilecaptures", "", "shop"},
}

var agentDenied = []access{
	{"get", "", "secrets", "", systemNamespace}, {"get", "", "secrets", "", "shop"}, {"list", "", "secrets", "", ""},
	{"get", "", "configmaps", "", systemNamespace}, // its configs come from a volume, not the API
	{"get", "", "nodes", "", ""},                   // the node name comes from the downward API
	{"create", "profiling.io", "profilingconfigs", "", "shop"}, {"delete", "profiling.io", "profilingconfigs", "", "shop"},
	{"update", "profiling.io", "profilingconfigs", "", "shop"}, {"patch", "profiling.io", "profilingconfigs", "", "shop"},
	{"update", "profiling.io", "profilingconfigs", "status", "shop"}, {"patch", "profiling.io", "profilingconfigs", "status", "shop"},
	// ProfileCaptures: created, never read, changed or deleted (the operator executes them;
	// the cooldown is in the ProfilingConfig's status, which the agent reads).
	{"get", "profiling.io", "profilecaptures", "", "shop"}, {"list", "profiling.io", "profilecaptures", "", ""},
	{"watch", "profiling.io", "profilecaptures", "", ""}, {"update", "profiling.io", "profilecaptures", "", "shop"},
	{"patch", "profiling.io", "profilecaptures", "", "shop"}, {"delete", "profiling.io", "profilecaptures", "", "shop"},
	{"update", "profiling.io", "profilecaptures", "status", "shop"}, {"patch", "profiling.io", "profilecaptures", "status", "shop"},
	{"create", "", "pods", "exec", "shop"}, {"create", "", "pods", "portforward", "shop"}, {"get", "", "pods", "log", "shop"},
	{"delete", "", "pods", "", "shop"}, {"update", "", "pods", "", "shop"}, {"patch", "", "pods", "", "shop"},
	{"create", "", "pods", "eviction", "shop"}, {"delete", "", "nodes", "", ""}, {"patch", "", "nodes", "", ""},
	{"delete", "apps", "deployments", "", "shop"}, {"delete", "", "namespaces", "", ""},
	{"create", "", "events", "", "shop"}, {"create", "events.k8s.io", "events", "", "shop"},
	{"get", "coordination.k8s.io", "leases", "", systemNamespace}, {"get", "metrics.k8s.io", "pods", "", "shop"},
	{"create", "rbac.authorization.k8s.io", "clusterrolebindings", "", ""}, {"impersonate", "", "users", "", ""},
}

func TestOperatorRBACAllowsWhatTheCodeDoesAndNothingElse(t *testing.T) {
	p := cluster(t)
	t.Run("every request the code makes is allowed", func(t *testing.T) {
		expectAccess(t, p.c, operatorSA, true, operatorUses)
	})
	t.Run("secrets elsewhere, pods/exec, pods/portforward, deletes and escalation are denied", func(t *testing.T) {
		expectAccess(t, p.c, operatorSA, false, operatorDenied)
	})
	t.Run("every rule generated from the markers is in force for the operator, the Role's in kprof-system only", func(t *testing.T) {
		expectRulesInForce(t, p, operatorSA, "kprof-operator")
	})
}

func TestAgentRBACAllowsReadingPodsAndConfigsAndCreatingCapturesOnly(t *testing.T) {
	p := cluster(t)
	t.Run("every request the code makes is allowed", func(t *testing.T) {
		expectAccess(t, p.c, agentSA, true, agentUses)
	})
	t.Run("secrets, nodes, ProfilingConfig writes, ProfileCapture reads and changes, pod writes and subresources are denied", func(t *testing.T) {
		expectAccess(t, p.c, agentSA, false, agentDenied)
	})
	t.Run("every rule generated from the markers is in force for the agent", func(t *testing.T) {
		expectRulesInForce(t, p, agentSA, "kprof-agent")
	})
}

func TestPortForwardRBACOnlyWithTheOverlay(t *testing.T) {
	p := cluster(t)
	pf := []access{{"create", "", "pods", "portforward", "shop"}, {"get", "", "pods", "portforward", "shop"}}
	t.Run("without config/portforward, pods/portforward is denied", func(t *testing.T) {
		expectAccess(t, p.c, operatorSA, false, pf)
	})
	objs, err := kustomizeBuild("config/portforward")
	if err != nil {
		t.Fatal(err)
	}
	extra := onlyIn(objs, p.objs)
	if len(extra) != 2 {
		t.Fatalf("config/portforward adds %d objects to config/default, want its ClusterRole and ClusterRoleBinding", len(extra))
	}
	if err := createAll(t.Context(), p.c, extra); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, o := range extra {
			if err := p.c.Delete(context.Background(), o); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete %s: %v", describe(o), err)
			}
		}
		// Leave the shared API server as config/default made it.
		expectAccess(t, p.c, operatorSA, false, pf)
	})
	t.Run("with config/portforward, the operator may port-forward to pods and nothing more", func(t *testing.T) {
		expectAccess(t, p.c, operatorSA, true, pf)
		expectAccess(t, p.c, operatorSA, false, []access{{"create", "", "pods", "exec", "shop"}, {"delete", "", "pods", "", "shop"}})
		expectAccess(t, p.c, agentSA, false, pf)
	})
}

// onlyIn returns the objects of objs that base lacks (by kind and name).
func onlyIn(objs, base []*unstructured.Unstructured) []*unstructured.Unstructured {
	have := map[string]bool{}
	for _, o := range base {
		have[o.GetKind()+"/"+o.GetName()] = true
	}
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if !have[o.GetKind()+"/"+o.GetName()] {
			out = append(out, o)
		}
	}
	return out
}

// expectRulesInForce turns every rule of the rendered ClusterRole and Role named name into
// SubjectAccessReviews for user: a ClusterRole's rules hold in any namespace, a Role's in its
// namespace and not in another one. This proves the bindings as much as the generated rules.
func expectRulesInForce(t *testing.T, p *controlPlane, user, name string) {
	t.Helper()
	var found bool
	for _, o := range p.objs {
		if o.GetName() != name || (o.GetKind() != "ClusterRole" && o.GetKind() != "Role") {
			continue
		}
		found = true
		var rules []rbacv1.PolicyRule
		if o.GetKind() == "ClusterRole" {
			rules = convert[rbacv1.ClusterRole](t, o).Rules
		} else {
			rules = convert[rbacv1.Role](t, o).Rules
		}
		var in, out []access
		for _, r := range rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					resource, sub, _ := strings.Cut(res, "/")
					for _, v := range r.Verbs {
						if o.GetKind() == "ClusterRole" {
							in = append(in, access{v, g, resource, sub, "some-namespace"})
						} else {
							in = append(in, access{v, g, resource, sub, o.GetNamespace()})
							out = append(out, access{v, g, resource, sub, "some-namespace"})
						}
					}
				}
			}
		}
		expectAccess(t, p.c, user, true, in)
		expectAccess(t, p.c, user, false, out)
	}
	if !found {
		t.Fatalf("no ClusterRole or Role %s rendered", name)
	}
}
