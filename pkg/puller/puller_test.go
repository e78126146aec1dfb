package puller

import (
	"reflect"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/remover"
)

func TestJobNameDeterministicAndValid(t *testing.T) {
	long := strings.Repeat("a-very-long-cache-name.", 10)
	a := JobName(long, "uid-1", "node-1", 100, []string{"b", "a"})
	if a != JobName(long, "uid-1", "node-1", 100, []string{"a", "b"}) {
		t.Error("the name depends on the order of the images")
	}
	if len(a) > 52 {
		t.Errorf("name %q is %d characters; pods add a suffix to it", a, len(a))
	}
	if errs := validation.IsDNS1123Label(a); len(errs) > 0 {
		t.Errorf("name %q: %v", a, errs)
	}
	for _, other := range []string{
		JobName(long, "uid-2", "node-1", 100, []string{"a", "b"}),
		JobName(long, "uid-1", "node-2", 100, []string{"a", "b"}),
		JobName(long, "uid-1", "node-1", 101, []string{"a", "b"}),
		JobName(long, "uid-1", "node-1", 100, []string{"a"}),
		jobName(long, "uid-1", "node-1", 100, 1, []string{"a", "b"}),
	} {
		if other == a {
			t.Errorf("different work, same name %q", a)
		}
	}
}

func testJob(images []string, created time.Time) *batchv1.Job {
	ic := &v1alpha2.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", UID: "u"}}
	cfg := Config{HelperImage: "h", PullPolicy: corev1.PullIfNotPresent, PullDeadline: time.Minute}
	job := NewPullJob(cfg, Batch{Cache: ic, NodeName: "n", Hostname: "n", Images: images, Epoch: 1})
	job.CreationTimestamp = metav1.NewTime(created)
	return job
}

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

func TestParseTolerations(t *testing.T) {
	got, err := ParseTolerations([]string{"*", "dedicated", "dedicated=gpu", "nvidia.com/gpu:NoSchedule", "team=a:NoExecute"})
	if err != nil {
		t.Fatal(err)
	}
	want := []corev1.Toleration{
		{Operator: corev1.TolerationOpExists},
		{Key: "dedicated", Operator: corev1.TolerationOpExists},
		{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu"},
		{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: "team", Operator: corev1.TolerationOpEqual, Value: "a", Effect: corev1.TaintEffectNoExecute},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseTolerations:\n got %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{"", "not/a/key", "dedicated:Sometimes", "dedicated=not a value"} {
		if _, err := ParseTolerations([]string{bad}); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestPermanentPullFailure: the kubelet's messages of a real node
// (containerd) and of the big registries, told apart.
func TestPermanentPullFailure(t *testing.T) {
	for _, tc := range []struct {
		reason, message string
		want            string
	}{
		{"ErrImagePull", `rpc error: code = NotFound desc = failed to pull and unpack image "127.0.0.1:16500/e2e/shell:no-such-tag": failed to resolve reference "127.0.0.1:16500/e2e/shell:no-such-tag": 127.0.0.1:16500/e2e/shell:no-such-tag: not found`, ReasonImageNotFound},
		{"ImagePullBackOff", `Back-off pulling image "127.0.0.1:16500/e2e/no-such-repository:v1": ErrImagePull: rpc error: code = NotFound desc = failed to pull and unpack image "127.0.0.1:16500/e2e/no-such-repository:v1": not found`, ReasonImageNotFound},
		{"ErrImagePull", `failed to pull and unpack image "127.0.0.1:16501/e2e/private:wrong-secret": failed to resolve reference "127.0.0.1:16501/e2e/private:wrong-secret": pulling from host 127.0.0.1:16501 failed with status code [manifests wrong-secret]: 401 Unauthorized`, ReasonUnauthorized},
		{"ErrImagePull", `Error response from daemon: pull access denied for team/app, repository does not exist or may require 'docker login'`, ReasonUnauthorized},
		{"ErrImagePull", `rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/library/nginx:1.27": no match for platform in manifest: not found`, ReasonPlatformNotSupported},
		{"ErrImagePull", `rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/library/nginx:1.27": no match for platform in manifest: not found`, ReasonPlatformNotSupported},
		{"ErrImagePull", `failed to pull and unpack image "fail.invalid/app:v1": failed to resolve reference "fail.invalid/app:v1": fail.invalid/app:v1: not found`, ReasonImageNotFound},
		{"InvalidImageName", `Failed to apply default image tag "Nginx": couldn't parse image name`, ReasonInvalidImageName},
		// May pass: the registry or the network.
		{"ErrImagePull", `rpc error: code = Unknown desc = failed to pull and unpack image "r.example/a:1": failed to do request: Head "https://r.example/v2/a/manifests/1": dial tcp 10.0.0.1:443: connect: connection refused`, ""},
		{"ErrImagePull", `rpc error: code = Unknown desc = failed to pull and unpack image "r.example/a:1": unexpected status from HEAD request to https://r.example/v2/a/manifests/1: 503 Service Unavailable`, ""},
		{"ErrImagePull", `rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/library/a:1": toomanyrequests: You have reached your pull rate limit`, ""},
		{"ErrImagePull", `rpc error: code = Unknown desc = failed to pull and unpack image "r.example/a:1": dial tcp: lookup r.example on 10.96.0.10:53: no such host`, ""},
		{"ErrImagePull", `rpc error: code = DeadlineExceeded desc = context deadline exceeded`, ""},
		{"CreateContainerError", `not found`, ""},
	} {
		got, ok := PermanentPullFailure(tc.reason, tc.message)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s %q: %q %v, want %q", tc.reason, tc.message, got, ok, tc.want)
		}
	}
}

func TestParseResources(t *testing.T) {
	got, err := ParseResources("cpu=50m, memory=32Mi")
	if err != nil {
		t.Fatal(err)
	}
	want := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("32Mi")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got, err := ParseResources(""); got != nil || err != nil {
		t.Errorf("empty: %v %v", got, err)
	}
	for _, bad := range []string{"cpu", "cpu=lots", "=10m", "memory=-1Mi"} {
		if _, err := ParseResources(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestJobContainerResources: every container of a pull and a delete pod
// has the configured requests and limits, or DefaultResources.
func TestJobContainerResources(t *testing.T) {
	ic := &v1alpha2.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", UID: "u"}}
	custom := corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")}}
	for _, tc := range []struct {
		name string
		set  corev1.ResourceRequirements
		want corev1.ResourceRequirements
	}{{"default", corev1.ResourceRequirements{}, DefaultResources()}, {"custom", custom, custom}} {
		cfg := Config{HelperImage: "helper:v1", Resources: tc.set}
		pull := NewPullJob(cfg, Batch{Cache: ic, NodeName: "n", Hostname: "n", Images: []string{"a", "b"}, Epoch: 1})
		del := NewDeleteJob(cfg, DeleteBatch{Cache: ic, NodeName: "n", Hostname: "n", Images: []string{"a"}, Epoch: 1, Socket: "/s"})
		var containers []corev1.Container
		for _, spec := range []corev1.PodSpec{pull.Spec.Template.Spec, del.Spec.Template.Spec} {
			containers = append(append(containers, spec.InitContainers...), spec.Containers...)
		}
		for _, c := range containers {
			if !reflect.DeepEqual(c.Resources, tc.want) {
				t.Errorf("%s: container %s has %v, want %v", tc.name, c.Name, c.Resources, tc.want)
			}
		}
	}
}

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
