//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/test/framework"
)

const sampleNS = "kube-fledged"

// kubectl runs kubectl against the local cluster.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// kubectlFledged runs `kubectl fledged` against the local cluster, with
// the plugin built by make build on PATH; it returns the combined output
// and the exit code.
func kubectlFledged(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// kubectl takes no flags before a plugin's name: the kubeconfig goes
	// in the environment, as an operator's does.
	cmd := exec.CommandContext(ctx, kubectlBin, append([]string{"fledged"}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig,
		"PATH="+filepath.Dir(fledgedBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	t.Fatalf("kubectl fledged %s: %v\n%s", strings.Join(args, " "), err, out)
	return "", 0
}

// kubectlIn runs kubectl with a manifest on standard input.
func kubectlIn(t *testing.T, manifest string, args ...string) string {
	t.Helper()
	cmd := exec.Command(kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(manifest)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// getIC reads an ImageCache the way a user does: kubectl get ic -o yaml.
func getIC(t *testing.T, ns, name string) *v1alpha2.ImageCache {
	t.Helper()
	out := kubectl(t, "get", "ic", name, "-n", ns, "-o", "yaml")
	ic := &v1alpha2.ImageCache{}
	if err := yaml.Unmarshal([]byte(out), ic); err != nil {
		t.Fatalf("parsing kubectl get ic -o yaml: %v\n%s", err, out)
	}
	return ic
}

// waitIC waits until kubectl shows the ImageCache in a state cond accepts.
func waitIC(t *testing.T, ns, name string, timeout time.Duration, what string, cond func(*v1alpha2.ImageCache) bool) *v1alpha2.ImageCache {
	t.Helper()
	var ic *v1alpha2.ImageCache
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		ic = getIC(t, ns, name)
		return cond(ic), nil
	})
	if err != nil {
		t.Fatalf("waiting %v for %s/%s: %s: last seen status %s (%s): %s", timeout, ns, name, what, ic.Status.Status, ic.Status.Reason, ic.Status.Message)
	}
	return ic
}

func done(want v1alpha2.ImageCacheActionStatus) func(*v1alpha2.ImageCache) bool {
	return func(ic *v1alpha2.ImageCache) bool {
		return ic.Status.ObservedGeneration == ic.Generation && ic.Status.Status == want
	}
}

// annotateAndWait asks for an operation with its annotation, and waits until
// the operation has succeeded and its annotation is gone.
func annotateAndWait(t *testing.T, ns, name, annotation, reason string) *v1alpha2.ImageCache {
	t.Helper()
	kubectl(t, "annotate", "ic", name, "-n", ns, annotation+"=")
	return waitIC(t, ns, name, 2*time.Minute, reason+" to succeed and its annotation to go", func(ic *v1alpha2.ImageCache) bool {
		_, asked := ic.Annotations[annotation]
		return !asked && ic.Status.Reason == reason && done(v1alpha2.ImageCacheActionStatusSucceeded)(ic)
	})
}

// controllerProc is the fledged binary running as its own process.
type controllerProc struct {
	cmd         *exec.Cmd
	done        chan struct{}
	log         string
	metricsAddr string
}

var procSeq int

// startController runs the built fledged binary against the local cluster,
// as admin. It is stopped (SIGTERM, by PID) when the test ends.
func startController(t *testing.T, args ...string) *controllerProc {
	t.Helper()
	return startControllerAs(t, kubeconfig, nil, args...)
}

// startControllerAs runs fledged with the given kubeconfig and environment.
func startControllerAs(t *testing.T, kc string, env []string, args ...string) *controllerProc {
	t.Helper()
	procSeq++
	logPath := filepath.Join(artifacts, fmt.Sprintf("%s-%d.log", strings.ReplaceAll(t.Name(), "/", "_"), procSeq))
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	all := append([]string{"--kubeconfig", kc, "--image-cache-refresh-frequency=0", "--image-pull-deadline-duration=10s", "-v=2",
		"--metrics-bind-address=" + metricsAddr, fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", ports[1])}, args...)
	cmd := exec.Command(fledgedBin, all...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &controllerProc{cmd: cmd, done: make(chan struct{}), log: logPath, metricsAddr: metricsAddr}
	go func() { _ = cmd.Wait(); _ = f.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			lines := strings.Split(string(data), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("--- last lines of %s ---\n%s", logPath, strings.Join(lines, "\n"))
		}
	})
	return p
}

func (p *controllerProc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("controller pid %d did not stop on SIGTERM within 30s", p.cmd.Process.Pid)
		p.kill(t)
	}
}

// kill ends the controller with SIGKILL: no clean shutdown at all.
func (p *controllerProc) kill(t *testing.T) {
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("controller pid %d did not exit within 30s of SIGKILL", p.cmd.Process.Pid)
	}
}

// addNodes creates kwok nodes (kwok makes them Ready), with the taints
// given, and deletes them when the test ends.
func addNodes(t *testing.T, names []string, labels map[string]string, taints ...corev1.Taint) {
	t.Helper()
	ctx := context.Background()
	for _, name := range names {
		l := map[string]string{puller.HostnameLabel: name, "type": "kwok"}
		for k, v := range labels {
			l[k] = v
		}
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}},
			Spec: corev1.NodeSpec{Taints: taints}}
		if _, err := kubeClient.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, name := range names {
			_ = kubeClient.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
		}
	})
	waitFor(t, 2*time.Minute, fmt.Sprintf("%d nodes Ready", len(names)), func() bool {
		for _, name := range names {
			n, err := kubeClient.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil || !nodeReady(n) {
				return false
			}
		}
		return true
	})
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		t.Fatalf("waiting %v for %s: %v", timeout, what, err)
	}
}

// applyCache applies the ImageCache "app" with the given cacheSpec entries (YAML
// list items), and deletes it when the test ends.
func applyCache(t *testing.T, ns, entries string) {
	t.Helper()
	applyCacheSpec(t, ns, "  cacheSpec:\n"+entries)
}

// applyCacheSpec is applyCache with the whole spec (YAML, indented by two).
func applyCacheSpec(t *testing.T, ns, spec string) {
	t.Helper()
	const name = "app"
	manifest := "apiVersion: kubefledged.io/v1alpha2\nkind: ImageCache\nmetadata: {name: " + name + "}\nspec:\n" + spec
	kubectlIn(t, manifest, "apply", "-n", ns, "-f", "-")
	t.Cleanup(func() {
		_ = fledged.KubefledgedV1alpha2().ImageCaches(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
		waitFor(t, time.Minute, "the cache to go", func() bool {
			_, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Get(context.Background(), name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
	})
}

// assertEachPairOnce checks that every (node, image) pull was asked for by
// exactly one Job, and that there were want pairs and Jobs.
func assertEachPairOnce(t *testing.T, jw *framework.JobWatch, want int) {
	t.Helper()
	got := pairs(t, jw)
	for pair, n := range got {
		if n != 1 {
			t.Errorf("%s asked for by %d Jobs", pair, n)
		}
	}
	if len(got) != want || jw.Count() != want {
		t.Errorf("%d pairs by %d Jobs, want %d each", len(got), jw.Count(), want)
	}
}

func watchJobs(t *testing.T, ns string) *framework.JobWatch {
	t.Helper()
	jw, err := framework.WatchJobs(context.Background(), kubeClient, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(jw.Stop)
	return jw
}

// podWatch records every pod that shows in a namespace while it runs.
type podWatch struct {
	mu   sync.Mutex
	seen map[string]seenPod
}

type seenPod struct{ name, component string }

// watchPods records the pods of a namespace until the test ends.
func watchPods(t *testing.T, ns string) *podWatch {
	t.Helper()
	w, err := kubeClient.CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	pw := &podWatch{seen: map[string]seenPod{}}
	go func() {
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok {
				pw.mu.Lock()
				pw.seen[p.Name] = seenPod{name: p.Name, component: p.Labels[puller.LabelComponent]}
				pw.mu.Unlock()
			}
		}
	}()
	return pw
}

func (pw *podWatch) pods() []seenPod {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	out := make([]seenPod, 0, len(pw.seen))
	for _, p := range pw.seen {
		out = append(out, p)
	}
	return out
}

func pairs(t *testing.T, jw *framework.JobWatch) map[string]int {
	t.Helper()
	p, err := jw.Pairs()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newNamespace creates a namespace with a generated name, and the labels
// given, and deletes it when the test ends.
func newNamespace(t *testing.T, prefix string, labels ...map[string]string) string {
	t.Helper()
	meta := metav1.ObjectMeta{GenerateName: prefix + "-"}
	if len(labels) > 0 {
		meta.Labels = labels[0]
	}
	ns, err := kubeClient.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: meta}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kubeClient.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

// applyAndTime applies the cache "app" with these entries, waits for it to
// reach want, and logs how long that took.
func applyAndTime(t *testing.T, ns, entries string, want v1alpha2.ImageCacheActionStatus) *v1alpha2.ImageCache {
	t.Helper()
	applyCache(t, ns, entries)
	start := time.Now()
	ic := waitIC(t, ns, "app", 2*time.Minute, string(want), done(want))
	t.Logf("%s in %v: %s", want, time.Since(start).Round(100*time.Millisecond), ic.Status.Message)
	return ic
}

// restricted are the labels of a namespace that enforces Pod Security
// "restricted", as application namespaces often do.
var restricted = map[string]string{
	"pod-security.kubernetes.io/enforce":         "restricted",
	"pod-security.kubernetes.io/enforce-version": "latest",
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return out
}

// logHas reports whether the controller's log holds the text.
func (p *controllerProc) logHas(text string) bool {
	data, err := os.ReadFile(p.log)
	return err == nil && strings.Contains(string(data), text)
}

// metric scrapes the controller's /metrics and returns the value of the
// sample with exactly this name and labels (such as
// `kubefledged_pulls_total{result="pulled"}`), or -1 when absent.
func (p *controllerProc) metric(t *testing.T, sample string) float64 {
	t.Helper()
	v, err := scrape(p.metricsAddr, sample)
	if err != nil {
		t.Fatalf("scraping %s: %v", p.metricsAddr, err)
	}
	return v
}
