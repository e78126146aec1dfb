package imagecache

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// pulledDigests plays the kubelet on a pull Job: its pod Succeeded, each
// container having run the digest given for its image.
func (f *fixture) pulledDigests(created *batchv1.Job, digests map[string]string) {
	f.t.Helper()
	var job batchv1.Job
	for _, j := range f.jobs() {
		if j.Name == created.Name {
			job = j
		}
	}
	pod := fledgedtest.PodOf(&job, "abcde")
	states := map[string]corev1.ContainerState{}
	for _, c := range job.Spec.Template.Spec.Containers {
		states[c.Name] = terminatedOK(f.clock.Now())
	}
	fledgedtest.WithContainerStates(pod, states)
	for i := range pod.Status.ContainerStatuses {
		cs := &pod.Status.ContainerStatuses[i]
		if d := digests[cs.Image]; d != "" {
			repo, _, _ := strings.Cut(cs.Image, ":")
			cs.ImageID = repo + "@" + d
		}
	}
	pod.Status.Phase = corev1.PodSucceeded
	if _, err := f.kube.CoreV1().Pods(job.Namespace).Create(f.ctx, pod, metav1.CreateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.finishJob(job)
}

// TestRefreshBringsAMovedTagUpToDate: an image by ":latest" is pulled
// Always on every operation, although the node lists it; the digest its
// container ran is recorded in status.digests, and when a refresh's pull
// gets another one the tag moved: the status counts and names the node,
// the message says so, and an ImageMoved event gives both digests. An
// image by digest the node lists is never pulled again.
func TestRefreshBringsAMovedTagUpToDate(t *testing.T) {
	old, moved := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64)
	byDigest := "registry.local/base@sha256:" + strings.Repeat("c", 64)
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("registry.local/app:latest", byDigest))},
		newNode("node-a", withNodeImages("registry.local/app:latest", byDigest)))
	writes, _ := f.syncStarted("web", wCreateJob)
	job := createdJobs(writes)[0]
	if got := jobImages(t, job); !cmp.Equal(got, []string{"registry.local/app:latest"}) {
		t.Fatalf("create: Job of %v, want the :latest image alone", got)
	}
	if p := job.Spec.Template.Spec.Containers[0].ImagePullPolicy; p != corev1.PullAlways {
		t.Errorf("pull policy %s, want Always", p)
	}
	f.pulledDigests(job, map[string]string{"registry.local/app:latest": old})
	f.clock.Step(time.Second)
	f.sync("web", wDeleteJob, wStatus)
	st := f.imageCache("web").Status
	want := map[string]v1alpha2.ImageDigest{"registry.local/app:latest": {Digest: old}}
	if diff := cmp.Diff(want, st.Digests); diff != "" || st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Fatalf("create: %s %q, digests (-want +got):\n%s", st.Status, st.Message, diff)
	}
	if st.Message != "Pulled 2 of 2 images on 1 node (1 already present)" {
		t.Errorf("create: %q", st.Message)
	}

	// The tag is pushed again; a refresh pulls it, and gets the new digest.
	f.annotate("web", v1alpha2.AnnotationRefresh)
	f.clock.Step(2 * time.Second)
	writes, _ = f.syncStarted("web", wCreateJob)
	job = createdJobs(writes)[0]
	if got := jobImages(t, job); !cmp.Equal(got, []string{"registry.local/app:latest"}) {
		t.Fatalf("refresh: Job of %v, want the :latest image alone (the one by digest is never pulled again)", got)
	}
	f.pulledDigests(job, map[string]string{"registry.local/app:latest": moved})
	f.clock.Step(time.Second)
	f.sync("web", wDeleteJob, wAnnotation, wStatus)
	st = f.imageCache("web").Status
	want = map[string]v1alpha2.ImageDigest{"registry.local/app:latest": {Digest: moved, Previous: old, Moved: 1, Nodes: []string{"node-a"}}}
	if diff := cmp.Diff(want, st.Digests); diff != "" {
		t.Errorf("refresh: digests (-want +got):\n%s", diff)
	}
	if st.Message != "Pulled 2 of 2 images on 1 node (1 already present); 1 moved to a new digest (status.digests)" {
		t.Errorf("refresh: %q", st.Message)
	}
	f.expectEvent("Normal ImageMoved registry.local/app:latest moved to " + moved + " (was " + old + ") on 1 node: node-a")

	// Another refresh finds it where it was: nothing moved.
	f.annotate("web", v1alpha2.AnnotationRefresh)
	f.clock.Step(2 * time.Second)
	writes, _ = f.syncStarted("web", wCreateJob)
	f.pulledDigests(createdJobs(writes)[0], map[string]string{"registry.local/app:latest": moved})
	f.clock.Step(time.Second)
	f.sync("web", wDeleteJob, wAnnotation, wStatus)
	want = map[string]v1alpha2.ImageDigest{"registry.local/app:latest": {Digest: moved, Previous: moved}}
	if diff := cmp.Diff(want, f.imageCache("web").Status.Digests); diff != "" {
		t.Errorf("second refresh: digests (-want +got):\n%s", diff)
	}

	// Dropped from the spec (or pulled IfNotPresent), it leaves status.digests.
	f.edit("web", func(ic *v1alpha2.ImageCache) { ic.Spec.CacheSpec[0].PullPolicy = v1alpha2.PullIfNotPresent })
	f.clock.Step(2 * time.Second)
	f.syncStartedOnly("web", wCreateJob, wStatus)
	if d := f.imageCache("web").Status.Digests; d != nil {
		t.Errorf("with IfNotPresent: digests %v, want none", d)
	}
}

// TestEntryPullDeadlines: an entry's pullDeadline is its images' deadline
// on the pull Job (the longer where two entries want an image), and the
// Job's activeDeadlineSeconds makes room for it.
func TestEntryPullDeadlines(t *testing.T) {
	ic := newImageCache("web", withImages("nginx:1.27", "models/big:1"))
	ic.Spec.CacheSpec = append(ic.Spec.CacheSpec,
		v1alpha2.CacheSpecImages{Images: []string{"models/big:1", "models/huge:1"}, PullDeadline: &metav1.Duration{Duration: 45 * time.Minute}},
		v1alpha2.CacheSpecImages{Images: []string{"models/big:1"}, PullDeadline: &metav1.Duration{Duration: 10 * time.Minute}})
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{ic}, newNode("node-a"))
	writes, _ := f.syncStarted("web", wCreateJob)
	job := createdJobs(writes)[0]
	if got, want := job.Annotations[puller.AnnotationPullDeadlines], `{"models/big:1":"45m0s","models/huge:1":"45m0s"}`; got != want {
		t.Errorf("deadlines annotation %s, want %s", got, want)
	}
	// 1m for nginx, 45m each for the others, and the slack.
	if got, want := *job.Spec.ActiveDeadlineSeconds, int64((91*time.Minute+30*time.Second)/time.Second); got != want {
		t.Errorf("activeDeadlineSeconds %d, want %d", got, want)
	}
}

// TestAnEarlierJobOfAnAlwaysImageCounts: a refresh starts while the
// create's Job of a ":latest" image still runs; the pod then Succeeds. Its
// pull, done once the refresh was due, is the refresh's too: no new Job.
// (The informer's cache keeps the containers of such a pod, for their
// digests: their states must stay, or the pull is not seen.)
func TestAnEarlierJobOfAnAlwaysImageCounts(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("registry.local/app:latest"))},
		newNode("node-a"))
	writes, _ := f.syncStarted("web", wCreateJob)
	job := createdJobs(writes)[0]
	f.annotate("web", v1alpha2.AnnotationRefresh)
	f.clock.Step(2 * time.Second)
	f.sync("web", wAnnotation, wStatus) // the refresh starts, and takes its annotation; the create's Job runs on
	f.clock.Step(time.Second)
	f.pulledDigests(job, map[string]string{"registry.local/app:latest": "sha256:" + strings.Repeat("a", 64)})
	writes, _ = f.syncOnly("web", wDeleteJob, wAnnotation, wStatus)
	st := f.imageCache("web").Status
	if st.Reason != v1alpha2.ImageCacheReasonRefresh || st.Status != v1alpha2.ImageCacheActionStatusSucceeded || len(createdJobs(writes)) != 0 {
		t.Errorf("refresh: %s %s %q, %s; want it Succeeded by the earlier Job's pull", st.Reason, st.Status, st.Message, describe(writes))
	}
}
