package imagecache

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	core "k8s.io/client-go/testing"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// TestJobsThatNeverStart: one Job makes no pod (the Job controller's
// FailedCreate event says why), one pod stays unschedulable, one runs. At
// the start deadline, and not before, the first two are ended with the
// outcome recorded on them, their images fail with the real reason, and
// their throttle slots come back.
func TestJobsThatNeverStart(t *testing.T) {
	cfg := testConfig()
	cfg.Puller.PullDeadline = 5 * time.Minute
	cfg.Puller.StartDeadline = 2 * time.Minute
	cfg.RetainJobs = true // the ended Jobs stay, to be read again
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx:1.27"))},
		newNode("node-0"), newNode("node-1"), newNode("node-2"))
	f.syncStarted("web", times(wCreateJob, 3))
	jobs := f.jobs()
	if len(jobs) != 3 {
		t.Fatalf("%d Jobs, want 3", len(jobs))
	}
	const refused = `Error creating: pods "web-x" is forbidden: error looking up service account team-a/puller: serviceaccount "puller" not found`
	for i, e := range []corev1.Event{
		{ObjectMeta: metav1.ObjectMeta{Name: "old", Namespace: testNS}, Reason: "FailedCreate", Message: "an older refusal",
			LastTimestamp: metav1.NewTime(t0), InvolvedObject: corev1.ObjectReference{Kind: "Job", Name: jobs[0].Name, UID: jobs[0].UID}},
		{ObjectMeta: metav1.ObjectMeta{Name: "new", Namespace: testNS}, Reason: "FailedCreate", Message: refused,
			LastTimestamp: metav1.NewTime(t0.Add(time.Minute)), InvolvedObject: corev1.ObjectReference{Kind: "Job", Name: jobs[0].Name, UID: jobs[0].UID}},
		{ObjectMeta: metav1.ObjectMeta{Name: "other-job", Namespace: testNS}, Reason: "FailedCreate", Message: "not this Job's",
			LastTimestamp: metav1.NewTime(t0.Add(time.Minute)), InvolvedObject: corev1.ObjectReference{Kind: "Job", Name: jobs[1].Name, UID: jobs[1].UID}},
	} {
		if _, err := f.kube.CoreV1().Events(testNS).Create(f.ctx, &e, metav1.CreateOptions{}); err != nil {
			t.Fatal(i, err)
		}
	}
	pod := f.podWith(jobs[1], nil)
	pod.Status.ContainerStatuses = nil
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
		Reason: "Unschedulable", Message: "0/3 nodes are available: 1 Insufficient cpu."}}
	if _, err := f.kube.CoreV1().Pods(testNS).UpdateStatus(f.ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.completeJob(jobs[2])

	// Before the deadline: nothing is ended, and the sync comes back at it.
	f.clock.Step(119 * time.Second)
	writes, after := f.sync("web", wStatus)
	if len(createdJobs(writes)) != 0 || len(patchedJobs(writes)) != 0 {
		t.Errorf("before the start deadline: %s", describe(writes))
	}
	if after != time.Second {
		t.Errorf("requeue after %v, want 1s (the start deadline)", after)
	}

	f.clock.Step(time.Second)
	writes, _ = f.sync("web", times(wPatchJob, 2), wStatus)
	var ended []string
	for _, p := range patchedJobs(writes) {
		ended = append(ended, p.GetName())
		var patch struct {
			Spec struct{ Suspend bool } `json:"spec"`
		}
		if err := json.Unmarshal(p.GetPatch(), &patch); err != nil || !patch.Spec.Suspend {
			t.Errorf("patch of %s: %s; want it suspended", p.GetName(), p.GetPatch())
		}
	}
	if diff := cmp.Diff([]string{jobs[0].Name, jobs[1].Name}, ended); diff != "" {
		t.Errorf("ended Jobs (-want +got):\n%s", diff)
	}
	st := f.imageCache("web").Status
	want := map[string]v1alpha2.NodeReasonMessageList{"nginx:1.27": {
		{Node: "node-0", Reason: "FailedCreate", Message: refused},
		{Node: "node-1", Reason: "Unschedulable", Message: "pod " + pod.Name + " not scheduled within 2m0s: 0/3 nodes are available: 1 Insufficient cpu."},
	}}
	if diff := cmp.Diff(want, st.Failures); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
	if st.Status != v1alpha2.ImageCacheActionStatusFailed || st.Pulls.Succeeded != 1 || st.Pulls.Failed != 2 {
		t.Errorf("status %s pulls %+v, want Failed with 1 pulled, 2 failed", st.Status, st.Pulls)
	}
	if n := f.c.InFlightJobs(); n != 0 {
		t.Errorf("throttle holds %d slots after the Jobs ended, want 0", n)
	}
	// The outcome is on the Jobs: read again, it needs no event.
	f.kube.PrependReactor("list", "events", func(core.Action) (bool, runtime.Object, error) {
		t.Error("events listed again after the outcome was recorded")
		return false, nil, nil
	})
	if w, _ := f.sync("web"); len(w) != 0 {
		t.Errorf("a sync after the end wrote %s", describe(w))
	}
}

// patchedJobs returns the Job patches among actions.
func patchedJobs(actions []core.Action) []core.PatchAction {
	var out []core.PatchAction
	for _, a := range actions {
		if p, ok := a.(core.PatchAction); ok && a.GetResource().Resource == "jobs" {
			out = append(out, p)
		}
	}
	return out
}

// TestStartTimeInTheFuture: a status.startTime ahead of the clock (a leader
// whose clock ran ahead, a hand edit) does not hold new operations back
// until the clock passes it: the update starts now, and its Jobs are made
// on the next pass.
func TestStartTimeInTheFuture(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	f.completeAll()
	f.sync("web", wDeleteJob, wStatus)
	ahead := metav1.NewTime(f.clock.Now().Add(6 * time.Hour).Truncate(time.Second))
	f.edit("web", func(ic *v1alpha2.ImageCache) {
		ic.Status.StartTime = &ahead
		ic.Spec.CacheSpec[0].Images = []string{"nginx", "redis"}
		ic.Generation = 2
	})
	f.clock.Step(time.Second)
	writes, after := f.syncStarted("web", wCreateJob)
	if after > time.Minute {
		t.Errorf("asks to look again after %v", after)
	}
	st := f.imageCache("web").Status
	if st.Reason != v1alpha2.ImageCacheReasonUpdate || !st.StartTime.Time.Before(ahead.Time) {
		t.Errorf("status %s started %v; want the update started now", st.Reason, st.StartTime)
	}
	if jobs := createdJobs(writes); len(jobs) != 1 {
		t.Errorf("update: %s", describe(writes))
	}
}
