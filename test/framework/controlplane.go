// Package framework starts real Kubernetes control-plane processes (etcd and
// kube-apiserver, built by hack/testbin.sh) for the project's integration
// tests, on free loopback ports and in a scratch folder, and stops them by PID.
package framework

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ControlPlane is a running etcd and kube-apiserver.
type ControlPlane struct {
	// Dir holds the state, certificates, logs and kubeconfig.
	Dir string
	// BinDir holds the test-bed binaries.
	BinDir string
	// Kubeconfig is the path of an admin kubeconfig.
	Kubeconfig string
	// Config is the admin client configuration.
	Config *rest.Config
	// URL is the API server's address.
	URL string

	pki       *pki
	etcd      *process
	apiserver *process
}

// StartControlPlane starts etcd and kube-apiserver and waits until the API
// server is ready. On error everything started is stopped again.
func StartControlPlane(ctx context.Context) (cp *ControlPlane, err error) {
	binDir, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kube-fledged-cp-")
	if err != nil {
		return nil, err
	}
	cp = &ControlPlane{Dir: dir, BinDir: binDir}
	defer func() {
		if err != nil {
			cp.Stop()
		}
	}()
	if cp.pki, err = newPKI(dir); err != nil {
		return nil, fmt.Errorf("making certificates: %w", err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdClient := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	etcdPeer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	cp.etcd, err = startProcess("etcd", filepath.Join(dir, "etcd.log"), filepath.Join(binDir, "etcd"),
		"--name=default",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdClient, "--advertise-client-urls="+etcdClient,
		"--listen-peer-urls="+etcdPeer, "--initial-advertise-peer-urls="+etcdPeer,
		"--initial-cluster=default="+etcdPeer,
		"--unsafe-no-fsync", "--log-level=warn")
	if err != nil {
		return nil, err
	}

	token := randomToken()
	tokenFile := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return nil, err
	}
	cp.URL = fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	cp.apiserver, err = startProcess("kube-apiserver", filepath.Join(dir, "kube-apiserver.log"),
		filepath.Join(binDir, "kube-apiserver"),
		"--etcd-servers="+etcdClient,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports[2]),
		"--tls-cert-file="+cp.pki.ServingCert, "--tls-private-key-file="+cp.pki.ServingKey,
		"--client-ca-file="+cp.pki.CACert,
		"--token-auth-file="+tokenFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+cp.pki.SAPub,
		"--service-account-signing-key-file="+cp.pki.SAKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=Node,RBAC",
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		"--cert-dir="+filepath.Join(dir, "apiserver-certs"))
	if err != nil {
		return nil, err
	}

	cp.Config = &rest.Config{
		Host:            cp.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: cp.pki.CACert},
		QPS:             200,
		Burst:           400,
	}
	cp.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(cp.Kubeconfig, cp.URL, cp.pki.CACert, token); err != nil {
		return nil, err
	}
	if err := cp.waitReady(ctx, time.Minute); err != nil {
		return nil, err
	}
	return cp, nil
}

func (cp *ControlPlane) waitReady(ctx context.Context, timeout time.Duration) error {
	client, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return err
	}
	var last error
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, p := range []*process{cp.etcd, cp.apiserver} {
			if p.exited() {
				return false, fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.LogTail(30))
			}
		}
		var code int
		res := client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).StatusCode(&code)
		if res.Error() == nil && code == http.StatusOK {
			return true, nil
		}
		last = res.Error()
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("kube-apiserver not ready (last error: %v): %w\n%s", last, err, cp.apiserver.LogTail(30))
	}
	return nil
}

// Stop ends kube-apiserver and etcd by PID and removes the scratch folder,
// unless KUBE_FLEDGED_KEEP_TEST_DIR is set.
func (cp *ControlPlane) Stop() {
	if cp == nil {
		return
	}
	cp.apiserver.Stop(10 * time.Second)
	cp.etcd.Stop(10 * time.Second)
	if os.Getenv("KUBE_FLEDGED_KEEP_TEST_DIR") == "" {
		_ = os.RemoveAll(cp.Dir)
	}
}

// LogTails returns the ends of the component logs, for a failing test.
func (cp *ControlPlane) LogTails(lines int) string {
	return cp.etcd.LogTail(lines) + "\n" + cp.apiserver.LogTail(lines)
}

// Kubectl runs the test-bed kubectl against this control plane.
func (cp *ControlPlane) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(cp.BinDir, "kubectl"), append([]string{"--kubeconfig", cp.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %v: %w: %s", args, err, out)
	}
	return string(out), nil
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeKubeconfig(path, server, caFile, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: caFile}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "admin"}
	cfg.CurrentContext = "test"
	return clientcmd.WriteToFile(*cfg, path)
}
