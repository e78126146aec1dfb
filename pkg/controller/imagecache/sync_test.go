package imagecache

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	core "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
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
	if ups := statusUpdates(writes); len(writeList(writes)) != 1 || len(ups) != 1 || ups[0].Status.Pulls.Succeeded != 1 || ups[0].Status.Pulls.Pending != 1 {
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
	for _, name := range slices.Sorted(maps.Keys(cases)) { // in order: each fixture's trace is numbered
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
