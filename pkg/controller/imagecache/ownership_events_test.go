package imagecache

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// TestPullPolicyAlwaysOwnsWhatTheNodeLacked: with pull policy Always the
// kubelet pulls every time, so its Pulling event shows an image was absent
// only where the node, listing every image it has, did not list it. An
// image the node listed when its Job was made is not the cache's: a purge
// keeps it, and removes the other.
func TestPullPolicyAlwaysOwnsWhatTheNodeLacked(t *testing.T) {
	cfg := testConfig()
	cfg.Puller.PullPolicy = corev1.PullAlways
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx:1.27", "redis:7"))},
		newNode("node-a", withRuntime("containerd://2.0.0"), withNodeImages("docker.io/library/nginx:1.27")))
	writes, _ := f.syncStarted("web", wCreateJob)
	job := createdJobs(writes)[0]
	if got := jobImages(t, job); len(got) != 2 {
		t.Fatalf("Job images %v, want both: Always pulls the listed one too", got)
	}
	f.pulledBy(*job, "nginx:1.27", "redis:7") // the kubelet pulls both
	f.completeJob(*job)
	f.syncOnly("web", wDeleteJob, wStatus)
	led := f.ledger("web")
	if led.Owned("node-a", "docker.io/library/nginx:1.27") || !led.Owned("node-a", "docker.io/library/redis:7") {
		t.Fatalf("owned: nginx %v, redis %v; want redis alone", led.Owned("node-a", "docker.io/library/nginx:1.27"),
			led.Owned("node-a", "docker.io/library/redis:7"))
	}
	f.annotate("web", v1alpha2.AnnotationPurge)
	f.clock.Step(2 * time.Second)
	f.sync("web", wStatus)
	writes, _ = f.sync("web", wCreateJob)
	jobs := createdJobs(writes)
	if len(jobs) != 1 || !puller.IsDeleteJob(jobs[0]) || !strings.Contains(strings.Join(jobs[0].Spec.Template.Spec.Containers[0].Command, " "), "redis:7") ||
		strings.Contains(strings.Join(jobs[0].Spec.Template.Spec.Containers[0].Command, " "), "nginx") {
		t.Fatalf("purge: %s; want a delete Job of redis alone", describe(writes))
	}
}

// TestUpdateKeepsWhatWasThereBefore: an image the node listed before the
// cache, dropped from the spec by an update, stays on the node.
func TestUpdateKeepsWhatWasThereBefore(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", "redis"))},
		newNode("node-a", withRuntime("containerd://2.0.0"), withNodeImages("docker.io/library/nginx:latest")))
	writes := f.createThenSetImages("web", "redis")
	if jobs := createdJobs(writes); len(jobs) != 0 {
		t.Errorf("update dropping an image that was there before: %s; want no delete Job", describe(writes))
	}
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Message != "Pulled 1 of 1 images on 1 node" {
		t.Errorf("update: %s %q", st.Status, st.Message)
	}
}

// TestLatePullingEventStillCounts: the kubelet's "Pulling" event reaches the
// informer after the pull settled; while the Job is there, it still makes the
// image this cache's.
func TestLatePullingEventStillCounts(t *testing.T) {
	cfg := testConfig()
	cfg.ImagesPerJob = 1
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", "redis"))}, newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	first := f.jobs()[0]
	f.pulledBy(first) // no event yet
	f.finishJob(first)
	f.sync("web", wCreateJob, wStatus)
	img := jobImages(t, &first)[0]
	key, _ := images.Normalize(img)
	if led := f.ledger("web"); led.Get("node-a", key) != ledger.Pulled || led.Owned("node-a", key) {
		t.Fatalf("settled without its event: state %d, owned %v", led.Get("node-a", key), led.Owned("node-a", key))
	}
	f.pulledBy(first, img) // the event arrives
	f.catchUp()
	if writes, _ := f.sync("web"); len(sliceWrites(writes)) != 1 {
		t.Errorf("the ownership the late event proves: %s; want one write of the ledger's slice", describe(writes))
	}
	if led := f.ledger("web"); !led.Owned("node-a", key) {
		t.Errorf("the late Pulling event of %s did not make it owned", img)
	}
}

// TestPurgedCacheWantsNothing: another cache that wants nginx on the node,
// but whose latest operation is a purge (done, or under way), does not keep
// it there: its images are being removed or gone. The purge of this cache
// removes nginx.
func TestPurgedCacheWantsNothing(t *testing.T) {
	for _, st := range []v1alpha2.ImageCacheActionStatus{v1alpha2.ImageCacheActionStatusSucceeded, v1alpha2.ImageCacheActionStatusProcessing} {
		t.Run(string(st), func(t *testing.T) {
			purged := newImageCache("purged", withImages("nginx"))
			purged.Status = v1alpha2.ImageCacheStatus{Reason: v1alpha2.ImageCacheReasonPurge, Status: st,
				StartTime: &metav1.Time{Time: t0}, CompletionTime: &metav1.Time{Time: t0}, ObservedGeneration: 1}
			f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx")), purged},
				newNode("node-a", withRuntime("containerd://2.0.0")))
			f.createThenAskPurge("web")
			writes, _ := f.syncStarted("web", wCreateJob)
			if jobs := createdJobs(writes); len(jobs) != 1 || !puller.IsDeleteJob(jobs[0]) {
				t.Fatalf("purge of web: %s; want nginx's removal from node-a", describe(writes))
			}
			if kept := f.imageCache("web").Status.Kept; len(kept) != 0 {
				t.Errorf("kept %v", kept)
			}
		})
	}
}

// TestPurgeDuringACreateTakesItsPulls: a purge asked while the create's
// pull runs lets the pull finish before it removes anything on the node, and
// takes from it what it pulled (the kubelet's "Pulling" events): those
// images are the cache's, and the purge removes them.
func TestPurgeDuringACreateTakesItsPulls(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))},
		newNode("node-a", withRuntime("containerd://2.0.0")))
	f.syncStarted("web", wCreateJob)
	pull := f.jobs()[0]
	f.annotate("web", v1alpha2.AnnotationPurge)
	f.clock.Step(2 * time.Second)
	f.sync("web", wStatus) // the purge starts
	if writes, _ := f.sync("web"); len(writes) != 0 {
		t.Fatalf("the purge did not wait for the running pull: %s", describe(writes))
	}
	f.completeJob(pull) // the kubelet pulled nginx
	writes, _ := f.syncOnly("web", wCreateJob, wDeleteJob, wStatus)
	jobs := createdJobs(writes)
	if len(jobs) != 1 || !puller.IsDeleteJob(jobs[0]) {
		t.Fatalf("once the pull finished: %s; want nginx's delete Job", describe(writes))
	}
	if kept := f.imageCache("web").Status.Kept; len(kept) != 0 {
		t.Errorf("kept %v", kept)
	}
}

// TestPurgeKeepsAnImageAnotherCacheNamesOtherwise: the runtime removes an
// image, not a name, so removing registry.example/a:v1 would also remove
// mirror.example/a:v1 when both are the same image. The purge's delete Job
// is told the names the other caches want on the node (--keep), and its
// remover keeps an image it also knows under one of them: the purge reports
// it kept, for another cache, and still owns it (a later purge, once the
// other cache is gone, may remove it).
func TestPurgeKeepsAnImageAnotherCacheNamesOtherwise(t *testing.T) {
	mirror := newImageCache("mirror", withImages("mirror.example/a:v1"))
	mirror.Status.StartTime = &metav1.Time{Time: t0}
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("registry.example/a:v1")), mirror},
		newNode("node-a", withRuntime("containerd://2.0.0")))
	f.createThenAskPurge("web")
	writes, _ := f.syncStarted("web", wCreateJob)
	jobs := createdJobs(writes)
	if len(jobs) != 1 {
		t.Fatalf("purge: %s", describe(writes))
	}
	cmd := strings.Join(jobs[0].Spec.Template.Spec.Containers[0].Command, " ")
	if !strings.Contains(cmd, " --keep mirror.example/a:v1 ") || !strings.HasSuffix(cmd, " registry.example/a:v1") {
		t.Fatalf("the delete Job runs %q; want it told to keep mirror.example/a:v1", cmd)
	}
	// The remover found registry.example/a:v1 is also mirror.example/a:v1.
	job := f.jobs()[0]
	pod := f.podWith(job, map[string]corev1.ContainerState{"remove-images": {Terminated: &corev1.ContainerStateTerminated{
		ExitCode: 0, Message: "outcomes k\n0: it is also mirror.example/a:v1, which stays on this node"}}})
	pod.Status.Phase = corev1.PodSucceeded
	if _, err := f.kube.CoreV1().Pods(pod.Namespace).UpdateStatus(f.ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.finishJob(job)
	f.sync("web", wDeleteJob, wAnnotation, wStatus)
	st := f.imageCache("web").Status
	if len(st.Failures) != 0 || len(st.Kept["registry.example/a:v1"]) != 1 || st.Kept["registry.example/a:v1"][0].Reason != "WantedByOtherCache" {
		t.Errorf("after the purge: kept %v, failures %v; want a:v1 kept for another cache", st.Kept, st.Failures)
	}
	if !strings.Contains(st.Message, "1 kept") {
		t.Errorf("message %q", st.Message)
	}
}

// TestPullingEventsWatchedWhileJobsRun: the kubelet's events are watched
// only in the namespaces where the controller's pull Jobs run, from the
// creation of the first (before its pod's first event), and no longer once
// the namespace has no pull Job left.
func TestPullingEventsWatchedWhileJobsRun(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"))
	f.sync("web", wStatus)
	if len(f.eventsAsked) != 0 {
		t.Errorf("events watched before a pull Job was made: %v", f.eventsAsked)
	}
	f.sync("web", wCreateJob)
	if got := f.c.pulling.Watching(); !slices.Equal(f.eventsAsked, []string{testNS}) || !slices.Equal(got, []string{testNS}) {
		t.Errorf("once the pull Job is made: asked for the events of %v, watching %v; want %s's", f.eventsAsked, got, testNS)
	}
	f.completeAll()
	jobs := f.jobs()
	f.sync("web", wDeleteJob, wStatus)
	if got := f.c.pulling.Watching(); !slices.Equal(f.eventsAsked, []string{testNS}) || !slices.Equal(got, []string{testNS}) {
		t.Fatalf("asked for the events of %v, watching %v; want %s's", f.eventsAsked, got, testNS)
	}
	if !f.ledger("web").Owned("node-a", "docker.io/library/nginx:latest") {
		t.Error("the pull's Pulling event was not read")
	}
	for _, j := range jobs { // the finished Job's delete, as the informer tells it
		f.c.jobChanged(&j, true)
	}
	if got := f.c.pulling.Watching(); len(got) != 0 {
		t.Errorf("still watching %v with no pull Job left", got)
	}
}

// TestRemovalOff (--image-removal=false): an update that drops an image
// leaves it on the node, and a purge makes no delete Job: it keeps every
// image, says why in status.kept and its message, and ends at once.
func TestRemovalOff(t *testing.T) {
	cfg := testConfig()
	cfg.NoRemoval = true
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", "redis"))},
		newNode("node-a", withRuntime("containerd://2.0.0")))
	f.syncStartedOnly("web", wCreateJob)
	f.completeAll()
	f.syncOnly("web", wDeleteJob, wStatus)
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Fatalf("create: %s %q", st.Status, st.Message)
	}
	f.edit("web", func(ic *v1alpha2.ImageCache) {
		ic.Spec.CacheSpec[0].Images = []string{"nginx"}
		ic.Generation = 2
	})
	f.clock.Step(time.Second)
	for range 3 {
		writes, _ := f.syncOnly("web", wStatus)
		if len(createdJobs(writes)) > 0 {
			t.Fatalf("update dropping redis: %s; want no Job", describe(writes))
		}
	}
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Reason != v1alpha2.ImageCacheReasonUpdate {
		t.Fatalf("update: %s %s %q", st.Reason, st.Status, st.Message)
	}
	f.annotate("web", v1alpha2.AnnotationPurge)
	f.clock.Step(2 * time.Second)
	for range 3 {
		writes, _ := f.syncOnly("web", wStatus, wAnnotation)
		if len(createdJobs(writes)) > 0 {
			t.Fatalf("purge: %s; want no delete Job", describe(writes))
		}
	}
	st := f.imageCache("web").Status
	if st.Reason != v1alpha2.ImageCacheReasonPurge || st.Status != v1alpha2.ImageCacheActionStatusSucceeded ||
		st.Message != "Removed 0 of 1 images on 1 node; 1 kept (image removal is off)" {
		t.Errorf("purge: %s %s %q", st.Reason, st.Status, st.Message)
	}
	want := map[string]v1alpha2.KeptOnNodes{"nginx": {{Node: "node-a", Reason: reasons.RemovalDisabled,
		Message: "image removal is off (--image-removal=false): the controller removes no image"}}}
	if diff := cmp.Diff(want, st.Kept); diff != "" {
		t.Errorf("status.kept (-want +got):\n%s", diff)
	}
}
