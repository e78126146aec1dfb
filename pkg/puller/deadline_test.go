package puller

import (
	"reflect"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		r    Result
		want bool
	}{
		{Result{State: Failed, Reason: "ErrImagePull"}, true},
		{Result{State: Failed, Reason: "ImagePullBackOff"}, true},
		{Result{State: Failed, Reason: "DeadlineExceeded"}, true},
		{Result{State: Failed, Reason: "StartDeadlineExceeded"}, true},
		{Result{State: Failed, Reason: ReasonImageNotFound}, false},
		{Result{State: Failed, Reason: ReasonUnauthorized}, false},
		{Result{State: Failed, Reason: ReasonPlatformNotSupported}, false},
		{Result{State: Failed, Reason: ReasonInvalidImageName}, false},
		{Result{State: Failed, Reason: ReasonPodNotCreated}, false},
		{Result{State: Failed, Reason: "Error"}, false},
		{Result{State: Failed, Reason: "ErrImagePull", Message: `failed to pull and unpack image "r.local/helper:v1": failed to resolve reference "r.local/helper:v1": r.local/helper:v1: not found`}, false},
		{Result{State: Pending, Reason: "ErrImagePull"}, false},
	} {
		if got := Transient(tc.r); got != tc.want {
			t.Errorf("Transient(%+v) = %v, want %v", tc.r, got, tc.want)
		}
	}
}

func TestEndedAt(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	job := testJob([]string{"a"}, now.Add(-time.Hour))
	if got := EndedAt(job, now); !got.Equal(now) {
		t.Errorf("a running Job ended at %v, want now", got)
	}
	failed := now.Add(-10 * time.Minute)
	job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(failed)}}
	if got := EndedAt(job, now); !got.Equal(failed) {
		t.Errorf("a failed Job ended at %v, want %v", got, failed)
	}
	ended := now.Add(-20 * time.Minute)
	job.Annotations[AnnotationEndedAt] = ended.Format(time.RFC3339)
	if got := EndedAt(job, now); !got.Equal(ended) {
		t.Errorf("a Job the controller ended ended at %v, want %v", got, ended)
	}
}

// TestPullDeadlinesCountFromThePullingEvent: each image's deadline counts
// from the kubelet's Pulling event for it, with its entry's own deadline
// (the Job's annotation); an image that started late, behind a slow one,
// still gets its whole deadline; one past its own deadline fails at once.
func TestPullDeadlinesCountFromThePullingEvent(t *testing.T) {
	cfg := Config{HelperImage: "h", PullDeadline: 2 * time.Minute, StartDeadline: time.Minute}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ic := &v1alpha2.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", UID: "u"}}
	job := NewPullJob(cfg, Batch{Cache: ic, NodeName: "n", Hostname: "n", Images: []string{"small:1", "large:1", "small:2"},
		Epoch: 1, Deadlines: []time.Duration{0, 30 * time.Minute, 0}})
	job.CreationTimestamp = metav1.NewTime(start)
	if got := ImageDeadlines(cfg, job, []string{"small:1", "large:1", "small:2"}); !reflect.DeepEqual(got,
		[]time.Duration{2 * time.Minute, 30 * time.Minute, 2 * time.Minute}) {
		t.Fatalf("deadlines %v", got)
	}
	if got := *job.Spec.ActiveDeadlineSeconds; got != int64((time.Minute+34*time.Minute+jobDeadlineSlack)/time.Second) {
		t.Errorf("activeDeadlineSeconds %d", got)
	}
	pod := func(states ...corev1.ContainerState) *corev1.Pod {
		p := &corev1.Pod{Status: corev1.PodStatus{StartTime: &metav1.Time{Time: start}}}
		for i, s := range states {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: ContainerName(i), State: s})
		}
		return p
	}
	ok := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, FinishedAt: metav1.NewTime(start.Add(10 * time.Second))}}
	creating := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}

	// The large image started pulling at 10s: 34 minutes (the Job's sum)
	// after the start, it is still within its own 30 minutes.
	pulling := map[string]time.Time{ContainerName(0): start.Add(5 * time.Second), ContainerName(1): start.Add(10 * time.Second)}
	out, err := Read(cfg, job, pod(ok, creating, creating), pulling, start.Add(20*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if out.Finished || out.EndNow || !out.CheckAt.Equal(start.Add(30*time.Minute+10*time.Second)) {
		t.Errorf("at 20m: finished %v, end %v, check at %v; want a look at the large image's own deadline", out.Finished, out.EndNow, out.CheckAt)
	}
	// Past its own deadline, while small:2 waits behind it: failed, with
	// why; the Job goes on for small:2.
	out, _ = Read(cfg, job, pod(ok, creating, creating), pulling, start.Add(30*time.Minute+10*time.Second))
	if r := out.Results[1]; r.State != Failed || r.Reason != "DeadlineExceeded" || !strings.Contains(r.Message, "within 30m0s of the kubelet starting to pull it") {
		t.Errorf("the large image past its deadline: %+v", r)
	}
	if out.Results[2].State != Pending || out.EndNow {
		t.Errorf("small:2 %+v, end %v; want it still pending", out.Results[2], out.EndNow)
	}
	// small:2 started late, at 33m: it has its 2 minutes, past the Job's
	// sum of 34m.
	pulling[ContainerName(2)] = start.Add(33 * time.Minute)
	late := pod(ok, ok, creating)
	out, _ = Read(cfg, job, late, pulling, start.Add(34*time.Minute+30*time.Second))
	if out.Finished || !out.CheckAt.Equal(start.Add(35*time.Minute)) {
		t.Errorf("at 34m30s: finished %v, check at %v; want a look at 35m", out.Finished, out.CheckAt)
	}
	out, _ = Read(cfg, job, late, pulling, start.Add(35*time.Minute))
	if r := out.Results[2]; r.State != Failed || r.Reason != "DeadlineExceeded" || !out.EndNow {
		t.Errorf("small:2 at 35m: %+v, end %v", r, out.EndNow)
	}
	// Without Pulling events (dropped), the Job's sum from its start holds.
	out, _ = Read(cfg, job, pod(ok, creating, creating), nil, start.Add(34*time.Minute))
	if !out.EndNow || out.Results[1].State != Failed || !strings.Contains(out.Results[1].Message, "of the Job's start") {
		t.Errorf("no events, at 34m: end %v, %+v", out.EndNow, out.Results[1])
	}
}

// TestPodsCarryOnlyTheAnnotationsReadFromPods: a pull or delete Job's pod
// template carries the cache's name and namespace (and the digests flag
// of an Always pull), which the controller reads from pods, and none of
// the Job's other annotations: the images, the node, the deadlines are
// read from the Job, and every byte of the pod is written several times.
func TestPodsCarryOnlyTheAnnotationsReadFromPods(t *testing.T) {
	ic := &v1alpha2.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", UID: "u"}}
	cfg := Config{HelperImage: "helper:v1", CRIImage: "cri:v1", DeleteNamespace: "kube-fledged", PullDeadline: time.Minute}
	pull := NewPullJob(cfg, Batch{Cache: ic, NodeName: "node-1", Hostname: "host-1", Images: []string{"nginx", "redis"},
		Always: []bool{false, true}, Deadlines: []time.Duration{0, time.Hour}, PulledAnyway: []string{"redis"}})
	del := NewDeleteJob(cfg, DeleteBatch{Cache: ic, NodeName: "node-1", Hostname: "host-1", Images: []string{"nginx"}, Socket: "/run/c.sock"})
	for _, tc := range []struct {
		job       *batchv1.Job
		want      map[string]string
		onJobOnly []string
	}{
		{pull, map[string]string{AnnotationCache: "c", AnnotationReportDigests: "true"},
			[]string{AnnotationImages, AnnotationNode, AnnotationOwnership, AnnotationPullDeadlines, AnnotationPulledAnyway}},
		{del, map[string]string{AnnotationCache: "c", AnnotationCacheNamespace: "ns"}, []string{AnnotationImages, AnnotationNode}},
	} {
		if got := tc.job.Spec.Template.Annotations; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: pod annotations %v, want %v", tc.job.Labels[LabelComponent], got, tc.want)
		}
		for _, k := range tc.onJobOnly {
			if _, ok := tc.job.Annotations[k]; !ok {
				t.Errorf("%s: the Job has no %s annotation", tc.job.Labels[LabelComponent], k)
			}
		}
	}
}
