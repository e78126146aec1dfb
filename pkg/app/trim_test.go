package app

import (
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
		Spec:   corev1.PodSpec{NodeName: "n", Containers: []corev1.Container{{Name: "c", Image: "i"}}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "c"}}},
	}
	out, _ := trimForCache(pod)
	p := out.(*corev1.Pod)
	if p.ManagedFields != nil || len(p.Spec.Containers) != 0 || p.Spec.NodeName != "n" ||
		p.Annotations["a"] != "b" || len(p.OwnerReferences) != 1 || len(p.Status.ContainerStatuses) != 1 {
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
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", ManagedFields: mf, Labels: map[string]string{"l": "v"}},
		Status: corev1.NodeStatus{Images: []corev1.ContainerImage{{Names: []string{"x"}}}}}
	out, _ = trimForCache(node)
	n := out.(*corev1.Node)
	if n.ManagedFields != nil || n.Labels["l"] != "v" || len(n.Status.Images) != 1 {
		t.Errorf("node trimmed to %+v", n)
	}
}
