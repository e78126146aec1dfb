package imagecache

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pins"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// A pin lives as a finalizer-holding resource does: a pin that may be set
// counts as held until an unpin confirms it gone. These tests each play one
// way a pin used to be left behind.

// unavailable is what an unpin reports when containerd does not answer.
const unavailable = "outcomes f\n0: rpc error: code = Unavailable desc = connection error: dial unix /run/containerd/containerd.sock: connect: connection refused"

// failPinJob plays a pin or unpin pod that failed with summary, and the Job
// controller giving up on it.
func (f *fixture) failPinJob(job batchv1.Job, summary string) {
	f.t.Helper()
	name := job.Spec.Template.Spec.Containers[0].Name
	f.podWith(job, map[string]corev1.ContainerState{name: {Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: summary}}})
	job.Status.Conditions = append(job.Status.Conditions,
		batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded",
			LastTransitionTime: metav1.NewTime(f.clock.Now())})
	job.Status.Failed = 1
	f.updateJob(&job)
}

// onlyPinJob returns the one pin or unpin Job of the fixture, of the kind
// wanted.
func (f *fixture) onlyPinJob(unpin bool) batchv1.Job {
	f.t.Helper()
	jobs := f.pinJobsOf()
	if len(jobs) != 1 || puller.IsUnpinJob(&jobs[0]) != unpin {
		var names []string
		for _, j := range jobs {
			names = append(names, j.Labels[puller.LabelComponent]+" "+j.Name)
		}
		f.t.Fatalf("pin Jobs %v; want one, unpin %v", names, unpin)
	}
	return jobs[0]
}

// pinJobRunning returns a fixture whose cache web pulled its image on
// node-a, and whose pin Job runs there.
func pinJobRunning(t *testing.T, img string) *fixture {
	t.Helper()
	web := newImageCache("web", withPin, withImages(img))
	f := newFixture(t, pinConfig(), []*v1alpha2.ImageCache{web}, newNode("node-a", withRuntime(ctd)))
	f.syncStarted("web", wCreateJob)
	f.completeAll()
	f.sync("web", wCreateJob, wStatus)
	f.onlyPinJob(false)
	return f
}

func (f *fixture) hasFinalizer(name string) bool {
	return slices.Contains(f.imageCache(name).Finalizers, FinalizerUnpin)
}

// TestFailedUnpinHoldsTheDeletion: an unpin that fails (containerd down) does
// not let the deleted cache go: the pin stays held, the failed Job stays to
// count the tries, and the unpin is tried again after a backoff under a new
// Job name; once it succeeds the cache goes, and only then does an event say
// the pins are taken away.
func TestFailedUnpinHoldsTheDeletion(t *testing.T) {
	const img = "registry.example/a:v1"
	f := pinnedCache(t, pinConfig(), []string{img})
	f.deleteCache("web")
	f.sync("web", wCreateJob)
	first := f.onlyPinJob(true)
	f.failPinJob(first, unavailable)
	_, after := f.sync("web", wStatus)
	if !f.hasFinalizer("web") {
		t.Fatalf("the finalizer went after one failed unpin")
	}
	if s := f.pinState("web", "node-a", img); !s.Held() {
		t.Errorf("pin after a failed unpin: %v; want it held", s)
	}
	if l := f.imageCache("web").Status.Failures[img]; len(l) != 1 || l[0].Reason != reasons.UnpinFailed || !strings.Contains(l[0].Message, "Unavailable") {
		t.Errorf("failures %v; want node-a %s, with containerd's message", l, reasons.UnpinFailed)
	}
	for _, e := range f.events() {
		if strings.Contains(e, reasons.Unpinned) {
			t.Errorf("event %q while a pin is held", e)
		}
	}
	if after != 10*time.Second {
		t.Errorf("look again after %v; want the first backoff, 10s", after)
	}
	f.clock.Step(5 * time.Second)
	f.sync("web") // within the backoff: nothing
	f.clock.Step(5 * time.Second)
	writes, _ := f.sync("web", wCreateJob, wDeleteJob)
	again := createdJobs(writes)
	if len(again) != 1 || !puller.IsUnpinJob(again[0]) || again[0].Name == first.Name {
		t.Fatalf("after the backoff: %s; want a new unpin Job under a new name", describe(writes))
	}
	f.failPinJob(f.onlyPinJob(true), unavailable)
	_, after = f.sync("web")
	if after != 20*time.Second {
		t.Errorf("after the second failure look again after %v; want 20s", after)
	}
	f.clock.Step(20 * time.Second)
	f.sync("web", wCreateJob, wDeleteJob)
	f.finishPinJob(f.onlyPinJob(true), "outcomes u")
	f.sync("web", wStatus, wDeleteJob, wAnnotation)
	if f.hasFinalizer("web") {
		t.Errorf("the finalizer stayed after the unpin succeeded")
	}
	f.expectEvent("Normal " + reasons.Unpinned)
}

// TestFailedUnpinStaysInTheStatus: a cache that turned pin off and whose
// unpin failed keeps the failure in its status, and its finalizer, until an
// unpin succeeds.
func TestFailedUnpinStaysInTheStatus(t *testing.T) {
	const img = "registry.example/a:v1"
	f := pinnedCache(t, pinConfig(), []string{img})
	f.edit("web", func(ic *v1alpha2.ImageCache) { ic.Spec.Pin = false; ic.Generation = 2 })
	f.clock.Step(time.Second)
	f.syncStarted("web", wCreateJob)
	f.failPinJob(f.onlyPinJob(true), unavailable)
	f.sync("web", wStatus)
	for i := range 3 {
		f.clock.Step(2 * time.Second)
		f.syncOnly("web", "update imagecaches/status")
		st := f.imageCache("web").Status
		if l := st.Failures[img]; len(l) != 1 || l[0].Reason != reasons.UnpinFailed {
			t.Fatalf("pass %d after the failed unpin: failures %v; want %s on node-a", i, st.Failures, reasons.UnpinFailed)
		}
		if !f.hasFinalizer("web") {
			t.Fatalf("pass %d: the finalizer went while the pin is held", i)
		}
	}
	f.clock.Step(10 * time.Second)
	f.syncOnly("web", wCreateJob, wDeleteJob, "update imagecaches/status")
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Errorf("while the unpin is tried again: %s %q; want it Succeeded still (its failure says the unpin is not done)", st.Status, st.Message)
	}
	// The operation is complete, and its Jobs go: not the unpin that runs.
	f.clock.Step(time.Second)
	if writes, _ := f.sync("web"); len(writes) != 0 {
		t.Errorf("while the unpin tried again runs: %s; want nothing (it was deleted and made again, for ever)", describe(writes))
	}
	f.finishPinJob(f.onlyPinJob(true), "outcomes u")
	f.syncOnly("web", wStatus, wDeleteJob, wAnnotation)
	f.syncOnly("web", wStatus, wDeleteJob, wAnnotation)
	if st := f.imageCache("web").Status; len(st.Failures) != 0 || st.Ledger.Pins != nil {
		t.Errorf("after the unpin: failures %v, pins %v", st.Failures, st.Ledger.Pins)
	}
	if f.hasFinalizer("web") {
		t.Errorf("the finalizer stayed after the last pin went")
	}
}

// TestPinOfUnknownOutcomeIsHeld: a pin Job whose outcome cannot be read (its
// pod gone before it was read, or killed part-way by the Job's deadline) may
// have set the pin: it counts as held, is not pinned again in this
// operation, and is taken away like any pin.
func TestPinOfUnknownOutcomeIsHeld(t *testing.T) {
	const img = "registry.example/a:v1"
	for name, end := range map[string]func(f *fixture, job batchv1.Job){
		"pod gone": func(f *fixture, job batchv1.Job) { f.finishJob(job) },
		"deadline": func(f *fixture, job batchv1.Job) {
			name := job.Spec.Template.Spec.Containers[0].Name
			f.podWith(job, map[string]corev1.ContainerState{name: {Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error"}}})
			job.Status.Conditions = append(job.Status.Conditions,
				batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "DeadlineExceeded"})
			f.updateJob(&job)
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := pinJobRunning(t, img)
			end(f, f.onlyPinJob(false))
			f.syncOnly("web", wStatus, wDeleteJob)
			if s := f.pinState("web", "node-a", img); !s.Held() {
				t.Fatalf("pin of unknown outcome: %v; want held", s)
			}
			if l := f.imageCache("web").Status.Unpinned[img]; len(l) != 1 || l[0].Node != "node-a" {
				t.Errorf("unpinned %v; want node-a, with why", l)
			}
			if writes, _ := f.sync("web"); len(writes) != 0 {
				t.Errorf("pinned again in the same operation: %s", describe(writes))
			}
			f.deleteCache("web")
			writes, _ := f.syncOnly("web", wCreateJob, wStatus)
			if jobs := createdJobs(writes); len(jobs) != 1 || !puller.IsUnpinJob(jobs[0]) {
				t.Errorf("deleted: %s; want the unpin of the pin that may be set", describe(writes))
			}
		})
	}
}

// TestCacheDeletedWhilePinning: a cache deleted while its pin Job runs
// takes the pin away after that Job, which may have set it.
func TestCacheDeletedWhilePinning(t *testing.T) {
	const img = "registry.example/a:v1"
	f := pinJobRunning(t, img)
	f.deleteCache("web")
	f.syncOnly("web", wDeleteJob, wStatus)
	if !f.hasFinalizer("web") {
		t.Fatalf("the finalizer went while a pin Job ran")
	}
	writes, _ := f.syncOnly("web", wCreateJob, wDeleteJob, wStatus)
	if jobs := createdJobs(writes); len(jobs) != 1 || !puller.IsUnpinJob(jobs[0]) {
		t.Fatalf("after the pin Job went: %s; want an unpin on node-a", describe(writes))
	}
	f.finishPinJob(f.onlyPinJob(true), "outcomes u")
	f.syncOnly("web", wStatus, wDeleteJob, wAnnotation)
	if f.hasFinalizer("web") {
		t.Errorf("the finalizer stayed after the unpin")
	}
}

// TestPinTurnedOffWhilePinning: spec.pin turned off while a pin Job runs
// keeps the finalizer until that pin is taken away, so that a deletion
// right after still unpins.
func TestPinTurnedOffWhilePinning(t *testing.T) {
	const img = "registry.example/a:v1"
	f := pinJobRunning(t, img)
	f.edit("web", func(ic *v1alpha2.ImageCache) { ic.Spec.Pin = false; ic.Generation = 2 })
	f.clock.Step(time.Second)
	for range 3 {
		if _, err := f.pass("web"); err != nil {
			t.Fatal(err)
		}
		f.catchUp()
		if !f.hasFinalizer("web") {
			t.Fatalf("the finalizer went while the pin Job ran")
		}
	}
	f.deleteCache("web")
	for range 3 {
		if _, err := f.pass("web"); err != nil {
			t.Fatal(err)
		}
		f.catchUp()
	}
	job := f.onlyPinJob(true)
	if job.Annotations[puller.AnnotationNode] != "node-a" {
		t.Fatalf("unpin on %s", job.Annotations[puller.AnnotationNode])
	}
}

// TestNodeRegisteredAgainKeepsItsPins: a node deleted and registered again
// under the same name (drained for maintenance) keeps its disk, and the
// cache's pins on it: the ledger holds them, and a deletion takes them away.
func TestNodeRegisteredAgainKeepsItsPins(t *testing.T) {
	const img = "registry.example/a:v1"
	for _, seenGone := range []bool{false, true} {
		t.Run(fmt.Sprintf("seen gone %v", seenGone), func(t *testing.T) {
			f := pinnedCache(t, pinConfig(), []string{img})
			if err := f.kube.CoreV1().Nodes().Delete(f.ctx, "node-a", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			f.catchUp()
			if seenGone {
				if _, err := f.pass("web"); err != nil {
					t.Fatal(err)
				}
				f.catchUp()
			}
			f.clock.Step(time.Minute)
			again := newNode("node-a", withRuntime(ctd))
			again.UID = types.UID("0f9e8d7c-6b5a-4321-8765-43210fedcba9")
			if _, err := f.kube.CoreV1().Nodes().Create(f.ctx, again, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			f.catchUp()
			if _, err := f.pass("web"); err != nil {
				t.Fatal(err)
			}
			f.catchUp()
			if s := f.pinState("web", "node-a", img); !s.Held() {
				t.Fatalf("pin on the node registered again: %v; want held", s)
			}
			for _, j := range f.jobs() {
				if err := f.kube.BatchV1().Jobs(j.Namespace).Delete(f.ctx, j.Name, metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			f.catchUp()
			f.deleteCache("web")
			writes, _ := f.syncOnly("web", wCreateJob, wStatus, wDeleteJob)
			if jobs := createdJobs(writes); len(jobs) != 1 || !puller.IsUnpinJob(jobs[0]) {
				t.Errorf("deleted: %s; want the unpin on node-a", describe(writes))
			}
		})
	}
}

// TestUnpinDeadlineGrowsWithTheNodes: a deleted cache pinned on more nodes
// than one wave of Jobs takes waits longer than --unpin-timeout: a wave's
// time more for each further wave.
func TestUnpinDeadlineGrowsWithTheNodes(t *testing.T) {
	const img = "registry.example/a:v1"
	cfg := pinConfig()
	cfg.MaxInFlightJobs = 2
	var nodes []*corev1.Node
	for i := range 7 {
		nodes = append(nodes, newNode(fmt.Sprintf("node-%d", i), withRuntime(ctd)))
	}
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withPin, withImages(img))}, nodes...)
	if _, err := f.pass("web"); err != nil {
		t.Fatal(err)
	}
	f.catchUp()
	for range 40 {
		for _, j := range f.jobs() {
			switch {
			case !puller.IsActive(&j):
			case puller.IsPinJob(&j):
				f.finishPinJob(j, "outcomes p")
			default:
				f.completeJob(j)
			}
		}
		f.clock.Step(time.Second)
		if _, err := f.pass("web"); err != nil {
			t.Fatal(err)
		}
		f.catchUp()
		if f.imageCache("web").Status.Pulls.Pinned == 7 {
			break
		}
	}
	if p := f.imageCache("web").Status.Pulls.Pinned; p != 7 {
		t.Fatalf("pinned %d of 7", p)
	}
	f.deleteCache("web")
	// 7 nodes, 2 at once: 4 waves, 3 past the first. No unpin answers.
	f.syncOnly("web", wCreateJob, wDeleteJob, wStatus)
	f.clock.Step(pins.DefaultUnpinTimeout + time.Second)
	f.syncOnly("web", wCreateJob, wDeleteJob, wStatus)
	if !f.hasFinalizer("web") {
		t.Fatalf("gave up at --unpin-timeout, with more nodes than a wave")
	}
	f.clock.Step(3 * pins.UnpinWave)
	f.syncOnly("web", wDeleteJob, wAnnotation, wStatus)
	if f.hasFinalizer("web") {
		t.Errorf("the finalizer stayed past the deadline")
	}
	f.expectEvent("Warning " + reasons.PinsNotReleased)
}
