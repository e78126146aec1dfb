package imagecache

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/remover"
)

// TestRefreshAnnotation: the annotation starts a refresh that pulls again, and
// is removed when the refresh is done.
func TestRefreshAnnotation(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	f.completeAll()
	f.sync("web", wDeleteJob, wStatus)
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Fatalf("status %s", st.Status)
	}
	f.annotate("web", v1alpha2.AnnotationRefresh)
	f.clock.Step(2 * time.Second)
	writes, _ := f.syncStarted("web", wCreateJob)
	if len(createdJobs(writes)) != 1 {
		t.Fatalf("refresh did not pull again: %s", describe(writes))
	}
	st := f.imageCache("web").Status
	if st.Reason != v1alpha2.ImageCacheReasonRefresh || st.Status != v1alpha2.ImageCacheActionStatusProcessing {
		t.Errorf("status %s %s", st.Reason, st.Status)
	}
	if _, ok := f.imageCache("web").Annotations[v1alpha2.AnnotationRefresh]; !ok {
		t.Error("annotation removed before the refresh was done")
	}
	f.completeAll()
	f.sync("web", wDeleteJob, wAnnotation, wStatus)
	got := f.imageCache("web")
	if _, ok := got.Annotations[v1alpha2.AnnotationRefresh]; ok {
		t.Error("annotation still there after the refresh")
	}
	if got.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded || got.Status.Reason != v1alpha2.ImageCacheReasonRefresh {
		t.Errorf("status %s %s", got.Status.Reason, got.Status.Status)
	}
	// And no second refresh.
	if writes, _ := f.sync("web"); len(writes) != 0 {
		t.Errorf("after the refresh: %s", describe(writes))
	}
}

// TestPeriodicRefresh: a refresh is scheduled by requeue, and runs when due.
func TestPeriodicRefresh(t *testing.T) {
	cfg := testConfig()
	cfg.RefreshFrequency = 15 * time.Minute
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	f.completeAll()
	_, after := f.sync("web", wDeleteJob, wStatus)
	if after != 15*time.Minute {
		t.Errorf("requeue after %v, want 15m", after)
	}
	f.clock.Step(after)
	writes, _ := f.syncStarted("web", wCreateJob)
	if len(createdJobs(writes)) != 1 || f.imageCache("web").Status.Reason != v1alpha2.ImageCacheReasonRefresh {
		t.Errorf("periodic refresh: %s", describe(writes))
	}
}

// TestRestartResumes: a new controller on the same API state neither re-pulls
// what is done nor duplicates a running Job.
func TestRestartResumes(t *testing.T) {
	cfg := testConfig()
	cfg.ImagesPerJob = 1
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", "redis"))}, newNode("node-a"), newNode("node-b"))
	f.syncStarted("web", times(wCreateJob, 2))
	// node-a's first Job completes; node-b's still runs.
	for _, j := range f.jobs() {
		if j.Annotations[puller.AnnotationNode] == "node-a" {
			f.completeJob(j)
		}
	}
	f.sync("web", wCreateJob, wStatus) // node-a gets its second Job
	// A new controller, from the API state only.
	f.restart(cfg)
	writes, _ := f.sync("web")
	if len(createdJobs(writes)) != 0 {
		t.Errorf("restarted controller created Jobs: %s", describe(writes))
	}
	for round := 0; round < 4; round++ {
		f.completeAll()
		f.syncOnly("web", wCreateJob, wDeleteJob, wStatus)
	}
	st := f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.Succeeded != 4 {
		t.Errorf("status %s %+v", st.Status, st.Pulls)
	}
	if st.Reason != v1alpha2.ImageCacheReasonCreate {
		t.Errorf("reason %s: the restart started a new operation", st.Reason)
	}
}

// TestPurgeAnnotation: the purge annotation removes the cache's images with
// one delete Job per node, on the runtime's socket; a node with an unknown
// runtime fails; the annotation goes when done, and nothing is pulled again.
func TestPurgeAnnotation(t *testing.T) {
	cfg := testConfig()
	cfg.RefreshFrequency = 15 * time.Minute
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", "redis"))},
		newNode("node-a", withRuntime("containerd://1.6.20")), newNode("node-b", withRuntime("cri-o://1.30.0")),
		newNode("node-c", withRuntime("docker://24.0.7")))
	jobs := createdJobs(f.createThenPurge("web"))
	sockets := map[string]string{}
	for _, j := range jobs {
		if !puller.IsDeleteJob(j) {
			t.Errorf("job %s is not a delete Job", j.Name)
		}
		sockets[j.Annotations[puller.AnnotationNode]] = j.Spec.Template.Spec.Volumes[0].HostPath.Path
		if diff := cmp.Diff([]string{"nginx", "redis"}, jobImages(t, j)); diff != "" {
			t.Errorf("delete Job images (-want +got):\n%s", diff)
		}
	}
	want := map[string]string{"node-a": "/run/containerd/containerd.sock", "node-b": "/var/run/crio/crio.sock"}
	if diff := cmp.Diff(want, sockets); diff != "" {
		t.Errorf("delete Jobs by node and socket (-want +got):\n%s", diff)
	}
	// node-a removes everything; node-b fails on redis (in use).
	for _, j := range f.jobs() {
		switch j.Annotations[puller.AnnotationNode] {
		case "node-a":
			f.completeJob(j)
		case "node-b":
			pod := f.podWith(j, map[string]corev1.ContainerState{"remove-images": {Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 1, Message: remover.FormatSummary([]remover.Result{{Outcome: cri.Removed},
					{Outcome: cri.Failed, Message: "rpc error: code = FailedPrecondition desc = image in use"}}, remover.SummaryLimit)}}})
			_ = pod
			j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded"}}
			f.updateJob(&j)
		}
	}
	f.sync("web", times(wDeleteJob, 2), wAnnotation, wStatus)
	got := f.imageCache("web")
	st := got.Status
	if st.Reason != v1alpha2.ImageCacheReasonPurge || st.Status != v1alpha2.ImageCacheActionStatusFailed {
		t.Errorf("status %s %s", st.Reason, st.Status)
	}
	if st.Message != "Removed 3 of 6 images on 3 nodes; 3 failed" {
		t.Errorf("message %q", st.Message)
	}
	wantFailures := map[string]v1alpha2.NodeReasonMessageList{
		"nginx": {{Node: "node-c", Reason: "UnknownRuntime", Message: `unknown container runtime "docker://24.0.7": only containerd and cri-o have a known socket; set --cri-socket-path`}},
		"redis": {
			{Node: "node-b", Reason: "RemoveFailed", Message: "rpc error: code = FailedPrecondition desc = image in use"},
			{Node: "node-c", Reason: "UnknownRuntime", Message: `unknown container runtime "docker://24.0.7": only containerd and cri-o have a known socket; set --cri-socket-path`},
		},
	}
	if diff := cmp.Diff(wantFailures, st.Failures); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
	if _, ok := got.Annotations[v1alpha2.AnnotationPurge]; ok {
		t.Error("purge annotation still there")
	}
	if c := meta.FindStatusCondition(st.Conditions, v1alpha2.ConditionReady); c == nil || c.Status != metav1.ConditionFalse || c.Reason != "Purged" {
		t.Errorf("Ready %+v", c)
	}
	// Purged stays purged: no pulls, no periodic refresh.
	f.clock.Step(time.Hour)
	if writes, after := f.sync("web"); len(createdJobs(writes)) != 0 || after != 0 {
		t.Errorf("after the purge: %s, requeue after %v", describe(writes), after)
	}
	// The configured socket wins over detection. The images are pulled
	// again first: a purge removes only what the cache's own pulls brought.
	cfg.CRISocketPath = "/custom/cri.sock"
	f.restart(cfg)
	f.annotate("web", v1alpha2.AnnotationRefresh)
	f.clock.Step(2 * time.Second)
	f.syncStarted("web", times(wCreateJob, 3))
	f.completeAll()
	f.sync("web", times(wDeleteJob, 3), wAnnotation, wStatus)
	f.annotate("web", v1alpha2.AnnotationPurge)
	f.clock.Step(2 * time.Second)
	writes, _ := f.syncStarted("web", times(wCreateJob, 3))
	for _, j := range createdJobs(writes) {
		if p := j.Spec.Template.Spec.Volumes[0].HostPath.Path; p != "/custom/cri.sock" {
			t.Errorf("node %s: socket %s", j.Annotations[puller.AnnotationNode], p)
		}
	}
	if len(createdJobs(writes)) != 3 {
		t.Errorf("with --cri-socket-path every node gets a delete Job: %s", describe(writes))
	}
}

// TestUpdateRemovesDroppedImages: an image dropped from the spec is removed
// from the nodes this cache pulled it onto, but not where another cache wants it.
func TestUpdateRemovesDroppedImages(t *testing.T) {
	other := newImageCache("other", withSelectedImages(map[string]string{"team": "b"}, "redis"))
	other.Status.StartTime = &metav1.Time{Time: t0} // settled long ago; not synced here
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", "redis")), other},
		newNode("node-a", withRuntime("containerd://1.6.20")), newNode("node-b", withRuntime("containerd://1.6.20"), withLabels("team", "b")))
	writes := f.createThenSetImages("web", "nginx")
	jobs := createdJobs(writes)
	if len(jobs) != 1 || !puller.IsDeleteJob(jobs[0]) || jobs[0].Annotations[puller.AnnotationNode] != "node-a" {
		t.Fatalf("want one delete Job, on node-a only: %s", describe(writes))
	}
	if diff := cmp.Diff([]string{"docker.io/library/redis:latest"}, jobImages(t, jobs[0])); diff != "" {
		t.Errorf("removal images (-want +got):\n%s", diff)
	}
	st := f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusProcessing || !strings.Contains(st.Message, "removing 1 dropped from the spec") {
		t.Errorf("status %s %q", st.Status, st.Message)
	}
	f.completeAll()
	f.sync("web", wDeleteJob, wStatus)
	st = f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Message != "Pulled 2 of 2 images on 2 nodes" || st.Reason != v1alpha2.ImageCacheReasonUpdate {
		t.Errorf("after the removal: %s %q", st.Status, st.Message)
	}
	if writes, _ := f.sync("web"); len(writes) != 0 {
		t.Errorf("nothing left to do, yet: %s", describe(writes))
	}
}

// TestWhatAJobPulledIsNotAlreadyPresent: while a pull Job runs, its node
// comes to list the images the Job pulled, before the pod's status says so
// (the kubelet writes it once its pulls, serialized, are all done); they are
// counted pulled, by the Job's outcome, not already present.
func TestWhatAJobPulledIsNotAlreadyPresent(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx:1.27", "models/big:1"))},
		newNode("node-a"))
	writes, _ := f.syncStarted("web", wCreateJob)
	job := *createdJobs(writes)[0]
	for _, j := range f.jobs() {
		job = j
	}
	states := map[string]corev1.ContainerState{}
	for i := range jobImages(t, &job) {
		states[puller.ContainerName(i)] = waiting("ContainerCreating", "")
	}
	f.podWith(job, states)
	// The node lists nginx, which the Job pulled; the big image pulls on.
	n, _ := f.kube.CoreV1().Nodes().Get(f.ctx, "node-a", metav1.GetOptions{})
	withNodeImages("docker.io/library/nginx:1.27")(n)
	n.ResourceVersion = "2"
	if _, err := f.kube.CoreV1().Nodes().UpdateStatus(f.ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.catchUp()
	f.clock.Step(30 * time.Second)
	f.sync("web") // nothing settles
	if p := f.imageCache("web").Status.Pulls; p.AlreadyPresent != 0 || p.Pending != 2 {
		t.Errorf("while the Job runs: %+v, want both pending, not already present", p)
	}
	f.completeJob(job)
	f.sync("web", wDeleteJob, wStatus)
	if p := f.imageCache("web").Status.Pulls; p.Succeeded != 2 || p.AlreadyPresent != 0 {
		t.Errorf("after the Job: %+v, want both pulled", p)
	}
}

// TestRemovedImagesAreNotTakenAsPresent: right after a purge, a node still
// reporting the removed image is pulled onto, not trusted.
func TestRemovedImagesAreNotTakenAsPresent(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("redis:7"))},
		newNode("node-a", withRuntime("containerd://1.6.20")))
	writes := f.createThenPurge("web")
	if jobs := createdJobs(writes); len(jobs) != 1 || !puller.IsDeleteJob(jobs[0]) {
		t.Fatalf("purge: %s; want the delete Job", describe(writes))
	}
	// The node lists redis, as its kubelet did before the removal.
	n, _ := f.kube.CoreV1().Nodes().Get(f.ctx, "node-a", metav1.GetOptions{})
	withNodeImages("docker.io/library/redis:7")(n)
	n.ResourceVersion = "2" // as the API server would
	if _, err := f.kube.CoreV1().Nodes().UpdateStatus(f.ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	annotate := func(key string) {
		f.annotate("web", key)
		f.clock.Step(2 * time.Second)
	}
	f.completeAll() // the delete Job
	f.sync("web", wDeleteJob, wAnnotation, wStatus)
	if st := f.imageCache("web").Status; st.Reason != v1alpha2.ImageCacheReasonPurge || st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Ledger.RemovedAt == 0 {
		t.Fatalf("purge: %s %s %+v", st.Reason, st.Status, st.Ledger)
	}
	// The node still lists redis (its status lags): a refresh pulls it.
	annotate(v1alpha2.AnnotationRefresh)
	writes, _ = f.syncStarted("web", wCreateJob)
	if jobs := createdJobs(writes); len(jobs) != 1 || puller.IsDeleteJob(jobs[0]) {
		t.Errorf("after the purge, a refresh must pull: %s", describe(writes))
	}
	f.completeAll()
	f.sync("web", wDeleteJob, wAnnotation, wStatus)
	// Long after, the node's list is trusted again.
	f.clock.Step(time.Hour)
	annotate(v1alpha2.AnnotationRefresh)
	writes, _ = f.sync("web", times(wAnnotation, 2), wStatus) // starts (its annotation taken) and, with nothing to pull, completes (consumed)
	if len(createdJobs(writes)) != 0 || f.imageCache("web").Status.Pulls.AlreadyPresent != 1 {
		t.Errorf("long after the purge: %s, %+v", describe(writes), f.imageCache("web").Status.Pulls)
	}
}

// TestRefreshAskedAgainWhileOneRuns: a refresh asked while another runs
// (the annotation set anew, as kubectl fledged refresh does) is not answered
// by the one that runs, which began before it was asked: that one leaves the
// annotation when it completes, and a new refresh runs, which consumes it.
// So refresh --wait follows a refresh that began after it asked.
func TestRefreshAskedAgainWhileOneRuns(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	f.completeAll()
	f.sync("web", wDeleteJob, wStatus)
	f.annotate("web", v1alpha2.AnnotationRefresh)
	f.clock.Step(2 * time.Second)
	f.syncStarted("web", wCreateJob)
	first := f.imageCache("web").Status.StartTime
	// Asked again while it runs.
	f.edit("web", func(ic *v1alpha2.ImageCache) { ic.Annotations[v1alpha2.AnnotationRefresh] = "" })
	f.completeAll()
	f.sync("web", wDeleteJob, wStatus)
	ic := f.imageCache("web")
	if _, asked := ic.Annotations[v1alpha2.AnnotationRefresh]; !asked {
		t.Fatalf("the refresh that began at %s consumed the request made after it began", first.UTC().Format(time.RFC3339))
	}
	f.clock.Step(2 * time.Second)
	f.syncStarted("web", wCreateJob)
	if st := f.imageCache("web").Status; st.Reason != v1alpha2.ImageCacheReasonRefresh || !st.StartTime.After(first.Time) {
		t.Fatalf("after the first refresh: %s started at %v; want a new refresh", st.Reason, st.StartTime)
	}
	f.completeAll()
	f.sync("web", wDeleteJob, wAnnotation, wStatus)
	if _, asked := f.imageCache("web").Annotations[v1alpha2.AnnotationRefresh]; asked {
		t.Error("the refresh that answered the request left its annotation")
	}
	if writes, _ := f.sync("web"); len(writes) != 0 {
		t.Errorf("after the second refresh: %s; want nothing", describe(writes))
	}
}
