package agent

import (
	"errors"
	"fmt"
	"log/slog"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeClient returns the client the attributor watches pods with and its REST
// config (the node thresholds' API server), or nil for no cluster: NoCluster, or
// no Kubeconfig outside a pod.
func kubeClient(cfg Config, log *slog.Logger) (kubernetes.Interface, *rest.Config, error) {
	if cfg.NoCluster {
		log.Info("no cluster: events carry no pod labels")
		return nil, nil, nil
	}
	var (
		rc  *rest.Config
		err error
	)
	if cfg.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
		if err != nil {
			return nil, nil, fmt.Errorf("load kubeconfig %s: %w", cfg.Kubeconfig, err)
		}
	} else {
		rc, err = rest.InClusterConfig()
		if errors.Is(err, rest.ErrNotInCluster) {
			log.Info("not in a cluster and no kubeconfig: events carry no pod labels")
			return nil, nil, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("load in-cluster config: %w", err)
		}
	}
	rc.UserAgent = "kprof-agent"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("create Kubernetes client for %s: %w", rc.Host, err)
	}
	log.Info("watching this node's pods", "api_server", rc.Host, "node", cfg.NodeName)
	return client, rc, nil
}
