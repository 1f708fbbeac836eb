package operator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/controller"
	"github.com/kprof/kprof/internal/flight"
	"github.com/kprof/kprof/internal/lifecycle"
)

// setAgentDefaults fills in the agent and flight recorder options.
func (o *Options) setAgentDefaults() {
	check.Default(&o.AgentNamespace, o.SecretsNamespace)
	check.Default(&o.AgentSelector, controller.DefaultAgentSelector)
	check.Default(&o.AgentRecorderPort, controller.DefaultRecorderPort)
	check.Default(&o.AgentTokenSecret, DefaultAgentTokenSecret)
	check.Default(&o.RecorderWindow, controller.DefaultRecorderWindow)
	check.Default(&o.MaxCapturesPerNamespace, controller.DefaultMaxCapturesPerNamespace)
}

// validateAgents reports the first bad agent or flight recorder option.
func (o *Options) validateAgents() error {
	if _, err := labels.Parse(o.AgentSelector); err != nil {
		return fmt.Errorf("agent selector %q: %w", o.AgentSelector, err)
	}
	switch {
	case o.AgentRecorderPort < 0 || o.AgentRecorderPort > 65535:
		return fmt.Errorf("agent recorder port: must be 1-65535, got %d", o.AgentRecorderPort)
	case o.RecorderWindow < 0:
		return fmt.Errorf("recorder window: must not be negative, got %s", o.RecorderWindow)
	case o.MaxCapturesPerNamespace < 0:
		return fmt.Errorf("profilecapture max per namespace: must be positive, got %d", o.MaxCapturesPerNamespace)
	}
	return nil
}

// agents returns the agent pod finder of o.
func (o *Options) agents(r client.Reader) *controller.Agents {
	sel, _ := labels.Parse(o.AgentSelector) // checked by Validate
	return &controller.Agents{Reader: r, Namespace: o.AgentNamespace, Selector: sel}
}

// setupCaptures adds the ProfileCapture controller and the flight recorder token.
func setupCaptures(mgr manager.Manager, o Options, recorder events.EventRecorder, engine *capture.Engine, stores controller.StoreResolver) error {
	token := &tokenSecret{reader: mgr.GetAPIReader(), writer: mgr.GetClient(),
		key: types.NamespacedName{Namespace: o.SecretsNamespace, Name: o.AgentTokenSecret}}
	if err := mgr.Add(token); err != nil {
		return fmt.Errorf("add the flight recorder token: %w", err)
	}
	fetcher := o.Flight
	if fetcher == nil {
		fetcher = &flight.Client{HTTP: flightHTTPClient(), Token: token.Token}
	}
	pcr, err := controller.NewProfileCaptureReconciler(controller.ProfileCaptureDeps{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Engine: engine, Stores: stores, Recorder: recorder,
		Flight: fetcher, Agents: o.agents(mgr.GetClient()),
		RecorderPort: o.AgentRecorderPort, RecorderWindow: o.RecorderWindow,
		MaxPerNamespace: o.MaxCapturesPerNamespace, MaxConcurrent: o.MaxConcurrent, PortForward: o.PortForward,
	})
	if err != nil {
		return err
	}
	if err := pcr.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up ProfileCapture controller: %w", err)
	}
	return nil
}

// tokenSecret is the flight recorder's token: a Secret the leader creates when
// missing, read through the API (the operator does not watch Secrets).
type tokenSecret struct {
	reader client.Reader
	writer client.Writer
	key    types.NamespacedName
}

// Start implements manager.Runnable: it makes sure the Secret exists.
func (t *tokenSecret) Start(ctx context.Context) error {
	for t.ensure(ctx) != nil {
		if !lifecycle.Wait(ctx, 10*time.Second) {
			return nil
		}
	}
	return nil
}

func (t *tokenSecret) ensure(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var s corev1.Secret
	err := t.reader.Get(cctx, t.key, &s)
	if err == nil || !apierrors.IsNotFound(err) {
		return err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("generate the flight recorder token: %w", err)
	}
	s = corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: t.key.Namespace, Name: t.key.Name,
			Labels: map[string]string{"app.kubernetes.io/name": "kprof", "app.kubernetes.io/component": "recorder-token"}},
		Data: map[string][]byte{TokenSecretKey: []byte(hex.EncodeToString(b))},
	}
	if err := t.writer.Create(cctx, &s); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Secret %s with the flight recorder token: %w", t.key, err)
	}
	return nil
}

// Token reads the token (creating the Secret when it is missing).
func (t *tokenSecret) Token(ctx context.Context) (string, error) {
	if err := t.ensure(ctx); err != nil {
		return "", err
	}
	var s corev1.Secret
	if err := t.reader.Get(ctx, t.key, &s); err != nil {
		return "", fmt.Errorf("read the flight recorder token from Secret %s: %w", t.key, err)
	}
	tok := string(s.Data[TokenSecretKey])
	if tok == "" {
		return "", errors.New("Secret " + t.key.String() + " has no key " + TokenSecretKey)
	}
	return tok, nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (t *tokenSecret) NeedLeaderElection() bool { return true }
