package puller

import (
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/remover"
)

// ComponentDelete is the LabelComponent value of delete Jobs.
const ComponentDelete = "image-delete"

// criSocketInPod is where the node's runtime socket is mounted in a delete pod.
const criSocketInPod = "/run/kube-fledged/cri.sock"

// DeleteBatch is one delete Job's work: images to remove from one node.
type DeleteBatch struct {
	Cache    *v1alpha2.ImageCache
	NodeName string
	Hostname string
	Images   []string
	Epoch    int64
	// Socket is the runtime's CRI socket on the node.
	Socket string
	// HostNetwork runs the pod in the node's network namespace.
	HostNetwork bool
	// Keep lists the names (normalised) other caches want on the node: an
	// image the runtime also knows under one of them stays.
	Keep []string
}

// DeleteDeadline is the delete Job's activeDeadlineSeconds.
func DeleteDeadline(images int) time.Duration {
	return 2*time.Minute + time.Duration(images)*10*time.Second
}

// NewDeleteJob builds the Job that removes images from one node through its
// runtime's CRI socket, with the project's own image. It runs in the
// controller's namespace (cfg.DeleteNamespace), as its root pod has the
// node's runtime socket: never in a tenant's.
func NewDeleteJob(cfg Config, b DeleteBatch) *batchv1.Job {
	args := []string{"rmi", "--socket", criSocketInPod, "--timeout", (DeleteDeadline(len(b.Images)) - 30*time.Second).String()}
	for _, k := range b.Keep {
		args = append(args, "--keep", k)
	}
	args = append(args, b.Images...)
	return nodeJob{
		name:      JobName(b.Cache.Name, string(b.Cache.UID), "delete\x00"+b.NodeName, b.Epoch, b.Images),
		namespace: cfg.DeleteNamespace,
		account:   cfg.DeleteServiceAccountName,
		component: ComponentDelete,
		cache:     b.Cache,
		node:      b.NodeName,
		hostname:  b.Hostname,
		images:    b.Images,
		epoch:     b.Epoch,
		deadline:  DeleteDeadline(len(b.Images)),
	}.build(cfg, criPod(cfg, "remove-images", args, b.HostNetwork, hostMount{"cri-socket", b.Socket, criSocketInPod, corev1.HostPathSocket}))
}

// hostMount is a folder or file of the node a fledged-cri pod mounts.
type hostMount struct {
	name, path, inPod string
	kind              corev1.HostPathType
}

// criPod is the pod of a Job that runs fledged-cri on a node: as root, for
// the runtime's socket (among the mounts) belongs to root, with nothing
// else, and the outcome's summary in its termination message. Every mount
// but the socket is read-only.
func criPod(cfg Config, container string, args []string, hostNetwork bool, mounts ...hostMount) corev1.PodSpec {
	pod := corev1.PodSpec{
		HostNetwork: hostNetwork,
		Containers: []corev1.Container{{
			Name:            container,
			Image:           cfg.CRIImage,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Command:         append([]string{"/fledged-cri"}, args...),
			Resources:       cfg.resources(),
			SecurityContext: &corev1.SecurityContext{
				RunAsUser:                ptr.To[int64](0),
				RunAsNonRoot:             ptr.To(false),
				AllowPrivilegeEscalation: ptr.To(false),
				ReadOnlyRootFilesystem:   ptr.To(true),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
			TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		}},
	}
	for _, m := range mounts {
		pod.Containers[0].VolumeMounts = append(pod.Containers[0].VolumeMounts,
			corev1.VolumeMount{Name: m.name, MountPath: m.inPod, ReadOnly: m.kind != corev1.HostPathSocket})
		pod.Volumes = append(pod.Volumes, corev1.Volume{Name: m.name, VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: m.path, Type: ptr.To(m.kind)}}})
	}
	return pod
}

// IsDeleteJob reports whether a Job of the controller's removes images.
func IsDeleteJob(job *batchv1.Job) bool { return job.Labels[LabelComponent] == ComponentDelete }

// ReadDelete works out each image's removal outcome from a delete Job, its
// pod and the time now: a Complete Job, or one whose pod Succeeded, removed
// everything; a failed one reports per image in its container's termination
// message; one whose pod did not start within the start deadline fails with
// the reason.
func ReadDelete(cfg Config, job *batchv1.Job, pod *corev1.Pod, now time.Time) (Outcome, error) {
	out, done, err := startOutcome(job)
	if done || err != nil {
		return out, err
	}
	images := out.Images
	if jobCondition(job, batchv1.JobComplete) != nil || podSucceeded(pod) {
		summary := summaryOf(pod, images)
		for i := range out.Results {
			out.Results[i] = Result{State: Succeeded}
			if summary != nil && summary[i].Outcome == cri.Kept {
				out.Results[i] = Result{State: Kept, Reason: ReasonKeptForAnotherName, Message: summary[i].Message}
			}
		}
		out.Finished = true
		return out, nil
	}
	failed := jobCondition(job, batchv1.JobFailed)
	if failed == nil {
		checkStart(cfg, job, pod, now, &out)
		return out, nil
	}
	out.Finished = true
	cause := jobFailure(failed, pod)
	summary := summaryOf(pod, images)
	for i := range images {
		var r remover.Result
		if summary != nil {
			r = summary[i]
		}
		switch r.Outcome {
		case cri.Removed, cri.AlreadyAbsent:
			out.Results[i] = Result{State: Succeeded}
		case cri.Kept:
			out.Results[i] = Result{State: Kept, Reason: ReasonKeptForAnotherName, Message: r.Message}
		case cri.Failed:
			msg := r.Message
			if msg == "" {
				msg = "the removal failed; its message did not fit in the Job's summary (see the pod's log)"
			}
			out.Results[i] = Result{State: Failed, Reason: "RemoveFailed", Message: msg}
		default:
			out.Results[i] = cause
		}
	}
	return out, nil
}

// summaryOf reads the remover's summary from the pod's terminated
// container, or nil.
func summaryOf(pod *corev1.Pod, images []string) []remover.Result {
	if pod == nil {
		return nil
	}
	var summary []remover.Result
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Terminated != nil {
			summary = remover.ParseSummary(cs.State.Terminated.Message, images)
		}
	}
	return summary
}
