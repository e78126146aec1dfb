package trim

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubefledged.io/kube-fledged/pkg/puller"
)

// ForCache drops, before an object enters an informer's cache, what the
// controller never reads. The kubelet's image list on every Node, and the
// pull Jobs and pods an operation keeps until it completes (one of each per
// node and batch of images), are most of the memory of a controller that
// kept whole objects:
//   - Nodes: all but what Node keeps (their reported images
//     become a compact set of hashes);
//   - pull and delete Jobs: their pod template, spec (but suspend) and
//     conditions that do not hold; their labels and annotations (all the
//     controller's own, read back) stay;
//   - their pods: trimPod;
//   - Events: which object, which container, why and when (and the
//     message of a Pulled event);
//   - everything: managed fields.
func ForCache(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Node:
		return Node(o), nil
	case *corev1.Event:
		// Only which pod, which container, why and when; and what a
		// Pulled event says of the pull (how long, how large).
		out := &corev1.Event{
			ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, UID: o.UID, ResourceVersion: o.ResourceVersion},
			InvolvedObject: corev1.ObjectReference{Kind: o.InvolvedObject.Kind, UID: o.InvolvedObject.UID,
				FieldPath: o.InvolvedObject.FieldPath},
			Reason:         o.Reason,
			FirstTimestamp: o.FirstTimestamp,
			LastTimestamp:  o.LastTimestamp,
			EventTime:      o.EventTime,
		}
		if o.Reason == "Pulled" {
			out.Message = o.Message
		}
		return out, nil
	case *corev1.Pod:
		return trimPod(o), nil
	case *batchv1.Job:
		return trimJob(o), nil
	case metav1.Object:
		o.SetManagedFields(nil)
	}
	return obj, nil
}

// trimPod keeps of a pull (or delete) pod what the controller reads: its
// name, UID, times, controller (the Job), the cache it belongs to, its node,
// and, of its status, the phase, conditions, start time and each
// container's name, image, image ID and state. Of a pull pod that Succeeded
// it keeps the phase and start time alone: every container exited 0, which
// is all there is to know (puller.Read), and such pods are most of an
// operation's; but one that pulled images Always keeps its containers, whose
// image IDs are the digests they got (a moved tag is reported), and a delete
// pod keeps its container's state, whose termination message says what it
// kept (puller.ReadDelete), as a pin pod's says what it pinned (puller.ReadPin).
func trimPod(p *corev1.Pod) *corev1.Pod {
	out := &corev1.Pod{
		ObjectMeta: identity(&p.ObjectMeta),
		Spec:       corev1.PodSpec{NodeName: p.Spec.NodeName},
	}
	if ref := metav1.GetControllerOfNoCopy(p); ref != nil {
		out.OwnerReferences = []metav1.OwnerReference{*ref}
	}
	if name, ok := p.Annotations[puller.AnnotationCache]; ok {
		out.Annotations = map[string]string{puller.AnnotationCache: name}
		if ns, ok := p.Annotations[puller.AnnotationCacheNamespace]; ok {
			out.Annotations[puller.AnnotationCacheNamespace] = ns
		}
	}
	if p.Status.Phase == corev1.PodSucceeded {
		out.Status = corev1.PodStatus{Phase: corev1.PodSucceeded, StartTime: p.Status.StartTime}
		if c := p.Labels[puller.LabelComponent]; c == puller.ComponentDelete || c == puller.ComponentPin || c == puller.ComponentUnpin ||
			p.Annotations[puller.AnnotationReportDigests] != "" {
			// A delete pod's summary says which images it kept, a pin
			// pod's which it pinned and why not the others, and a pull
			// pod of images pulled Always the digests they got (few
			// such pods: one per node and removal, pin, or refresh).
			out.Status.ContainerStatuses = trimContainerStatuses(p.Status.ContainerStatuses)
		}
		return out
	}
	out.Status = corev1.PodStatus{
		Phase:                 p.Status.Phase,
		Conditions:            p.Status.Conditions,
		Reason:                p.Status.Reason,
		Message:               p.Status.Message,
		StartTime:             p.Status.StartTime,
		InitContainerStatuses: trimContainerStatuses(p.Status.InitContainerStatuses),
		ContainerStatuses:     trimContainerStatuses(p.Status.ContainerStatuses),
	}
	return out
}

// trimJob keeps of a Job its metadata (but managed fields and finalizers),
// spec.suspend, and of its status the start time and the conditions that
// hold, which is what the controller reads (puller.Read, puller.IsActive).
func trimJob(j *batchv1.Job) *batchv1.Job {
	out := &batchv1.Job{
		ObjectMeta: identity(&j.ObjectMeta),
		Spec:       batchv1.JobSpec{Suspend: j.Spec.Suspend},
		Status:     batchv1.JobStatus{StartTime: j.Status.StartTime},
	}
	out.Generation, out.Labels, out.Annotations, out.OwnerReferences = j.Generation, j.Labels, j.Annotations, j.OwnerReferences
	for _, c := range j.Status.Conditions {
		if c.Status == corev1.ConditionTrue {
			out.Status.Conditions = append(out.Status.Conditions, c)
		}
	}
	return out
}

// trimContainerStatuses keeps of each container status its name, image,
// image ID and state: what the controller reads of a pull pod.
func trimContainerStatuses(list []corev1.ContainerStatus) []corev1.ContainerStatus {
	if list == nil {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(list))
	for i, cs := range list {
		out[i] = corev1.ContainerStatus{Name: cs.Name, Image: cs.Image, ImageID: cs.ImageID, State: cs.State}
	}
	return out
}

// identity is the part of an object's metadata every trimmed object keeps:
// which object it is, which version, and when it was made and deleted.
func identity(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp}
}
