package app

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubefledged.io/kube-fledged/pkg/controller/imagecache"
)

// trimForCache drops, before an object enters an informer's cache, what the
// controller never reads: managed fields everywhere; of Nodes all but what
// imagecache.TrimNode keeps (their reported images become a compact set);
// of pull pods their spec (but the node) and, of their status, all but the
// phase, conditions, start time and each container's name, image and state;
// of Jobs their pod template (their annotations, spec.suspend and status
// are read). The kubelet's image list on every Node is most of the memory
// of a controller that kept whole objects.
func trimForCache(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Node:
		return imagecache.TrimNode(o), nil
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
		o.Status = corev1.PodStatus{
			Phase:                 o.Status.Phase,
			Conditions:            o.Status.Conditions,
			Reason:                o.Status.Reason,
			Message:               o.Status.Message,
			StartTime:             o.Status.StartTime,
			InitContainerStatuses: trimContainerStatuses(o.Status.InitContainerStatuses),
			ContainerStatuses:     trimContainerStatuses(o.Status.ContainerStatuses),
		}
	case *batchv1.Job:
		o.ManagedFields = nil
		o.Spec.Template = corev1.PodTemplateSpec{}
	case metav1.Object:
		o.SetManagedFields(nil)
	}
	return obj, nil
}

// trimContainerStatuses keeps of each container status its name, image and
// state: what the controller reads of a pull pod.
func trimContainerStatuses(list []corev1.ContainerStatus) []corev1.ContainerStatus {
	if list == nil {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(list))
	for i, cs := range list {
		out[i] = corev1.ContainerStatus{Name: cs.Name, Image: cs.Image, State: cs.State}
	}
	return out
}
