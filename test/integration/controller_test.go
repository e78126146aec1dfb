package integration

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/app"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/metrics"
	"kubefledged.io/kube-fledged/pkg/options"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/test/framework"
)

// runController runs the controller in-process until the returned stop is called.
func runController(t *testing.T, mutate func(*options.Options)) (stop func()) {
	t.Helper()
	o := options.New()
	o.ImagePullDeadline = 3 * time.Second
	o.ImageCacheRefreshPeriod = 0
	o.HelperImage = "registry.local/kube-fledged:test"
	o.MetricsBindAddress, o.HealthProbeBindAddress = "0", "0"
	if mutate != nil {
		mutate(o)
	}
	o.Complete() // as the binary does after its flags: the namespace, kube-fledged
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	cfg := *cp.Config
	cfg.Wrap(metrics.CountRequests) // as app.RESTConfig does for the binary
	go func() { done <- app.Run(ctx, o, &cfg) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("controller: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("controller did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// createNode makes a Ready node with the hostname label and extra labels.
// The nodes belong to the test that made them.
func createNode(t *testing.T, name string, labels ...string) {
	t.Helper()
	ctx := context.Background()
	l := map[string]string{puller.HostnameLabel: name}
	for i := 0; i+1 < len(labels); i += 2 {
		l[labels[i]] = labels[i+1]
	}
	n, err := kubeClient.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if _, err := kubeClient.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kubeClient.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
}

// nodeNames returns n node names unique to the test.
func nodeNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func testNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := newNamespace(t, prefix)
	// No controller-manager runs here, so the namespace's default
	// ServiceAccount, which the pods the test makes need, is made by hand.
	if _, err := kubeClient.CoreV1().ServiceAccounts(ns).Create(context.Background(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return ns
}

// createCache creates an ImageCache and deletes it when the test ends (no
// namespace controller runs here to do it).
func createCache(t *testing.T, ns, name string, entries ...v1alpha2.CacheSpecImages) {
	t.Helper()
	_, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Create(context.Background(), &v1alpha2.ImageCache{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha2.ImageCacheSpec{CacheSpec: entries},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = fledged.KubefledgedV1alpha2().ImageCaches(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

func entry(sel map[string]v1alpha2.LabelValue, images ...string) v1alpha2.CacheSpecImages {
	return v1alpha2.CacheSpecImages{Images: images, NodeSelector: sel}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		ok, err := cond()
		last = err
		return ok, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (last error: %v)", what, err, last)
	}
}

func cacheStatus(t *testing.T, ns, name string) *v1alpha2.ImageCache {
	t.Helper()
	ic, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ic
}

func waitStatus(t *testing.T, ns, name string, want v1alpha2.ImageCacheActionStatus, timeout time.Duration) *v1alpha2.ImageCache {
	t.Helper()
	var ic *v1alpha2.ImageCache
	waitFor(t, timeout, fmt.Sprintf("%s/%s to be %s", ns, name, want), func() (bool, error) {
		var err error
		ic, err = fledged.KubefledgedV1alpha2().ImageCaches(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return ic.Status.Status == want && ic.Status.ObservedGeneration == ic.Generation, nil
	})
	return ic
}

func listJobs(t *testing.T, ns string) []batchv1.Job {
	t.Helper()
	list, err := kubeClient.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func isActive(j *batchv1.Job) bool { return puller.IsActive(j) && !ptr.Deref(j.Spec.Suspend, false) }

// completeJob plays the kubelet and the Job controller for a Job whose
// images all pulled: a pod whose containers exited 0, and a Complete Job.
func completeJob(t *testing.T, job batchv1.Job) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	writePod(t, fledgedtest.Succeeded(fledgedtest.PodOf(&job, "pod"), now))
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := kubeClient.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Status.Conditions = nil
		_, err = kubeClient.BatchV1().Jobs(job.Namespace).UpdateStatus(ctx, fledgedtest.Complete(cur, now), metav1.UpdateOptions{})
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("completing job %s: %v", job.Name, err)
	}
}

// writePod creates a pod and sets its status.
func writePod(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	status := pod.Status
	created, err := kubeClient.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = kubeClient.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	}
	if err != nil {
		t.Fatalf("creating pod %s: %v", pod.Name, err)
	}
	created.Status = status
	if _, err := kubeClient.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("pod status %s: %v", pod.Name, err)
	}
}

// completeActiveJobs completes every active Job in the namespace, and says how many.
func completeActiveJobs(t *testing.T, ns string) int {
	t.Helper()
	n := 0
	for _, j := range listJobs(t, ns) {
		if isActive(&j) && j.DeletionTimestamp == nil {
			completeJob(t, j)
			n++
		}
	}
	return n
}

// driveToCompletion plays the kubelet until the cache has no pending pulls.
func driveToCompletion(t *testing.T, ns, name string, timeout time.Duration) *v1alpha2.ImageCache {
	t.Helper()
	var ic *v1alpha2.ImageCache
	waitFor(t, timeout, ns+"/"+name+" to complete", func() (bool, error) {
		completeActiveJobs(t, ns)
		ic = cacheStatus(t, ns, name)
		return ic.Status.ObservedGeneration == ic.Generation && ic.Status.Status != "" &&
			ic.Status.Status != v1alpha2.ImageCacheActionStatusProcessing, nil
	})
	return ic
}

// jobWatch records the Jobs created in a namespace during the test.
type jobWatch struct {
	t *testing.T
	*framework.JobWatch
}

func watchJobs(t *testing.T, ns string) *jobWatch {
	t.Helper()
	jw, err := framework.WatchJobs(context.Background(), kubeClient, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(jw.Stop)
	return &jobWatch{t: t, JobWatch: jw}
}

func (jw *jobWatch) pairs(t *testing.T) map[string]int {
	p, err := jw.Pairs()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (jw *jobWatch) count() int { return jw.Count() }

func TestControllerCreateToSucceeded(t *testing.T) {
	ns := testNamespace(t, "create")
	nodes := nodeNames(ns, 3)
	createNode(t, nodes[0], "pool", ns)
	createNode(t, nodes[1], "pool", ns, "tier", "backend")
	createNode(t, nodes[2], "pool", ns)
	runController(t, nil)
	jw := watchJobs(t, ns)
	// The cache selects this test's nodes only.
	createCache(t, ns, "web",
		entry(map[string]v1alpha2.LabelValue{"pool": v1alpha2.LabelValue(ns), "tier": "backend"}, "ghcr.io/org/api:v2"),
		entry(map[string]v1alpha2.LabelValue{"pool": v1alpha2.LabelValue(ns)}, "nginx:1.27"))

	waitFor(t, 10*time.Second, "pull Jobs", func() (bool, error) { return len(listJobs(t, ns)) > 0, nil })
	ic := driveToCompletion(t, ns, "web", 30*time.Second)
	pairs := jw.pairs(t)
	for _, n := range nodes {
		if pairs[n+" nginx:1.27"] != 1 {
			t.Errorf("node %s: nginx pulled by %d Jobs", n, pairs[n+" nginx:1.27"])
		}
	}
	if pairs[nodes[1]+" ghcr.io/org/api:v2"] != 1 || pairs[nodes[0]+" ghcr.io/org/api:v2"] != 0 {
		t.Errorf("api image pulls: %v", pairs)
	}
	if ic.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded || ic.Status.Reason != v1alpha2.ImageCacheReasonCreate {
		t.Errorf("status %s %s: %s", ic.Status.Status, ic.Status.Reason, ic.Status.Message)
	}
	out, err := cp.Kubectl(context.Background(), "get", "ic", "web", "-n", ns)
	if err != nil {
		t.Fatal(err)
	}
	d := fmt.Sprint(ic.Status.Pulls.Desired)
	assertTable(t, out, []string{"NAME", "READY", "STATUS", "DONE", "DESIRED", "FAILED", "AGE"},
		map[string]string{"NAME": "web", "READY": "True", "STATUS": "Succeeded", "DONE": d, "DESIRED": d, "FAILED": "0"})
	// The finished Jobs are deleted once the operation is done.
	waitFor(t, 10*time.Second, "finished Jobs to be deleted", func() (bool, error) {
		for _, j := range listJobs(t, ns) {
			if j.DeletionTimestamp == nil {
				return false, nil
			}
		}
		return true, nil
	})
	// Events tell the story.
	waitFor(t, 10*time.Second, "events", func() (bool, error) {
		evs, err := kubeClient.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		var reasons []string
		for _, e := range evs.Items {
			reasons = append(reasons, e.Reason)
		}
		s := strings.Join(reasons, ",")
		return strings.Contains(s, "Started") && strings.Contains(s, "Succeeded"), nil
	})
}

func TestControllerPullFailure(t *testing.T) {
	ns := testNamespace(t, "failure")
	node := nodeNames(ns, 1)[0]
	createNode(t, node, "failtest", ns)
	runController(t, nil)
	createCache(t, ns, "bad", entry(map[string]v1alpha2.LabelValue{"failtest": v1alpha2.LabelValue(ns)}, "ghcr.io/org/missing:v9"))
	var job batchv1.Job
	waitFor(t, 10*time.Second, "the pull Job", func() (bool, error) {
		jobs := listJobs(t, ns)
		if len(jobs) == 1 {
			job = jobs[0]
			return true, nil
		}
		return false, nil
	})
	msg := `rpc error: code = NotFound desc = failed to pull and unpack image "ghcr.io/org/missing:v9": not found`
	pod := fledgedtest.WithContainerStates(fledgedtest.PodOf(&job, "pod"), map[string]corev1.ContainerState{
		puller.ContainerName(0): fledgedtest.Waiting("ErrImagePull", msg)})
	now := metav1.Now()
	pod.Status.StartTime = &now
	writePod(t, pod)
	ic := waitStatus(t, ns, "bad", v1alpha2.ImageCacheActionStatusFailed, 20*time.Second)
	got := ic.Status.Failures["ghcr.io/org/missing:v9"]
	if len(got) != 1 || got[0].Node != node || got[0].Reason != puller.ReasonImageNotFound || got[0].Message != msg {
		t.Errorf("failures %+v", ic.Status.Failures)
	}
	if ic.Status.Message != "Pulled 0 of 1 images on 1 node; 1 failed" {
		t.Errorf("message %q", ic.Status.Message)
	}
	out, err := cp.Kubectl(context.Background(), "get", "ic", "bad", "-n", ns, "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "manifest unknown") && !strings.Contains(out, "not found") {
		t.Errorf("kubectl -o yaml does not show the kubelet's message:\n%s", out)
	}
}

func TestControllerWarmsJoiningNode(t *testing.T) {
	ns := testNamespace(t, "join")
	names := nodeNames(ns, 2)
	createNode(t, names[0], "pool", ns)
	runController(t, nil)
	createCache(t, ns, "web", entry(map[string]v1alpha2.LabelValue{"pool": v1alpha2.LabelValue(ns)}, "nginx:1.27"))
	driveToCompletion(t, ns, "web", 20*time.Second)

	joined := time.Now()
	createNode(t, names[1], "pool", ns)
	waitFor(t, 2*time.Second, "a pull Job for the new node within 2s", func() (bool, error) {
		for _, j := range listJobs(t, ns) {
			if j.Annotations[puller.AnnotationNode] == names[1] {
				return true, nil
			}
		}
		return false, nil
	})
	t.Logf("the joining node's Job appeared %v after the node", time.Since(joined).Round(time.Millisecond))
	ic := driveToCompletion(t, ns, "web", 20*time.Second)
	if ic.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded || ic.Status.Pulls.Succeeded != 2 || ic.Status.NodesMatched != 2 {
		t.Errorf("status %s %+v", ic.Status.Status, ic.Status.Pulls)
	}
}

func TestControllerEditWhileProcessing(t *testing.T) {
	ns := testNamespace(t, "edit")
	names := nodeNames(ns, 2)
	createNode(t, names[0], "pool", ns)
	createNode(t, names[1], "pool", ns, "tier", "backend")
	runController(t, nil)
	jw := watchJobs(t, ns)
	pool := map[string]v1alpha2.LabelValue{"pool": v1alpha2.LabelValue(ns)}
	createCache(t, ns, "web", entry(pool, "nginx:1.27"))
	waitFor(t, 10*time.Second, "two pull Jobs", func() (bool, error) { return len(listJobs(t, ns)) == 2, nil })
	// While they run: add an image for the backend node.
	waitFor(t, 10*time.Second, "the edit", func() (bool, error) {
		ic := cacheStatus(t, ns, "web")
		ic.Spec.CacheSpec = append(ic.Spec.CacheSpec, entry(map[string]v1alpha2.LabelValue{"pool": v1alpha2.LabelValue(ns), "tier": "backend"}, "redis:7.4"))
		_, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Update(context.Background(), ic, metav1.UpdateOptions{})
		return err == nil, err
	})
	ic := driveToCompletion(t, ns, "web", 30*time.Second)
	if ic.Status.Reason != v1alpha2.ImageCacheReasonUpdate || ic.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded || ic.Status.Pulls.Succeeded != 3 {
		t.Errorf("status %s %s %+v", ic.Status.Reason, ic.Status.Status, ic.Status.Pulls)
	}
	want := map[string]int{names[0] + " nginx:1.27": 1, names[1] + " nginx:1.27": 1, names[1] + " redis:7.4": 1}
	if got := jw.pairs(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pulls by Job: got %v, want %v", got, want)
	}
}

func TestControllerRestartMidOperation(t *testing.T) {
	ns := testNamespace(t, "restart")
	names := nodeNames(ns, 4)
	for _, n := range names {
		createNode(t, n, "pool", ns)
	}
	stop := runController(t, func(o *options.Options) { o.ImagesPerJob = 1 })
	jw := watchJobs(t, ns)
	createCache(t, ns, "web", entry(map[string]v1alpha2.LabelValue{"pool": v1alpha2.LabelValue(ns)}, "nginx:1.27", "redis:7.4"))
	waitFor(t, 10*time.Second, "four pull Jobs", func() (bool, error) { return len(listJobs(t, ns)) == 4, nil })
	// Half the work finishes, then the controller stops.
	jobs := listJobs(t, ns)
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].Name < jobs[j].Name })
	completeJob(t, jobs[0])
	completeJob(t, jobs[1])
	waitFor(t, 10*time.Second, "two pulls recorded", func() (bool, error) {
		return cacheStatus(t, ns, "web").Status.Pulls.Succeeded == 2, nil
	})
	stop()
	before := cacheStatus(t, ns, "web").Status

	runController(t, func(o *options.Options) { o.ImagesPerJob = 1 })
	ic := driveToCompletion(t, ns, "web", 30*time.Second)
	if ic.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded || ic.Status.Pulls.Succeeded != 8 {
		t.Errorf("status %s %+v", ic.Status.Status, ic.Status.Pulls)
	}
	if !ic.Status.StartTime.Equal(before.StartTime) || ic.Status.Reason != v1alpha2.ImageCacheReasonCreate {
		t.Errorf("the restart began a new operation: start %v -> %v, reason %s", before.StartTime, ic.Status.StartTime, ic.Status.Reason)
	}
	for pair, n := range jw.pairs(t) {
		if n != 1 {
			t.Errorf("%s pulled by %d Jobs", pair, n)
		}
	}
	if jw.count() != 8 {
		t.Errorf("%d Jobs created in all, want 8 (4 nodes x 2 images, 1 per Job)", jw.count())
	}
}

func TestControllerRefreshAnnotation(t *testing.T) {
	ns := testNamespace(t, "refresh")
	node := nodeNames(ns, 1)[0]
	createNode(t, node, "pool", ns)
	runController(t, nil)
	jw := watchJobs(t, ns)
	createCache(t, ns, "web", entry(map[string]v1alpha2.LabelValue{"pool": v1alpha2.LabelValue(ns)}, "nginx:1.27"))
	first := driveToCompletion(t, ns, "web", 20*time.Second)
	if _, err := cp.Kubectl(context.Background(), "annotate", "ic", "web", "-n", ns, v1alpha2.AnnotationRefresh+"="); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the refresh to finish and the annotation to go", func() (bool, error) {
		completeActiveJobs(t, ns)
		ic := cacheStatus(t, ns, "web")
		_, has := ic.Annotations[v1alpha2.AnnotationRefresh]
		return !has && ic.Status.Reason == v1alpha2.ImageCacheReasonRefresh && ic.Status.Status == v1alpha2.ImageCacheActionStatusSucceeded, nil
	})
	if jw.count() != 2 {
		t.Errorf("%d Jobs, want 2: the create's and the refresh's", jw.count())
	}
	ic := cacheStatus(t, ns, "web")
	if !ic.Status.StartTime.After(first.Status.StartTime.Time) {
		t.Errorf("refresh start %v not after create start %v", ic.Status.StartTime, first.Status.StartTime)
	}
}
