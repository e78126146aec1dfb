package imagecache

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/throttle"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// TestMaxInFlightJobs: never more than the maximum of active Jobs.
func TestMaxInFlightJobs(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInFlightJobs = 2
	var nodes []*corev1.Node
	for _, n := range []string{"n1", "n2", "n3", "n4", "n5"} {
		nodes = append(nodes, newNode(n))
	}
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, nodes...)
	total := 0
	f.sync("web", wStatus) // records the operation's start
	for round := range 4 {
		writes, after := f.syncOnly("web", wCreateJob, wDeleteJob, wStatus)
		total += len(createdJobs(writes))
		active := 0
		for _, j := range f.jobs() {
			if puller.IsActive(&j) {
				active++
			}
		}
		if active > 2 {
			t.Fatalf("round %d: %d active Jobs, max 2", round, active)
		}
		if active == 2 && after != throttle.ThrottledRetry && after > throttle.ThrottledRetry {
			t.Errorf("round %d: throttled but requeued after %v", round, after)
		}
		f.completeAll()
	}
	if total != 5 {
		t.Errorf("created %d Jobs in all, want 5", total)
	}
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Errorf("status %s %s", st.Status, st.Message)
	}
}

// TestPodSucceededFreesItsSlotAndNode: once a Job's pod has Succeeded, the
// pulls count as done, and the Job's slot and node are free for the next
// Job, though the Job controller has not marked the Job Complete yet.
func TestPodSucceededFreesItsSlotAndNode(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInFlightJobs = 1
	cfg.ImagesPerJob = 1
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", "redis"))}, newNode("node-a"))
	writes, _ := f.syncStarted("web", wCreateJob)
	first := createdJobs(writes)
	if len(first) != 1 {
		t.Fatalf("first pass: %s; want one Job (one slot)", describe(writes))
	}
	job := f.jobs()[0]
	pod := f.podWith(job, map[string]corev1.ContainerState{puller.ContainerName(0): terminatedOK(f.clock.Now())})
	pod.Status.Phase = corev1.PodSucceeded
	if _, err := f.kube.CoreV1().Pods(pod.Namespace).UpdateStatus(f.ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.catchUp()
	if got := f.c.InFlightJobs(); got != 0 {
		t.Errorf("in flight with the only Job's pod Succeeded: %d, want 0", got)
	}
	writes, _ = f.sync("web", wCreateJob, wStatus)
	next := createdJobs(writes)
	if len(next) != 1 || jobImages(t, next[0])[0] == jobImages(t, &job)[0] {
		t.Fatalf("after the pod Succeeded: %s; want the Job of the other image on the same node", describe(writes))
	}
	if st := f.imageCache("web").Status; st.Pulls.Succeeded != 1 || st.Pulls.Pending != 1 {
		t.Errorf("pulls %+v; want the first image counted pulled, from its pod", st.Pulls)
	}
}

// TestEditWhileProcessing: an update while Jobs run lets the earlier Jobs
// of nodes it still works on finish, and takes what they pull once it is
// due (node-a's, done in the second the update waits to start, and the
// others'); it stops the Jobs of nodes no longer selected, and starts the
// new work.
func TestEditWhileProcessing(t *testing.T) {
	ic := newImageCache("web", withImages("nginx"), withSelectedImages(map[string]string{"tier": "backend"}, "redis"))
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{ic},
		newNode("node-a"), newNode("node-b", withLabels("tier", "backend")), newNode("node-c", withLabels("tier", "frontend")))
	f.syncStarted("web", times(wCreateJob, 3))
	before := f.jobs()
	if len(before) != 3 {
		t.Fatalf("want 3 Jobs, got %d", len(before))
	}
	// node-a's Job finishes before the edit, unrecorded.
	for _, j := range before {
		if j.Annotations[puller.AnnotationNode] == "node-a" {
			f.completeJob(j)
		}
	}
	// The edit: entry 1 gets a new image, entry 2 moves to the frontend nodes.
	f.edit("web", func(ic *v1alpha2.ImageCache) {
		ic.Spec.CacheSpec[0].Images = append(ic.Spec.CacheSpec[0].Images, "busybox")
		ic.Spec.CacheSpec[1].NodeSelector = map[string]v1alpha2.LabelValue{"tier": "frontend"}
		ic.Generation = 2
	})

	// The same second as the create: the update waits for the next one, so
	// that operations have distinct start times.
	if writes, after := f.sync("web"); len(writes) != 0 || after != time.Second {
		t.Fatalf("same-second update: writes %s, requeue after %v", describe(writes), after)
	}
	f.clock.Step(time.Second)
	started, _ := f.sync("web", wStatus)
	st := statusUpdates(started)
	if len(started) != 1 || len(st) != 1 || st[0].Status.Reason != v1alpha2.ImageCacheReasonUpdate || st[0].Status.ObservedGeneration != 2 {
		t.Fatalf("starting the update: %s; want only its start recorded", describe(started))
	}
	writes, _ := f.sync("web", wCreateJob, wDeleteJob, wStatus)
	// node-a's finished earlier Job is deleted; its nginx counts. node-b's
	// and node-c's keep running (nginx is still wanted on both). node-a gets
	// busybox.
	created := createdJobs(writes)
	if len(created) != 1 || created[0].Annotations[puller.AnnotationNode] != "node-a" || deletedJobs(writes) != 1 {
		t.Fatalf("created %d Jobs (%s)", len(created), describe(writes))
	}
	if diff := cmp.Diff([]string{"busybox"}, jobImages(t, created[0])); diff != "" {
		t.Errorf("node-a's new Job images (-want +got):\n%s", diff)
	}
	// Finish everything: the earlier Jobs pulled nginx after the update
	// started, which counts; they are deleted, and the update's own follow:
	// node-b busybox, node-c busybox and redis.
	f.completeAll()
	writes, _ = f.sync("web", times(wCreateJob, 2), times(wDeleteJob, 2), wStatus)
	got := map[string][]string{}
	for _, j := range createdJobs(writes) {
		got[j.Annotations[puller.AnnotationNode]] = jobImages(t, j)
	}
	want := map[string][]string{"node-b": {"busybox"}, "node-c": {"busybox", "redis"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("follow-up Jobs (-want +got):\n%s", diff)
	}
	if d := deletedJobs(writes); d != 2 {
		t.Errorf("%d earlier Jobs deleted once finished, want 2 (%s)", d, describe(writes))
	}
	f.completeAll()
	f.sync("web", times(wDeleteJob, 3), wStatus)
	s := f.imageCache("web").Status
	// nginx x3, busybox x3, redis on node-c.
	if s.Status != v1alpha2.ImageCacheActionStatusSucceeded || s.Pulls.Desired != 7 || s.Pulls.Succeeded != 7 {
		t.Errorf("final status %s %+v", s.Status, s.Pulls)
	}
}

// TestNodeLeavesDeletesItsJobs: a node deleted mid-operation drops out, and its
// Job is deleted; the cache still completes.
func TestNodeLeavesDeletesItsJobs(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"), newNode("node-b"))
	f.syncStarted("web", times(wCreateJob, 2))
	if err := f.kube.CoreV1().Nodes().Delete(f.ctx, "node-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, j := range f.jobs() {
		if j.Annotations[puller.AnnotationNode] == "node-a" {
			f.completeJob(j)
		}
	}
	f.catchUp()
	f.clearActions()
	writes, _ := f.sync("web", times(wDeleteJob, 2), wStatus)
	deleted := 0
	for _, a := range writes {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "jobs" {
			deleted++
		}
	}
	if deleted != 2 { // node-b's stale Job, then node-a's finished one
		t.Errorf("deletes: %s", describe(writes))
	}
	st := f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.Desired != 1 || st.NodesMatched != 1 {
		t.Errorf("status %s %+v matched %d", st.Status, st.Pulls, st.NodesMatched)
	}
}

// TestNotReadyNodeSkippedThenWarmed: a NotReady node is skipped with a reason,
// and pulled onto once Ready.
func TestNotReadyNodeSkippedThenWarmed(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"), newNode("node-b", notReady()))
	writes, _ := f.syncStarted("web", wCreateJob)
	if jobs := createdJobs(writes); len(jobs) != 1 || jobs[0].Annotations[puller.AnnotationNode] != "node-a" {
		t.Fatalf("jobs: %s", describe(writes))
	}
	f.completeAll()
	f.sync("web", wDeleteJob, wStatus)
	st := f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.Skipped != 1 ||
		st.Message != "Pulled 1 of 2 images on 2 nodes; 1 skipped on 1 node not ready" {
		t.Errorf("status %s %+v %q", st.Status, st.Pulls, st.Message)
	}
	f.makeReady("node-b")
	f.catchUp()
	f.clearActions()
	writes, _ = f.sync("web", wCreateJob, wStatus)
	if jobs := createdJobs(writes); len(jobs) != 1 || jobs[0].Annotations[puller.AnnotationNode] != "node-b" {
		t.Fatalf("warming node-b: %s", describe(writes))
	}
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusProcessing || st.Pulls.Pending != 1 {
		t.Errorf("status %s %+v", st.Status, st.Pulls)
	}
}

// TestNoMatchingNode: a selector that matches nothing gives Succeeded with zero
// pulls, and says so.
func TestNoMatchingNode(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web",
		withSelectedImages(map[string]string{"gpu": "h100"}, "nginx"))}, newNode("node-a"))
	writes, _ := f.syncStarted("web")
	if len(createdJobs(writes)) != 0 {
		t.Errorf("created Jobs: %s", describe(writes))
	}
	st := f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.Desired != 0 ||
		st.Message != "No node matches the cache's node selectors; nothing to pull" || st.CompletionTime == nil {
		t.Errorf("status %s %+v %q", st.Status, st.Pulls, st.Message)
	}
}

// TestInvalidReferenceFailsOnlyThatImage: a reference the schema lets through
// but the normaliser refuses fails with InvalidImageName; the rest proceeds.
func TestInvalidReferenceFailsOnlyThatImage(t *testing.T) {
	long := strings.Repeat("a", 256) // a repository name over 255 characters
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", long))}, newNode("node-a"))
	writes, _ := f.syncStarted("web", wCreateJob)
	jobs := createdJobs(writes)
	if len(jobs) != 1 || !cmp.Equal(jobImages(t, jobs[0]), []string{"nginx"}) {
		t.Fatalf("jobs: %s", describe(writes))
	}
	f.completeAll()
	f.sync("web", wDeleteJob, wStatus)
	st := f.imageCache("web").Status
	got := st.Failures[long]
	if len(got) != 1 || got[0].Reason != "InvalidImageName" || got[0].Node != "node-a" || !strings.Contains(got[0].Message, "invalid image reference") {
		t.Errorf("failures %+v", st.Failures)
	}
	if st.Status != v1alpha2.ImageCacheActionStatusFailed || st.Pulls.Succeeded != 1 || st.Pulls.Failed != 1 {
		t.Errorf("status %s %+v", st.Status, st.Pulls)
	}
}

// TestStatusConflictIsRequeued: a conflict on UpdateStatus is returned, and the
// worker requeues the key with backoff.
func TestStatusConflictIsRequeued(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"))
	f.client.PrependReactor("update", "imagecaches", func(action core.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() == "status" {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "kubefledged.io", Resource: "imagecaches"}, "web", errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	_, err := f.pass("web")
	if !apierrors.IsConflict(err) {
		t.Fatalf("want a conflict, got %v", err)
	}
	key := cache.ObjectName{Namespace: testNS, Name: "web"}
	f.c.queue.Add(key)
	if !f.c.processNextItem(f.ctx) {
		t.Fatal("queue shut down")
	}
	if n := f.c.queue.NumRequeues(key); n != 1 {
		t.Errorf("requeues %d, want 1", n)
	}
}

// TestCreateFailureIsRetried: a failed Job create is an error (retried), and
// the throttle slot is given back.
func TestCreateFailureIsRetried(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInFlightJobs = 1
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"))
	f.sync("web", wStatus) // records the operation's start
	f.kube.PrependReactor("create", "jobs", func(core.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(errors.New("etcd unavailable"))
	})
	if _, err := f.pass("web"); err == nil || !strings.Contains(err.Error(), "creating pull job") {
		t.Fatalf("want a create error, got %v", err)
	}
	if n := f.c.InFlightJobs(); n != 0 {
		t.Errorf("throttle holds %d slots after a failed create", n)
	}
}

// TestCreatesGoInGrowingBatches: a sync's Jobs are created in batches of 1,
// 2, 4, ...; a failure stops the creates after its batch, and only the Jobs
// created keep their throttle slots.
func TestCreatesGoInGrowingBatches(t *testing.T) {
	var nodes []*corev1.Node
	for i := range 10 {
		nodes = append(nodes, newNode(fmt.Sprintf("node-%d", i)))
	}
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, nodes...)
	f.sync("web", wStatus) // records the operation's start
	f.kube.PrependReactor("create", "jobs", func(a core.Action) (bool, runtime.Object, error) {
		if a.(core.CreateAction).GetObject().(*batchv1.Job).Annotations[puller.AnnotationNode] == "node-3" {
			return true, nil, apierrors.NewInternalError(errors.New("etcd unavailable"))
		}
		return false, nil, nil
	})
	_, err := f.pass("web")
	if err == nil || !strings.Contains(err.Error(), "for node node-3") {
		t.Fatalf("want the create error for node-3, got %v", err)
	}
	attempts := 0
	for _, a := range f.kube.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "jobs" {
			attempts++
		}
	}
	// Batches [node-0], [node-1 node-2], [node-3 .. node-6]: node-7 .. node-9 are not tried.
	if attempts != 7 {
		t.Errorf("%d creates tried, want 7", attempts)
	}
	jobs, _ := f.kube.BatchV1().Jobs(testNS).List(f.ctx, metav1.ListOptions{})
	if len(jobs.Items) != 6 {
		t.Errorf("%d Jobs created, want 6", len(jobs.Items))
	}
	if n := f.c.InFlightJobs(); n != 6 {
		t.Errorf("throttle holds %d slots, want 6 (one per created Job)", n)
	}
}
