package imagecache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// TestSyncWaitsForItsOwnWrite: while the informer still shows the version a
// status write replaced, a sync writes nothing (it would only meet a
// conflict); once the informer shows the write, the work goes on.
func TestSyncWaitsForItsOwnWrite(t *testing.T) {
	ic := newImageCache("web", withImages("nginx:1.27"))
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{ic}, newNode("node-a"))
	key := cache.ObjectName{Namespace: testNS, Name: "web"}

	if _, err := f.pass(key.Name); err != nil {
		t.Fatal(err)
	}
	if w := f.writes(); len(statusUpdates(w)) != 1 {
		t.Fatalf("starting the operation: want one status write, got %s", describe(w))
	}
	stale, _ := f.c.icLister.ImageCaches(testNS).Get("web")
	written, _ := f.client.KubefledgedV1alpha2().ImageCaches(testNS).Get(f.ctx, "web", metav1.GetOptions{})
	if stale.ResourceVersion == written.ResourceVersion {
		t.Fatalf("the fake API server kept resourceVersion %q across a write", stale.ResourceVersion)
	}
	// The informer has not caught up: nothing to do yet.
	after, err := f.pass(key.Name)
	if err != nil {
		t.Fatal(err)
	}
	if w := f.writes(); len(w) != 0 || after != 0 {
		t.Fatalf("with the informer behind its own write: want no writes and no requeue, got %s, requeue %v", describe(w), after)
	}
	f.catchUp()
	writes, _ := f.sync("web", wCreateJob)
	if jobs := createdJobs(writes); len(jobs) != 1 {
		t.Fatalf("once the informer shows the write: want 1 Job, got %s", describe(writes))
	}
}

// TestNoRepeatedJobWritesWhileTheInformerIsBehind: Jobs just created, or just
// deleted, that the Job informer does not show that way yet, are not created
// or deleted again.
func TestNoRepeatedJobWritesWhileTheInformerIsBehind(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))},
		newNode("node-a"), newNode("node-b"))
	key := cache.ObjectName{Namespace: testNS, Name: "web"}
	f.sync("web", wStatus) // records the operation's start
	syncBehind := func() []core.Action {
		t.Helper()
		if _, err := f.pass(key.Name); err != nil {
			t.Fatal(err)
		}
		w := f.writes()
		f.catchUpImageCaches()
		return w
	}
	if jobs := createdJobs(syncBehind()); len(jobs) != 2 {
		t.Fatalf("want 2 Jobs created")
	}
	if w := syncBehind(); len(w) != 0 {
		t.Errorf("Jobs the informer does not show yet: want no writes, got %s", describe(w))
	}
	f.catchUp()
	f.completeAll()
	f.catchUp()
	if deleted := deletedJobs(syncBehind()); deleted != 2 {
		t.Fatalf("the operation is complete: want its 2 Jobs deleted, got %d", deleted)
	}
	if w := syncBehind(); len(w) != 0 {
		t.Errorf("Jobs deleted that the informer still shows: want no writes, got %s", describe(w))
	}
}

func deletedJobs(actions []core.Action) int {
	n := 0
	for _, a := range actions {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "jobs" {
			n++
		}
	}
	return n
}

// TestJobEventsOfALargeCacheAreBatched: Job events of a cache over 500 nodes
// enqueue it once, 500 ms after the first; those of a cache over 3 nodes,
// 3 ms after.
func TestJobEventsOfALargeCacheAreBatched(t *testing.T) {
	big := newImageCache("big", withImages("nginx"))
	big.Status.NodesMatched = 500
	small := newImageCache("small", withImages("nginx"))
	small.Status.NodesMatched = 3
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{big, small}, newNode("node-a"))
	jobOf := func(ic *v1alpha2.ImageCache, name string) *batchv1.Job {
		return fledgedtest.NewJob(testNS, name, "", ic.Name, fledgedtest.ControlledBy(ic))
	}
	for i := range 20 {
		f.c.jobChanged(jobOf(big, fmt.Sprintf("big-%d", i)), false)
	}
	f.c.jobChanged(jobOf(small, "small-0"), false)
	next := func(want string) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(f.ctx, time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
			return f.c.queue.Len() > 0, nil
		}); err != nil {
			t.Fatalf("%s was not enqueued once its batch period ended", want)
		}
		if n := f.c.queue.Len(); n != 1 {
			t.Fatalf("queue holds %d caches, want only %s", n, want)
		}
		key, _ := f.c.queue.Get()
		if key.Name != want {
			t.Fatalf("got %s, want %s", key, want)
		}
		f.c.queue.Done(key)
	}
	if n := f.c.queue.Len(); n != 0 {
		t.Fatalf("queue holds %d caches at once, want none before their batch periods", n)
	}
	f.clock.Step(3 * time.Millisecond)
	next("small")
	f.clock.Step(496 * time.Millisecond)
	if n := f.c.queue.Len(); n != 0 {
		t.Fatalf("the large cache was enqueued before its batch period ended")
	}
	f.clock.Step(time.Millisecond)
	next("big")
}

// TestPermanentPullFailureFailsAtOnce: a tag that does not exist fails its
// pair as soon as the kubelet says so, with ImageNotFound and the kubelet's
// message, and once the rest of the batch is settled the Job is ended with
// its outcome recorded: the cache is Failed in the pass that reads it, not
// at the pull deadline.
func TestPermanentPullFailureFailsAtOnce(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx:1.27", "ghcr.io/org/app:no-such-tag",
		"redis:7"))}, newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	job := f.jobs()[0]
	msg := `rpc error: code = NotFound desc = failed to pull and unpack image "ghcr.io/org/app:no-such-tag": ` +
		`failed to resolve reference "ghcr.io/org/app:no-such-tag": ghcr.io/org/app:no-such-tag: not found`
	states := map[string]corev1.ContainerState{}
	for i, img := range jobImages(t, &job) {
		switch img {
		case "ghcr.io/org/app:no-such-tag":
			states[puller.ContainerName(i)] = waiting("ErrImagePull", msg)
		case "nginx:1.27":
			states[puller.ContainerName(i)] = terminatedOK(t0.Add(2 * time.Second))
		}
	}
	f.podWith(job, states)
	// redis is still pulling: the failure is recorded, the Job goes on.
	f.clock.Step(3 * time.Second)
	f.sync("web", wStatus)
	st := f.imageCache("web").Status
	want := map[string]v1alpha2.NodeReasonMessageList{
		"ghcr.io/org/app:no-such-tag": {{Node: "node-a", Reason: puller.ReasonImageNotFound, Message: msg}},
	}
	if diff := cmp.Diff(want, st.Failures); diff != "" {
		t.Errorf("failures while redis pulls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(v1alpha2.PullCounts{Desired: 3, Succeeded: 1, Failed: 1, Pending: 1}, st.Pulls); diff != "" {
		t.Errorf("counts while redis pulls (-want +got):\n%s", diff)
	}

	// redis is pulled: the pod would wait for ever on the missing tag, so
	// the Job is ended now.
	pod, err := f.kube.CoreV1().Pods(testNS).Get(f.ctx, job.Name+"-abcde", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range pod.Status.ContainerStatuses {
		if cs := &pod.Status.ContainerStatuses[i]; cs.Image == "redis:7" {
			cs.State = terminatedOK(t0.Add(3 * time.Second))
		}
	}
	if _, err := f.kube.CoreV1().Pods(testNS).UpdateStatus(f.ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.catchUp()
	f.clock.Step(time.Second)
	f.sync("web", wDeleteJob, wPatchJob, wStatus)
	st = f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusFailed || st.Message != "Pulled 2 of 3 images on 1 node; 1 failed" {
		t.Errorf("after redis: %s %q", st.Status, st.Message)
	}
	if diff := cmp.Diff(want, st.Failures); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
}
