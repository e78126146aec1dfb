package imagecache

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	core "k8s.io/client-go/testing"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// refuseJobsFor makes the API server refuse, with err, every Job created for
// one of the nodes.
func refuseJobsFor(f *fixture, err error, nodes ...string) {
	f.kube.PrependReactor("create", "jobs", func(a core.Action) (bool, runtime.Object, error) {
		for _, n := range nodes {
			if a.(core.CreateAction).GetObject().(*batchv1.Job).Annotations[puller.AnnotationNode] == n {
				return true, nil, err
			}
		}
		return false, nil, nil
	})
}

// TestRefusedJobsFailTheirNodeOnly: the API server refuses the Jobs of two
// nodes (an admission policy, a quota). Their pairs fail with its message and
// reason JobRejected, every other node gets its Job, a Warning event and the
// JobsRejected condition say so, and a second sync asks for nothing again.
func TestRefusedJobsFailTheirNodeOnly(t *testing.T) {
	var nodes []*corev1.Node
	for i := range 6 {
		nodes = append(nodes, newNode(fmt.Sprintf("node-%d", i)))
	}
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", "redis"))}, nodes...)
	refusal := apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "x",
		errors.New("ValidatingAdmissionPolicy 'no-jobs-on-node-0' denied request: not on this node"))
	refuseJobsFor(f, refusal, "node-0", "node-3")
	f.events()

	f.syncStarted("web", times(wCreateJob, 6), wStatus)
	var on []string
	for _, j := range f.jobs() {
		on = append(on, j.Annotations[puller.AnnotationNode])
	}
	if diff := cmp.Diff([]string{"node-1", "node-2", "node-4", "node-5"}, sortStrings(on)); diff != "" {
		t.Errorf("nodes with a Job (-want +got):\n%s", diff)
	}
	if n := f.c.InFlightJobs(); n != 4 {
		t.Errorf("throttle holds %d slots, want 4 (the refused Jobs give theirs back)", n)
	}
	st := f.imageCache("web").Status
	want := v1alpha2.PullCounts{Desired: 12, Failed: 4, Pending: 8}
	if st.Pulls != want {
		t.Errorf("pulls %+v, want %+v", st.Pulls, want)
	}
	for _, img := range []string{"nginx", "redis"} {
		var got []string
		for _, nrm := range st.Failures[img] {
			if nrm.Reason != reasons.JobRejected || nrm.Message != refusal.Error() {
				t.Errorf("%s on %s: %s %q, want %s with the API server's message", img, nrm.Node, nrm.Reason, nrm.Message, reasons.JobRejected)
			}
			got = append(got, nrm.Node)
		}
		if diff := cmp.Diff([]string{"node-0", "node-3"}, got); diff != "" {
			t.Errorf("%s failed on (-want +got):\n%s", img, diff)
		}
	}
	c := meta.FindStatusCondition(st.Conditions, v1alpha2.ConditionJobsRejected)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != reasons.JobRejected ||
		c.Message != "The API server refused the Jobs for 2 nodes (node-0, node-3); for node-0: "+refusal.Error() {
		t.Errorf("JobsRejected %+v", c)
	}
	f.expectEvent("Warning JobRejected The API server refused the Jobs for 2 nodes (node-0, node-3): " + refusal.Error())

	// Nothing new: no create is tried again, nothing is written.
	if w, _ := f.sync("web"); len(w) != 0 {
		t.Errorf("second sync wrote %s", describe(w))
	}

	// The others finish: Failed, with the refused pairs, and the condition stays.
	f.completeAll()
	f.sync("web", times(wDeleteJob, 4), wStatus)
	st = f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusFailed || st.Pulls.Succeeded != 8 || st.Pulls.Failed != 4 {
		t.Errorf("status %s pulls %+v, want Failed with 8 pulled and 4 refused", st.Status, st.Pulls)
	}
	if c := meta.FindStatusCondition(st.Conditions, v1alpha2.ConditionJobsRejected); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("JobsRejected %+v after the operation, want True while its failures stand", c)
	}

	// An update tries the failed pulls again; the API server now accepts
	// them, and the condition turns False.
	f.kube.ReactionChain = f.kube.ReactionChain[1:]
	f.edit("web", func(ic *v1alpha2.ImageCache) {
		ic.Generation = 2
		ic.Spec.CacheSpec[0].Images = append(ic.Spec.CacheSpec[0].Images, "busybox")
	})
	f.clock.Step(time.Second) // an operation's epoch is later than the last one's
	writes, _ := f.syncStarted("web", times(wCreateJob, 6))
	if n := len(createdJobs(writes)); n != 6 {
		t.Errorf("%d Jobs after the update, want 6 (every node has a pull to do)", n)
	}
	st = f.imageCache("web").Status
	if c := meta.FindStatusCondition(st.Conditions, v1alpha2.ConditionJobsRejected); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("JobsRejected %+v once no Job is refused, want False", c)
	}
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestRefusalsAreRecordedWhenACreateFailsToo: in a pass where one node's Job
// is refused (403) and another's create fails with a server error, the
// refusal is written to the status before the pass returns the error to be
// retried; the retry does not ask for the refused Job again.
func TestRefusalsAreRecordedWhenACreateFailsToo(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))},
		newNode("node-0"), newNode("node-1"))
	refusal := apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "x", errors.New(`admission webhook "policy" denied the request`))
	refuseJobsFor(f, refusal, "node-0")
	refuseJobsFor(f, apierrors.NewInternalError(errors.New("etcd leader changed")), "node-1")
	f.sync("web", wStatus) // records the start
	if _, err := f.pass("web"); err == nil || !strings.Contains(err.Error(), "etcd leader changed") {
		t.Fatalf("sync: %v; want the server error, to be retried", err)
	}
	f.catchUp()
	st := f.imageCache("web").Status
	if st.Pulls.Failed != 1 || st.Pulls.Pending != 1 || len(st.Failures["nginx"]) != 1 || st.Failures["nginx"][0].Node != "node-0" {
		t.Errorf("after the pass: %+v %v; want node-0's refusal recorded, node-1 pending", st.Pulls, st.Failures)
	}
	f.clearActions()
	_, _ = f.pass("web") // node-1 still fails
	for _, j := range f.kube.Actions() {
		if c, ok := j.(core.CreateAction); ok && c.GetObject().(*batchv1.Job).Annotations[puller.AnnotationNode] == "node-0" {
			t.Errorf("the retry asked again for the refused Job of node-0")
		}
	}
}

// TestQuotaRefusalIsRetried: a refusal by a ResourceQuota is transient by
// nature (Jobs finish and free the quota), so the Kubernetes controllers
// retry it with backoff, and so does this one: the pairs stay pending, not
// failed, the sync returns the error (the work queue retries it with
// backoff) with a Warning event, and once the quota frees the Job is made.
func TestQuotaRefusalIsRetried(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"))
	quota := apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "x",
		errors.New("exceeded quota: jobs, requested: count/jobs.batch=1, used: count/jobs.batch=10, limited: count/jobs.batch=10"))
	refuseJobsFor(f, quota, "node-a")
	f.sync("web", wStatus) // starts the operation
	f.events()
	_, err := f.pass("web")
	if err == nil || !strings.Contains(err.Error(), "exceeded quota") {
		t.Fatalf("sync err %v, want the quota refusal, to be retried with backoff", err)
	}
	f.writes()
	f.catchUp()
	st := f.imageCache("web").Status
	if st.Pulls.Failed != 0 || st.Pulls.Pending != 1 || len(st.Failures) != 0 {
		t.Errorf("pulls %+v failures %v; want the pair pending", st.Pulls, st.Failures)
	}
	f.expectEvent("Warning QuotaExceeded")
	f.kube.ReactionChain = f.kube.ReactionChain[1:] // the quota frees
	if writes, _ := f.sync("web", wCreateJob); len(createdJobs(writes)) != 1 {
		t.Errorf("once the quota frees: %s", describe(writes))
	}
}

// TestQuotaRefusalMakesRoom: the cache's own finished Jobs count against a
// quota of Jobs until its operation completes. When the quota refuses the
// next node's Job, the finished ones, their outcomes written, are deleted
// to make room, and the next try gets in.
func TestQuotaRefusalMakesRoom(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"), newNode("node-b"))
	quota := apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "x",
		errors.New("exceeded quota: one-job, requested: count/jobs.batch=1, used: count/jobs.batch=1, limited: count/jobs.batch=1"))
	refuseJobsFor(f, quota, "node-b")
	f.sync("web", wStatus) // starts the operation
	if _, err := f.pass("web"); err == nil {
		t.Fatal("node-b's Job got in under the quota")
	}
	f.writes()
	f.catchUp()
	f.completeAll() // node-a's Job
	_, err := f.pass("web")
	if err == nil || !strings.Contains(err.Error(), "exceeded quota") {
		t.Fatalf("sync err %v, want the quota refusal", err)
	}
	writes := f.writes()
	if got := writeList(writes); !slices.Equal(got, []string{wCreateJob, wDeleteJob, wStatus}) {
		t.Errorf("writes %v; want node-b's refused create, the status, and node-a's finished Job deleted", got)
	}
	f.catchUp()
	if st := f.imageCache("web").Status; st.Pulls.Succeeded != 1 || st.Pulls.Pending != 1 {
		t.Errorf("pulls %+v; want node-a's recorded, node-b's pending", st.Pulls)
	}
	f.kube.ReactionChain = f.kube.ReactionChain[1:] // the quota has room again
	if writes, _ := f.sync("web", wCreateJob); len(createdJobs(writes)) != 1 {
		t.Errorf("once there is room: %s", describe(writes))
	}
}
