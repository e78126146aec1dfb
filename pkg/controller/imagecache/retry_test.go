package imagecache

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/message"
	"kubefledged.io/kube-fledged/pkg/metrics"
	"kubefledged.io/kube-fledged/pkg/puller"
)

const refusedMsg = `rpc error: code = Unknown desc = failed to pull and unpack image "registry.local/app:1": ` +
	`failed to resolve reference "registry.local/app:1": failed to do request: Head "https://registry.local/v2/app/manifests/1": ` +
	`dial tcp 10.0.0.9:443: connect: connection refused`

func retryConfig(deadline, most time.Duration) Config {
	cfg := testConfig()
	cfg.PullRetryDeadline = deadline
	cfg.PullRetryMaxBackoff = most
	cfg.Puller.RetryTransient = true
	return cfg
}

// failTransiently plays the kubelet on the Job's pod: every image but
// registry.local/app:1 pulled, that one refused by a registry that is down.
func (f *fixture) failTransiently(job batchv1.Job) {
	f.t.Helper()
	states := map[string]corev1.ContainerState{}
	for i, img := range jobImages(f.t, &job) {
		if img == "registry.local/app:1" {
			states[puller.ContainerName(i)] = waiting("ErrImagePull", refusedMsg)
		} else {
			states[puller.ContainerName(i)] = terminatedOK(f.clock.Now())
		}
	}
	f.podWith(job, states)
}

// newestJob is the Job created last.
func (f *fixture) newestJob() batchv1.Job {
	f.t.Helper()
	jobs := f.jobs()
	newest := jobs[0]
	for _, j := range jobs[1:] {
		if newest.CreationTimestamp.Before(&j.CreationTimestamp) || (newest.CreationTimestamp.Equal(&j.CreationTimestamp) && j.Name > newest.Name) {
			newest = j
		}
	}
	return newest
}

// TestTransientPullFailureIsRetriedWithBackoff: a pull the registry refuses
// because it is down is not failed: its Job ends as soon as the rest of the
// batch is pulled, the pair waits 10s, then 20s, each try a Job of its own
// with a name of its own, the status says "retrying" with the kubelet's
// message and the next try, a restarted controller keeps the backoff, and
// the try that works makes the cache Succeeded with no failure.
func TestTransientPullFailureIsRetriedWithBackoff(t *testing.T) {
	retriesBefore := testutil.ToFloat64(metrics.PullRetriesTotal.WithLabelValues("ErrImagePull"))
	createsBefore := testutil.ToFloat64(metrics.OperationsTotal.WithLabelValues(v1alpha2.ImageCacheReasonCreate, "Succeeded"))
	cfg := retryConfig(time.Hour, 10*time.Minute)
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx:1.27", "registry.local/app:1"))},
		newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	first := f.jobs()[0]
	f.failTransiently(first)

	f.clock.Step(time.Second)
	ended := f.clock.Now()
	_, requeue := f.sync("web", wPatchJob, wStatus)
	st := f.imageCache("web").Status
	wantMsg := "Pulled 1 of 2 images on 1 node; 1 pending (1 retrying on node-a after ErrImagePull (" + message.Shorten(refusedMsg, 200) +
		"); next try at " + ended.Add(10*time.Second).Format("15:04:05 MST") + ")"
	if st.Status != v1alpha2.ImageCacheActionStatusProcessing || st.Message != wantMsg {
		t.Errorf("after the first try: %s %q\nwant %q", st.Status, st.Message, wantMsg)
	}
	if len(st.Failures) != 0 {
		t.Errorf("a pull to try again is listed in failures: %v", st.Failures)
	}
	if diff := cmp.Diff(v1alpha2.PullCounts{Desired: 2, Succeeded: 1, Pending: 1}, st.Pulls); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if requeue != 10*time.Second {
		t.Errorf("requeue after %s, want 10s (the first backoff)", requeue)
	}
	if got := f.jobs()[0].Annotations[puller.AnnotationEndedAt]; got != ended.UTC().Format(time.RFC3339) {
		t.Errorf("ended-at annotation %q, want %s", got, ended.UTC().Format(time.RFC3339))
	}

	// Before the backoff is over: no Job.
	f.clock.Step(9 * time.Second)
	f.sync("web")
	f.clock.Step(time.Second)
	f.sync("web", wCreateJob)
	second := f.newestJob()
	if second.Name == first.Name || strings.Join(jobImages(t, &second), ",") != "registry.local/app:1" {
		t.Fatalf("the retry is Job %s of %v, want a new Job of the failed image only", second.Name, jobImages(t, &second))
	}
	f.failTransiently(second)
	f.clock.Step(time.Second)
	ended = f.clock.Now()
	f.sync("web", wPatchJob, wStatus)

	// A new controller reads the tries from the Jobs: the second waits 20s.
	f.restart(cfg)
	_, requeue = f.sync("web")
	if requeue != 20*time.Second {
		t.Errorf("after a restart, requeue after %s, want 20s (the second backoff)", requeue)
	}
	if msg := f.imageCache("web").Status.Message; !strings.HasSuffix(msg, "next try at "+ended.Add(20*time.Second).Format("15:04:05 MST")+")") {
		t.Errorf("message after the second try: %q", msg)
	}
	f.clock.Step(20 * time.Second)
	f.sync("web", wCreateJob)
	third := f.newestJob()
	if third.Name == second.Name || third.Name == first.Name {
		t.Fatalf("the third try reuses the name %s", third.Name)
	}
	f.completeJob(third)
	f.clock.Step(time.Second)
	f.sync("web", times(wDeleteJob, 3), wStatus)
	st = f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Message != "Pulled 2 of 2 images on 1 node" || len(st.Failures) != 0 {
		t.Errorf("after the registry came back: %s %q %v", st.Status, st.Message, st.Failures)
	}
	if got := testutil.ToFloat64(metrics.PullRetriesTotal.WithLabelValues("ErrImagePull")) - retriesBefore; got != 2 {
		t.Errorf(`pull_retries_total{reason="ErrImagePull"} grew by %v, want 2`, got)
	}
	if got := testutil.ToFloat64(metrics.OperationsTotal.WithLabelValues(v1alpha2.ImageCacheReasonCreate, "Succeeded")) - createsBefore; got != 1 {
		t.Errorf(`imagecache_operations_total{operation="ImageCacheCreate",result="Succeeded"} grew by %v, want 1`, got)
	}
}

// TestTransientPullFailureFailsAfterTheRetryDeadline: once
// --pull-retry-deadline after the operation's start has passed, the pair's
// failure is recorded, with the kubelet's reason and message, and the
// operation completes; with no retry deadline a refused pull fails as
// before.
func TestTransientPullFailureFailsAfterTheRetryDeadline(t *testing.T) {
	cfg := retryConfig(30*time.Second, 10*time.Minute)
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx:1.27", "registry.local/app:1"))},
		newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	f.failTransiently(f.jobs()[0])
	for i := 0; i < 2; i++ {
		f.clock.Step(time.Second)
		f.sync("web", wPatchJob, wStatus)
		_, requeue := f.sync("web")
		f.clock.Step(requeue)
		if i == 0 {
			f.sync("web", wCreateJob)
			f.failTransiently(f.newestJob())
		}
	}
	// 1+10+1 s, then the second wait of 20s is cut to the deadline, which
	// fails the pair.
	f.sync("web", times(wDeleteJob, 2), wStatus)
	st := f.imageCache("web").Status
	want := map[string]v1alpha2.NodeReasonMessageList{
		"registry.local/app:1": {{Node: "node-a", Reason: "ErrImagePull", Message: refusedMsg}},
	}
	if st.Status != v1alpha2.ImageCacheActionStatusFailed || st.Message != "Pulled 1 of 2 images on 1 node; 1 failed" {
		t.Errorf("after the deadline: %s %q", st.Status, st.Message)
	}
	if diff := cmp.Diff(want, st.Failures); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
	if got := f.clock.Now().Sub(t0); got < 30*time.Second || got > 31*time.Second {
		t.Errorf("failed %s after the start, want at the 30s deadline", got)
	}
}

// TestARetriedPullThatArrivesIsPulled: after a try the controller ended, the
// node lists the image (the runtime finished the pull whose pod went): the
// pair is pulled, not already present, and needs no other try.
func TestARetriedPullThatArrivesIsPulled(t *testing.T) {
	f := newFixture(t, retryConfig(time.Hour, 10*time.Minute), []*v1alpha2.ImageCache{newImageCache("web",
		withImages("nginx:1.27", "registry.local/app:1"))}, newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	f.failTransiently(f.jobs()[0])
	f.clock.Step(time.Second)
	f.sync("web", wPatchJob, wStatus)
	n, _ := f.kube.CoreV1().Nodes().Get(f.ctx, "node-a", metav1.GetOptions{})
	withNodeImages("registry.local/app:1")(n)
	n.ResourceVersion = "2"
	if _, err := f.kube.CoreV1().Nodes().UpdateStatus(f.ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.catchUp()
	f.clock.Step(5 * time.Second)
	f.sync("web", wDeleteJob, wStatus)
	st := f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.AlreadyPresent != 0 || st.Message != "Pulled 2 of 2 images on 1 node" {
		t.Errorf("%s %q %+v; want both pulled", st.Status, st.Message, st.Pulls)
	}
}
