package puller

import (
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// A Job whose pod does not start within the start deadline fails its images
// with the reason, at the deadline, and not before.
func TestStartDeadline(t *testing.T) {
	cfg := Config{PullDeadline: 5 * time.Minute, StartDeadline: 2 * time.Minute}
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	job := testJob([]string{"a", "b"}, created)
	pending := func(mutate func(*corev1.Pod)) *corev1.Pod {
		// As the informer keeps it: no spec.
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{Phase: corev1.PodPending}}
		mutate(p)
		return p
	}
	initWaiting := func(reason, msg string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "install-helper", Image: "h",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}}
			for _, c := range job.Spec.Template.Spec.Containers {
				p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name,
					State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}})
			}
		}
	}
	initDone := func(p *corev1.Pod) {
		p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "install-helper",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}}}
	}
	for _, tc := range []struct {
		name    string
		pod     *corev1.Pod
		reason  string
		message string // a part of it
		noPod   bool
	}{
		{name: "no pod", reason: ReasonPodNotCreated, message: "no pod within 2m0s", noPod: true},
		{name: "unschedulable", pod: pending(func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
				Reason: "Unschedulable", Message: "0/3 nodes are available: 1 Insufficient cpu."}}
		}), reason: "Unschedulable", message: "not scheduled within 2m0s: 0/3 nodes are available: 1 Insufficient cpu."},
		{name: "helper image not pulled", pod: pending(initWaiting("ImagePullBackOff", `Back-off pulling image "h"`)),
			reason: "ImagePullBackOff", message: `container install-helper (image h) of pod p: Back-off pulling image "h"`},
		{name: "still creating", pod: pending(initWaiting("PodInitializing", "")),
			reason: "StartDeadlineExceeded", message: "did not start within 2m0s (phase Pending)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Read(cfg, job, tc.pod, nil, created.Add(119*time.Second))
			if err != nil || out.Finished || out.EndNow || !out.CheckAt.Equal(created.Add(2*time.Minute)) {
				t.Fatalf("before the start deadline: %+v, %v; want a look at the deadline", out, err)
			}
			out, _ = Read(cfg, job, tc.pod, nil, created.Add(2*time.Minute))
			if !out.Finished || !out.EndNow || out.NoPod != tc.noPod {
				t.Fatalf("at the start deadline: %+v; want it ended", out)
			}
			for i, r := range out.Results {
				if r.State != Failed || r.Reason != tc.reason || !strings.Contains(r.Message, tc.message) {
					t.Errorf("image %d: %+v; want Failed %s with %q", i, r, tc.reason, tc.message)
				}
			}
		})
	}

	// Once the helper is installed, the pull deadline applies instead:
	// whether its status says so, or an image container is pulling.
	pulling := pending(func(p *corev1.Pod) {
		initWaiting("PodInitializing", "")(p)
		p.Status.ContainerStatuses[0].State.Waiting.Reason = "ContainerCreating"
	})
	if out, _ := Read(cfg, job, pulling, nil, created.Add(3*time.Minute)); out.Finished {
		t.Errorf("a pod pulling its images past the start deadline: %+v; want it left to the pull deadline", out)
	}
	started := pending(initDone)
	out, _ := Read(cfg, job, started, nil, created.Add(3*time.Minute))
	if out.Finished || out.EndNow || !out.CheckAt.Equal(created.Add(10*time.Minute)) {
		t.Errorf("a started pod past the start deadline: %+v; want it left to the pull deadline", out)
	}
	// Pull deadlines that add up to less than the start deadline do not
	// end a Job whose pod has not started yet, and count from the pod's
	// start once it has.
	short := Config{PullDeadline: 3 * time.Second, StartDeadline: 2 * time.Minute}
	for _, pod := range []*corev1.Pod{nil, pending(initWaiting("PodInitializing", ""))} {
		if out, _ := Read(short, job, pod, nil, created.Add(31*time.Second)); out.Finished || out.EndNow ||
			!out.CheckAt.Equal(created.Add(2*time.Minute)) {
			t.Errorf("a pod not started (%v) before the start deadline, past the pulls' deadlines: %+v; want a look at the start deadline", pod != nil, out)
		}
	}
	late := pending(initDone)
	late.Status.StartTime = ptrTime(created.Add(100 * time.Second))
	if out, _ := Read(short, job, late, nil, created.Add(105*time.Second)); out.Finished || !out.CheckAt.Equal(created.Add(106*time.Second)) {
		t.Errorf("a pod that started late: %+v; want a look 6s after its start", out)
	}
	// Off: a pod that never starts waits for the pull deadline.
	off := cfg
	off.StartDeadline = 0
	if out, _ := Read(off, job, nil, nil, created.Add(3*time.Minute)); out.Finished {
		t.Errorf("with the start deadline off: %+v", out)
	}
	// When the pull deadline comes first, the failure still says why the
	// pod never started, not DeadlineExceeded.
	out, _ = Read(off, job, nil, nil, created.Add(10*time.Minute))
	if r := out.Results[1]; !out.EndNow || !out.NoPod || r.State != Failed || r.Reason != ReasonPodNotCreated ||
		r.Message != "the Job created no pod within 10m0s" {
		t.Errorf("at the pull deadline, without a pod: %+v", out)
	}
}

// A failed Job whose helper could not be installed says so, not the Job's
// BackoffLimitExceeded.
func TestHelperFailureNamesTheHelper(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	job := testJob([]string{"a"}, created)
	job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue,
		Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit"}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{Phase: corev1.PodFailed,
		InitContainerStatuses: []corev1.ContainerStatus{{Name: "install-helper", Image: "h", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: 127, Reason: "StartError", Message: "exec: no such file"}}}}}}
	out, _ := Read(Config{PullDeadline: time.Minute, StartDeadline: time.Minute}, job, pod, nil, created.Add(time.Second))
	if r := out.Results[0]; !out.Finished || r.State != Failed || r.Reason != "StartError" ||
		r.Message != "container install-helper (image h) of pod p exited with code 127: exec: no such file" {
		t.Errorf("%+v", out)
	}
}

// A delete Job gets the start deadline too, and once ended reads what the
// controller recorded on it.
func TestDeleteStartDeadline(t *testing.T) {
	ic := &v1alpha2.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", UID: "u"}}
	cfg := Config{StartDeadline: time.Minute}
	job := NewDeleteJob(cfg, DeleteBatch{Cache: ic, NodeName: "n", Hostname: "n", Images: []string{"a:1"}, Socket: "/s"})
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	job.CreationTimestamp = metav1.NewTime(created)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{Phase: corev1.PodPending,
		ContainerStatuses: []corev1.ContainerStatus{{Name: "remove-images", Image: "h", State: corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "not found"}}}}}}
	out, _ := ReadDelete(cfg, job, pod, created.Add(30*time.Second))
	if out.Finished || !out.CheckAt.Equal(created.Add(time.Minute)) {
		t.Fatalf("before the deadline: %+v", out)
	}
	out, _ = ReadDelete(cfg, job, pod, created.Add(time.Minute))
	if r := out.Results[0]; !out.EndNow || r.State != Failed || r.Reason != "ErrImagePull" {
		t.Fatalf("at the deadline: %+v", out)
	}
	job.Annotations[AnnotationResults] = ResultsAnnotation(out)
	again, err := ReadDelete(cfg, job, nil, created.Add(2*time.Minute))
	if err != nil || !again.Finished || again.EndNow || again.Results[0] != out.Results[0] {
		t.Errorf("recorded: %+v, %v; want %+v", again, err, out.Results[0])
	}
}

func ptrTime(t time.Time) *metav1.Time { m := metav1.NewTime(t); return &m }
