//go:build e2e

package e2e

// The controller running in the cluster, as operators install it: the
// project's image from the real node's registry, run as two pods on the real
// node, installed with helm (charts/kube-fledged) and with make deploy. The
// pods reach the API server the way pods do in a real cluster: at the
// `kubernetes` Service's cluster IP, through kube-proxy on the node
// (hack/real-node-up.sh). The tests are named TestRealNode* so that they run
// in the real-node phase.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/test/framework"
)

const startupTaintKey = "kubefledged.io/warming"

// needInCluster returns the real node when its pods can reach the API
// server (kube-proxy runs there), and skips the test otherwise.
func needInCluster(t *testing.T) *realNode {
	t.Helper()
	rn := needRealNode(t)
	if !rn.inCluster {
		t.Skip("no kube-proxy on the real node: the API server listens on 127.0.0.1, which pods cannot reach " +
			"(hack/e2e.sh gives it an address of its own when run as root)")
	}
	return rn
}

// helm runs the helm binary hack/helm.sh built against the local cluster.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	bin := os.Getenv("KUBE_FLEDGED_HELM")
	if bin == "" {
		t.Fatal("KUBE_FLEDGED_HELM is not set: run the suite with `make e2e`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--kubeconfig", kubeconfig)...)
	cmd.Dir = projectRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// controllerPods waits until the Deployment's rollout has finished with want
// pods, all Ready on the real node, and returns them.
func controllerPods(t *testing.T, rn *realNode, ns, deployment string, want int) []corev1.Pod {
	t.Helper()
	ctx := context.Background()
	var pods []corev1.Pod
	waitFor(t, 4*time.Minute, fmt.Sprintf("%d controller pods Ready on %s", want, rn.name), func() bool {
		d, err := kubeClient.AppsV1().Deployments(ns).Get(ctx, deployment, metav1.GetOptions{})
		if err != nil || !rolledOut(d) || d.Status.ReadyReplicas != int32(want) {
			return false
		}
		list, err := kubeClient.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=kube-fledged"})
		if err != nil {
			return false
		}
		pods = pods[:0]
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				pods = append(pods, p)
			}
		}
		if len(pods) != want {
			return false
		}
		for _, p := range pods {
			if p.Spec.NodeName != rn.name || p.Status.Phase != corev1.PodRunning || !podReady(&p) {
				return false
			}
		}
		return true
	})
	return pods
}

func rolledOut(d *appsv1.Deployment) bool {
	return d.Status.ObservedGeneration >= d.Generation && d.Spec.Replicas != nil &&
		d.Status.UpdatedReplicas == *d.Spec.Replicas && d.Status.Replicas == *d.Spec.Replicas &&
		d.Status.AvailableReplicas == *d.Spec.Replicas
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// leader returns the name of the pod holding the Lease, or "" when none does.
func leader(t *testing.T, ns string) string {
	t.Helper()
	l, err := kubeClient.CoordinationV1().Leases(ns).Get(context.Background(), "kube-fledged", metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	// The identity is the pod's hostname (its name), "_", a UUID.
	name, _, _ := strings.Cut(*l.Spec.HolderIdentity, "_")
	return name
}

// waitLeader waits until one of the pods holds the Lease, and returns it.
func waitLeader(t *testing.T, ns string, pods []corev1.Pod) string {
	t.Helper()
	var got string
	waitFor(t, time.Minute, "one controller pod to lead", func() bool {
		got = leader(t, ns)
		for _, p := range pods {
			if p.Name == got {
				return true
			}
		}
		return false
	})
	return got
}

// inClusterCache applies an ImageCache in the shape of
// deploy/sample-imagecache.yaml, its images in the real node's registry:
// one list for every node, one for tier=backend. It returns the images of
// the first list, which the real node gets.
func inClusterCache(t *testing.T, rn *realNode, ns, name, tag string) []string {
	t.Helper()
	all := []string{rn.image(t, "shell", "e2e/incluster-"+tag+"-a:v1", false), rn.image(t, "shell", "e2e/incluster-"+tag+"-b:v1", false)}
	backend := []string{rn.image(t, "shell", "e2e/incluster-"+tag+"-c:v1", false)}
	manifest := fmt.Sprintf(`apiVersion: kubefledged.io/v1alpha2
kind: ImageCache
metadata:
  name: %s
  labels: {app: kubefledged, kubefledged: imagecache}
spec:
  cacheSpec:
  - images: [%s]
  - images: [%s]
    nodeSelector: {tier: backend}
`, name, strings.Join(all, ", "), strings.Join(backend, ", "))
	kubectlIn(t, manifest, "apply", "-n", ns, "-f", "-")
	t.Cleanup(func() {
		_ = fledged.KubefledgedV1alpha2().ImageCaches(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return all
}

// succeeded waits for the cache to succeed with every pair done, over the
// kwok nodes and the real node, and checks that the real node's runtime
// has the images.
func succeeded(t *testing.T, rn *realNode, ns, name string, onRealNode []string) *v1alpha2.ImageCache {
	t.Helper()
	start := time.Now()
	ic := waitIC(t, ns, name, 4*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	c := ic.Status.Pulls
	nodes, err := kubeClient.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{LabelSelector: "type=kwok"})
	if err != nil {
		t.Fatal(err)
	}
	// Two images on every node, one more on the backend ones.
	if c.Failed != 0 || c.Succeeded != c.Desired || int(c.Desired) < 2*(len(nodes.Items)+1) {
		t.Fatalf("%s/%s counts %+v, want every pair of %d kwok nodes and the real node done: %s", ns, name, c, len(nodes.Items), ic.Status.Message)
	}
	for _, img := range onRealNode {
		if !rn.present(t, img) {
			t.Fatalf("%s is not in the real node's runtime", img)
		}
	}
	t.Logf("%s/%s Succeeded in %v: %s", ns, name, time.Since(start).Round(100*time.Millisecond), ic.Status.Message)
	return ic
}

// scrape fetches /metrics at the address and returns the value of sample,
// or -1 when it is absent.
func scrape(addr, sample string) (float64, error) {
	// A new connection each time: kube-proxy picks a pod per connection.
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return -1, nil
}

const pulledSample = `kubefledged_pulls_total{result="pulled"}`

// TestRealNodeInClusterHelm installs the chart, pinned to the real node,
// with two replicas, and follows an install through its life: both pods
// Ready, one leading, the sample-shaped cache Succeeded across the kwok
// nodes and the real node, /metrics through the Service, JSON logs, the
// leader's pod deleted and the other taking over, a second cache, helm
// upgrade with a changed flag, helm uninstall.
func TestRealNodeInClusterHelm(t *testing.T) {
	rn := needInCluster(t)
	const release, ns, deployment = "kf", "kf-helm", "kf-kube-fledged"
	repo, tag, _ := strings.Cut(rn.controllerImage[len(rn.registry)+1:], ":")
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(fmt.Sprintf(`image:
  repository: %s/%s
  tag: %s
namespace:
  name: %s
  create: true
replicaCount: 2
nodeSelector:
  %s: %s
tolerations:
- {key: %s, operator: Exists, effect: NoSchedule}
logging:
  format: json
controller:
  imagePullDeadline: 1m
  jobTolerations: ["%s:NoSchedule"]
`, rn.registry, repo, tag, ns, puller.HostnameLabel, rn.name, startupTaintKey, startupTaintKey)), 0o644); err != nil {
		t.Fatal(err)
	}
	apps := newNamespace(t, "incluster-apps")
	installed := false
	t.Cleanup(func() {
		if installed {
			helm(t, "uninstall", release, "-n", "default", "--wait", "--timeout", "3m")
		}
	})
	// The chart owns the controller's namespace (with its Pod Security
	// label); the release is kept in default.
	start := time.Now()
	out := helm(t, "install", release, "charts/kube-fledged", "-n", "default", "-f", values, "--wait", "--timeout", "4m")
	installed = true
	t.Logf("helm install (with --wait) in %v:\n%s", time.Since(start).Round(100*time.Millisecond), out)
	pods := controllerPods(t, rn, ns, deployment, 2)
	t.Logf("kubectl get pods -o wide:\n%s", kubectl(t, "get", "pods", "-n", ns, "-o", "wide"))
	nsObj, err := kubeClient.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil || nsObj.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Fatalf("the chart's namespace %s: labels %v (%v), want Pod Security privileged", ns, nsObj.Labels, err)
	}
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName != rn.name {
			t.Fatalf("pod %s is %s on %q", p.Name, p.Status.Phase, p.Spec.NodeName)
		}
	}
	// The pods are not on the host's network: they reach the API server only
	// at the kubernetes Service's cluster IP (the environment the kubelet
	// gives them), through kube-proxy. One leading shows they did.
	svc, err := kubeClient.CoreV1().Services(metav1.NamespaceDefault).Get(context.Background(), "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := waitLeader(t, ns, pods)
	t.Logf("leader: %s; the kubernetes Service: %s:443", first, svc.Spec.ClusterIP)

	succeeded(t, rn, apps, "imagecache1", inClusterCache(t, rn, apps, "imagecache1", "helm1"))

	// JSON logs: every line of the leader's log is a JSON object.
	logs := kubectl(t, "logs", "-n", ns, first, "--tail=50")
	lines := 0
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("with logging.format=json, a log line of %s is not JSON: %q", first, line)
		}
		if _, ok := entry["msg"]; !ok {
			t.Fatalf("JSON log line without msg: %q", line)
		}
		lines++
	}
	t.Logf("%d JSON log lines, the last: %s", lines, lastLine(logs))

	// /metrics through the Service (kube-proxy balances over both pods: the
	// leader's answer has the pulls), and from the leader's pod IP.
	metricsSvc, err := kubeClient.CoreV1().Services(ns).Get(context.Background(), deployment+"-metrics", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svcAddr := fmt.Sprintf("%s:%d", metricsSvc.Spec.ClusterIP, metricsSvc.Spec.Ports[0].Port)
	var viaService float64
	var scrapeErr error
	waitFor(t, time.Minute, "the pulls in /metrics through the Service "+svcAddr, func() bool {
		viaService, scrapeErr = scrape(svcAddr, pulledSample)
		return scrapeErr == nil && viaService >= 1
	})
	leaderPod := podByName(t, pods, first)
	viaPod, err := scrape(fmt.Sprintf("%s:8080", leaderPod.Status.PodIP), pulledSample)
	if err != nil || viaPod < 1 {
		t.Fatalf("the leader's /metrics at %s: %s = %v (%v)", leaderPod.Status.PodIP, pulledSample, viaPod, err)
	}
	t.Logf("/metrics: %s = %v through the Service %s, %v from the leader's pod %s", pulledSample, viaService, svcAddr, viaPod, leaderPod.Status.PodIP)
	leaderAndFollowerMetrics(t, pods, first, apps)

	// The leader's pod deleted: it releases the Lease as it stops, and
	// another pod takes over (the other replica, or, when it is quicker,
	// the one the Deployment starts in its place), and works.
	deleted := time.Now()
	kubectl(t, "delete", "pod", "-n", ns, first, "--wait=false")
	var next string
	waitFor(t, 2*time.Minute, "another pod to lead after "+first, func() bool {
		next = leader(t, ns)
		return next != "" && next != first
	})
	handover := time.Since(deleted)
	t.Logf("handover: %s leads %v after kubectl delete pod %s", next, handover.Round(100*time.Millisecond), first)
	t.Logf("lease: %s", kubectl(t, "get", "lease", "-n", ns, "kube-fledged", "-o", "jsonpath={.spec.holderIdentity} {.spec.leaseTransitions}"))
	succeeded(t, rn, apps, "imagecache2", inClusterCache(t, rn, apps, "imagecache2", "helm2"))

	// helm upgrade with a changed flag rolls the Deployment and keeps the caches.
	before, err := kubeClient.AppsV1().Deployments(ns).Get(context.Background(), deployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	helm(t, "upgrade", release, "charts/kube-fledged", "-n", "default", "-f", values, "--set", "controller.imagesPerJob=5", "--wait", "--timeout", "4m")
	pods = controllerPods(t, rn, ns, deployment, 2)
	after, err := kubeClient.AppsV1().Deployments(ns).Get(context.Background(), deployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation == before.Generation || !strings.Contains(strings.Join(after.Spec.Template.Spec.Containers[0].Args, " "), "--images-per-job=5") {
		t.Fatalf("helm upgrade did not roll the Deployment with --images-per-job=5: generation %d -> %d, args %v",
			before.Generation, after.Generation, after.Spec.Template.Spec.Containers[0].Args)
	}
	for _, p := range pods {
		if !strings.Contains(strings.Join(p.Spec.Containers[0].Args, " "), "--images-per-job=5") {
			t.Fatalf("pod %s runs without the upgraded flag: %v", p.Name, p.Spec.Containers[0].Args)
		}
	}
	waitLeader(t, ns, pods)
	for _, name := range []string{"imagecache1", "imagecache2"} {
		ic := getIC(t, apps, name)
		if ic.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded {
			t.Errorf("after helm upgrade, %s is %s: %s", name, ic.Status.Status, ic.Status.Message)
		}
	}
	t.Logf("helm upgrade: generation %d -> %d, both caches still Succeeded", before.Generation, after.Generation)

	// helm uninstall removes everything but the CRD; the caches in other
	// namespaces stay.
	helm(t, "uninstall", release, "-n", "default", "--wait", "--timeout", "3m")
	installed = false
	waitFor(t, 3*time.Minute, "the release's namespace "+ns+" to go", func() bool {
		_, err := kubeClient.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	rbac := kubeClient.RbacV1()
	if _, err := rbac.ClusterRoles().Get(context.Background(), deployment, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after helm uninstall, ClusterRole %s: %v", deployment, err)
	}
	if _, err := rbac.ClusterRoleBindings().Get(context.Background(), deployment, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after helm uninstall, ClusterRoleBinding %s: %v", deployment, err)
	}
	kubectl(t, "get", "crd", "imagecaches.kubefledged.io")
	getIC(t, apps, "imagecache1")
}

// TestRealNodeInClusterMakeDeploy runs the controller as make deploy
// installs it, pinned to the real node with FLEDGED_PATCH (which also has
// its Jobs tolerate the node's startup taint): both pods Ready,
// one leading, a cache Succeeded.
func TestRealNodeInClusterMakeDeploy(t *testing.T) {
	rn := needInCluster(t)
	patch := filepath.Join(t.TempDir(), "patch.yaml")
	if err := os.WriteFile(patch, []byte(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: kube-fledged
spec:
  template:
    spec:
      nodeSelector:
        %s: %s
      tolerations:
      - {key: %s, operator: Exists, effect: NoSchedule}
      containers:
      - name: fledged
        args: [--leader-elect, --metrics-bind-address=:8080, --health-probe-bind-address=:8081, --v=2,
          "--job-tolerations=%s:NoSchedule"]
`, puller.HostnameLabel, rn.name, startupTaintKey, startupTaintKey)), 0o644); err != nil {
		t.Fatal(err)
	}
	makeDeploy(t, rn, patch)
	pods := controllerPods(t, rn, sampleNS, "kube-fledged", 2)
	t.Logf("kubectl get pods -o wide:\n%s", kubectl(t, "get", "pods", "-n", sampleNS, "-l", "app.kubernetes.io/name=kube-fledged", "-o", "wide"))
	for _, p := range pods {
		if p.Spec.Containers[0].Image != rn.controllerImage {
			t.Fatalf("pod %s runs %s, want %s", p.Name, p.Spec.Containers[0].Image, rn.controllerImage)
		}
	}
	t.Logf("leader: %s", waitLeader(t, sampleNS, pods))
	apps := newNamespace(t, "incluster-deploy")
	succeeded(t, rn, apps, "imagecache1", inClusterCache(t, rn, apps, "imagecache1", "deploy"))

	// Clearing the controller's namespace with kubectl's "all" leaves the
	// caches: the CRD is not in that category.
	kubectlIn(t, fmt.Sprintf(`apiVersion: kubefledged.io/v1alpha2
kind: ImageCache
metadata: {name: kept-by-undeploy, namespace: %s}
spec:
  cacheSpec:
  - images: [registry.example/none:v1]
    nodeSelector: {kubefledged.io/no-such-node: "true"}
`, sampleNS), "apply", "-f", "-")
	t.Cleanup(func() {
		_ = fledged.KubefledgedV1alpha2().ImageCaches(sampleNS).Delete(context.Background(), "kept-by-undeploy", metav1.DeleteOptions{})
	})
	// kubectl reads the category from its discovery cache, which an earlier
	// run against an older CRD may have filled: a cache of its own.
	t.Logf("kubectl delete all --all -n %s:\n%s", sampleNS,
		kubectl(t, "--cache-dir", t.TempDir(), "delete", "all", "--all", "-n", sampleNS))
	getIC(t, sampleNS, "kept-by-undeploy")
	getIC(t, apps, "imagecache1")

	// make undeploy says what it deletes and keeps the CRD, the caches and
	// the namespace that holds one.
	cmd := exec.Command("make", "--no-print-directory", "undeploy")
	cmd.Dir = projectRoot
	cmd.Env = append(os.Environ(), "KUBECTL="+kubectlBin, "KUBECONFIG="+kubeconfig)
	out, err := cmd.CombinedOutput()
	// The other tests' controller runs its delete Jobs as this account.
	t.Cleanup(func() {
		kubectl(t, "apply", "--server-side", "-f", filepath.Join(projectRoot, "deploy", "image-delete.yaml"))
	})
	if err != nil {
		t.Fatalf("make undeploy: %v\n%s", err, out)
	}
	t.Logf("make undeploy:\n%s", out)
	for _, want := range []string{
		"undeploy: keeping the CRD imagecaches.kubefledged.io and the ",
		"undeploy: keeping the namespace " + sampleNS + ": it holds ImageCaches",
		"undeploy: deleting:\n",
		"  clusterrole.rbac.authorization.k8s.io/kube-fledged\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("make undeploy does not say %q", want)
		}
	}
	if strings.Contains(string(out), "customresourcedefinition") || strings.Contains(string(out), "namespace/"+sampleNS) {
		t.Errorf("make undeploy deleted the CRD or the namespace:\n%s", out)
	}
	kubectl(t, "get", "crd", "imagecaches.kubefledged.io")
	kubectl(t, "get", "namespace", sampleNS)
	getIC(t, sampleNS, "kept-by-undeploy")
	getIC(t, apps, "imagecache1")
	if _, err := kubeClient.RbacV1().ClusterRoles().Get(context.Background(), "kube-fledged", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after make undeploy, the ClusterRole kube-fledged: %v", err)
	}
}

// makeDeploy runs make deploy with the real node's controller image and
// the patch, and removes the controller's Deployment when the test ends.
func makeDeploy(t *testing.T, rn *realNode, patch string) {
	t.Helper()
	cmd := exec.Command("make", "--no-print-directory", "deploy", "FLEDGED_IMAGE="+rn.controllerImage)
	cmd.Dir = projectRoot
	cmd.Env = append(os.Environ(), "KUBECTL="+kubectlBin, "KUBECONFIG="+kubeconfig, "FLEDGED_PATCH="+patch)
	removeControllerAtEnd(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make deploy: %v\n%s", err, out)
	}
}

// removeControllerAtEnd deletes the controller's Deployment when the test
// ends, and waits for its pods to go, so that no other test meets a second
// controller; the namespace and the CRD stay for them.
func removeControllerAtEnd(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		_ = kubeClient.AppsV1().Deployments(sampleNS).Delete(context.Background(), "kube-fledged", metav1.DeleteOptions{})
		waitFor(t, 2*time.Minute, "the controller's pods to go", func() bool {
			list, err := kubeClient.CoreV1().Pods(sampleNS).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=kube-fledged"})
			return err == nil && len(list.Items) == 0
		})
	})
}

// leaderAndFollowerMetrics scrapes each of the two replicas: the leader
// says so (kubefledged_leader 1) and serves the per-cache series, the
// follower neither, so that summed over both, kubefledged_imagecaches counts
// each ImageCache of the cluster once.
func leaderAndFollowerMetrics(t *testing.T, pods []corev1.Pod, leaderName, appsNS string) {
	t.Helper()
	all, err := fledged.KubefledgedV1alpha2().ImageCaches("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cacheSample := fmt.Sprintf(`kubefledged_imagecache_status{name="imagecache1",namespace=%q,status="Succeeded"}`, appsNS)
	total := 0.0
	for _, p := range pods {
		addr := fmt.Sprintf("%s:8080", p.Status.PodIP)
		body, err := scrapeBody(addr)
		if err != nil {
			t.Fatalf("scraping %s (%s): %v", p.Name, addr, err)
		}
		isLeader := p.Name == leaderName
		leader, _ := sampleIn(body, "kubefledged_leader")
		perCache, hasPerCache := sampleIn(body, cacheSample)
		caches := sumIn(body, "kubefledged_imagecaches{")
		total += caches
		t.Logf("%s (leader %v): kubefledged_leader %v, %s %v, kubefledged_imagecaches summed %v", p.Name, isLeader, leader, cacheSample, perCache, caches)
		ours, lint, err := framework.LintMetrics(body)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: promtool check metrics: %d lines about kube-fledged's metrics (of %d lines)", p.Name, len(ours), strings.Count(lint, "\n"))
		if len(ours) > 0 {
			t.Errorf("promtool check metrics on %s's scrape, on kube-fledged's own metrics:\n%s", p.Name, strings.Join(ours, "\n"))
		}
		if isLeader && (leader != 1 || !hasPerCache || perCache != 1) {
			t.Errorf("the leader %s: kubefledged_leader %v, %s %v (present %v); want 1 and 1", p.Name, leader, cacheSample, perCache, hasPerCache)
		}
		if !isLeader && (leader != 0 || hasPerCache || caches != 0) {
			t.Errorf("the follower %s: kubefledged_leader %v, per-cache series present %v, kubefledged_imagecaches %v; want 0, none, none",
				p.Name, leader, hasPerCache, caches)
		}
	}
	if int(total) != len(all.Items) {
		t.Errorf("sum(kubefledged_imagecaches) over both replicas is %v, want the %d ImageCaches of the cluster", total, len(all.Items))
	}
}

// scrapeBody reads /metrics at addr.
func scrapeBody(addr string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// sampleIn finds one sample's value in a scrape.
func sampleIn(body, sample string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// sumIn adds up the samples of a scrape whose line starts with prefix.
func sumIn(body, prefix string) float64 {
	total := 0.0
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			if i := strings.LastIndex(line, " "); i > 0 {
				v, _ := strconv.ParseFloat(line[i+1:], 64)
				total += v
			}
		}
	}
	return total
}

func podByName(t *testing.T, pods []corev1.Pod, name string) *corev1.Pod {
	t.Helper()
	for i := range pods {
		if pods[i].Name == name {
			return &pods[i]
		}
	}
	t.Fatalf("no pod %s among the controller's", name)
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
