package testenv

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// kwokFiles is kwok v0.8.0's stage, metrics and PortForward CRD YAML (see testdata/kwok/README.md).
//
//go:embed testdata/kwok/*.yaml testdata/kwok/crd/*.yaml
var kwokFiles embed.FS

// kwokConfigFiles are loaded with kwok --config: node and pod lifecycle stages, the kubelet-style
// /metrics/resource endpoint and the pod usage read from annotations.
var kwokConfigFiles = []string{
	"node-initialize.yaml", "node-heartbeat.yaml",
	"pod-ready.yaml", "pod-complete.yaml", "pod-delete.yaml",
	"metrics-resource.yaml", "usage-from-annotation.yaml",
}

const (
	// kwokNodeAnnotation marks the nodes kwok manages (kwok --manage-nodes-with-annotation-selector).
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
	// resourceMetricsPathAnnotation tells metrics-server where a node serves /metrics/resource;
	// kwok serves every node's on one port under /metrics/nodes/NODE/metrics/resource.
	resourceMetricsPathAnnotation = "metrics.k8s.io/resource-metrics-path"

	// UsageCPUAnnotation and UsageMemoryAnnotation set the usage kwok reports for every container
	// of a pod (quantities; unset: 1m and 1Mi).
	UsageCPUAnnotation    = "kwok.x-k8s.io/usage-cpu"
	UsageMemoryAnnotation = "kwok.x-k8s.io/usage-memory"

	// PodCIDR is the range kwok assigns pod IPs from: loopback, so a process listening on a pod's IP
	// on this machine is that pod.
	PodCIDR = "127.1.0.0/16"
)

// writeKwokFiles writes kwok's config file and the PortForward CRD directory into dir.
func writeKwokFiles(dir string) (configPath, crdDir string, err error) {
	var cfg bytes.Buffer
	for _, name := range kwokConfigFiles {
		b, err := kwokFiles.ReadFile("testdata/kwok/" + name)
		if err != nil {
			return "", "", fmt.Errorf("read vendored kwok file %s: %w", name, err)
		}
		cfg.WriteString("---\n")
		cfg.Write(b)
		cfg.WriteString("\n")
	}
	configPath = filepath.Join(dir, "kwok.yaml")
	if err := os.WriteFile(configPath, cfg.Bytes(), 0o644); err != nil {
		return "", "", fmt.Errorf("write kwok config: %w", err)
	}
	crdDir = filepath.Join(dir, "kwok-crd")
	if err := os.MkdirAll(crdDir, 0o755); err != nil {
		return "", "", err
	}
	crd, err := kwokFiles.ReadFile("testdata/kwok/crd/kwok.x-k8s.io_portforwards.yaml")
	if err != nil {
		return "", "", fmt.Errorf("read vendored kwok PortForward CRD: %w", err)
	}
	if err := os.WriteFile(filepath.Join(crdDir, "portforwards.yaml"), crd, 0o644); err != nil {
		return "", "", fmt.Errorf("write kwok PortForward CRD: %w", err)
	}
	return configPath, crdDir, nil
}

// newKwok returns the kwok process for this cluster. Its server on 127.0.0.1:port (TLS with a
// self-signed certificate and plain HTTP on the same port) is every node's "kubelet": node status
// advertises InternalIP 127.0.0.1 and that port, so metrics-server scrapes it and kube-apiserver
// sends pods/portforward to it.
func newKwok(dir, kubeconfig, configPath string, port int) *process {
	return &process{
		name: "kwok",
		path: toolPath("kwok"),
		args: []string{
			"--kubeconfig=" + kubeconfig,
			"--config=" + configPath,
			"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
			"--cidr=" + PodCIDR,
			"--node-ip=127.0.0.1",
			"--node-port=" + strconv.Itoa(port),
			"--server-address=127.0.0.1:" + strconv.Itoa(port),
			"--enable-crds=PortForward",
			// No node leases: nothing in this control plane (no kube-controller-manager) reads them;
			// the heartbeat stage keeps node conditions fresh instead.
			"--node-lease-duration-seconds=0",
		},
		env: []string{
			// kwok also reads $HOME/.kwok/kwok.yaml when it exists; keep a developer's file out.
			"HOME=" + dir,
		},
		logPath: filepath.Join(dir, "kwok.log"),
	}
}
