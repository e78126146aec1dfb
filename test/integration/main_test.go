// Package integration runs the project against a real etcd and kube-apiserver
// (built by hack/testbin.sh), with the generated CRD installed.
package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	clientset "kubefledged.io/kube-fledged/pkg/client/clientset/versioned"
	"kubefledged.io/kube-fledged/pkg/metrics"
	"kubefledged.io/kube-fledged/test/framework"
)

var (
	cp          *framework.ControlPlane
	kubeClient  kubernetes.Interface
	fledged     clientset.Interface
	dynClient   dynamic.Interface
	projectRoot string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getenv(driveNamespaceEnv) != "" {
		return driveMain() // TestLedgerScale's Job driver (startDriver)
	}
	// client-go's metrics hooks are set once, before any client exists.
	metrics.Register()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	if projectRoot, err = framework.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if cp, err = framework.StartControlPlane(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "starting the control plane: %v\n", err)
		return 1
	}
	defer cp.Stop()
	kubeClient = kubernetes.NewForConfigOrDie(cp.Config)
	fledged = clientset.NewForConfigOrDie(cp.Config)
	dynClient = dynamic.NewForConfigOrDie(cp.Config)
	if out, err := cp.Kubectl(ctx, "apply", "--server-side", "-f", filepath.Join(projectRoot, "deploy", "crd")); err != nil {
		fmt.Fprintf(os.Stderr, "installing the CRD: %v\n%s\n", err, out)
		return 1
	}
	if out, err := cp.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s", "crd/imagecaches.kubefledged.io", "crd/imagecacheslices.kubefledged.io"); err != nil {
		fmt.Fprintf(os.Stderr, "waiting for the CRD: %v\n%s\n", err, out)
		return 1
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, cp.LogTails(20))
	}
	return code
}
