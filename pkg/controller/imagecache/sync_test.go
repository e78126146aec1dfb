package imagecache

import (
	"context"
	"errors"
	"fmt"
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
	"k8s.io/apimachinery/pkg/util/wait"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/throttle"
	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/remover"
)

// TestNewCacheCreatesPinnedJobs: a cache over 3 nodes, with one entry for every
// node and one for the backend nodes, gives one Job per node with the right
// pod spec, and a Processing status.
func TestNewCacheCreatesPinnedJobs(t *testing.T) {
	ic := newImageCache("web",
		withImages("nginx:1.27", "docker.io/library/redis:7.4"),
		withSelectedImages(map[string]string{"tier": "backend"}, "ghcr.io/org/api:v2"),
		withPullSecrets("regcred"))
	cfg := testConfig()
	cfg.Puller.ServiceAccountName = "puller"
	cfg.Puller.PriorityClassName = "low"
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{ic},
		newNode("node-a"), newNode("node-b", withLabels("tier", "backend")), newNode("node-c"))

	started, _ := f.sync("web", wStatus)
	writes, _ := f.sync("web", times(wCreateJob, 3))
	jobs := createdJobs(writes)
	if len(jobs) != 3 {
		t.Fatalf("want 3 Jobs, got %d (%s)", len(jobs), describe(writes))
	}
	wantImages := map[string][]string{
		// in the order of the normalised names: docker.io/library/nginx, .../redis, ghcr.io/...
		"node-a": {"nginx:1.27", "docker.io/library/redis:7.4"},
		"node-b": {"nginx:1.27", "docker.io/library/redis:7.4", "ghcr.io/org/api:v2"},
		"node-c": {"nginx:1.27", "docker.io/library/redis:7.4"},
	}
	for _, job := range jobs {
		node := job.Annotations[puller.AnnotationNode]
		spec := job.Spec.Template.Spec
		if diff := cmp.Diff(wantImages[node], jobImages(t, job)); diff != "" {
			t.Errorf("%s: images (-want +got):\n%s", node, diff)
		}
		if diff := cmp.Diff(map[string]string{"kubernetes.io/hostname": node}, spec.NodeSelector); diff != "" {
			t.Errorf("%s: nodeSelector (-want +got):\n%s", node, diff)
		}
		if diff := cmp.Diff(puller.DefaultTolerations(), spec.Tolerations); diff != "" {
			t.Errorf("%s: tolerations (-want +got):\n%s", node, diff)
		}
		if diff := cmp.Diff([]corev1.LocalObjectReference{{Name: "regcred"}}, spec.ImagePullSecrets); diff != "" {
			t.Errorf("%s: pull secrets (-want +got):\n%s", node, diff)
		}
		n := int64(len(wantImages[node]))
		if got := ptr.Deref(job.Spec.ActiveDeadlineSeconds, 0); got != n*60+30 {
			t.Errorf("%s: activeDeadlineSeconds %d, want %d", node, got, n*60+30)
		}
		if ptr.Deref(job.Spec.BackoffLimit, -1) != 0 || spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("%s: backoffLimit %v restartPolicy %s", node, job.Spec.BackoffLimit, spec.RestartPolicy)
		}
		if !ptr.Deref(spec.AutomountServiceAccountToken, true) == false || spec.ServiceAccountName != "puller" || spec.PriorityClassName != "low" {
			t.Errorf("%s: automount %v, service account %q, priority class %q", node, spec.AutomountServiceAccountToken, spec.ServiceAccountName, spec.PriorityClassName)
		}
		if len(spec.InitContainers) != 1 || spec.InitContainers[0].Image != "registry.local/kube-fledged-helper:test" ||
			!cmp.Equal(spec.InitContainers[0].Command, []string{"/fledged-helper", "install", puller.HelperPath}) {
			t.Errorf("%s: init container %+v", node, spec.InitContainers)
		}
		if len(spec.Containers) != len(wantImages[node]) {
			t.Fatalf("%s: %d containers", node, len(spec.Containers))
		}
		for i, c := range spec.Containers {
			if c.Image != wantImages[node][i] || c.Command[0] != puller.HelperPath || c.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("%s: container %d: image %s command %v policy %s", node, i, c.Image, c.Command, c.ImagePullPolicy)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				t.Errorf("%s: container %d has no requests", node, i)
			}
		}
		ref := metav1.GetControllerOf(job)
		if ref == nil || ref.UID != ic.UID || ref.Kind != "ImageCache" {
			t.Errorf("%s: owner %+v", node, ref)
		}
		if job.Labels[puller.LabelCacheUID] != string(ic.UID) || job.Labels[puller.LabelManagedBy] != "kube-fledged" {
			t.Errorf("%s: labels %v", node, job.Labels)
		}
	}
	if len(createdJobs(started)) != 0 {
		t.Errorf("Jobs created before the operation's start was recorded: %s", describe(started))
	}
	ups := statusUpdates(started)
	if len(ups) != 1 || len(statusUpdates(writes)) != 0 {
		t.Fatalf("want 1 status update, then none: got %s; then %s", describe(started), describe(writes))
	}
	st := ups[0].Status
	want := v1alpha2.PullCounts{Desired: 7, Pending: 7}
	if diff := cmp.Diff(want, st.Pulls); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if st.Status != v1alpha2.ImageCacheActionStatusProcessing || st.Reason != v1alpha2.ImageCacheReasonCreate ||
		st.ObservedGeneration != 1 || st.NodesMatched != 3 || st.StartTime == nil || st.CompletionTime != nil {
		t.Errorf("status %+v", st)
	}
	if c := meta.FindStatusCondition(st.Conditions, v1alpha2.ConditionProgressing); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Progressing %+v", c)
	}
	f.expectEvent("Normal Started ImageCacheCreate started")
}

// TestBatching: 25 images with 10 per Job gives 3 Jobs per node, one at a
// time, and then Succeeded.
func TestBatching(t *testing.T) {
	var imgs []string
	for i := range 25 {
		imgs = append(imgs, "registry.local/app"+string(rune('a'+i))+":v1")
	}
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("big", withImages(imgs...))},
		newNode("node-a"), newNode("node-b"))
	sizes := map[string][]int{}
	f.sync("big", wStatus) // records the operation's start
	for round := range 5 {
		writes, _ := f.syncOnly("big", wCreateJob, wDeleteJob, wStatus)
		for _, j := range createdJobs(writes) {
			node := j.Annotations[puller.AnnotationNode]
			sizes[node] = append(sizes[node], len(j.Spec.Template.Spec.Containers))
		}
		active := 0
		for _, j := range f.jobs() {
			if puller.IsActive(&j) {
				active++
			}
		}
		if active > 2 {
			t.Fatalf("round %d: %d active Jobs for 2 nodes; want at most one per node", round, active)
		}
		f.completeAll()
	}
	want := map[string][]int{"node-a": {10, 10, 5}, "node-b": {10, 10, 5}}
	if diff := cmp.Diff(want, sizes); diff != "" {
		t.Errorf("Job sizes per node (-want +got):\n%s", diff)
	}
	st := f.imageCache("big").Status
	if st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.Succeeded != 50 {
		t.Errorf("status %s, pulls %+v", st.Status, st.Pulls)
	}
}

// TestAllSucceeded: completed Jobs give Succeeded, Ready=True, events, and the
// finished Jobs are deleted.
func TestAllSucceeded(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx:1.27", "redis:7"))},
		newNode("node-a"), newNode("node-b"))
	f.syncStarted("web", times(wCreateJob, 2))
	f.clock.Step(5 * time.Second)
	if n := f.completeAll(); n != 2 {
		t.Fatalf("completed %d Jobs", n)
	}
	writes, _ := f.sync("web", times(wDeleteJob, 2), wStatus)
	ups := statusUpdates(writes)
	if len(ups) != 1 {
		t.Fatalf("want one status update, got %s", describe(writes))
	}
	st := ups[0].Status
	if st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Errorf("status %s", st.Status)
	}
	if diff := cmp.Diff(v1alpha2.PullCounts{Desired: 4, Succeeded: 4}, st.Pulls); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if st.Message != "Pulled 4 of 4 images on 2 nodes" {
		t.Errorf("message %q", st.Message)
	}
	if st.CompletionTime == nil || !st.CompletionTime.Time.Equal(t0.Add(5*time.Second)) {
		t.Errorf("completionTime %v", st.CompletionTime)
	}
	ready := meta.FindStatusCondition(st.Conditions, v1alpha2.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || ready.ObservedGeneration != 1 {
		t.Errorf("Ready %+v", ready)
	}
	deletes := 0
	for _, a := range writes {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "jobs" {
			deletes++
		}
	}
	if deletes != 2 {
		t.Errorf("want the 2 finished Jobs deleted, got %s", describe(writes))
	}
	f.expectEvent("Normal Succeeded ImageCacheCreate succeeded")

	// Nothing new: no writes at all.
	if writes, _ := f.sync("web"); len(writes) != 0 {
		t.Errorf("a sync with nothing new wrote: %s", describe(writes))
	}
}

// TestPullFailureAtDeadline: a container waiting with ErrImagePull for a
// reason that may pass (here a timeout) when the controller's deadline comes
// gives Failed, with the kubelet's reason and message in failures, recorded
// on the Job before it is ended.
func TestPullFailureAtDeadline(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx:1.27", "ghcr.io/org/missing:v9"))},
		newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	job := f.jobs()[0]
	msg := `rpc error: code = Unknown desc = failed to pull and unpack image "ghcr.io/org/missing:v9": failed to resolve reference ` +
		`"ghcr.io/org/missing:v9": failed to do request: Head "https://ghcr.io/v2/org/missing/manifests/v9": dial tcp 140.82.1.1:443: i/o timeout`
	states := map[string]corev1.ContainerState{}
	for i, img := range jobImages(t, &job) {
		if img == "ghcr.io/org/missing:v9" {
			states[puller.ContainerName(i)] = waiting("ErrImagePull", msg)
		} else {
			states[puller.ContainerName(i)] = terminatedOK(t0.Add(3 * time.Second))
		}
	}
	f.podWith(job, states)
	// Before the deadline: the finished image is counted, the Job is left
	// alone, and the cache is requeued for the deadline.
	f.clock.Step(30 * time.Second)
	writes, after := f.sync("web", wStatus)
	if ups := statusUpdates(writes); len(writes) != 1 || len(ups) != 1 || ups[0].Status.Pulls.Succeeded != 1 || ups[0].Status.Pulls.Pending != 1 {
		t.Errorf("before the deadline: writes %s", describe(writes))
	}
	if after <= 0 || after > 40*time.Second {
		t.Errorf("requeue after %v, want about 33s", after)
	}
	f.clock.Step(after)
	writes, _ = f.sync("web", wDeleteJob, wPatchJob, wStatus)
	var patched bool
	for _, a := range writes {
		if a.GetVerb() == "patch" && a.GetResource().Resource == "jobs" {
			patched = true
			p := string(a.(core.PatchAction).GetPatch())
			if !strings.Contains(p, `"suspend":true`) || !strings.Contains(p, "ErrImagePull") {
				t.Errorf("job patch %s", p)
			}
		}
	}
	if !patched {
		t.Errorf("the Job was not ended with its outcome recorded: %s", describe(writes))
	}
	st := f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusFailed {
		t.Errorf("status %s", st.Status)
	}
	want := map[string]v1alpha2.NodeReasonMessageList{
		"ghcr.io/org/missing:v9": {{Node: "node-a", Reason: "ErrImagePull", Message: msg}},
	}
	if diff := cmp.Diff(want, st.Failures); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(v1alpha2.PullCounts{Desired: 2, Succeeded: 1, Failed: 1}, st.Pulls); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if st.Message != "Pulled 1 of 2 images on 1 node; 1 failed" {
		t.Errorf("message %q", st.Message)
	}
	// The pod is gone afterwards (the Job suspended): the outcome stays, read from the Job.
	if err := f.kube.CoreV1().Pods(testNS).Delete(f.ctx, job.Name+"-abcde", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.catchUp()
	f.clearActions()
	if writes, _ := f.sync("web"); len(writes) != 0 {
		t.Errorf("after the pod went: writes %s", describe(writes))
	}
	if diff := cmp.Diff(want, f.imageCache("web").Status.Failures); diff != "" {
		t.Errorf("failures lost (-want +got):\n%s", diff)
	}
}

// TestJobDeadlineWithoutPod: a Job the Job controller failed at its deadline,
// whose pod is gone, fails its images with DeadlineExceeded.
func TestJobDeadlineWithoutPod(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx:1.27"))}, newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	job := f.jobs()[0]
	job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue,
		Reason: "DeadlineExceeded", Message: "Job was active longer than specified deadline"}}
	f.updateJob(&job)
	f.sync("web", wDeleteJob, wStatus)
	st := f.imageCache("web").Status
	want := map[string]v1alpha2.NodeReasonMessageList{
		"nginx:1.27": {{Node: "node-a", Reason: "DeadlineExceeded", Message: "Job was active longer than specified deadline"}},
	}
	if diff := cmp.Diff(want, st.Failures); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
}

// TestOneBadImageDoesNotWaitForTheBatchDeadline: once the good images are done,
// a failing one gets one pull deadline, not one per image in the batch.
func TestOneBadImageDoesNotWaitForTheBatchDeadline(t *testing.T) {
	imgs := []string{"a:1", "b:1", "c:1", "d:1", "bad:1"}
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages(imgs...))}, newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	job := f.jobs()[0]
	states := map[string]corev1.ContainerState{}
	for i, img := range jobImages(t, &job) {
		if img == "bad:1" {
			states[puller.ContainerName(i)] = waiting("ImagePullBackOff", "Back-off pulling image \"bad:1\"")
		} else {
			states[puller.ContainerName(i)] = terminatedOK(t0.Add(10 * time.Second))
		}
	}
	f.podWith(job, states)
	f.clock.Step(71 * time.Second) // 10s + one 60s pull deadline, well before 5 x 60s
	f.sync("web", wDeleteJob, wPatchJob, wStatus)
	st := f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusFailed || st.Pulls.Failed != 1 || st.Pulls.Succeeded != 4 {
		t.Errorf("status %s counts %+v", st.Status, st.Pulls)
	}
	if got := st.Failures["bad:1"]; len(got) != 1 || got[0].Reason != "ImagePullBackOff" {
		t.Errorf("failures %+v", st.Failures)
	}
}

// TestAlreadyPresent: images a node reports are not pulled again; a different
// tag of the same repository is, and so is a ":latest" (or untagged) one,
// which may have moved, as a Pod's container would pull it.
func TestAlreadyPresent(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx:1.25", "nginx:1.2", "redis:7"))},
		newNode("node-a", withNodeImages("docker.io/library/nginx:1.25", "docker.io/library/nginx@sha256:"+strings.Repeat("a", 64)),
			withNodeImages("docker.io/library/redis:7")))
	writes, _ := f.syncStarted("web", wCreateJob)
	jobs := createdJobs(writes)
	if len(jobs) != 1 {
		t.Fatalf("want 1 Job, got %s", describe(writes))
	}
	if diff := cmp.Diff([]string{"nginx:1.2"}, jobImages(t, jobs[0])); diff != "" {
		t.Errorf("Job images (-want +got):\n%s", diff)
	}
	st := f.imageCache("web").Status
	if diff := cmp.Diff(v1alpha2.PullCounts{Desired: 3, Succeeded: 2, AlreadyPresent: 2, Pending: 1}, st.Pulls); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}

	// Every image present: no Job at all, and Succeeded at once.
	digest := "redis@sha256:" + strings.Repeat("b", 64)
	f2 := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("redis:7", digest))},
		newNode("node-a", withNodeImages("redis:7", digest)))
	writes, _ = f2.syncStarted("web")
	if len(createdJobs(writes)) != 0 {
		t.Errorf("created Jobs for present images: %s", describe(writes))
	}
	if st := f2.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Errorf("status %s", st.Status)
	}

	// With pull policy Always (the flag's, an entry's, or a ":latest"
	// image's), present images by tag are pulled anyway, Always; an image
	// by digest never is.
	alwaysFlag := testConfig()
	alwaysFlag.Puller.PullPolicy = corev1.PullAlways
	cases := map[string]struct {
		cfg    Config
		images []string
		entry  v1alpha2.ImagePullPolicy
	}{
		"the flag":           {alwaysFlag, []string{"redis:7", digest}, ""},
		"the entry":          {testConfig(), []string{"redis:7", digest}, v1alpha2.PullAlways},
		"an untagged image":  {testConfig(), []string{"redis", digest}, ""},
		"a ':latest' image":  {testConfig(), []string{"redis:latest", digest}, ""},
		"the flag, an entry": {alwaysFlag, []string{"redis:7"}, v1alpha2.PullIfNotPresent},
	}
	for _, name := range sortedKeys(cases) { // in order: each fixture's trace is numbered
		tc := cases[name]
		ic := newImageCache("web", withImages(tc.images...))
		ic.Spec.CacheSpec[0].PullPolicy = tc.entry
		f3 := newFixture(t, tc.cfg, []*v1alpha2.ImageCache{ic}, newNode("node-a", withNodeImages("redis:7", "redis:latest", digest)))
		writes, _ = f3.syncStartedOnly("web", wCreateJob, wStatus)
		jobs := createdJobs(writes)
		if tc.entry == v1alpha2.PullIfNotPresent {
			if len(jobs) != 0 {
				t.Errorf("%s: %s; want no Job, as the entry says IfNotPresent", name, describe(writes))
			}
			continue
		}
		if len(jobs) != 1 || len(jobs[0].Spec.Template.Spec.Containers) != 1 ||
			jobs[0].Spec.Template.Spec.Containers[0].ImagePullPolicy != corev1.PullAlways ||
			jobs[0].Spec.Template.Spec.Containers[0].Image != tc.images[0] {
			t.Errorf("%s: %s; want one Job pulling %s Always", name, describe(writes), tc.images[0])
			continue
		}
		// The node listed it: its pull proves nothing.
		if got := puller.PulledAnyway(jobs[0]); !got[tc.images[0]] {
			t.Errorf("%s: pulled anyway %v, want %s", name, got, tc.images[0])
		}
	}
}

// TestMaxInFlightJobs: never more than the maximum of active Jobs.
func TestMaxInFlightJobs(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInFlightJobs = 2
	var nodes []*corev1.Node
	for _, n := range []string{"n1", "n2", "n3", "n4", "n5"} {
		nodes = append(nodes, newNode(n))
	}
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, nodes...)
	total := 0
	f.sync("web", wStatus) // records the operation's start
	for round := range 4 {
		writes, after := f.syncOnly("web", wCreateJob, wDeleteJob, wStatus)
		total += len(createdJobs(writes))
		active := 0
		for _, j := range f.jobs() {
			if puller.IsActive(&j) {
				active++
			}
		}
		if active > 2 {
			t.Fatalf("round %d: %d active Jobs, max 2", round, active)
		}
		if active == 2 && after != throttle.ThrottledRetry && after > throttle.ThrottledRetry {
			t.Errorf("round %d: throttled but requeued after %v", round, after)
		}
		f.completeAll()
	}
	if total != 5 {
		t.Errorf("created %d Jobs in all, want 5", total)
	}
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Errorf("status %s %s", st.Status, st.Message)
	}
}

// TestPodSucceededFreesItsSlotAndNode: once a Job's pod has Succeeded, the
// pulls count as done, and the Job's slot and node are free for the next
// Job, though the Job controller has not marked the Job Complete yet.
func TestPodSucceededFreesItsSlotAndNode(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInFlightJobs = 1
	cfg.ImagesPerJob = 1
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", "redis"))}, newNode("node-a"))
	writes, _ := f.syncStarted("web", wCreateJob)
	first := createdJobs(writes)
	if len(first) != 1 {
		t.Fatalf("first pass: %s; want one Job (one slot)", describe(writes))
	}
	job := f.jobs()[0]
	pod := f.podWith(job, map[string]corev1.ContainerState{puller.ContainerName(0): terminatedOK(f.clock.Now())})
	pod.Status.Phase = corev1.PodSucceeded
	if _, err := f.kube.CoreV1().Pods(pod.Namespace).UpdateStatus(f.ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.catchUp()
	if got := f.c.InFlightJobs(); got != 0 {
		t.Errorf("in flight with the only Job's pod Succeeded: %d, want 0", got)
	}
	writes, _ = f.sync("web", wCreateJob, wStatus)
	next := createdJobs(writes)
	if len(next) != 1 || jobImages(t, next[0])[0] == jobImages(t, &job)[0] {
		t.Fatalf("after the pod Succeeded: %s; want the Job of the other image on the same node", describe(writes))
	}
	if st := f.imageCache("web").Status; st.Pulls.Succeeded != 1 || st.Pulls.Pending != 1 {
		t.Errorf("pulls %+v; want the first image counted pulled, from its pod", st.Pulls)
	}
}

// TestEditWhileProcessing: an update while Jobs run lets the earlier Jobs
// of nodes it still works on finish, and takes what they pull once it is
// due (node-a's, done in the second the update waits to start, and the
// others'); it stops the Jobs of nodes no longer selected, and starts the
// new work.
func TestEditWhileProcessing(t *testing.T) {
	ic := newImageCache("web", withImages("nginx"), withSelectedImages(map[string]string{"tier": "backend"}, "redis"))
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{ic},
		newNode("node-a"), newNode("node-b", withLabels("tier", "backend")), newNode("node-c", withLabels("tier", "frontend")))
	f.syncStarted("web", times(wCreateJob, 3))
	before := f.jobs()
	if len(before) != 3 {
		t.Fatalf("want 3 Jobs, got %d", len(before))
	}
	// node-a's Job finishes before the edit, unrecorded.
	for _, j := range before {
		if j.Annotations[puller.AnnotationNode] == "node-a" {
			f.completeJob(j)
		}
	}
	// The edit: entry 1 gets a new image, entry 2 moves to the frontend nodes.
	f.edit("web", func(ic *v1alpha2.ImageCache) {
		ic.Spec.CacheSpec[0].Images = append(ic.Spec.CacheSpec[0].Images, "busybox")
		ic.Spec.CacheSpec[1].NodeSelector = map[string]v1alpha2.LabelValue{"tier": "frontend"}
		ic.Generation = 2
	})

	// The same second as the create: the update waits for the next one, so
	// that operations have distinct start times.
	if writes, after := f.sync("web"); len(writes) != 0 || after != time.Second {
		t.Fatalf("same-second update: writes %s, requeue after %v", describe(writes), after)
	}
	f.clock.Step(time.Second)
	started, _ := f.sync("web", wStatus)
	st := statusUpdates(started)
	if len(started) != 1 || len(st) != 1 || st[0].Status.Reason != v1alpha2.ImageCacheReasonUpdate || st[0].Status.ObservedGeneration != 2 {
		t.Fatalf("starting the update: %s; want only its start recorded", describe(started))
	}
	writes, _ := f.sync("web", wCreateJob, wDeleteJob, wStatus)
	// node-a's finished earlier Job is deleted; its nginx counts. node-b's
	// and node-c's keep running (nginx is still wanted on both). node-a gets
	// busybox.
	created := createdJobs(writes)
	if len(created) != 1 || created[0].Annotations[puller.AnnotationNode] != "node-a" || deletedJobs(writes) != 1 {
		t.Fatalf("created %d Jobs (%s)", len(created), describe(writes))
	}
	if diff := cmp.Diff([]string{"busybox"}, jobImages(t, created[0])); diff != "" {
		t.Errorf("node-a's new Job images (-want +got):\n%s", diff)
	}
	// Finish everything: the earlier Jobs pulled nginx after the update
	// started, which counts; they are deleted, and the update's own follow:
	// node-b busybox, node-c busybox and redis.
	f.completeAll()
	writes, _ = f.sync("web", times(wCreateJob, 2), times(wDeleteJob, 2), wStatus)
	got := map[string][]string{}
	for _, j := range createdJobs(writes) {
		got[j.Annotations[puller.AnnotationNode]] = jobImages(t, j)
	}
	want := map[string][]string{"node-b": {"busybox"}, "node-c": {"busybox", "redis"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("follow-up Jobs (-want +got):\n%s", diff)
	}
	if d := deletedJobs(writes); d != 2 {
		t.Errorf("%d earlier Jobs deleted once finished, want 2 (%s)", d, describe(writes))
	}
	f.completeAll()
	f.sync("web", times(wDeleteJob, 3), wStatus)
	s := f.imageCache("web").Status
	// nginx x3, busybox x3, redis on node-c.
	if s.Status != v1alpha2.ImageCacheActionStatusSucceeded || s.Pulls.Desired != 7 || s.Pulls.Succeeded != 7 {
		t.Errorf("final status %s %+v", s.Status, s.Pulls)
	}
}

// TestNodeLeavesDeletesItsJobs: a node deleted mid-operation drops out, and its
// Job is deleted; the cache still completes.
func TestNodeLeavesDeletesItsJobs(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"), newNode("node-b"))
	f.syncStarted("web", times(wCreateJob, 2))
	if err := f.kube.CoreV1().Nodes().Delete(f.ctx, "node-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, j := range f.jobs() {
		if j.Annotations[puller.AnnotationNode] == "node-a" {
			f.completeJob(j)
		}
	}
	f.catchUp()
	f.clearActions()
	writes, _ := f.sync("web", times(wDeleteJob, 2), wStatus)
	deleted := 0
	for _, a := range writes {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "jobs" {
			deleted++
		}
	}
	if deleted != 2 { // node-b's stale Job, then node-a's finished one
		t.Errorf("deletes: %s", describe(writes))
	}
	st := f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.Desired != 1 || st.NodesMatched != 1 {
		t.Errorf("status %s %+v matched %d", st.Status, st.Pulls, st.NodesMatched)
	}
}

// TestNotReadyNodeSkippedThenWarmed: a NotReady node is skipped with a reason,
// and pulled onto once Ready.
func TestNotReadyNodeSkippedThenWarmed(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"), newNode("node-b", notReady()))
	writes, _ := f.syncStarted("web", wCreateJob)
	if jobs := createdJobs(writes); len(jobs) != 1 || jobs[0].Annotations[puller.AnnotationNode] != "node-a" {
		t.Fatalf("jobs: %s", describe(writes))
	}
	f.completeAll()
	f.sync("web", wDeleteJob, wStatus)
	st := f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.Skipped != 1 ||
		st.Message != "Pulled 1 of 2 images on 2 nodes; 1 skipped on 1 node not ready" {
		t.Errorf("status %s %+v %q", st.Status, st.Pulls, st.Message)
	}
	f.makeReady("node-b")
	f.catchUp()
	f.clearActions()
	writes, _ = f.sync("web", wCreateJob, wStatus)
	if jobs := createdJobs(writes); len(jobs) != 1 || jobs[0].Annotations[puller.AnnotationNode] != "node-b" {
		t.Fatalf("warming node-b: %s", describe(writes))
	}
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusProcessing || st.Pulls.Pending != 1 {
		t.Errorf("status %s %+v", st.Status, st.Pulls)
	}
}

// TestNoMatchingNode: a selector that matches nothing gives Succeeded with zero
// pulls, and says so.
func TestNoMatchingNode(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web",
		withSelectedImages(map[string]string{"gpu": "h100"}, "nginx"))}, newNode("node-a"))
	writes, _ := f.syncStarted("web")
	if len(createdJobs(writes)) != 0 {
		t.Errorf("created Jobs: %s", describe(writes))
	}
	st := f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.Desired != 0 ||
		st.Message != "No node matches the cache's node selectors; nothing to pull" || st.CompletionTime == nil {
		t.Errorf("status %s %+v %q", st.Status, st.Pulls, st.Message)
	}
}

// TestInvalidReferenceFailsOnlyThatImage: a reference the schema lets through
// but the normaliser refuses fails with InvalidImageName; the rest proceeds.
func TestInvalidReferenceFailsOnlyThatImage(t *testing.T) {
	long := strings.Repeat("a", 256) // a repository name over 255 characters
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", long))}, newNode("node-a"))
	writes, _ := f.syncStarted("web", wCreateJob)
	jobs := createdJobs(writes)
	if len(jobs) != 1 || !cmp.Equal(jobImages(t, jobs[0]), []string{"nginx"}) {
		t.Fatalf("jobs: %s", describe(writes))
	}
	f.completeAll()
	f.sync("web", wDeleteJob, wStatus)
	st := f.imageCache("web").Status
	got := st.Failures[long]
	if len(got) != 1 || got[0].Reason != "InvalidImageName" || got[0].Node != "node-a" || !strings.Contains(got[0].Message, "invalid image reference") {
		t.Errorf("failures %+v", st.Failures)
	}
	if st.Status != v1alpha2.ImageCacheActionStatusFailed || st.Pulls.Succeeded != 1 || st.Pulls.Failed != 1 {
		t.Errorf("status %s %+v", st.Status, st.Pulls)
	}
}

// TestStatusConflictIsRequeued: a conflict on UpdateStatus is returned, and the
// worker requeues the key with backoff.
func TestStatusConflictIsRequeued(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"))
	f.client.PrependReactor("update", "imagecaches", func(action core.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() == "status" {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "kubefledged.io", Resource: "imagecaches"}, "web", errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	_, err := f.pass("web")
	if !apierrors.IsConflict(err) {
		t.Fatalf("want a conflict, got %v", err)
	}
	key := cache.ObjectName{Namespace: testNS, Name: "web"}
	f.c.queue.Add(key)
	if !f.c.processNextItem(f.ctx) {
		t.Fatal("queue shut down")
	}
	if n := f.c.queue.NumRequeues(key); n != 1 {
		t.Errorf("requeues %d, want 1", n)
	}
}

// TestCreateFailureIsRetried: a failed Job create is an error (retried), and
// the throttle slot is given back.
func TestCreateFailureIsRetried(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInFlightJobs = 1
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"))
	f.sync("web", wStatus) // records the operation's start
	f.kube.PrependReactor("create", "jobs", func(core.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(errors.New("etcd unavailable"))
	})
	if _, err := f.pass("web"); err == nil || !strings.Contains(err.Error(), "creating pull job") {
		t.Fatalf("want a create error, got %v", err)
	}
	if n := f.c.InFlightJobs(); n != 0 {
		t.Errorf("throttle holds %d slots after a failed create", n)
	}
}

// TestCreatesGoInGrowingBatches: a sync's Jobs are created in batches of 1,
// 2, 4, ...; a failure stops the creates after its batch, and only the Jobs
// created keep their throttle slots.
func TestCreatesGoInGrowingBatches(t *testing.T) {
	var nodes []*corev1.Node
	for i := range 10 {
		nodes = append(nodes, newNode(fmt.Sprintf("node-%d", i)))
	}
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, nodes...)
	f.sync("web", wStatus) // records the operation's start
	f.kube.PrependReactor("create", "jobs", func(a core.Action) (bool, runtime.Object, error) {
		if a.(core.CreateAction).GetObject().(*batchv1.Job).Annotations[puller.AnnotationNode] == "node-3" {
			return true, nil, apierrors.NewInternalError(errors.New("etcd unavailable"))
		}
		return false, nil, nil
	})
	_, err := f.pass("web")
	if err == nil || !strings.Contains(err.Error(), "for node node-3") {
		t.Fatalf("want the create error for node-3, got %v", err)
	}
	attempts := 0
	for _, a := range f.kube.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "jobs" {
			attempts++
		}
	}
	// Batches [node-0], [node-1 node-2], [node-3 .. node-6]: node-7 .. node-9 are not tried.
	if attempts != 7 {
		t.Errorf("%d creates tried, want 7", attempts)
	}
	jobs, _ := f.kube.BatchV1().Jobs(testNS).List(f.ctx, metav1.ListOptions{})
	if len(jobs.Items) != 6 {
		t.Errorf("%d Jobs created, want 6", len(jobs.Items))
	}
	if n := f.c.InFlightJobs(); n != 6 {
		t.Errorf("throttle holds %d slots, want 6 (one per created Job)", n)
	}
}

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
	writes, _ = f.sync("web", wAnnotation, wStatus) // starts and, with nothing to pull, completes
	if len(createdJobs(writes)) != 0 || f.imageCache("web").Status.Pulls.AlreadyPresent != 1 {
		t.Errorf("long after the purge: %s, %+v", describe(writes), f.imageCache("web").Status.Pulls)
	}
}

// TestSyncWaitsForItsOwnWrite: while the informer still shows the version a
// status write replaced, a sync writes nothing (it would only meet a
// conflict); once the informer shows the write, the work goes on.
func TestSyncWaitsForItsOwnWrite(t *testing.T) {
	ic := newImageCache("web", withImages("nginx:1.27"))
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{ic}, newNode("node-a"))
	key := cache.ObjectName{Namespace: testNS, Name: "web"}

	if _, err := f.pass(key.Name); err != nil {
		t.Fatal(err)
	}
	if w := f.writes(); len(statusUpdates(w)) != 1 {
		t.Fatalf("starting the operation: want one status write, got %s", describe(w))
	}
	stale, _ := f.c.icLister.ImageCaches(testNS).Get("web")
	written, _ := f.client.KubefledgedV1alpha2().ImageCaches(testNS).Get(f.ctx, "web", metav1.GetOptions{})
	if stale.ResourceVersion == written.ResourceVersion {
		t.Fatalf("the fake API server kept resourceVersion %q across a write", stale.ResourceVersion)
	}
	// The informer has not caught up: nothing to do yet.
	after, err := f.pass(key.Name)
	if err != nil {
		t.Fatal(err)
	}
	if w := f.writes(); len(w) != 0 || after != 0 {
		t.Fatalf("with the informer behind its own write: want no writes and no requeue, got %s, requeue %v", describe(w), after)
	}
	f.catchUp()
	writes, _ := f.sync("web", wCreateJob)
	if jobs := createdJobs(writes); len(jobs) != 1 {
		t.Fatalf("once the informer shows the write: want 1 Job, got %s", describe(writes))
	}
}

// TestNoRepeatedJobWritesWhileTheInformerIsBehind: Jobs just created, or just
// deleted, that the Job informer does not show that way yet, are not created
// or deleted again.
func TestNoRepeatedJobWritesWhileTheInformerIsBehind(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))},
		newNode("node-a"), newNode("node-b"))
	key := cache.ObjectName{Namespace: testNS, Name: "web"}
	f.sync("web", wStatus) // records the operation's start
	syncBehind := func() []core.Action {
		t.Helper()
		if _, err := f.pass(key.Name); err != nil {
			t.Fatal(err)
		}
		w := f.writes()
		f.catchUpImageCaches()
		return w
	}
	if jobs := createdJobs(syncBehind()); len(jobs) != 2 {
		t.Fatalf("want 2 Jobs created")
	}
	if w := syncBehind(); len(w) != 0 {
		t.Errorf("Jobs the informer does not show yet: want no writes, got %s", describe(w))
	}
	f.catchUp()
	f.completeAll()
	f.catchUp()
	if deleted := deletedJobs(syncBehind()); deleted != 2 {
		t.Fatalf("the operation is complete: want its 2 Jobs deleted, got %d", deleted)
	}
	if w := syncBehind(); len(w) != 0 {
		t.Errorf("Jobs deleted that the informer still shows: want no writes, got %s", describe(w))
	}
}

func deletedJobs(actions []core.Action) int {
	n := 0
	for _, a := range actions {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "jobs" {
			n++
		}
	}
	return n
}

// TestJobEventsOfALargeCacheAreBatched: Job events of a cache over 500 nodes
// enqueue it once, 500 ms after the first; those of a cache over 3 nodes,
// 3 ms after.
func TestJobEventsOfALargeCacheAreBatched(t *testing.T) {
	big := newImageCache("big", withImages("nginx"))
	big.Status.NodesMatched = 500
	small := newImageCache("small", withImages("nginx"))
	small.Status.NodesMatched = 3
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{big, small}, newNode("node-a"))
	jobOf := func(ic *v1alpha2.ImageCache, name string) *batchv1.Job {
		return fledgedtest.NewJob(testNS, name, "", ic.Name, fledgedtest.ControlledBy(ic))
	}
	for i := range 20 {
		f.c.jobChanged(jobOf(big, fmt.Sprintf("big-%d", i)), false)
	}
	f.c.jobChanged(jobOf(small, "small-0"), false)
	next := func(want string) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(f.ctx, time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
			return f.c.queue.Len() > 0, nil
		}); err != nil {
			t.Fatalf("%s was not enqueued once its batch period ended", want)
		}
		if n := f.c.queue.Len(); n != 1 {
			t.Fatalf("queue holds %d caches, want only %s", n, want)
		}
		key, _ := f.c.queue.Get()
		if key.Name != want {
			t.Fatalf("got %s, want %s", key, want)
		}
		f.c.queue.Done(key)
	}
	if n := f.c.queue.Len(); n != 0 {
		t.Fatalf("queue holds %d caches at once, want none before their batch periods", n)
	}
	f.clock.Step(3 * time.Millisecond)
	next("small")
	f.clock.Step(496 * time.Millisecond)
	if n := f.c.queue.Len(); n != 0 {
		t.Fatalf("the large cache was enqueued before its batch period ended")
	}
	f.clock.Step(time.Millisecond)
	next("big")
}

// TestPermanentPullFailureFailsAtOnce: a tag that does not exist fails its
// pair as soon as the kubelet says so, with ImageNotFound and the kubelet's
// message, and once the rest of the batch is settled the Job is ended with
// its outcome recorded: the cache is Failed in the pass that reads it, not
// at the pull deadline.
func TestPermanentPullFailureFailsAtOnce(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx:1.27", "ghcr.io/org/app:no-such-tag",
		"redis:7"))}, newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	job := f.jobs()[0]
	msg := `rpc error: code = NotFound desc = failed to pull and unpack image "ghcr.io/org/app:no-such-tag": ` +
		`failed to resolve reference "ghcr.io/org/app:no-such-tag": ghcr.io/org/app:no-such-tag: not found`
	states := map[string]corev1.ContainerState{}
	for i, img := range jobImages(t, &job) {
		switch img {
		case "ghcr.io/org/app:no-such-tag":
			states[puller.ContainerName(i)] = waiting("ErrImagePull", msg)
		case "nginx:1.27":
			states[puller.ContainerName(i)] = terminatedOK(t0.Add(2 * time.Second))
		}
	}
	f.podWith(job, states)
	// redis is still pulling: the failure is recorded, the Job goes on.
	f.clock.Step(3 * time.Second)
	f.sync("web", wStatus)
	st := f.imageCache("web").Status
	want := map[string]v1alpha2.NodeReasonMessageList{
		"ghcr.io/org/app:no-such-tag": {{Node: "node-a", Reason: puller.ReasonImageNotFound, Message: msg}},
	}
	if diff := cmp.Diff(want, st.Failures); diff != "" {
		t.Errorf("failures while redis pulls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(v1alpha2.PullCounts{Desired: 3, Succeeded: 1, Failed: 1, Pending: 1}, st.Pulls); diff != "" {
		t.Errorf("counts while redis pulls (-want +got):\n%s", diff)
	}

	// redis is pulled: the pod would wait for ever on the missing tag, so
	// the Job is ended now.
	pod, err := f.kube.CoreV1().Pods(testNS).Get(f.ctx, job.Name+"-abcde", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range pod.Status.ContainerStatuses {
		if cs := &pod.Status.ContainerStatuses[i]; cs.Image == "redis:7" {
			cs.State = terminatedOK(t0.Add(3 * time.Second))
		}
	}
	if _, err := f.kube.CoreV1().Pods(testNS).UpdateStatus(f.ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.catchUp()
	f.clock.Step(time.Second)
	f.sync("web", wDeleteJob, wPatchJob, wStatus)
	st = f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusFailed || st.Message != "Pulled 2 of 3 images on 1 node; 1 failed" {
		t.Errorf("after redis: %s %q", st.Status, st.Message)
	}
	if diff := cmp.Diff(want, st.Failures); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
}
