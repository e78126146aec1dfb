package trim

import (
	"reflect"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"kubefledged.io/kube-fledged/pkg/puller"
)

func TestForCacheKeepsWhatTheControllerReads(t *testing.T) {
	mf := []metav1.ManagedFieldsEntry{{Manager: "x"}}
	now := metav1.Now()
	owner := metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: "j", UID: "job", Controller: ptr.To(true)}
	podMeta := metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "pod", ResourceVersion: "7", CreationTimestamp: now,
		GenerateName: "j-", ManagedFields: mf, Finalizers: []string{"batch.kubernetes.io/job-tracking"},
		Labels:          map[string]string{"job-name": "j", puller.LabelManagedBy: puller.ManagedByValue},
		Annotations:     map[string]string{puller.AnnotationCache: "c", puller.AnnotationImages: `["i"]`, "other": "x"},
		OwnerReferences: []metav1.OwnerReference{{Kind: "Other", Name: "o", UID: "o"}, owner}}
	wantMeta := metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "pod", ResourceVersion: "7", CreationTimestamp: now,
		Annotations: map[string]string{puller.AnnotationCache: "c"}, OwnerReferences: []metav1.OwnerReference{owner}}
	pending := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull"}}
	running := &corev1.Pod{
		ObjectMeta: podMeta,
		Spec:       corev1.PodSpec{NodeName: "n", Containers: []corev1.Container{{Name: "c", Image: "i"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", StartTime: &now,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Image: "i", ImageID: "sha256:1", State: pending}}},
	}
	out, _ := ForCache(running.DeepCopy())
	if want := (&corev1.Pod{ObjectMeta: wantMeta, Spec: corev1.PodSpec{NodeName: "n"}, Status: corev1.PodStatus{
		Phase: corev1.PodRunning, StartTime: &now, ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Image: "i", ImageID: "sha256:1", State: pending}}}}); !reflect.DeepEqual(out, want) {
		t.Errorf("running pod trimmed to\n%+v\nwant\n%+v", out, want)
	}
	succeeded := running.DeepCopy()
	succeeded.Status = corev1.PodStatus{Phase: corev1.PodSucceeded, StartTime: &now, Conditions: []corev1.PodCondition{{Type: corev1.PodReady}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Image: "i", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}}}}
	out, _ = ForCache(succeeded)
	if want := (&corev1.Pod{ObjectMeta: wantMeta, Spec: corev1.PodSpec{NodeName: "n"},
		Status: corev1.PodStatus{Phase: corev1.PodSucceeded, StartTime: &now}}); !reflect.DeepEqual(out, want) {
		t.Errorf("succeeded pod trimmed to\n%+v\nwant\n%+v", out, want)
	}
	// One that pulled images Always keeps the digests its containers got.
	succeeded.Annotations = map[string]string{puller.AnnotationCache: "c", puller.AnnotationReportDigests: "true"}
	succeeded.Status.ContainerStatuses[0].ImageID = "registry.local/app@sha256:2"
	out, _ = ForCache(succeeded)
	if want := (&corev1.Pod{ObjectMeta: wantMeta, Spec: corev1.PodSpec{NodeName: "n"},
		Status: corev1.PodStatus{Phase: corev1.PodSucceeded, StartTime: &now, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "c", Image: "i", ImageID: "registry.local/app@sha256:2", State: succeeded.Status.ContainerStatuses[0].State}}}}); !reflect.DeepEqual(out, want) {
		t.Errorf("succeeded pod of Always pulls trimmed to\n%+v\nwant\n%+v", out, want)
	}
	// Delete and pin pods keep their summary: what they removed, kept or
	// pinned, and why not.
	for _, component := range []string{puller.ComponentDelete, puller.ComponentPin, puller.ComponentUnpin} {
		pod := succeeded.DeepCopy()
		pod.Annotations = nil
		pod.Labels = map[string]string{puller.LabelComponent: component}
		pod.Status.ContainerStatuses[0].State.Terminated.Message = "outcomes pb\n1: over the budget"
		out, _ = ForCache(pod)
		if cs := out.(*corev1.Pod).Status.ContainerStatuses; len(cs) != 1 || cs[0].State.Terminated == nil ||
			cs[0].State.Terminated.Message != "outcomes pb\n1: over the budget" {
			t.Errorf("succeeded %s pod lost its summary: %+v", component, cs)
		}
	}

	jobMeta := metav1.ObjectMeta{Name: "j", Namespace: "ns", UID: "job", ResourceVersion: "8", Generation: 2, CreationTimestamp: now,
		Labels: map[string]string{puller.LabelCacheUID: "u"}, Annotations: map[string]string{puller.AnnotationImages: "[]"},
		OwnerReferences: []metav1.OwnerReference{{Kind: "ImageCache", Name: "c", UID: "u"}}}
	job := &batchv1.Job{
		ObjectMeta: *jobMeta.DeepCopy(),
		Spec: batchv1.JobSpec{Suspend: ptr.To(true), BackoffLimit: ptr.To[int32](0), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}},
		Status: batchv1.JobStatus{StartTime: &now, Succeeded: 1, Conditions: []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue}, {Type: batchv1.JobFailed, Status: corev1.ConditionFalse},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "r", Message: "m"}},
			UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{Succeeded: []types.UID{"pod"}}},
	}
	job.ManagedFields = mf
	out, _ = ForCache(job)
	if want := (&batchv1.Job{ObjectMeta: jobMeta, Spec: batchv1.JobSpec{Suspend: ptr.To(true)},
		Status: batchv1.JobStatus{StartTime: &now, Conditions: []batchv1.JobCondition{{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "r", Message: "m"}}}}); !reflect.DeepEqual(out, want) {
		t.Errorf("job trimmed to\n%+v\nwant\n%+v", out, want)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", ManagedFields: mf, Labels: map[string]string{"l": "v"},
		Annotations: map[string]string{"a": "b"}},
		Status: corev1.NodeStatus{Images: []corev1.ContainerImage{{Names: []string{"x:1", "x@sha256:" + strings.Repeat("a", 64)}, SizeBytes: 1}},
			Addresses: []corev1.NodeAddress{{Address: "192.0.2.1"}}}}
	out, _ = ForCache(node)
	n := out.(*corev1.Node)
	if n.ManagedFields != nil || n.Labels["l"] != "v" || n.Annotations != nil || n.Status.Addresses != nil ||
		len(n.Status.Images) != 1 || len(n.Status.Images[0].Names) != 1 || strings.HasPrefix(n.Status.Images[0].Names[0], "x") {
		t.Errorf("node trimmed to %+v, want its images in compact form (Node)", n)
	}
}
