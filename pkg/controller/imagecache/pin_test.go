package imagecache

import (
	"errors"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

const ctd = "containerd://2.4.2"

// withPin sets spec.pin, on a cache that carries the finalizer already
// (TestPinningCacheGetsTheFinalizer).
func withPin(ic *v1alpha2.ImageCache) {
	ic.Spec.Pin = true
	ic.Finalizers = append(ic.Finalizers, FinalizerUnpin)
}

func pinConfig() Config {
	cfg := testConfig()
	cfg.Pinning = true
	cfg.PinBudgetPercent = 50
	cfg.ContainerdRoot = "/var/lib/containerd"
	return cfg
}

// pinJobsOf returns the pin and unpin Jobs among the fixture's.
func (f *fixture) pinJobsOf() []batchv1.Job {
	var out []batchv1.Job
	for _, j := range f.jobs() {
		if puller.IsPinJob(&j) {
			out = append(out, j)
		}
	}
	return out
}

// finishPinJob plays the pin command, which reports summary, its pod and
// the Job controller.
func (f *fixture) finishPinJob(job batchv1.Job, summary string) {
	f.t.Helper()
	name := job.Spec.Template.Spec.Containers[0].Name
	f.podWith(job, map[string]corev1.ContainerState{name: {Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Message: summary}}})
	f.finishJob(job)
}

// command is a Job's first container's command, joined.
func command(job *batchv1.Job) string {
	return strings.Join(job.Spec.Template.Spec.Containers[0].Command, " ")
}

// pinState reads the cache's pin of an image on a node from its status.
func (f *fixture) pinState(name, node, image string) ledger.PinState {
	return f.ledger(name).Pin(node, image)
}

// TestPinAfterThePullsSettle: a pinning cache's node gets its pin Job, in
// the controller's namespace, once its pulls settle, whatever the other
// nodes' pulls do; a node whose runtime cannot pin gets none and is
// reported; a pin over the budget is reported with the node's message; the
// operation is under way until the pins are done, and the pin Job goes once
// read.
func TestPinAfterThePullsSettle(t *testing.T) {
	f := newFixture(t, pinConfig(), []*v1alpha2.ImageCache{newImageCache("web", withPin, withImages("registry.example/a:v1", "registry.example/b:v1"))},
		newNode("node-a", withRuntime(ctd)), newNode("node-b", withRuntime("cri-o://1.33.0")))
	f.syncStarted("web", times(wCreateJob, 2))
	pulls := f.jobs()
	f.completeJob(pulls[0]) // node-a
	writes, _ := f.sync("web", wCreateJob, wStatus)
	jobs := createdJobs(writes)
	if len(jobs) != 1 || jobs[0].Namespace != testControllerNS || jobs[0].Annotations[puller.AnnotationNode] != "node-a" ||
		jobs[0].Labels[puller.LabelComponent] != puller.ComponentPin {
		t.Fatalf("pin Jobs: %s; want one on node-a, in %s", describe(writes), testControllerNS)
	}
	cmd := command(jobs[0])
	for _, want := range []string{"/fledged-cri pin ", " --cache uid-web ", " --cache-name " + testNS + "/web ", " --budget 50 --root /run/kube-fledged/image-fs ",
		" registry.example/a:v1 registry.example/b:v1"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("pin command %q lacks %q", cmd, want)
		}
	}
	if sa := jobs[0].Spec.Template.Spec.ServiceAccountName; sa != "kube-fledged-image-delete" {
		t.Errorf("pin pod's service account %q", sa)
	}
	st := f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusProcessing || st.Pulls.Pinned != 0 || !strings.Contains(st.Message, "2 pins and unpins to do") {
		t.Errorf("while pinning: %s %q %+v", st.Status, st.Message, st.Pulls)
	}
	f.completeJob(pulls[1]) // node-b: its runtime cannot pin
	f.sync("web", wStatus)
	st = f.imageCache("web").Status
	for _, img := range []string{"registry.example/a:v1", "registry.example/b:v1"} {
		if l := st.Unpinned[img]; len(l) != 1 || l[0].Node != "node-b" || l[0].Reason != puller.ReasonPinUnsupported {
			t.Errorf("unpinned %s: %v; want node-b, %s", img, l, puller.ReasonPinUnsupported)
		}
	}

	f.finishPinJob(f.pinJobsOf()[0], "outcomes pb\n1: pinning it (2.0 GiB) would bring the node's pinned images to 9.0 GiB, over the budget of 8.0 GiB")
	f.sync("web", wStatus, times(wDeleteJob, 3)) // the pin Job, the two pull Jobs
	st = f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.Pinned != 1 || st.Pulls.Succeeded != 4 {
		t.Errorf("pinned: %s %+v; want Succeeded, 1 pinned of 4", st.Status, st.Pulls)
	}
	if l := st.Unpinned["registry.example/b:v1"]; len(l) != 2 || l[0].Node != "node-a" || l[0].Reason != puller.ReasonPinBudgetExceeded ||
		!strings.Contains(l[0].Message, "over the budget of 8.0 GiB") {
		t.Errorf("unpinned b: %v; want node-a over budget, with the sizes", l)
	}
	if f.pinState("web", "node-a", "registry.example/a:v1") != ledger.Pinned || f.pinState("web", "node-a", "registry.example/b:v1") != ledger.PinRefused {
		t.Errorf("ledger pins: %v", f.ledger("web").PinNodes())
	}
	if n := len(f.pinJobsOf()); n != 0 {
		t.Errorf("%d pin Jobs left after their outcome was recorded", n)
	}
	// Nothing more to do: the refused pin waits for the next operation.
	if writes, _ := f.sync("web"); len(writes) != 0 {
		t.Errorf("idle pass wrote %s", describe(writes))
	}
}

// pinnedCache returns a fixture whose cache web pinned its images on
// node-a, its pulls done, its pin Job read and gone.
func pinnedCache(t *testing.T, cfg Config, images []string, caches ...*v1alpha2.ImageCache) *fixture {
	t.Helper()
	web := newImageCache("web", withPin, withImages(images...))
	f := newFixture(t, cfg, append([]*v1alpha2.ImageCache{web}, caches...), newNode("node-a", withRuntime(ctd)))
	f.syncStarted("web", wCreateJob)
	f.completeAll()
	f.sync("web", wCreateJob, wStatus)
	f.finishPinJob(f.pinJobsOf()[0], "outcomes "+strings.Repeat("p", len(images)))
	f.sync("web", wStatus, times(wDeleteJob, 2)) // the pin Job, then the pull Job: the operation is complete
	if st := f.imageCache("web").Status; st.Pulls.Pinned != int32(len(images)) || st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Fatalf("the cache did not pin: %s %+v", st.Status, st.Pulls)
	}
	return f
}

// TestUnpinWhenAnImageLeavesTheSpec: an image dropped from a pinning
// cache's spec is unpinned on its node before its delete Job removes it;
// the other stays pinned.
func TestUnpinWhenAnImageLeavesTheSpec(t *testing.T) {
	f := pinnedCache(t, pinConfig(), []string{"registry.example/a:v1", "registry.example/b:v1"})
	f.edit("web", func(ic *v1alpha2.ImageCache) {
		ic.Spec.CacheSpec[0].Images = []string{"registry.example/b:v1"}
		ic.Generation = 2
	})
	f.clock.Step(time.Second)
	writes, _ := f.syncStarted("web", wCreateJob)
	jobs := createdJobs(writes)
	if len(jobs) != 1 || !puller.IsUnpinJob(jobs[0]) || !strings.HasSuffix(command(jobs[0]), " registry.example/a:v1") {
		t.Fatalf("want an unpin Job of a alone first, got %s", describe(writes))
	}
	f.finishPinJob(f.pinJobsOf()[0], "outcomes u")
	writes, _ = f.sync("web", wCreateJob, wStatus, wDeleteJob)
	if jobs := createdJobs(writes); len(jobs) != 1 || !puller.IsDeleteJob(jobs[0]) {
		t.Fatalf("after the unpin, want the delete Job, got %s", describe(writes))
	}
	if f.pinState("web", "node-a", "registry.example/a:v1") != ledger.NotPinned || f.pinState("web", "node-a", "registry.example/b:v1") != ledger.Pinned {
		t.Errorf("ledger pins: %v", f.ledger("web").PinNodes())
	}
}

// TestPinTurnedOff: pin turned off unpins every image; pinning turned off
// for the controller does too, and pins nothing new.
func TestPinTurnedOff(t *testing.T) {
	images := []string{"registry.example/a:v1", "registry.example/b:v1"}
	t.Run("spec.pin false", func(t *testing.T) {
		f := pinnedCache(t, pinConfig(), images)
		f.edit("web", func(ic *v1alpha2.ImageCache) { ic.Spec.Pin = false; ic.Generation = 2 })
		f.clock.Step(time.Second)
		writes, _ := f.syncStarted("web", wCreateJob)
		if jobs := createdJobs(writes); len(jobs) != 1 || !puller.IsUnpinJob(jobs[0]) || !strings.HasSuffix(command(jobs[0]), strings.Join(images, " ")) {
			t.Fatalf("want one unpin Job of both, got %s", describe(writes))
		}
		if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusProcessing {
			t.Errorf("the update is %s while it unpins", st.Status)
		}
		f.finishPinJob(f.pinJobsOf()[0], "outcomes uu")
		f.sync("web", wStatus, wDeleteJob)
		st := f.imageCache("web").Status
		if st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.Pinned != 0 || st.Ledger.Pins != nil {
			t.Errorf("after the unpin: %s %+v pins %v", st.Status, st.Pulls, st.Ledger.Pins)
		}
	})
	t.Run("--image-pinning=false", func(t *testing.T) {
		f := pinnedCache(t, pinConfig(), images)
		cfg := pinConfig()
		cfg.Pinning = false
		f.restart(cfg)
		writes, _ := f.sync("web", wCreateJob, wStatus)
		if jobs := createdJobs(writes); len(jobs) != 1 || !puller.IsUnpinJob(jobs[0]) {
			t.Fatalf("want one unpin Job, got %s", describe(writes))
		}
	})
}

// TestTwoCachesPinOneImage: two caches pin one image on one node, each with
// its own pin (its UID); one dropping it takes away only its own, and the
// other's record stays.
func TestTwoCachesPinOneImage(t *testing.T) {
	const img = "registry.example/shared:v1"
	other := newImageCache("other", withPin, withImages(img))
	f := pinnedCache(t, pinConfig(), []string{img, "registry.example/b:v1"}, other)
	f.syncStarted("other", wCreateJob)
	f.completeAll()
	writes, _ := f.sync("other", wCreateJob, wStatus)
	jobs := createdJobs(writes)
	if len(jobs) != 1 || !strings.Contains(command(jobs[0]), " --cache uid-other ") {
		t.Fatalf("other's pin Job: %s", describe(writes))
	}
	for _, j := range f.pinJobsOf() {
		f.finishPinJob(j, "outcomes p")
	}
	f.sync("other", wStatus, times(wDeleteJob, 2))

	f.edit("web", func(ic *v1alpha2.ImageCache) {
		ic.Spec.CacheSpec[0].Images = []string{"registry.example/b:v1"}
		ic.Generation = 2
	})
	f.clock.Step(time.Second)
	writes, _ = f.syncStarted("web", wCreateJob)
	jobs = createdJobs(writes)
	if len(jobs) != 1 || !puller.IsUnpinJob(jobs[0]) || !strings.Contains(command(jobs[0]), " --cache uid-web ") {
		t.Fatalf("web's unpin: %s", describe(writes))
	}
	// The node's own labels keep other's pin (fledged-cri's part, tested
	// against containerd); the ledgers are each cache's own.
	f.finishPinJob(f.pinJobsOf()[0], "outcomes u\n0: it stays pinned: pinned for ImageCache "+testNS+"/other")
	f.sync("web", wStatus, wDeleteJob)
	if f.pinState("web", "node-a", img) != ledger.NotPinned || f.pinState("other", "node-a", img) != ledger.Pinned {
		t.Errorf("pins: web %v, other %v", f.ledger("web").PinNodes(), f.ledger("other").PinNodes())
	}
	// Another cache wants it: web's update keeps the image on the node.
	for _, j := range f.jobs() {
		if puller.IsDeleteJob(&j) {
			t.Errorf("a delete Job of an image another cache wants: %s", command(&j))
		}
	}
}

// TestPurgeUnpinsBeforeItRemoves: a pinning cache's purge unpins what it
// pinned on a node, then its delete Job removes it.
func TestPurgeUnpinsBeforeItRemoves(t *testing.T) {
	f := pinnedCache(t, pinConfig(), []string{"registry.example/a:v1"})
	f.annotate("web", v1alpha2.AnnotationPurge)
	f.clock.Step(time.Second)
	writes, _ := f.syncStartedOnly("web", wCreateJob, wStatus)
	jobs := createdJobs(writes)
	if len(jobs) != 1 || !puller.IsUnpinJob(jobs[0]) {
		t.Fatalf("the purge's first Job: %s; want the unpin", describe(writes))
	}
	f.finishPinJob(f.pinJobsOf()[0], "outcomes u")
	writes, _ = f.sync("web", wCreateJob, wStatus, wDeleteJob)
	if jobs := createdJobs(writes); len(jobs) != 1 || !puller.IsDeleteJob(jobs[0]) {
		t.Fatalf("after the unpin: %s; want the delete Job", describe(writes))
	}
}

// TestPinImageGone: a pin Job that finds the image gone (the kubelet
// collected it before the pin) reports it, and pins nothing again until
// the next operation pulls it again.
func TestPinImageGone(t *testing.T) {
	f := newFixture(t, pinConfig(), []*v1alpha2.ImageCache{newImageCache("web", withPin, withImages("registry.example/a:v1"))},
		newNode("node-a", withRuntime(ctd)))
	f.syncStarted("web", wCreateJob)
	f.completeAll()
	f.sync("web", wCreateJob, wStatus)
	f.finishPinJob(f.pinJobsOf()[0], "outcomes a\n0: the image is not on this node")
	f.sync("web", wStatus, times(wDeleteJob, 2))
	st := f.imageCache("web").Status
	if l := st.Unpinned["registry.example/a:v1"]; st.Status != v1alpha2.ImageCacheActionStatusSucceeded || len(l) != 1 || l[0].Reason != puller.ReasonImageGone {
		t.Fatalf("after the image was found gone: %s, unpinned %v", st.Status, st.Unpinned)
	}
	if writes, _ := f.sync("web"); len(writes) != 0 {
		t.Errorf("pass after: %s; want nothing until the next operation", describe(writes))
	}
}

// TestPinJobRefused: a pin Job the API server refuses settles
// the pins as refused, with its message, and the operation ends.
func TestPinJobRefused(t *testing.T) {
	f := newFixture(t, pinConfig(), []*v1alpha2.ImageCache{newImageCache("web", withPin, withImages("registry.example/a:v1"))},
		newNode("node-a", withRuntime(ctd)))
	f.syncStarted("web", wCreateJob)
	f.completeAll()
	refuseJobsFor(f, apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "x", errors.New("pods with hostPath volumes are forbidden")), "node-a")
	f.sync("web", wCreateJob, wStatus, wDeleteJob)
	st := f.imageCache("web").Status
	if l := st.Unpinned["registry.example/a:v1"]; st.Status != v1alpha2.ImageCacheActionStatusSucceeded || len(l) != 1 || l[0].Reason != reasons.JobRejected {
		t.Errorf("refused pin Job: %s, unpinned %v", st.Status, st.Unpinned)
	}
}
