// Package fledgedtest builds the objects the controller's tests work on:
// ImageCaches and Nodes as a user and a kubelet make them, and the pods,
// container states and events of the controller's Jobs as the Job
// controller and the kubelet would make them. The unit tests (on fake
// clientsets) and the integration tests (on a real API server) share them.
package fledgedtest

import (
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// CacheOption changes an ImageCache being built.
type CacheOption func(*v1alpha2.ImageCache)

// NewImageCache returns an ImageCache of generation 1 with the UID
// "uid-NAME".
func NewImageCache(namespace, name string, opts ...CacheOption) *v1alpha2.ImageCache {
	ic := &v1alpha2.ImageCache{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha2.SchemeGroupVersion.String(), Kind: "ImageCache"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: types.UID("uid-" + name), Generation: 1},
	}
	for _, o := range opts {
		o(ic)
	}
	return ic
}

// WithImages adds an entry of images for every node.
func WithImages(images ...string) CacheOption {
	return func(ic *v1alpha2.ImageCache) {
		ic.Spec.CacheSpec = append(ic.Spec.CacheSpec, v1alpha2.CacheSpecImages{Images: images})
	}
}

// WithSelectedImages adds an entry of images for the nodes with the labels.
func WithSelectedImages(sel map[string]string, images ...string) CacheOption {
	return func(ic *v1alpha2.ImageCache) {
		ns := map[string]v1alpha2.LabelValue{}
		for k, v := range sel {
			ns[k] = v1alpha2.LabelValue(v)
		}
		ic.Spec.CacheSpec = append(ic.Spec.CacheSpec, v1alpha2.CacheSpecImages{Images: images, NodeSelector: ns})
	}
}

// WithPullSecrets adds image pull secrets.
func WithPullSecrets(names ...string) CacheOption {
	return func(ic *v1alpha2.ImageCache) {
		for _, n := range names {
			ic.Spec.ImagePullSecrets = append(ic.Spec.ImagePullSecrets, v1alpha2.ImagePullSecret{Name: n})
		}
	}
}

// NodeOption changes a Node being built.
type NodeOption func(*corev1.Node)

// NewNode returns a Ready node with its hostname label and the UID
// "uid-NAME".
func NewNode(name string, opts ...NodeOption) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), ResourceVersion: "1",
			Labels: map[string]string{puller.HostnameLabel: name}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

// WithLabels sets labels, as key, value, key, value...
func WithLabels(kv ...string) NodeOption {
	return func(n *corev1.Node) {
		for i := 0; i+1 < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
}

// NotReady makes the node's Ready condition False.
func NotReady() NodeOption {
	return func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse }
}

// WithNodeImages adds an image the node reports, under its names.
func WithNodeImages(names ...string) NodeOption {
	return func(n *corev1.Node) {
		n.Status.Images = append(n.Status.Images, corev1.ContainerImage{Names: names})
	}
}

// WithRuntime sets the container runtime the node reports.
func WithRuntime(version string) NodeOption {
	return func(n *corev1.Node) { n.Status.NodeInfo.ContainerRuntimeVersion = version }
}

// WithTaints adds NoSchedule taints.
func WithTaints(keys ...string) NodeOption {
	return func(n *corev1.Node) {
		for _, k := range keys {
			n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: k, Effect: corev1.TaintEffectNoSchedule})
		}
	}
}

// BusyNode is a node as a busy kubelet reports it: n images, each by tag and
// by digest, with the rest of a real node's status.
func BusyNode(name string, n int) *corev1.Node {
	node := NewNode(name, WithLabels("topology.kubernetes.io/zone", "zone-a"), WithRuntime("containerd://2.0.0"))
	node.Annotations = map[string]string{"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}
	node.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate}}
	node.Spec.PodCIDR = "10.244.1.0/24"
	node.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "web", Effect: corev1.TaintEffectNoSchedule}}
	node.Status.Conditions = append([]corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse,
		Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"}}, node.Status.Conditions...)
	node.Status.Conditions[1].Message = "kubelet is posting ready status"
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.10"}}
	node.Status.NodeInfo.KubeletVersion = "v1.37.2"
	for i := range n {
		repo := fmt.Sprintf("registry.example.com/team-%d/service-%03d", i%7, i)
		node.Status.Images = append(node.Status.Images, corev1.ContainerImage{
			Names:     []string{repo + "@sha256:" + fmt.Sprintf("%064x", i+1), repo + ":1.2." + fmt.Sprint(i)},
			SizeBytes: int64(10_000_000 + i),
		})
	}
	return node
}

// JobOption changes a Job being built.
type JobOption func(*batchv1.Job)

// NewJob returns a bare Job of the controller's: its name, namespace, UID
// and the annotation naming its cache. The controller's own Jobs come from
// puller.NewPullJob and NewDeleteJob; this one is for what reads Jobs.
func NewJob(namespace, name, uid, cacheName string, opts ...JobOption) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: types.UID(uid),
		Annotations: map[string]string{puller.AnnotationCache: cacheName}}}
	for _, o := range opts {
		o(j)
	}
	return j
}

// Deleting marks the Job as being deleted since at.
func Deleting(at time.Time) JobOption {
	return func(j *batchv1.Job) { t := metav1.NewTime(at); j.DeletionTimestamp = &t }
}

// ControlledBy makes the cache the Job's controller.
func ControlledBy(ic *v1alpha2.ImageCache) JobOption {
	return func(j *batchv1.Job) {
		j.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(ic, v1alpha2.SchemeGroupVersion.WithKind("ImageCache"))}
	}
}

// PodOf is the pod the Job controller makes for a Job, named NAME-SUFFIX,
// with the UID "pod-JOBUID", started at the Job's creation, Pending; the
// kubelet's part (its status) is for the caller to set.
func PodOf(job *batchv1.Job, suffix string) *corev1.Pod {
	start := metav1.NewTime(job.CreationTimestamp.Time)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: job.Name + "-" + suffix, Namespace: job.Namespace, UID: types.UID("pod-" + string(job.UID)),
			Labels: job.Spec.Template.Labels, Annotations: job.Spec.Template.Annotations,
			CreationTimestamp: start,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: job.Name,
				UID: job.UID, Controller: ptr.To(true)}},
		},
		Spec:   job.Spec.Template.Spec,
		Status: corev1.PodStatus{Phase: corev1.PodPending, StartTime: &start},
	}
}

// WithContainerStates sets the status of each of the pod's containers, in
// the order of its spec, from states by container name (a container not in
// states has no state yet).
func WithContainerStates(pod *corev1.Pod, states map[string]corev1.ContainerState) *corev1.Pod {
	pod.Status.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses,
			corev1.ContainerStatus{Name: c.Name, Image: c.Image, State: states[c.Name]})
	}
	return pod
}

// Succeeded is the pod once every container exited 0 at the time given.
func Succeeded(pod *corev1.Pod, at time.Time) *corev1.Pod {
	states := map[string]corev1.ContainerState{}
	for _, c := range pod.Spec.Containers {
		states[c.Name] = TerminatedOK(at)
	}
	WithContainerStates(pod, states)
	pod.Status.Phase = corev1.PodSucceeded
	return pod
}

// TerminatedOK is a container that exited 0.
func TerminatedOK(at time.Time) corev1.ContainerState {
	t := metav1.NewTime(at)
	return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed",
		StartedAt: t, FinishedAt: t}}
}

// Waiting is a container that waits, as the kubelet says why.
func Waiting(reason, message string) corev1.ContainerState {
	return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}
}

// Complete sets a Job's status as the Job controller does once its pod
// succeeded.
func Complete(job *batchv1.Job, at time.Time) *batchv1.Job {
	now := metav1.NewTime(at)
	job.Status.StartTime = &now
	job.Status.CompletionTime = &now
	job.Status.Succeeded = 1
	job.Status.Conditions = append(job.Status.Conditions,
		batchv1.JobCondition{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastProbeTime: now, LastTransitionTime: now},
		batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastProbeTime: now, LastTransitionTime: now})
	return job
}

// PullingEvent is the kubelet's "Pulling" event for a container of a pod:
// it pulled the image (the node did not have it).
func PullingEvent(pod *corev1.Pod, container corev1.Container) *corev1.Event {
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name + "." + container.Name, Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
			FieldPath: "spec.containers{" + container.Name + "}"},
		Reason: "Pulling", Message: fmt.Sprintf("Pulling image %q", container.Image), Type: corev1.EventTypeNormal,
	}
}

// Events returns the events a FakeRecorder took since the last call. The
// controllers record them within a sync, so a receive with a short deadline
// is enough; none ever blocks.
func Events(r *record.FakeRecorder) []string {
	var evs []string
	for {
		select {
		case e := <-r.Events:
			evs = append(evs, e)
		case <-time.After(10 * time.Millisecond):
			return evs
		}
	}
}
