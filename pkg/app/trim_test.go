package app

import (
	"reflect"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestTrimForCacheKeepsWhatTheControllerReads(t *testing.T) {
	mf := []metav1.ManagedFieldsEntry{{Manager: "x"}}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{"a": "b"}, ManagedFields: mf,
			OwnerReferences: []metav1.OwnerReference{{UID: "job"}}},
		Spec: corev1.PodSpec{NodeName: "n", Containers: []corev1.Container{{Name: "c", Image: "i"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", ContainerStatuses: []corev1.ContainerStatus{{Name: "c",
			Image: "i", ImageID: "sha256:1", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull"}}}}},
	}
	out, _ := trimForCache(pod)
	p := out.(*corev1.Pod)
	if p.ManagedFields != nil || len(p.Spec.Containers) != 0 || p.Spec.NodeName != "n" ||
		p.Annotations["a"] != "b" || len(p.OwnerReferences) != 1 || p.Status.Phase != corev1.PodRunning || p.Status.PodIP != "" ||
		!reflect.DeepEqual(p.Status.ContainerStatuses, []corev1.ContainerStatus{{Name: "c", Image: "i",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull"}}}}) {
		t.Errorf("pod trimmed to %+v", p)
	}
	suspend := true
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "j", Annotations: map[string]string{"kubefledged.io/images": "[]"}, ManagedFields: mf},
		Spec: batchv1.JobSpec{Suspend: &suspend, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c"}}}}},
		Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete}}},
	}
	out, _ = trimForCache(job)
	j := out.(*batchv1.Job)
	if j.ManagedFields != nil || len(j.Spec.Template.Spec.Containers) != 0 || j.Spec.Suspend == nil ||
		j.Annotations["kubefledged.io/images"] != "[]" || len(j.Status.Conditions) != 1 {
		t.Errorf("job trimmed to %+v", j)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", ManagedFields: mf, Labels: map[string]string{"l": "v"},
		Annotations: map[string]string{"a": "b"}},
		Status: corev1.NodeStatus{Images: []corev1.ContainerImage{{Names: []string{"x:1", "x@sha256:" + strings.Repeat("a", 64)}, SizeBytes: 1}},
			Addresses: []corev1.NodeAddress{{Address: "192.0.2.1"}}}}
	out, _ = trimForCache(node)
	n := out.(*corev1.Node)
	if n.ManagedFields != nil || n.Labels["l"] != "v" || n.Annotations != nil || n.Status.Addresses != nil ||
		len(n.Status.Images) != 1 || len(n.Status.Images[0].Names) != 1 || strings.HasPrefix(n.Status.Images[0].Names[0], "x") {
		t.Errorf("node trimmed to %+v, want its images in compact form (imagecache.TrimNode)", n)
	}
}
