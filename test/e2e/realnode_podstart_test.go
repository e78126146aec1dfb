//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/test/framework"
)

// podStartMiB is the size of the image whose pod start is timed by default:
// one layer of incompressible bytes, as large as a typical application image.
const podStartMiB = 120

// envInt reads a positive integer from the environment, else def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestRealNodePodStartColdAndCached is the user's view of a cache: a pod of
// a 120 MiB image on the real node, from its scheduling until its container
// runs, when the image is cold (the kubelet pulls it from the registry),
// when an ImageCache has cached it, and when the node joins with the
// startup taint while a cache lists the image (the pod waits for the warm
// node instead of pulling). It checks that the cached and the joining
// node's pods pulled nothing and that the latter was scheduled only once the
// node was released; the times are logged and written to
// _output/e2e/pod-start.json, not asserted. Tuned from the environment
// (make bench-podstart):
//
//	KUBE_FLEDGED_POD_START_RUNS  pairs of pods (1)
//	KUBE_FLEDGED_POD_START_MIB   the image's size (120)
//	KUBE_FLEDGED_POD_START_LINK  a rate such as 100mbit: the registry sits
//	                             across the shaped link (with linkDelay each
//	                             way) rather than on loopback
func TestRealNodePodStartColdAndCached(t *testing.T) {
	rn := needRealNode(t)
	runs := envInt("KUBE_FLEDGED_POD_START_RUNS", 1)
	mib := envInt("KUBE_FLEDGED_POD_START_MIB", podStartMiB)
	link := os.Getenv("KUBE_FLEDGED_POD_START_LINK")
	ns := newNamespace(t, "real-podstart")
	registry, where := rn.registry, "loopback"
	if link != "" {
		rn.startLinkRegistry(t, t.TempDir(), linkDelay)
		registry, where = rn.linkRegistry, fmt.Sprintf("a %s link with %v each way", link, linkDelay)
	}
	push := func(tag string, seed uint64) string {
		img, err := framework.LargeShellImage(mib, seed)
		if err != nil {
			t.Fatal(err)
		}
		// A fresh seed for each test run: an image of an earlier run may
		// still be on the node.
		ref := fmt.Sprintf("%s/e2e/podstart:%s-%d", registry, tag, time.Now().UnixNano())
		if err := framework.PushImage(img, ref, "", ""); err != nil {
			t.Fatal(err)
		}
		if rn.present(t, ref) {
			t.Fatalf("%s is on the node before the test", ref)
		}
		t.Cleanup(func() { rn.removeFromNode(t, ref) })
		return ref
	}
	seed := uint64(time.Now().UnixNano())
	var cold, cached, joining []string
	for i := range runs {
		cold = append(cold, push(fmt.Sprintf("cold%d", i), seed+uint64(3*i)))
		cached = append(cached, push(fmt.Sprintf("cached%d", i), seed+uint64(3*i+1)))
		joining = append(joining, push(fmt.Sprintf("joining%d", i), seed+uint64(3*i+2)))
	}
	if link != "" {
		rn.shapeLink(t, link)
	}
	rn.controller(t, "--node-startup-taint="+warmingTaint)
	pullTimeout := time.Duration(runs) * (5*time.Minute + time.Duration(mib)*200*time.Millisecond)
	cacheStart := time.Now()
	cacheOf := func(imgs ...string) { applyCache(t, ns, imageList(imgs...)+onRealNode(rn)+"    pullDeadline: 1h\n") }
	cacheOf(cached...)
	waitIC(t, ns, "app", pullTimeout, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	t.Logf("the cache pulled %d images of %d MiB from %s in %v", runs, mib, where, time.Since(cacheStart).Round(time.Second))

	// Each measured pod and its image go as soon as they are measured:
	// nine images of 2 GiB, each unpacked and copied into its container
	// (the native snapshotter), would fill the node's disk.
	drop := func(pod, image string) {
		if err := kubeClient.CoreV1().Pods(ns).Delete(context.Background(), pod, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*time.Minute, "pod "+pod+" to go", func() bool {
			_, err := kubeClient.CoreV1().Pods(ns).Get(context.Background(), pod, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
		rn.removeFromNode(t, image)
	}
	var coldTimes, cachedTimes, joinStart, joinWait []time.Duration
	for i := range runs {
		// Cold first: the cached image's pull is over, so the node does
		// nothing else while the cold one is pulled.
		coldTimes = append(coldTimes, timePodStart(t, ns, fmt.Sprintf("cold-%d", i), cold[i], rn.name).started())
		if msg := pulledEvent(t, ns, fmt.Sprintf("cold-%d", i)); !strings.Contains(msg, "Successfully pulled") {
			t.Errorf("the cold pod's Pulled event: %q, want a pull", msg)
		}
		cachedTimes = append(cachedTimes, timePodStart(t, ns, fmt.Sprintf("cached-%d", i), cached[i], rn.name).started())
		if msg := pulledEvent(t, ns, fmt.Sprintf("cached-%d", i)); !strings.Contains(msg, "already present on machine") {
			t.Errorf("the cached pod's Pulled event: %q, want the image already present", msg)
		}
		drop(fmt.Sprintf("cold-%d", i), cold[i])
		drop(fmt.Sprintf("cached-%d", i), cached[i])
	}
	// The node joins with the startup taint while the cache lists an
	// image it lacks (only that one: the cached ones are gone), and a pod
	// of that image waits for it (as a Deployment's new replica waits for
	// the node an autoscaler adds).
	for i := range runs {
		name := fmt.Sprintf("joining-%d", i)
		rn.leave(t)
		cacheOf(joining[i])
		ps := watchPodStart(t, ns, name, joining[i], rn.name, false)
		joined := rn.join(t)
		s := ps.wait(t, pullTimeout)
		if s.scheduled.Before(joined) {
			t.Errorf("pod %s was scheduled at %v, before the node joined at %v", name, s.scheduled, joined)
		}
		node, err := kubeClient.CoreV1().Nodes().Get(context.Background(), rn.name, metav1.GetOptions{})
		if err != nil || hasTaint(node) {
			t.Errorf("node %s after pod %s started: taint still there (%v)", rn.name, name, err)
		}
		if msg := pulledEvent(t, ns, name); !strings.Contains(msg, "already present on machine") {
			t.Errorf("the joining node's pod's Pulled event: %q, want the image already present", msg)
		}
		joinStart = append(joinStart, s.started())
		joinWait = append(joinWait, s.scheduled.Sub(joined).Round(10*time.Millisecond))
		drop(name, joining[i])
	}
	t.Logf("%d MiB image from %s, pod scheduled to container running, over %d runs: cold %v (median %v), cached %v (median %v), "+
		"joining node with the startup taint %v (median %v; the pod waited %v, median %v, from the node's registration to its scheduling)",
		mib, where, runs, coldTimes, median(coldTimes), cachedTimes, median(cachedTimes), joinStart, median(joinStart), joinWait, median(joinWait))
	secs := func(ds []time.Duration) []float64 {
		var out []float64
		for _, d := range ds {
			out = append(out, d.Seconds())
		}
		return out
	}
	measuredStart = struct{ cold, cached time.Duration }{median(coldTimes), median(cachedTimes)}
	measuredStartOf = fmt.Sprintf("a %d MiB image from %s", mib, where)
	data, _ := json.MarshalIndent(map[string]any{"imageMiB": mib, "registry": where, "coldSeconds": secs(coldTimes),
		"cachedSeconds": secs(cachedTimes), "joiningNodeSeconds": secs(joinStart), "joiningNodeWaitSeconds": secs(joinWait),
		"measured": "pod scheduled to its container running; the joining node's wait is from its registration to the pod's scheduling",
		"date":     time.Now().UTC().Format(time.RFC3339)}, "", "  ")
	if err := os.WriteFile(filepath.Join(artifacts, "pod-start.json"), data, 0o644); err != nil {
		t.Error(err)
	}
}

// measuredStart is the real node's median pod start, scheduled to running,
// cold and cached, as TestRealNodePodStartColdAndCached measured it in this
// run, of the image measuredStartOf says.
var (
	measuredStart   struct{ cold, cached time.Duration }
	measuredStartOf string
)

// deploymentReplicas is how many replicas, one on each kwok node, the
// Deployment of TestRealNodePodStartDeploymentOnKwok has.
const deploymentReplicas = 50

// TestRealNodePodStartDeploymentOnKwok: a Deployment of 50 replicas, one on
// each of 50 kwok nodes, from its creation until all are Ready, with the
// image cold and with the image cached there by an ImageCache. kwok cannot
// pull: each pod waits, before its containers run, the real node's median
// pod start of this run (cold or cached; hack/local-up.sh gives kwok's
// pod-ready stage the e2e.kubefledged.io/start-delay annotation as its
// delay). So the figures add the control plane's share (the ReplicaSet's
// 50 pod creations, their scheduling, their status) to a start measured on
// a real node. They assume each node has the link to the registry to
// itself; 50 nodes sharing one link would each pull far slower cold, and
// not at all cached. Written to _output/e2e/deployment-start.json.
func TestRealNodePodStartDeploymentOnKwok(t *testing.T) {
	if measuredStart.cold == 0 {
		t.Skip("needs the pod start TestRealNodePodStartColdAndCached measures in the same run")
	}
	ns := newNamespace(t, "kwok-deploy")
	label := ns
	nodes := nodeList("deploy", deploymentReplicas)
	addNodes(t, nodes, map[string]string{"e2e": label})
	startController(t)
	const image = "registry.e2e.invalid/model-server:v1"
	applyCache(t, ns, imageList(image)+"    nodeSelector: {e2e: "+label+"}\n")
	ic := waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if ic.Status.Pulls.Succeeded != deploymentReplicas {
		t.Fatalf("pulls %+v, want %d succeeded", ic.Status.Pulls, deploymentReplicas)
	}
	ready := map[string]time.Duration{}
	for _, run := range []struct {
		name  string
		delay time.Duration
	}{{"cold", measuredStart.cold}, {"cached", measuredStart.cached}} {
		ready[run.name] = deploymentReady(t, ns, run.name, label, image, run.delay)
	}
	t.Logf("a Deployment of %d replicas on kwok nodes, created to all Ready, each pod taking the real node's median start of %s: "+
		"cold %v (pod start %v), cached %v (pod start %v)", deploymentReplicas, measuredStartOf,
		ready["cold"], measuredStart.cold, ready["cached"], measuredStart.cached)
	data, _ := json.MarshalIndent(map[string]any{"replicas": deploymentReplicas, "podStartOf": measuredStartOf,
		"coldPodStartSeconds": measuredStart.cold.Seconds(), "cachedPodStartSeconds": measuredStart.cached.Seconds(),
		"coldAllReadySeconds": ready["cold"].Seconds(), "cachedAllReadySeconds": ready["cached"].Seconds(),
		"date": time.Now().UTC().Format(time.RFC3339)}, "", "  ")
	if err := os.WriteFile(filepath.Join(artifacts, "deployment-start.json"), data, 0o644); err != nil {
		t.Error(err)
	}
}

// deploymentReady creates a Deployment of deploymentReplicas pods spread one
// to a node over the nodes labelled e2e=label, each pod's start delayed by
// delay on kwok, and returns the time from its creation until all its
// replicas are Ready; then deletes it and waits for its pods to go.
func deploymentReady(t *testing.T, ns, name, label, image string, delay time.Duration) time.Duration {
	t.Helper()
	manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata:
      labels: {app: %[1]s}
      annotations: {e2e.kubefledged.io/start-delay: %[3]s}
    spec:
      nodeSelector: {e2e: %[4]s}
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: %[1]s}}}
      containers: [{name: app, image: %[5]s}]
`, name, deploymentReplicas, delay.Round(10*time.Millisecond), label, image)
	start := time.Now()
	kubectlIn(t, manifest, "apply", "-n", ns, "-f", "-")
	waitFor(t, 10*time.Minute+2*delay, fmt.Sprintf("Deployment %s all Ready", name), func() bool {
		d, err := kubeClient.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == deploymentReplicas
	})
	took := time.Since(start).Round(100 * time.Millisecond)
	pods, err := kubeClient.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		t.Fatal(err)
	}
	onNode := map[string]bool{}
	for _, p := range pods.Items {
		onNode[p.Spec.NodeName] = true
	}
	if len(onNode) != deploymentReplicas {
		t.Errorf("Deployment %s: its pods are on %d nodes, want %d", name, len(onNode), deploymentReplicas)
	}
	if took < delay {
		t.Errorf("Deployment %s was all Ready in %v, before its pods' start delay of %v: kwok did not apply it", name, took, delay)
	}
	if err := kubeClient.AppsV1().Deployments(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "the pods of Deployment "+name+" to go", func() bool {
		pods, err := kubeClient.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + name})
		return err == nil && len(pods.Items) == 0
	})
	return took
}

// leave deletes the real node's Node, as a node that is gone: its kubelet
// registers it again, with the startup taint, when it next starts (join).
func (rn *realNode) leave(t *testing.T) {
	t.Helper()
	if err := kubeClient.CoreV1().Nodes().Delete(context.Background(), rn.name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "node "+rn.name+" to be gone", func() bool {
		_, err := kubeClient.CoreV1().Nodes().Get(context.Background(), rn.name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
}

// join starts the node's kubelet again, which registers its Node with the
// startup taint (hack/real-node-kubelet.sh), and returns when the Node was
// first seen.
func (rn *realNode) join(t *testing.T) time.Time {
	t.Helper()
	w, err := kubeClient.CoreV1().Nodes().Watch(context.Background(), metav1.ListOptions{FieldSelector: "metadata.name=" + rn.name})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	seen := make(chan time.Time, 1)
	go func() {
		for ev := range w.ResultChan() {
			if n, ok := ev.Object.(*corev1.Node); ok && ev.Type == watch.Added {
				if !hasTaint(n) {
					t.Errorf("node %s registered without the %s taint", n.Name, warmingTaint)
				}
				seen <- time.Now()
				return
			}
		}
	}()
	rn.restartKubelet(t)
	select {
	case at := <-seen:
		return at
	case <-time.After(time.Minute):
		t.Fatalf("the watch did not see node %s register", rn.name)
		return time.Time{}
	}
}

// podStart is when a pod was scheduled (first seen bound to a node) and
// started (first seen with its container running, or already finished:
// the image's command exits at once).
type podStart struct{ scheduled, running time.Time }

// started is the pod's time from its scheduling until its container ran.
func (s podStart) started() time.Duration {
	return s.running.Sub(s.scheduled).Round(10 * time.Millisecond)
}

type podStartWatch struct {
	name  string
	start podStart
	w     watch.Interface
}

// timePodStart creates a pod of image on the node, tolerating the startup
// taint, and times its start.
func timePodStart(t *testing.T, ns, name, image, node string) podStart {
	t.Helper()
	return watchPodStart(t, ns, name, image, node, true).wait(t, 20*time.Minute)
}

// watchPodStart starts a watch of a pod, then creates it: one container of
// image, on the node by its hostname label, tolerating the startup taint or
// not.
func watchPodStart(t *testing.T, ns, name, image, node string, tolerate bool) *podStartWatch {
	t.Helper()
	w, err := kubeClient.CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
		NodeSelector:  map[string]string{"kubernetes.io/hostname": node},
		RestartPolicy: corev1.RestartPolicyNever,
		Containers:    []corev1.Container{{Name: "app", Image: image, ImagePullPolicy: corev1.PullIfNotPresent}},
	}}
	if tolerate {
		pod.Spec.Tolerations = []corev1.Toleration{{Key: warmingTaint, Operator: corev1.TolerationOpExists}}
	}
	p := &podStartWatch{name: name, w: w}
	if _, err := kubeClient.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return p
}

// wait follows the pod until its container has run.
func (p *podStartWatch) wait(t *testing.T, timeout time.Duration) podStart {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-p.w.ResultChan():
			if !ok {
				t.Fatalf("the watch of pod %s ended", p.name)
			}
			if ev.Type == watch.Error {
				t.Fatalf("watching pod %s: %v", p.name, ev.Object)
			}
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if pod.Spec.NodeName != "" && p.start.scheduled.IsZero() {
				p.start.scheduled = time.Now()
			}
			if len(pod.Status.ContainerStatuses) == 0 {
				continue
			}
			if st := pod.Status.ContainerStatuses[0].State; st.Running != nil || st.Terminated != nil {
				p.start.running = time.Now()
				return p.start
			}
		case <-deadline:
			t.Fatalf("pod %s did not start within %v", p.name, timeout)
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
