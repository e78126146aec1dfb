package puller

import (
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// TestPinJobSpec: a pin Job runs in the controller's namespace with the
// delete Jobs' service account, no token, the CRI image as root with
// nothing else, the runtime's socket and, for the budget, the image
// filesystem read-only; an unpin Job has no filesystem and no budget. The
// two are named apart.
func TestPinJobSpec(t *testing.T) {
	ic := &v1alpha2.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a", UID: "uid-web"}}
	cfg := Config{CRIImage: "registry.local/kube-fledged-cri:v1", DeleteNamespace: "kube-fledged", DeleteServiceAccountName: "kube-fledged-image-delete"}
	b := PinBatch{Cache: ic, NodeName: "node-a", Hostname: "node-a", Images: []string{"nginx:1.27", "redis:7"}, Epoch: 5,
		Socket: "/run/containerd/containerd.sock", BudgetPercent: 50, Root: "/var/lib/containerd"}
	pin := NewPinJob(cfg, b)
	b.Unpin = true
	unpin := NewPinJob(cfg, b)
	if pin.Name == unpin.Name {
		t.Errorf("pin and unpin Jobs share the name %s", pin.Name)
	}
	for _, j := range []*batchv1.Job{pin, unpin} {
		spec := j.Spec.Template.Spec
		c := spec.Containers[0]
		if j.Namespace != "kube-fledged" || spec.ServiceAccountName != "kube-fledged-image-delete" || *spec.AutomountServiceAccountToken ||
			j.Annotations[AnnotationCacheNamespace] != "team-a" || len(j.OwnerReferences) != 0 {
			t.Errorf("%s: namespace %s, account %s, annotations %v, owners %v", j.Name, j.Namespace, spec.ServiceAccountName, j.Annotations, j.OwnerReferences)
		}
		if c.Image != cfg.CRIImage || *c.SecurityContext.RunAsUser != 0 || *c.SecurityContext.AllowPrivilegeEscalation ||
			!slices.Equal(c.SecurityContext.Capabilities.Drop, []corev1.Capability{"ALL"}) || !*c.SecurityContext.ReadOnlyRootFilesystem {
			t.Errorf("%s: container %s %+v", j.Name, c.Image, c.SecurityContext)
		}
		if spec.NodeSelector[HostnameLabel] != "node-a" || spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("%s: node selector %v", j.Name, spec.NodeSelector)
		}
	}
	cmd := strings.Join(pin.Spec.Template.Spec.Containers[0].Command, " ")
	if !strings.HasPrefix(cmd, "/fledged-cri pin --socket /run/kube-fledged/cri.sock ") || !strings.Contains(cmd, " --cache uid-web --cache-name team-a/web ") ||
		!strings.HasSuffix(cmd, " --budget 50 --root /run/kube-fledged/image-fs nginx:1.27 redis:7") {
		t.Errorf("pin command %q", cmd)
	}
	vols := pin.Spec.Template.Spec.Volumes
	if len(vols) != 2 || vols[1].HostPath.Path != "/var/lib/containerd" || !pin.Spec.Template.Spec.Containers[0].VolumeMounts[1].ReadOnly {
		t.Errorf("pin volumes %+v", vols)
	}
	ucmd := strings.Join(unpin.Spec.Template.Spec.Containers[0].Command, " ")
	if !strings.HasPrefix(ucmd, "/fledged-cri unpin ") || strings.Contains(ucmd, "--budget") || len(unpin.Spec.Template.Spec.Volumes) != 1 {
		t.Errorf("unpin command %q, volumes %+v", ucmd, unpin.Spec.Template.Spec.Volumes)
	}
	if !IsPinJob(pin) || !IsPinJob(unpin) || IsUnpinJob(pin) || !IsUnpinJob(unpin) || IsPullJob(pin) || IsDeleteJob(pin) {
		t.Error("pin Jobs are not told apart")
	}
}

// TestReadPin: the pin command's summary gives each image's outcome; a
// Job that failed before its summary fails the images it did not report.
func TestReadPin(t *testing.T) {
	ic := &v1alpha2.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a", UID: "uid-web"}}
	cfg := Config{CRIImage: "cri", DeleteNamespace: "kube-fledged"}
	imgs := []string{"a:1", "b:1", "c:1", "d:1", "e:1"}
	job := NewPinJob(cfg, PinBatch{Cache: ic, NodeName: "n", Hostname: "n", Images: imgs, Epoch: 1, Socket: "/s"})
	job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	pod := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{{
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			Message: "outcomes pbxaf\n1: pinning it (2.0 GiB) would bring ...\n2: containerd://1.6.20 does not report pins\n4: rpc error"}}}}}}
	out, err := ReadPin(cfg, job, pod, time.Now())
	if err != nil || !out.Finished {
		t.Fatalf("ReadPin: %+v, %v", out, err)
	}
	want := []struct {
		state  State
		reason string
	}{{Succeeded, ""}, {Failed, ReasonPinBudgetExceeded}, {Failed, ReasonPinUnsupported}, {Failed, ReasonImageGone}, {Failed, ReasonPinFailed}}
	for i, w := range want {
		if r := out.Results[i]; r.State != w.state || r.Reason != w.reason {
			t.Errorf("%s: %+v, want %v %s", imgs[i], r, w.state, w.reason)
		}
	}
	if !strings.Contains(out.Results[1].Message, "2.0 GiB") {
		t.Errorf("budget message %q", out.Results[1].Message)
	}
	// Complete, its pod gone: a pin is not taken as done; an unpin is.
	out, _ = ReadPin(cfg, job, nil, time.Now())
	if r := out.Results[0]; r.State != Failed || r.Reason != ReasonPinFailed {
		t.Errorf("pin Job complete without its summary: %+v; want %s", r, ReasonPinFailed)
	}
	unpin := NewPinJob(cfg, PinBatch{Cache: ic, NodeName: "n", Hostname: "n", Images: imgs, Epoch: 1, Socket: "/s", Unpin: true})
	unpin.Status.Conditions = job.Status.Conditions
	if out, _ := ReadPin(cfg, unpin, nil, time.Now()); out.Results[0].State != Succeeded {
		t.Errorf("unpin Job complete without its summary: %+v; want done", out.Results[0])
	}
	// Past its deadline with no summary: every image fails with the Job's reason.
	job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "DeadlineExceeded"}}
	out, _ = ReadPin(cfg, job, nil, time.Now())
	for i, r := range out.Results {
		if r.State != Failed || r.Reason != "DeadlineExceeded" {
			t.Errorf("%s after the deadline: %+v", imgs[i], r)
		}
	}
}
