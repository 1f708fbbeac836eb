package operator_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kprof/kprof/internal/operator"
	"github.com/kprof/kprof/internal/testenv"
)

// The suite shares one control plane and one running operator.
var (
	k8sClient   client.Client
	clientset   *kubernetes.Clientset
	profilesDir string
	spoolDir    string
	registry    *prometheus.Registry
	// uiURL is the web UI the operator serves (UIOptions), http://127.0.0.1:PORT.
	uiURL string
)

// secretsNamespace is the operator's own namespace in the suite.
const secretsNamespace = "kprof-system"

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "kprof-operator-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	logPath := filepath.Join(tmp, "operator.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "log file:", err)
		return 1
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(logFile), zap.UseDevMode(true)))

	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()

	profilesDir = filepath.Join(tmp, "profiles")
	spoolDir = filepath.Join(tmp, "spool")
	registry = prometheus.NewRegistry()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 operator.NewScheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	uiListener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ui listener:", err)
		return 1
	}
	uiURL = "http://" + uiListener.Addr().String()
	if err := operator.Setup(mgr, operator.Options{
		ProfilesDir:      profilesDir,
		SpoolDir:         spoolDir,
		SecretsNamespace: secretsNamespace,
		// Every profile the suite captures is fresh; retention_test.go seeds an old one.
		ProfilesMaxAge:  24 * time.Hour,
		MaxConcurrent:   8,
		MaxProfileBytes: 4 << 20,
		RequestTimeout:  5 * time.Second,
		ShutdownGrace:   2 * time.Second,
		StatusInterval:  time.Second,
		EventInterval:   2 * time.Second,
		Registerer:      registry,
		UI:              operator.UIOptions{Listener: uiListener},
	}); err != nil {
		fmt.Fprintln(os.Stderr, "operator setup:", err)
		return 1
	}
	k8sClient, err = client.New(env.Config, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 1
	}
	clientset = kubernetes.NewForConfigOrDie(env.Config)
	if err := k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: secretsNamespace}}); err != nil {
		fmt.Fprintln(os.Stderr, "create operator namespace:", err)
		return 1
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()

	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "manager stopped with error:", err)
		code = 1
	}
	if code != 0 {
		_ = logFile.Sync()
		if f, err := os.Open(logPath); err == nil {
			fmt.Fprintln(os.Stderr, "---- operator log ----")
			_, _ = io.Copy(os.Stderr, f)
			f.Close()
		}
	}
	return code
}
