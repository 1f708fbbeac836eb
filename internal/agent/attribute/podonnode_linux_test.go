//go:build linux

package attribute

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kprof/kprof/internal/testenv"
)

func TestPodOnNodeTellsThisNodesPodsAndWhyItCannotTell(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createPod(t, cs, "here", "node-1")
	createPod(t, cs, "there", "node-2")
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	start := func(t *testing.T, client kubernetes.Interface) *Attributor {
		a := newAttributor(t, Config{NodeName: "node-1", Client: client, Logger: log})
		if err := a.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := a.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
		return a
	}

	t.Run("a pod of this node is found, another node's is not", func(t *testing.T) {
		a := start(t, cs)
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			err := a.PodOnNode(testNamespace, "here")
			return err == nil, "PodOnNode(here): " + errString(err)
		})
		if err := a.PodOnNode(testNamespace, "there"); !errors.Is(err, ErrPodNotOnNode) {
			t.Errorf("PodOnNode(there) = %v, want ErrPodNotOnNode", err)
		}
		createPod(t, cs, "later", "node-1")
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			err := a.PodOnNode(testNamespace, "later")
			return err == nil, "PodOnNode(later): " + errString(err)
		})
	})

	t.Run("an agent refused by the API server says so", func(t *testing.T) {
		anon := rest.AnonymousClientConfig(env.Config)
		client, err := kubernetes.NewForConfig(anon)
		if err != nil {
			t.Fatal(err)
		}
		a := start(t, client)
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			err := a.PodOnNode(testNamespace, "here")
			msg := errString(err)
			return strings.HasPrefix(msg, "cannot list pods: ") && (strings.Contains(msg, "forbidden") || strings.Contains(msg, "Unauthorized")),
				"PodOnNode(here): " + msg
		})
	})

	t.Run("without a cluster no pod is attributed", func(t *testing.T) {
		a := newAttributor(t, Config{Logger: log})
		if err := a.PodOnNode(testNamespace, "here"); !errors.Is(err, ErrNoCluster) {
			t.Errorf("PodOnNode = %v, want ErrNoCluster", err)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
