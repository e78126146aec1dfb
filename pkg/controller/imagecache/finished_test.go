package imagecache

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// completeJobAt is completeJob with the Job's end at the given time.
func (f *fixture) completeJobAt(job batchv1.Job, at time.Time) {
	f.t.Helper()
	f.pulledBy(job, jobImages(f.t, &job)...)
	f.finishJobAt(job, metav1.NewTime(at))
}

// jobOn is the cache's only Job on a node.
func (f *fixture) jobOn(node string) batchv1.Job {
	f.t.Helper()
	for _, j := range f.jobs() {
		if j.Annotations[puller.AnnotationNode] == node {
			return j
		}
	}
	f.t.Fatalf("no Job on %s", node)
	return batchv1.Job{}
}

// TestFinishedJobsPastTheBoundGoOldestFirst: while the operation goes on,
// the finished Jobs past --max-finished-jobs go, the oldest ended first, in
// the pass whose status write records their outcomes; the pulls they did
// are not done again, and the rest go when the operation completes.
func TestFinishedJobsPastTheBoundGoOldestFirst(t *testing.T) {
	cfg := testConfig()
	cfg.MaxFinishedJobs = 2
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))},
		newNode("n1"), newNode("n2"), newNode("n3"), newNode("n4"))
	f.syncStarted("web", times(wCreateJob, 4))
	oldest := f.jobOn("n3")
	f.completeJobAt(oldest, t0.Add(time.Second))
	f.completeJobAt(f.jobOn("n1"), t0.Add(2*time.Second))
	f.completeJobAt(f.jobOn("n2"), t0.Add(3*time.Second))
	f.clock.Step(5 * time.Second)
	writes, _ := f.sync("web", wStatus, wDeleteJob)
	if got := deletedJobNames(writes); len(got) != 1 || got[0] != oldest.Namespace+"/"+oldest.Name {
		t.Errorf("deleted %v, want the Job that ended first, %s (on n3)", got, oldest.Name)
	}
	if led := f.ledger("web"); led.Get("n3", "docker.io/library/nginx:latest") != ledger.Pulled {
		t.Errorf("the ledger does not record n3's pull, whose Job went: %s", f.entry("web", "n3"))
	}
	f.completeJobAt(f.jobOn("n4"), t0.Add(6*time.Second))
	f.clock.Step(time.Second)
	f.sync("web", times(wDeleteJob, 3), wStatus)
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.Succeeded != 4 {
		t.Errorf("status %s %q, %d pulled; want Succeeded, 4", st.Status, st.Message, st.Pulls.Succeeded)
	}
}

// TestFinishedJobsStayWhenRetained: --job-retention-policy=retain keeps
// every finished Job, whatever --max-finished-jobs says.
func TestFinishedJobsStayWhenRetained(t *testing.T) {
	cfg := testConfig()
	cfg.MaxFinishedJobs = 1
	cfg.RetainJobs = true
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))},
		newNode("n1"), newNode("n2"), newNode("n3"))
	f.syncStarted("web", times(wCreateJob, 3))
	f.completeJobAt(f.jobOn("n1"), t0.Add(time.Second))
	f.completeJobAt(f.jobOn("n2"), t0.Add(2*time.Second))
	f.clock.Step(5 * time.Second)
	f.sync("web", wStatus)
}

// TestFinishedJobOfARetryStays: the finished Job of a node with a pull to
// try again stays, though it ended first, to count the tries; another goes
// in its place.
func TestFinishedJobOfARetryStays(t *testing.T) {
	cfg := retryConfig(time.Hour, 10*time.Minute)
	cfg.MaxFinishedJobs = 1
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx:1.27", "registry.local/app:1"))},
		newNode("n1"), newNode("n2"), newNode("n3"))
	f.syncStarted("web", times(wCreateJob, 3))
	f.failTransiently(f.jobOn("n1"))
	f.clock.Step(time.Second)
	f.sync("web", wPatchJob, wStatus) // the failed try ends, its outcome recorded on the Job
	second := f.jobOn("n2")
	f.completeJobAt(second, t0.Add(2*time.Second))
	f.completeJobAt(f.jobOn("n3"), t0.Add(3*time.Second))
	f.clock.Step(time.Second)
	writes, _ := f.sync("web", wStatus, wDeleteJob)
	if got := deletedJobNames(writes); len(got) != 1 || got[0] != second.Namespace+"/"+second.Name {
		t.Errorf("deleted %v, want %s (on n2): n1's failed try counts the tries", got, second.Name)
	}
}
