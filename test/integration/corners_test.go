package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// stable waits for the cache to end an operation, then checks that it stays
// as it is for a few seconds: no write, no new operation.
func stable(t *testing.T, ns, name string, timeout time.Duration, done func(*v1alpha2.ImageCache) bool) *v1alpha2.ImageCache {
	t.Helper()
	var ic *v1alpha2.ImageCache
	waitFor(t, timeout, ns+"/"+name+" to end its operation", func() (bool, error) {
		ic = cacheStatus(t, ns, name)
		return done(ic), nil
	})
	rv := ic.ResourceVersion
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if now := cacheStatus(t, ns, name); now.ResourceVersion != rv {
			t.Fatalf("the cache is written again after its operation ended: %s %s %q", now.Status.Reason, now.Status.Status, now.Status.Message)
		}
		time.Sleep(200 * time.Millisecond) // sampling a state that must not change
	}
	return ic
}

// cacheEvents lists the reasons and messages of the events on a cache.
func cacheEvents(t *testing.T, ns, name string) []string {
	t.Helper()
	list, err := kubeClient.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.name", name).String()})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Reason+" "+e.Message)
	}
	return out
}

// completeJobPulled is completeJob where the kubelet pulled every image:
// its "Pulling" event on each container, which makes the images the
// cache's.
func completeJobPulled(t *testing.T, job batchv1.Job) {
	t.Helper()
	// The pod and its events first: the controller reads who pulled what
	// while the Job is there.
	writePod(t, fledgedtest.PodOf(&job, "pod"))
	pod, err := kubeClient.CoreV1().Pods(job.Namespace).Get(context.Background(), job.Name+"-pod", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range pod.Spec.Containers {
		if _, err := kubeClient.CoreV1().Events(pod.Namespace).Create(context.Background(), fledgedtest.PullingEvent(pod, c),
			metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	completeJob(t, job)
}

// TestRemovalOnUnknownRuntimeEnds (issue item 1): an update drops an image
// the cache pulled onto a node whose runtime no socket is known for. The
// removal cannot be done; the update ends, with the failure, and the cache
// is not written again.
func TestRemovalOnUnknownRuntimeEnds(t *testing.T) {
	ns := testNamespace(t, "unknown-runtime")
	node := nodeNames(ns, 1)[0]
	createNode(t, node, "pool", ns)
	n, err := kubeClient.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.NodeInfo.ContainerRuntimeVersion = "rkt://1.0.0"
	if _, err := kubeClient.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	runController(t, nil)
	sel := map[string]v1alpha2.LabelValue{"pool": v1alpha2.LabelValue(ns)}
	createCache(t, ns, "web", entry(sel, "nginx:1.27", "redis:7.4"))
	waitFor(t, 20*time.Second, "the pull Job", func() (bool, error) { return len(listJobs(t, ns)) == 1, nil })
	job := listJobs(t, ns)[0]
	completeJobPulled(t, job)
	waitStatus(t, ns, "web", v1alpha2.ImageCacheActionStatusSucceeded, 20*time.Second)

	ic := cacheStatus(t, ns, "web")
	ic.Spec.CacheSpec[0].Images = []string{"nginx:1.27"}
	if _, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Update(context.Background(), ic, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ic = stable(t, ns, "web", 20*time.Second, func(ic *v1alpha2.ImageCache) bool {
		return ic.Status.ObservedGeneration == ic.Generation && ic.Status.Status != v1alpha2.ImageCacheActionStatusProcessing
	})
	got := ic.Status.Failures["docker.io/library/redis:7.4"]
	if len(got) != 1 || got[0].Reason != "UnknownRuntime" || got[0].Node != node {
		t.Errorf("failures %+v, want redis's removal failed with UnknownRuntime", ic.Status.Failures)
	}
}

// TestQuotaRefusalWaitsForTheQuota (issue item 6): a ResourceQuota that
// allows no Job refuses the pull Job. The pull stays pending, not failed,
// with a QuotaExceeded event, and once the quota allows Jobs the cache
// gets its Job and succeeds.
func TestQuotaRefusalWaitsForTheQuota(t *testing.T) {
	ctx := context.Background()
	ns := testNamespace(t, "quota")
	node := nodeNames(ns, 1)[0]
	createNode(t, node, "pool", ns)
	setQuota := func(jobs int64) {
		t.Helper()
		hard := corev1.ResourceList{"count/jobs.batch": *resource.NewQuantity(jobs, resource.DecimalSI)}
		q, err := kubeClient.CoreV1().ResourceQuotas(ns).Get(ctx, "jobs", metav1.GetOptions{})
		if err != nil {
			q, err = kubeClient.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "jobs"},
				Spec: corev1.ResourceQuotaSpec{Hard: hard}}, metav1.CreateOptions{})
		} else {
			q.Spec.Hard = hard
			q, err = kubeClient.CoreV1().ResourceQuotas(ns).Update(ctx, q, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		// No controller-manager runs here: the quota's status is set as
		// its controller would, so that the admission plugin enforces it.
		used := q.Status.Used
		if used == nil {
			used = corev1.ResourceList{"count/jobs.batch": *resource.NewQuantity(0, resource.DecimalSI)}
		}
		q.Status = corev1.ResourceQuotaStatus{Hard: hard, Used: used}
		if _, err := kubeClient.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setQuota(0)
	runController(t, nil)
	createCache(t, ns, "web", entry(map[string]v1alpha2.LabelValue{"pool": v1alpha2.LabelValue(ns)}, "nginx:1.27"))
	waitFor(t, 20*time.Second, "a QuotaExceeded event", func() (bool, error) {
		for _, e := range cacheEvents(t, ns, "web") {
			if strings.HasPrefix(e, "QuotaExceeded ") {
				return true, nil
			}
		}
		return false, nil
	})
	if ic := cacheStatus(t, ns, "web"); ic.Status.Pulls.Failed != 0 || ic.Status.Pulls.Pending != 1 || len(ic.Status.Failures) != 0 {
		t.Errorf("under the quota: %s %+v %v; want the pull pending", ic.Status.Status, ic.Status.Pulls, ic.Status.Failures)
	}
	setQuota(5)
	ic := driveToCompletion(t, ns, "web", 60*time.Second)
	if ic.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded || ic.Status.Pulls.Succeeded != 1 {
		t.Errorf("once the quota allows Jobs: %s %+v %q", ic.Status.Status, ic.Status.Pulls, ic.Status.Message)
	}
}

// TestTooManyImagesRefusedAtOnce (issue items 5 and 2): a cache of more
// images than a cache may list (plan.MaxImages) is refused as TooLarge by
// its first write, which succeeds; a refresh asked of it is refused too, its
// annotation goes, and nothing is written after that. (A cache of 1 image on
// 5,000 nodes and 512 on 10 of them, refused before the ledger went into
// slices, is now accepted: TestEverySliceFits.)
func TestTooManyImagesRefusedAtOnce(t *testing.T) {
	ctx := context.Background()
	ns := testNamespace(t, "toomany")
	for _, n := range nodeNames(ns, 10) {
		createNode(t, n, "pool", ns)
	}
	runController(t, nil)
	var imgs []string
	for i := range plan.MaxImages + 1 {
		imgs = append(imgs, fmt.Sprintf("registry.example/models/m-%04d:v1", i))
	}
	var entries []v1alpha2.CacheSpecImages
	for i := 0; i < len(imgs); i += v1alpha2.MaxImagesPerEntry {
		entries = append(entries, entry(map[string]v1alpha2.LabelValue{"pool": v1alpha2.LabelValue(ns)},
			imgs[i:min(len(imgs), i+v1alpha2.MaxImagesPerEntry)]...))
	}
	createCache(t, ns, "mixed", entries...)
	ic := stable(t, ns, "mixed", 60*time.Second, func(ic *v1alpha2.ImageCache) bool {
		return ic.Status.Status == v1alpha2.ImageCacheActionStatusFailed
	})
	if !strings.HasPrefix(ic.Status.Message, fmt.Sprintf("The cache is too large: it lists %d images", len(imgs))) {
		t.Errorf("status %s %q, want it refused as too large", ic.Status.Status, ic.Status.Message)
	}
	if jobs := listJobs(t, ns); len(jobs) != 0 {
		t.Errorf("a too large cache made %d Jobs", len(jobs))
	}
	healthRow(t, "too large", ns, "mixed", "Failed", "Degraded")

	if _, err := cp.Kubectl(ctx, "annotate", "ic", "mixed", "-n", ns, v1alpha2.AnnotationRefresh+"="); err != nil {
		t.Fatal(err)
	}
	ic = stable(t, ns, "mixed", 30*time.Second, func(ic *v1alpha2.ImageCache) bool {
		_, asked := ic.Annotations[v1alpha2.AnnotationRefresh]
		return !asked && ic.Status.Reason == v1alpha2.ImageCacheReasonRefresh
	})
	if ic.Status.Status != v1alpha2.ImageCacheActionStatusFailed {
		t.Errorf("the refresh: %s %q, want it refused", ic.Status.Status, ic.Status.Message)
	}
}

// eventsListedClusterWide sums the API server's own count of cluster-wide
// lists of events and its cluster-wide watches of events open now (a watch
// is counted in apiserver_request_total only once it ends).
func eventsListedClusterWide(t *testing.T) float64 {
	t.Helper()
	raw, err := kubeClient.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, line := range strings.Split(string(raw), "\n") {
		lists := strings.HasPrefix(line, "apiserver_request_total{") && strings.Contains(line, `verb="LIST"`)
		watches := strings.HasPrefix(line, "apiserver_longrunning_requests{") && strings.Contains(line, `verb="WATCH"`)
		if !(lists || watches) || !strings.Contains(line, `resource="events"`) || !strings.Contains(line, `scope="cluster"`) {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v); err == nil {
			total += v
		}
	}
	return total
}

// TestPullingEventsWatchedPerNamespace (issue item 12): with a thousand
// unrelated "Pulling" events in another namespace, the controller never
// lists or watches events cluster-wide: it watches those of the namespace
// its pull Jobs run in, and still tells what its pulls brought onto the node
// (an update that drops the image removes it there).
func TestPullingEventsWatchedPerNamespace(t *testing.T) {
	ctx := context.Background()
	noise := testNamespace(t, "noise")
	for i := range 1000 {
		e := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%04d.pulling", i)},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: noise, Name: fmt.Sprintf("app-%04d", i), UID: "noise"},
			Reason:         "Pulling", Message: `Pulling image "registry.example/app:v1"`, Type: corev1.EventTypeNormal}
		if _, err := kubeClient.CoreV1().Events(noise).Create(ctx, e, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ensureNamespace(t, "kube-fledged")
	t.Cleanup(func() {
		_ = kubeClient.BatchV1().Jobs("kube-fledged").DeleteCollection(context.Background(), metav1.DeleteOptions{},
			metav1.ListOptions{LabelSelector: puller.LabelManagedBy + "=" + puller.ManagedByValue})
	})
	ns := testNamespace(t, "per-ns-events")
	node := nodeNames(ns, 1)[0]
	createNode(t, node, "pool", ns)
	n, err := kubeClient.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.NodeInfo.ContainerRuntimeVersion = "containerd://2.1.0"
	if _, err := kubeClient.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := eventsListedClusterWide(t)
	runController(t, nil)
	sel := map[string]v1alpha2.LabelValue{"pool": v1alpha2.LabelValue(ns)}
	createCache(t, ns, "web", entry(sel, "nginx:1.27", "redis:7.4"))
	waitFor(t, 20*time.Second, "the pull Job", func() (bool, error) { return len(listJobs(t, ns)) == 1, nil })
	completeJobPulled(t, listJobs(t, ns)[0])
	waitStatus(t, ns, "web", v1alpha2.ImageCacheActionStatusSucceeded, 20*time.Second)
	ic := cacheStatus(t, ns, "web")
	ic.Spec.CacheSpec[0].Images = []string{"nginx:1.27"}
	if _, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Update(ctx, ic, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the removal of redis from the node", func() (bool, error) {
		for _, j := range listJobs(t, "kube-fledged") {
			if j.Annotations[puller.AnnotationNode] == node && strings.Contains(j.Annotations[puller.AnnotationImages], "redis") {
				return true, nil
			}
		}
		return false, nil
	})
	if after := eventsListedClusterWide(t); after != before {
		t.Errorf("the API server served %v cluster-wide lists or watches of events while the controller ran; want none", after-before)
	}
}
