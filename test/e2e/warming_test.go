//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
)

const warmingTaint = "kubefledged.io/warming"

var startupTaint = corev1.Taint{Key: warmingTaint, Effect: corev1.TaintEffectNoSchedule}

// releases watches nodes and records when each lost the startup taint.
type releases struct {
	mu sync.Mutex
	at map[string]time.Time
	w  watch.Interface
}

func watchReleases(t *testing.T, selector string) *releases {
	t.Helper()
	w, err := kubeClient.CoreV1().Nodes().Watch(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	r := &releases{at: map[string]time.Time{}, w: w}
	go func() {
		for ev := range w.ResultChan() {
			n, ok := ev.Object.(*corev1.Node)
			if !ok || hasTaint(n) {
				continue
			}
			r.mu.Lock()
			if _, seen := r.at[n.Name]; !seen {
				r.at[n.Name] = time.Now()
			}
			r.mu.Unlock()
		}
	}()
	t.Cleanup(w.Stop)
	return r
}

func (r *releases) get(node string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.at[node]
	return at, ok
}

func (r *releases) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.at)
}

func hasTaint(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == warmingTaint {
			return true
		}
	}
	return false
}

// TestStartupTaintHoldsPodsUntilWarm: 50 nodes join with the startup taint
// while a cache of 10 images matches them, and a Deployment of 50 replicas
// waits for capacity on them. No pod lands on a node before its release;
// every node is released once its pulls settle. A node that matches no
// cache is released at once.
func TestStartupTaintHoldsPodsUntilWarm(t *testing.T) {
	ns := newNamespace(t, "warm")
	label := ns
	p := startController(t, "--node-startup-taint="+warmingTaint)
	var imgs []string
	for i := range 10 {
		imgs = append(imgs, fmt.Sprintf("docker.io/library/app-%d:v1", i))
	}
	applyCache(t, ns, fmt.Sprintf(`
  - images: [%s]
    nodeSelector: {e2e: %s}
`, strings.Join(imgs, ", "), label))
	kubectlIn(t, fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: burst}
spec:
  replicas: 50
  selector: {matchLabels: {app: burst}}
  template:
    metadata: {labels: {app: burst}}
    spec:
      nodeSelector: {e2e: %s}
      containers: [{name: app, image: docker.io/library/app-0:v1}]
`, label), "apply", "-n", ns, "-f", "-")
	rel := watchReleases(t, "e2e in ("+label+","+label+"-none)")

	start := time.Now()
	names := nodeList("warm", 50)
	addNodes(t, names, map[string]string{"e2e": label}, startupTaint)
	addNodes(t, []string{"warm-none"}, map[string]string{"e2e": label + "-none"}, startupTaint)
	waitFor(t, 2*time.Minute, "every node released", func() bool { return rel.count() == 51 })
	if at, _ := rel.get("warm-none"); at.Sub(start) > 30*time.Second {
		t.Errorf("the node no cache matches was released after %v", at.Sub(start).Round(100*time.Millisecond))
	}
	ic := waitIC(t, ns, "app", time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if ic.Status.Pulls.Succeeded != 500 {
		t.Errorf("pulls %+v, want 500", ic.Status.Pulls)
	}

	// Every pod was bound after its node's release.
	waitFor(t, 2*time.Minute, "50 pods scheduled", func() bool {
		pods, err := kubeClient.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=burst"})
		if err != nil {
			return false
		}
		n := 0
		for _, pod := range pods.Items {
			if pod.Spec.NodeName != "" {
				n++
			}
		}
		return n == 50
	})
	pods, err := kubeClient.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=burst"})
	if err != nil {
		t.Fatal(err)
	}
	for _, pod := range pods.Items {
		released, ok := rel.get(pod.Spec.NodeName)
		if !ok {
			t.Errorf("pod %s is on %s, which was never released", pod.Name, pod.Spec.NodeName)
			continue
		}
		for _, c := range pod.Status.Conditions {
			// The condition's time has a resolution of one second.
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue && c.LastTransitionTime.Time.Before(released.Add(-time.Second)) {
				t.Errorf("pod %s was scheduled on %s at %v, before its release at %v", pod.Name, pod.Spec.NodeName,
					c.LastTransitionTime.Time, released)
			}
		}
	}
	var took []time.Duration
	for _, n := range names {
		at, _ := rel.get(n)
		took = append(took, at.Sub(start))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	t.Logf("50 nodes released %v to %v after they were added (median %v); the cache Succeeded at %v",
		took[0].Round(100*time.Millisecond), took[49].Round(100*time.Millisecond), took[25].Round(100*time.Millisecond),
		ic.Status.CompletionTime.Sub(start).Round(time.Second))
	if last, done := start.Add(took[49]), ic.Status.CompletionTime.Time; last.After(done.Add(5 * time.Second)) {
		t.Errorf("the last node was released at %v, more than 5s after the cache's pulls settled at %v", last, done)
	}
	if got := p.metric(t, `kubefledged_node_warmup_seconds_count{result="warmed"}`); got != 51 {
		t.Errorf(`kubefledged_node_warmup_seconds_count{result="warmed"} = %v, want 51`, got)
	}
	if got := p.metric(t, `kubefledged_node_warmup_seconds_count{result="timed_out"}`); got != 0 {
		t.Errorf(`kubefledged_node_warmup_seconds_count{result="timed_out"} = %v, want 0`, got)
	}
}

// joinTainted adds a kwok node labelled e2e=label with the startup taint,
// and returns when it was added and when it was released.
func joinTainted(t *testing.T, node, label string) (added, released time.Time) {
	t.Helper()
	rel := watchReleases(t, "e2e="+label)
	added = time.Now()
	addNodes(t, []string{node}, map[string]string{"e2e": label}, startupTaint)
	waitFor(t, time.Minute, node+" released", func() bool { return rel.count() == 1 })
	released, _ = rel.get(node)
	return added, released
}

// TestStartupTaintFailedPull: a node whose image cannot be pulled is
// released once the failure is recorded, and the failure is reported.
func TestStartupTaintFailedPull(t *testing.T) {
	ns := newNamespace(t, "warmfail")
	startController(t, "--node-startup-taint="+warmingTaint) // the suite's 10s pull deadline
	applyCache(t, ns, fmt.Sprintf(`
  - images: [fail.invalid/e2e/missing:v1, docker.io/library/nginx:1.27]
    nodeSelector: {e2e: %s}
`, ns))
	start, at := joinTainted(t, "warm-fail", ns)
	ic := waitIC(t, ns, "app", time.Minute, "Failed", done(v1alpha2.ImageCacheActionStatusFailed))
	t.Logf("released after %v; the cache: %s", at.Sub(start).Round(100*time.Millisecond), ic.Status.Message)
	if f := ic.Status.Failures["fail.invalid/e2e/missing:v1"]; len(f) != 1 || f[0].Node != "warm-fail" || f[0].Reason != puller.ReasonImageNotFound {
		t.Errorf("failures: %+v", ic.Status.Failures)
	}
	// The completion time has a resolution of one second.
	if done := ic.Status.CompletionTime.Time; at.Before(done.Add(-time.Second)) || at.After(done.Add(5*time.Second)) {
		t.Errorf("released at %v, not within 5s after the failure was recorded at %v", at, done)
	}
}

// TestStartupTaintTimeout: a node whose pull hangs is released at the
// timeout, with a Warning event naming the pending image.
func TestStartupTaintTimeout(t *testing.T) {
	ns := newNamespace(t, "warmhang")
	p := startController(t, "--node-startup-taint="+warmingTaint, "--node-startup-taint-timeout=20s",
		"--image-pull-deadline-duration=5m")
	applyCache(t, ns, fmt.Sprintf(`
  - images: [hang.invalid/e2e/slow:v1]
    nodeSelector: {e2e: %s}
`, ns))
	start, at := joinTainted(t, "warm-hang", ns)
	t.Logf("released after %v", at.Sub(start).Round(100*time.Millisecond))
	// The timeout counts from the node's creation, whose time the API
	// server keeps to the second: up to a second before 20s from the
	// create call.
	if at.Sub(start) < 19*time.Second {
		t.Errorf("the hanging node was released after %v, before the 20s timeout", at.Sub(start))
	}
	var events *corev1.EventList
	waitFor(t, 30*time.Second, "the WarmingTimedOut event", func() bool {
		var err error
		events, err = kubeClient.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{
			FieldSelector: "involvedObject.name=warm-hang,reason=WarmingTimedOut"})
		return err == nil && len(events.Items) > 0
	})
	if msg := events.Items[0].Message; !strings.Contains(msg, "hang.invalid/e2e/slow:v1 ("+ns+"/app)") {
		t.Errorf("WarmingTimedOut: %q", msg)
	} else {
		t.Logf("warm-hang: %s", msg)
	}
	if got := p.metric(t, `kubefledged_node_warmup_seconds_count{result="timed_out"}`); got != 1 {
		t.Errorf(`kubefledged_node_warmup_seconds_count{result="timed_out"} = %v, want 1`, got)
	}
}

// TestStartupTaintTimeoutWhileTheControllerIsDown: a node joins with the
// taint while no controller runs, and stays past the timeout; a controller
// started then releases it at once (the timeout counts from the node's
// creation), though its pull hangs, with the Warning.
func TestStartupTaintTimeoutWhileTheControllerIsDown(t *testing.T) {
	ns := newNamespace(t, "warmlate")
	applyCache(t, ns, fmt.Sprintf(`
  - images: [hang.invalid/e2e/slow:v1]
    nodeSelector: {e2e: %s}
`, ns))
	rel := watchReleases(t, "e2e="+ns)
	joined := time.Now()
	addNodes(t, []string{"warm-late"}, map[string]string{"e2e": ns}, startupTaint)
	waitFor(t, time.Minute, "the node's 20s timeout to pass with no controller", func() bool {
		return time.Since(joined) > 21*time.Second && rel.count() == 0
	})
	started := time.Now()
	startController(t, "--node-startup-taint="+warmingTaint, "--node-startup-taint-timeout=20s", "--image-pull-deadline-duration=5m")
	waitFor(t, time.Minute, "warm-late released", func() bool { return rel.count() == 1 })
	at, _ := rel.get("warm-late")
	t.Logf("released %v after the controller started, %v after the node joined", at.Sub(started).Round(100*time.Millisecond),
		at.Sub(joined).Round(100*time.Millisecond))
	if at.Sub(started) >= 20*time.Second {
		t.Errorf("released %v after the controller started: the timeout ran again from its start", at.Sub(started))
	}
	waitFor(t, 30*time.Second, "the WarmingTimedOut event", func() bool {
		events, err := kubeClient.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{
			FieldSelector: "involvedObject.name=warm-late,reason=WarmingTimedOut"})
		return err == nil && len(events.Items) > 0
	})
}

// TestStartupTaintPolicy: with deploy/startup-taint applied, the controller's
// ServiceAccount token can remove the startup taint from a Node, and is
// refused when it tries to add a label, remove another taint, or cordon it.
func TestStartupTaintPolicy(t *testing.T) {
	kc := deployed(t)
	dir := filepath.Join(projectRoot, "deploy", "startup-taint")
	kubectl(t, "apply", "-k", dir)
	t.Cleanup(func() { kubectl(t, "delete", "-k", dir, "--ignore-not-found") })
	other := corev1.Taint{Key: "other.example/keep", Effect: corev1.TaintEffectNoSchedule}
	addNodes(t, []string{"policy-node"}, map[string]string{"e2e": "policy"}, startupTaint, other)
	asController := func(args ...string) (string, error) {
		out, err := exec.Command(kubectlBin, append([]string{"--kubeconfig", kc}, args...)...).CombinedOutput()
		return string(out), err
	}
	removeTaint := func(i int, key string) []string {
		return []string{"patch", "node", "policy-node", "--type=json", "-p",
			fmt.Sprintf(`[{"op":"test","path":"/spec/taints/%d/key","value":%q},{"op":"remove","path":"/spec/taints/%d"}]`, i, key, i)}
	}
	// The API server applies a new policy within a second or so.
	waitFor(t, 30*time.Second, "the policy to refuse a label", func() bool {
		out, err := asController("label", "node", "policy-node", "e2e-extra=yes", "--dry-run=server")
		return err != nil && strings.Contains(out, "may not change a Node's labels")
	})
	for _, tc := range []struct {
		what string
		args []string
		want string
	}{
		{"remove another taint", removeTaint(1, other.Key), "may only remove the startup taint"},
		{"cordon", []string{"cordon", "policy-node"}, "may not cordon"},
		{"add a finalizer", []string{"patch", "node", "policy-node", "--type=merge", "-p",
			`{"metadata":{"finalizers":["example.com/hold"]}}`}, "may not change a Node's finalizers"},
		{"set the provider ID", []string{"patch", "node", "policy-node", "--type=merge", "-p",
			`{"spec":{"providerID":"example://elsewhere"}}`}, "may change no field of a Node's spec"},
	} {
		// (kubectl cordon says it was refused, but exits 0.)
		if out, err := asController(tc.args...); !strings.Contains(out, tc.want) {
			t.Errorf("%s: %v: %s; want it refused with %q", tc.what, err, out, tc.want)
		}
	}
	if out, err := asController(removeTaint(0, warmingTaint)...); err != nil {
		t.Fatalf("removing the startup taint: %v: %s", err, out)
	}
	n, err := kubeClient.CoreV1().Nodes().Get(context.Background(), "policy-node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != other.Key || n.Spec.Unschedulable || n.Labels["e2e-extra"] != "" {
		t.Errorf("node after the controller's changes: taints %v, unschedulable %v, labels %v", n.Spec.Taints, n.Spec.Unschedulable, n.Labels)
	}
}
