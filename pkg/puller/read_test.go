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
	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/remover"
)

func TestReadOutcomes(t *testing.T) {
	cfg := Config{PullDeadline: time.Minute}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	imgs := []string{"a", "b"}
	pod := func(states ...corev1.ContainerState) *corev1.Pod {
		p := &corev1.Pod{Status: corev1.PodStatus{StartTime: &metav1.Time{Time: start}}}
		for i, s := range states {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: ContainerName(i), State: s})
		}
		return p
	}
	ok := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, FinishedAt: metav1.NewTime(start.Add(10 * time.Second))}}
	crashed := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 127, Reason: "Error", Message: "exec: not found"}}
	pulling := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	backoff := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image"}}

	cases := []struct {
		name       string
		pod        *corev1.Pod
		conds      []batchv1.JobCondition
		now        time.Duration
		wantStates []State
		wantEnd    bool
		wantCheck  time.Duration // 0: none
		retry      bool          // Config.RetryTransient
	}{
		{name: "no pod yet", now: time.Second, wantStates: []State{Pending, Pending}, wantCheck: 2 * time.Minute},
		{name: "one done, one pulling", pod: pod(ok, pulling), now: 20 * time.Second, wantStates: []State{Succeeded, Pending}, wantCheck: 2 * time.Minute},
		{name: "all done, Job not complete yet", pod: pod(ok, ok), now: 20 * time.Second, wantStates: []State{Succeeded, Succeeded}},
		{name: "pod Succeeded, as the cache keeps it (its phase alone), Job not complete yet",
			pod: &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, now: 20 * time.Second, wantStates: []State{Succeeded, Succeeded}},
		{name: "Job complete", conds: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}, wantStates: []State{Succeeded, Succeeded}},
		{name: "helper crashed", pod: pod(crashed, ok), now: 20 * time.Second, wantStates: []State{Failed, Succeeded}},
		{name: "failing, within one deadline of the last success", pod: pod(ok, backoff), now: 30 * time.Second, wantStates: []State{Succeeded, Pending}, wantCheck: 70 * time.Second},
		{name: "failing, a deadline after the last success", pod: pod(ok, backoff), now: 71 * time.Second, wantStates: []State{Succeeded, Failed}, wantEnd: true},
		{name: "failing, the controller retries it", retry: true, pod: pod(ok, backoff), now: 11 * time.Second, wantStates: []State{Succeeded, Failed}, wantEnd: true},
		{name: "failing while another pulls, the controller retries it", retry: true, pod: pod(pulling, backoff), now: 11 * time.Second, wantStates: []State{Pending, Pending}, wantCheck: 2 * time.Minute},
		{name: "still pulling at the controller deadline", pod: pod(ok, pulling), now: 2 * time.Minute, wantStates: []State{Succeeded, Failed}, wantEnd: true},
		{name: "Job failed, pod gone", conds: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "DeadlineExceeded"}}, wantStates: []State{Failed, Failed}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			job := testJob(imgs, start)
			job.Status.Conditions = tc.conds
			cfg := cfg
			cfg.RetryTransient = tc.retry
			out, err := Read(cfg, job, tc.pod, nil, start.Add(tc.now))
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tc.wantStates {
				if out.Results[i].State != want {
					t.Errorf("image %d: state %v, want %v (%+v)", i, out.Results[i].State, want, out.Results[i])
				}
			}
			if out.EndNow != tc.wantEnd {
				t.Errorf("EndNow %v, want %v", out.EndNow, tc.wantEnd)
			}
			var wantCheck time.Time
			if tc.wantCheck > 0 {
				wantCheck = start.Add(tc.wantCheck)
			}
			if !out.CheckAt.Equal(wantCheck) {
				t.Errorf("CheckAt %v, want %v", out.CheckAt, wantCheck)
			}
			if out.EndNow {
				// What is recorded reads back the same, with the pod gone.
				job.Annotations[AnnotationResults] = ResultsAnnotation(out)
				again, err := Read(cfg, job, nil, nil, start.Add(time.Hour))
				if err != nil {
					t.Fatal(err)
				}
				for i := range out.Results {
					if again.Results[i].State != out.Results[i].State || again.Results[i].Reason != out.Results[i].Reason {
						t.Errorf("recorded image %d: %+v, was %+v", i, again.Results[i], out.Results[i])
					}
				}
				if IsActive(job) {
					t.Error("a Job with recorded results still counts as active")
				}
			}
		})
	}
}

func TestDeleteJobSpec(t *testing.T) {
	ic := &v1alpha2.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", UID: "u"}}
	cfg := Config{HelperImage: "registry.local/kube-fledged-helper:v1", CRIImage: "registry.local/kube-fledged-cri:v1",
		DeleteNamespace: "kube-fledged", DeleteServiceAccountName: "kube-fledged-image-delete", ServiceAccountName: "pull-only",
		Tolerations: DefaultTolerations()}
	job := NewDeleteJob(cfg, DeleteBatch{Cache: ic, NodeName: "node-1", Hostname: "host-1", Images: []string{"nginx:1.27", "redis"},
		Epoch: 7, Socket: "/run/containerd/containerd.sock", HostNetwork: true})
	spec := job.Spec.Template.Spec
	// In the controller's namespace, never the cache's, so owned by no one:
	// it names its cache instead, and has a service account of its own.
	if job.Namespace != "kube-fledged" || len(job.OwnerReferences) != 0 || spec.ServiceAccountName != "kube-fledged-image-delete" {
		t.Errorf("namespace %q, owners %v, service account %q", job.Namespace, job.OwnerReferences, spec.ServiceAccountName)
	}
	if ns, name := CacheOf(job); ns != "ns" || name != "c" || job.Labels[LabelCacheUID] != "u" {
		t.Errorf("the Job names cache %s/%s (uid %s), want ns/c (u)", ns, name, job.Labels[LabelCacheUID])
	}
	pull := NewPullJob(cfg, Batch{Cache: ic, NodeName: "node-1", Hostname: "host-1", Images: []string{"nginx"}})
	if init := pull.Spec.Template.Spec.InitContainers[0]; init.Image != "registry.local/kube-fledged-helper:v1" {
		t.Errorf("the pull Job's init container runs %s, want the helper image", init.Image)
	}
	if ns, name := CacheOf(pull); pull.Namespace != "ns" || len(pull.OwnerReferences) != 1 || ns != "ns" || name != "c" ||
		pull.Spec.Template.Spec.ServiceAccountName != "pull-only" {
		t.Errorf("pull Job: namespace %q, owners %v, cache %s/%s, service account %q", pull.Namespace, pull.OwnerReferences, ns, name,
			pull.Spec.Template.Spec.ServiceAccountName)
	}
	if spec.NodeSelector[HostnameLabel] != "host-1" || !reflect.DeepEqual(spec.Tolerations, DefaultTolerations()) {
		t.Errorf("pinning %v, tolerations %v", spec.NodeSelector, spec.Tolerations)
	}
	if !spec.HostNetwork || spec.RestartPolicy != corev1.RestartPolicyNever || *job.Spec.BackoffLimit != 0 || job.Spec.ActiveDeadlineSeconds == nil {
		t.Errorf("hostNetwork %v restart %s backoff %v deadline %v", spec.HostNetwork, spec.RestartPolicy, *job.Spec.BackoffLimit, job.Spec.ActiveDeadlineSeconds)
	}
	hp := spec.Volumes[0].HostPath
	if hp == nil || hp.Path != "/run/containerd/containerd.sock" || *hp.Type != corev1.HostPathSocket {
		t.Errorf("socket volume %+v", spec.Volumes)
	}
	c := spec.Containers[0]
	wantCmd := []string{"/fledged-cri", "rmi", "--socket", criSocketInPod, "--timeout", "1m50s", "nginx:1.27", "redis"}
	if c.Image != "registry.local/kube-fledged-cri:v1" || strings.Join(c.Command, " ") != strings.Join(wantCmd, " ") {
		t.Errorf("container %s %v", c.Image, c.Command)
	}
	if c.VolumeMounts[0].MountPath != criSocketInPod || c.TerminationMessagePolicy != corev1.TerminationMessageReadFile {
		t.Errorf("mounts %v policy %s", c.VolumeMounts, c.TerminationMessagePolicy)
	}
	if *c.SecurityContext.RunAsUser != 0 || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("security context %+v", c.SecurityContext)
	}
	if !IsDeleteJob(job) || job.Name == JobName("c", "u", "node-1", 7, []string{"nginx:1.27", "redis"}) {
		t.Errorf("a delete Job must be told apart from, and named unlike, a pull Job: %s", job.Name)
	}
}

func TestReadDelete(t *testing.T) {
	ic := &v1alpha2.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", UID: "u"}}
	newJob := func(conds ...batchv1.JobCondition) *batchv1.Job {
		j := NewDeleteJob(Config{}, DeleteBatch{Cache: ic, NodeName: "n", Hostname: "n", Images: []string{"a:1", "b:1", "c:1"}, Socket: "/s"})
		j.Status.Conditions = conds
		return j
	}
	now := time.Now()
	out, _ := ReadDelete(Config{}, newJob(), nil, now)
	if out.Finished {
		t.Error("a running delete Job is finished")
	}
	out, _ = ReadDelete(Config{}, newJob(batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}), nil, now)
	if !out.Finished || out.Results[0].State != Succeeded || out.Results[2].State != Succeeded {
		t.Errorf("complete: %+v", out)
	}
	out, _ = ReadDelete(Config{}, newJob(), &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, now)
	if !out.Finished || out.Results[0].State != Succeeded || out.Results[2].State != Succeeded {
		t.Errorf("pod Succeeded, Job not complete yet: %+v", out)
	}
	pod := &corev1.Pod{Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: remover.FormatSummary([]remover.Result{
			{Outcome: cri.Removed}, {Outcome: cri.AlreadyAbsent}, {Outcome: cri.Failed, Message: "rpc error: image in use"},
		}, remover.SummaryLimit)},
	}}}}}
	out, _ = ReadDelete(Config{}, newJob(batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded"}), pod, now)
	if out.Results[0].State != Succeeded || out.Results[1].State != Succeeded || out.Results[2].State != Failed ||
		out.Results[2].Reason != "RemoveFailed" || out.Results[2].Message != "rpc error: image in use" {
		t.Errorf("failed with a summary: %+v", out.Results)
	}
	out, _ = ReadDelete(Config{}, newJob(batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "DeadlineExceeded"}), nil, now)
	if out.Results[0].State != Failed || out.Results[0].Reason != "DeadlineExceeded" {
		t.Errorf("failed without a pod: %+v", out.Results)
	}
}

// A delete Job whose pod succeeded reports each image removed, but one its
// summary says it kept: the runtime knows it under a name another cache
// wants.
func TestReadDeleteKept(t *testing.T) {
	cfg := Config{HelperImage: "registry.local/kube-fledged:test", DeleteNamespace: "kube-fledged"}
	ic := &v1alpha2.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a", UID: "uid-web"}}
	job := NewDeleteJob(cfg, DeleteBatch{Cache: ic, NodeName: "n", Hostname: "n", Images: []string{"registry.example/a:v1", "registry.example/b:v1"},
		Epoch: 1, Socket: "/run/containerd/containerd.sock", Keep: []string{"mirror.example/b:v1"}})
	if cmd := strings.Join(job.Spec.Template.Spec.Containers[0].Command, " "); !strings.Contains(cmd, "--keep mirror.example/b:v1 registry.example/a:v1 registry.example/b:v1") {
		t.Errorf("command %q", cmd)
	}
	pod := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{{Name: "remove-images",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Message: "outcomes rk\n1: it is also mirror.example/b:v1"}}}}}}
	out, err := ReadDelete(cfg, job, pod, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{{State: Succeeded}, {State: Kept, Reason: ReasonKeptForAnotherName, Message: "it is also mirror.example/b:v1"}}
	if !out.Finished || !reflect.DeepEqual(out.Results, want) {
		t.Errorf("finished %v, results %+v; want %+v", out.Finished, out.Results, want)
	}
}

// TestPullJobSaysWhetherPullingProvesAbsence: the decision made with the
// Job is on the Job, and a Job without it (of an earlier controller, or
// edited) proves nothing.
func TestPullJobSaysWhetherPullingProvesAbsence(t *testing.T) {
	ic := &v1alpha2.ImageCache{}
	ic.Name, ic.Namespace, ic.UID = "web", "team-a", "uid-web"
	for _, proves := range []bool{true, false} {
		job := NewPullJob(Config{HelperImage: "helper:v1"}, Batch{Cache: ic, NodeName: "node-a", Hostname: "node-a",
			Images: []string{"nginx"}, Epoch: 1, PullingProvesAbsence: proves})
		if got := PullingProvesAbsence(job); got != proves {
			t.Errorf("made with PullingProvesAbsence %v, reads %v (annotations %v)", proves, got, job.Annotations)
		}
		delete(job.Annotations, AnnotationOwnership)
		if PullingProvesAbsence(job) {
			t.Error("a Job without the annotation proves absence")
		}
	}
}
