package app

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// trimForCache drops, before an object enters an informer's cache, what the
// controller never reads: managed fields everywhere, the pod spec of pull
// pods (only their status is read) and the pod template of Jobs (their
// annotations, spec.suspend and status are read). At 1,000 nodes these are
// most of the controller's memory.
func trimForCache(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Event:
		// Only which pod, which container, and why.
		return &corev1.Event{
			ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, UID: o.UID, ResourceVersion: o.ResourceVersion},
			InvolvedObject: corev1.ObjectReference{Kind: o.InvolvedObject.Kind, UID: o.InvolvedObject.UID,
				FieldPath: o.InvolvedObject.FieldPath},
			Reason: o.Reason,
		}, nil
	case *corev1.Pod:
		o.ManagedFields = nil
		o.Spec = corev1.PodSpec{NodeName: o.Spec.NodeName}
	case *batchv1.Job:
		o.ManagedFields = nil
		o.Spec.Template = corev1.PodTemplateSpec{}
	case metav1.Object:
		o.SetManagedFields(nil)
	}
	return obj, nil
}
