//go:build e2e

// Package e2e runs the fledged binary, as a separate process, against the
// local cluster of hack/local-up.sh (real control plane, kwok nodes), and
// checks what kubectl shows. Run it with `make e2e`.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	clientset "kubefledged.io/kube-fledged/pkg/client/clientset/versioned"
	"kubefledged.io/kube-fledged/test/framework"
)

var (
	kubeconfig  string
	kubectlBin  string
	fledgedBin  string
	projectRoot string
	artifacts   string
	kubeClient  kubernetes.Interface
	fledged     clientset.Interface
)

func TestMain(m *testing.M) {
	// Run as the shaped link's delay proxy (framework.StartDelayProxyIn)?
	framework.MaybeRunDelayProxy()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if projectRoot, err = framework.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubeconfig = os.Getenv("KUBECONFIG")
	if kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "e2e: KUBECONFIG is not set; run the suite with `make e2e`, which starts the local cluster")
		return 1
	}
	bin, err := framework.BinDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kubectlBin = filepath.Join(bin, "kubectl")
	fledgedBin = filepath.Join(projectRoot, "_output", "bin", "fledged")
	if _, err := os.Stat(fledgedBin); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %s missing: run `make build` (make e2e does)\n", fledgedBin)
		return 1
	}
	artifacts = filepath.Join(projectRoot, "_output", "e2e")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg.QPS, cfg.Burst = 200, 400
	kubeClient = kubernetes.NewForConfigOrDie(cfg)
	fledged = clientset.NewForConfigOrDie(cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, kubectlBin, "--kubeconfig", kubeconfig, "apply", "--server-side", "-f",
		filepath.Join(projectRoot, "deploy", "crd")).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: installing the CRD: %v\n%s\n", err, out)
		return 1
	}
	if out, err := exec.CommandContext(ctx, kubectlBin, "--kubeconfig", kubeconfig, "wait", "--for=condition=Established",
		"--timeout=60s", "crd/imagecaches.kubefledged.io", "crd/imagecacheslices.kubefledged.io").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: waiting for the CRD: %v\n%s\n", err, out)
		return 1
	}
	// The controller's namespace, as deploy/ makes it, with the account
	// its delete Jobs run as.
	if out, err := exec.CommandContext(ctx, kubectlBin, "--kubeconfig", kubeconfig, "apply", "-f",
		filepath.Join(projectRoot, "deploy", "namespace.yaml"), "-f", filepath.Join(projectRoot, "deploy", "image-delete.yaml")).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: creating the controller's namespace: %v\n%s\n", err, out)
		return 1
	}
	return m.Run()
}
