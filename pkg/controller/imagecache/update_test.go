package imagecache

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/throttle"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// failJob plays the kubelet and the Job controller for a pull Job whose
// every image failed to pull with the message.
func (f *fixture) failJob(job batchv1.Job, reason, message string) {
	f.t.Helper()
	states := map[string]corev1.ContainerState{}
	for i := range jobImages(f.t, &job) {
		states[puller.ContainerName(i)] = waiting(reason, message)
	}
	f.podWith(job, states)
	job.Status.Conditions = append(job.Status.Conditions,
		batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "DeadlineExceeded"})
	f.updateJob(&job)
}

// TestUpdateRetriesFailuresWithItsOwnJobs: a pull that failed with 401 is
// tried again by the update that fixes the pull secret, with Jobs retained:
// the update judges only its own Jobs, so the earlier failure does not come
// back; after the first operation ended, and while it still ran.
func TestUpdateRetriesFailuresWithItsOwnJobs(t *testing.T) {
	const unauthorized = "failed to pull and unpack image: 401 Unauthorized"
	for _, whileRunning := range []bool{false, true} {
		name := map[bool]string{false: "after the operation", true: "while it runs"}[whileRunning]
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			cfg.RetainJobs = true
			f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("registry.example/private/app:v1"))},
				newNode("node-a"), newNode("node-b"))
			f.syncStarted("web", times(wCreateJob, 2))
			for _, j := range f.jobs() {
				if j.Annotations[puller.AnnotationNode] == "node-a" || !whileRunning {
					f.failJob(j, "ErrImagePull", unauthorized)
				}
			}
			f.sync("web", wStatus)
			st := f.imageCache("web").Status
			if st.Pulls.Failed == 0 {
				t.Fatalf("the 401 is not recorded: %+v", st.Pulls)
			}
			f.edit("web", func(ic *v1alpha2.ImageCache) {
				ic.Spec.ImagePullSecrets = []v1alpha2.ImagePullSecret{{Name: "regcred"}}
				ic.Generation = 2
			})
			f.clock.Step(time.Second)
			writes, _ := f.syncStartedOnly("web", wCreateJob, wDeleteJob)
			st = f.imageCache("web").Status
			if st.Reason != v1alpha2.ImageCacheReasonUpdate || st.Status != v1alpha2.ImageCacheActionStatusProcessing || st.Pulls.Failed != 0 || len(st.Failures) != 0 {
				t.Fatalf("the update brought back the earlier failures: %s %+v %v", st.Status, st.Pulls, st.Failures)
			}
			// The new Jobs carry the secret; the node whose earlier Job
			// still runs waits for it, then gets its own.
			secrets := map[string]string{}
			for _, j := range createdJobs(writes) {
				if ps := j.Spec.Template.Spec.ImagePullSecrets; len(ps) == 1 {
					secrets[j.Annotations[puller.AnnotationNode]] = ps[0].Name
				} else {
					t.Errorf("Job for %s has pull secrets %v", j.Annotations[puller.AnnotationNode], ps)
				}
			}
			want := map[string]string{"node-a": "regcred", "node-b": "regcred"}
			if whileRunning {
				want = map[string]string{"node-a": "regcred"}
			}
			if diff := cmp.Diff(want, secrets); diff != "" {
				t.Fatalf("the update's Jobs by node (-want +got):\n%s", diff)
			}
			if whileRunning {
				// The earlier Job on node-b pulls the image after the
				// update started: the image is there, and that counts.
				for _, j := range f.jobs() {
					if j.Annotations[puller.AnnotationNode] == "node-b" && puller.IsActive(&j) {
						f.completeJob(j)
					}
				}
				writes, _ = f.sync("web", wDeleteJob, wStatus)
				if jobs := createdJobs(writes); len(jobs) != 0 {
					t.Fatalf("after node-b's earlier Job pulled the image: %s; want no Job for it again", describe(writes))
				}
			}
			f.completeAll()
			f.sync("web", wStatus)
			st = f.imageCache("web").Status
			if st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.Succeeded != 2 || len(st.Failures) != 0 {
				t.Errorf("after the update: %s %+v %v", st.Status, st.Pulls, st.Failures)
			}
		})
	}
}

// TestDroppedAndAddedBackIsPulledAgain: an image dropped from the spec is
// removed from the node; added back before that update ends, it is pulled
// again. The Job that pulled it first (retained) is an earlier operation's,
// and does not count.
func TestDroppedAndAddedBackIsPulledAgain(t *testing.T) {
	cfg := testConfig()
	cfg.RetainJobs = true
	cfg.ImagesPerJob = 1
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", "redis"))},
		newNode("node-a", withRuntime("containerd://2.0.0")))
	f.syncStarted("web", wCreateJob)
	f.completeAll()
	f.sync("web", wCreateJob, wStatus)
	f.completeAll()
	f.sync("web", wStatus)
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Fatalf("create: %s %q", st.Status, st.Message)
	}
	// Update 1 drops redis and adds busybox: redis is removed.
	f.edit("web", func(ic *v1alpha2.ImageCache) {
		ic.Spec.CacheSpec[0].Images = []string{"nginx", "busybox"}
		ic.Generation = 2
	})
	f.clock.Step(time.Second)
	writes, _ := f.syncStarted("web", times(wCreateJob, 2), times(wDeleteJob, 2))
	var removal bool
	for _, j := range createdJobs(writes) {
		removal = removal || puller.IsDeleteJob(j)
	}
	if !removal {
		t.Fatalf("update 1: %s; want the removal of redis", describe(writes))
	}
	// Run every Job until redis is removed, but keep the update going
	// (busybox's pull stays running).
	for range 3 {
		for _, j := range f.jobs() {
			if puller.IsActive(&j) && (puller.IsDeleteJob(&j) || jobImages(t, &j)[0] != "busybox") {
				f.completeJob(j)
			}
		}
		f.syncOnly("web", wStatus)
	}
	st := f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusProcessing {
		t.Fatalf("update 1 ended early: %s %q", st.Status, st.Message)
	}
	// Update 2 adds redis back, before update 1 ended.
	f.edit("web", func(ic *v1alpha2.ImageCache) {
		ic.Spec.CacheSpec[0].Images = []string{"nginx", "busybox", "redis"}
		ic.Generation = 3
	})
	f.clock.Step(time.Second)
	f.syncStarted("web", wDeleteJob)
	st = f.imageCache("web").Status
	if st.Pulls.Succeeded != 1 || st.Pulls.Pending != 2 {
		t.Errorf("update 2: %+v; want nginx pulled, busybox and redis pending (redis was removed)", st.Pulls)
	}
	// Until every pull of its own has run, update 2 does not end, and a
	// pull Job of redis comes.
	var redisPulled bool
	for range 6 {
		for _, j := range f.jobs() {
			if puller.IsActive(&j) {
				if !puller.IsDeleteJob(&j) && jobImages(t, &j)[0] == "redis" && puller.JobEpoch(&j) == f.imageCache("web").Status.Ledger.Epoch {
					redisPulled = true
				}
				f.completeJob(j)
			}
		}
		f.syncOnly("web", wCreateJob, wDeleteJob, wStatus)
	}
	st = f.imageCache("web").Status
	if !redisPulled || st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.Succeeded != 3 {
		t.Errorf("update 2: redis pulled by its own Job %v; %s %+v %q", redisPulled, st.Status, st.Pulls, st.Message)
	}
}

// TestAddedBackBeforeItsRemovalWasRecorded: the delete Job of an image
// dropped from the spec finishes, and the image is added back before the
// status records the removal: the update that adds it back pulls it again.
func TestAddedBackBeforeItsRemovalWasRecorded(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", "redis"))},
		newNode("node-a", withRuntime("containerd://2.0.0")))
	writes := f.createThenSetImages("web", "nginx")
	if jobs := createdJobs(writes); len(jobs) != 1 || !puller.IsDeleteJob(jobs[0]) {
		t.Fatalf("update 1: %s; want the removal of redis", describe(writes))
	}
	f.completeAll() // redis is removed; no sync records it
	f.edit("web", func(ic *v1alpha2.ImageCache) {
		ic.Spec.CacheSpec[0].Images = []string{"nginx", "redis"}
		ic.Generation = 3
	})
	f.clock.Step(time.Second)
	writes, _ = f.syncStarted("web", wCreateJob, wDeleteJob)
	jobs := createdJobs(writes)
	if len(jobs) != 1 || puller.IsDeleteJob(jobs[0]) {
		t.Fatalf("update 2: %s; want a pull Job for redis", describe(writes))
	}
	if diff := cmp.Diff([]string{"redis"}, jobImages(t, jobs[0])); diff != "" {
		t.Errorf("update 2's pull (-want +got):\n%s", diff)
	}
}

// TestRemovalWaitingForASlotLooksAgain: an update that only drops an
// image, while another cache holds every Job slot, waits for a slot like a
// pull does: the pass says it is throttled and looks again soon, whether or
// not a slot-freeing event wakes it.
func TestRemovalWaitingForASlotLooksAgain(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInFlightJobs = 1
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", "redis")),
		newImageCache("hang", withImages("hang.invalid/slow"))}, newNode("node-a", withRuntime("containerd://2.0.0")))
	f.syncStarted("web", wCreateJob)
	f.completeAll()
	f.sync("web", wDeleteJob, wStatus)
	f.syncStarted("hang", wCreateJob) // takes the only slot, and keeps it
	f.edit("web", func(ic *v1alpha2.ImageCache) {
		ic.Spec.CacheSpec[0].Images = []string{"nginx"}
		ic.Generation = 2
	})
	f.clock.Step(time.Second)
	f.sync("web", wStatus) // starts the update
	writes, after := f.sync("web")
	if len(createdJobs(writes)) != 0 {
		t.Fatalf("a delete Job with no slot free: %s", describe(writes))
	}
	if after != throttle.ThrottledRetry {
		t.Errorf("the removal waiting for a slot looks again after %v, want %v", after, throttle.ThrottledRetry)
	}
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusProcessing {
		t.Errorf("status %s %q", st.Status, st.Message)
	}
}

// TestRemovalThatCannotBeDoneEnds: an update drops redis, which this cache
// pulled onto node-a, and its removal cannot be done: the node's runtime is
// one no socket is known for, or the API server refuses the delete Job (a
// policy that forbids hostPath). The removal ends: failed with the reason,
// redis no longer this cache's there, the update complete; and the passes
// after it write nothing and create nothing.
func TestRemovalThatCannotBeDoneEnds(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "x",
		errors.New(`admission webhook "policy.example" denied the request: hostPath volumes are not allowed`))
	for _, tc := range []struct {
		name, runtime, reason string
		refuse                bool
		creates               []string
	}{
		{name: "unknown runtime", runtime: "rkt://1.0", reason: reasons.UnknownRuntime},
		{name: "delete Job refused", runtime: "containerd://2.0.0", reason: reasons.JobRejected, refuse: true, creates: []string{wCreateJob}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", "redis"))},
				newNode("node-a", withRuntime(tc.runtime)))
			f.syncStarted("web", wCreateJob)
			f.completeAll()
			f.sync("web", wDeleteJob, wStatus)
			if tc.refuse {
				refuseJobsFor(f, forbidden, "node-a")
			}
			f.edit("web", func(ic *v1alpha2.ImageCache) {
				ic.Spec.CacheSpec[0].Images = []string{"nginx"}
				ic.Generation = 2
			})
			f.clock.Step(time.Second)
			f.syncStarted("web", append(tc.creates, wStatus)...)
			st := f.imageCache("web").Status
			if st.Status == v1alpha2.ImageCacheActionStatusProcessing {
				t.Fatalf("the update goes on: %s %q", st.Status, st.Message)
			}
			if got := st.Failures["docker.io/library/redis:latest"]; len(got) != 1 || got[0].Reason != tc.reason {
				t.Errorf("failures %v, want redis's removal failed with %s", st.Failures, tc.reason)
			}
			if f.ledger("web").Owned("node-a", "docker.io/library/redis:latest") {
				t.Error("redis is still owned on node-a")
			}
			for range 3 {
				f.clock.Step(time.Second)
				if w, after := f.sync("web"); len(w) != 0 || after != 0 {
					t.Fatalf("a pass after the removal ended: %s, after %v", describe(w), after)
				}
			}
		})
	}
}
