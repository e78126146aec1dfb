package puller

import (
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/remover"
)

// The LabelComponent values of the Jobs that pin and unpin images.
const (
	ComponentPin   = "image-pin"
	ComponentUnpin = "image-unpin"
)

// Why a pin Job did not pin an image.
const (
	// ReasonPinBudgetExceeded: pinning it would take the node's pinned
	// images past the disk budget.
	ReasonPinBudgetExceeded = "PinBudgetExceeded"
	// ReasonPinUnsupported: the node's runtime cannot pin images.
	ReasonPinUnsupported = "PinUnsupported"
	// ReasonPinFailed: the pin failed (the runtime's message says why).
	ReasonPinFailed = "PinFailed"
	// ReasonImageGone: the image the cache had on the node is no longer
	// there (the kubelet's image garbage collection, or someone, removed
	// it).
	ReasonImageGone = "ImageGone"
)

// imageFSInPod is where the node's image filesystem (the runtime's root) is
// mounted, read-only, in a pin pod, for the disk budget.
const imageFSInPod = "/run/kube-fledged/image-fs"

// PinBatch is one pin or unpin Job's work: images of one cache on one node.
type PinBatch struct {
	Cache    *v1alpha2.ImageCache
	NodeName string
	Hostname string
	Images   []string
	Epoch    int64
	// Unpin takes the cache's pins away instead of pinning.
	Unpin bool
	// Socket is containerd's socket on the node (its CRI's).
	Socket string
	// BudgetPercent is the most percent of the node's image filesystem
	// the pinned images may take (0: no budget); Root is a folder of that
	// filesystem on the node (containerd's root).
	BudgetPercent int
	Root          string
	// Attempt tells apart the Jobs of the same images on the same node in
	// one epoch (a pin, its unpin, a pin again, an unpin tried again);
	// AnnotationAttempt records it.
	Attempt int
}

// PinDeadline is the pin Job's activeDeadlineSeconds.
func PinDeadline(images int) time.Duration {
	return 2*time.Minute + time.Duration(images)*5*time.Second
}

// IsPinJob reports whether a Job of the controller pins or unpins images.
func IsPinJob(job *batchv1.Job) bool {
	c := job.Labels[LabelComponent]
	return c == ComponentPin || c == ComponentUnpin
}

// IsPullJob reports whether a Job of the controller pulls images.
func IsPullJob(job *batchv1.Job) bool { return !IsDeleteJob(job) && !IsPinJob(job) }

// IsUnpinJob reports whether a Job of the controller unpins images.
func IsUnpinJob(job *batchv1.Job) bool { return job.Labels[LabelComponent] == ComponentUnpin }

// NewPinJob builds the Job that pins (or unpins) images of a cache on one
// node through containerd's socket, with the project's CRI image. Like the
// delete Jobs, it runs in the controller's namespace, never in a tenant's.
func NewPinJob(cfg Config, b PinBatch) *batchv1.Job {
	verb, component := "pin", ComponentPin
	if b.Unpin {
		verb, component = "unpin", ComponentUnpin
	}
	deadline := PinDeadline(len(b.Images))
	args := []string{verb, "--socket", criSocketInPod, "--timeout", (deadline - 30*time.Second).String(),
		"--cache", string(b.Cache.UID), "--cache-name", b.Cache.Namespace + "/" + b.Cache.Name}
	mounts := []hostMount{{"cri-socket", b.Socket, criSocketInPod, corev1.HostPathSocket}}
	if !b.Unpin && b.BudgetPercent > 0 {
		args = append(args, "--budget", strconv.Itoa(b.BudgetPercent), "--root", imageFSInPod)
		mounts = append(mounts, hostMount{"image-fs", b.Root, imageFSInPod, corev1.HostPathDirectory})
	}
	args = append(args, b.Images...)
	job := nodeJob{
		name:      jobName(b.Cache.Name, string(b.Cache.UID), verb+"\x00"+b.NodeName, b.Epoch, b.Attempt, b.Images),
		namespace: cfg.DeleteNamespace,
		account:   cfg.DeleteServiceAccountName,
		component: component,
		cache:     b.Cache,
		node:      b.NodeName,
		hostname:  b.Hostname,
		images:    b.Images,
		epoch:     b.Epoch,
		deadline:  deadline,
	}.build(cfg, criPod(cfg, verb+"-images", args, false, mounts...))
	if b.Attempt > 0 {
		job.Annotations[AnnotationAttempt] = strconv.Itoa(b.Attempt)
	}
	return job
}

// PinAttempt is the try a pin or unpin Job is (PinBatch.Attempt): 0 for
// the first, or when its annotation does not read.
func PinAttempt(job *batchv1.Job) int {
	n, err := strconv.Atoi(job.Annotations[AnnotationAttempt])
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// ReadPin works out each image's outcome from a pin or unpin Job and its
// pod's summary: Succeeded where the image is pinned (or, for an unpin, the
// cache's pin is gone, or the image is); Failed, with the reason, where it
// was not. A Job that did not finish fails its images with its own failure,
// and one whose pod did not start within the start deadline with why; a pin
// Job whose summary cannot be read pins nothing.
func ReadPin(cfg Config, job *batchv1.Job, pod *corev1.Pod, now time.Time) (Outcome, error) {
	out, done, err := startOutcome(job)
	if done || err != nil {
		return out, err
	}
	images := out.Images
	complete := jobCondition(job, batchv1.JobComplete) != nil || podSucceeded(pod)
	failedCond := jobCondition(job, batchv1.JobFailed)
	if !complete && failedCond == nil {
		checkStart(cfg, job, pod, now, &out)
		return out, nil
	}
	out.Finished = true
	summary := summaryOf(pod, images)
	for i := range images {
		var r remover.Result
		if summary != nil {
			r = summary[i]
		}
		out.Results[i] = pinResult(r, IsUnpinJob(job))
		if out.Results[i].State != Pending {
			continue
		}
		// The summary does not say: the Job's own outcome. The unpin
		// command succeeds only where every pin went; the pin command
		// also where the node refused a pin, so that a pin is never
		// taken as done without its word.
		switch {
		case !complete:
			out.Results[i] = jobFailure(failedCond, pod)
		case IsUnpinJob(job):
			out.Results[i] = Result{State: Succeeded}
		default:
			out.Results[i] = Result{State: Failed, Reason: ReasonPinFailed,
				Message: "the pin Job completed, but its outcome could not be read (its pod is gone): the pin is tried again in the next operation"}
		}
	}
	return out, nil
}

// pinResult is one image's outcome from the pin command's summary, Pending
// when the summary does not say.
func pinResult(r remover.Result, unpin bool) Result {
	switch r.Outcome {
	case cri.Pinned, cri.Unpinned:
		return Result{State: Succeeded, Message: r.Message}
	case cri.AlreadyAbsent:
		if unpin {
			return Result{State: Succeeded}
		}
		return Result{State: Failed, Reason: ReasonImageGone, Message: "the image left the node before it could be pinned " +
			"(the kubelet's image garbage collection, or someone, removed it); the next operation pulls it again"}
	case cri.OverBudget:
		return Result{State: Failed, Reason: ReasonPinBudgetExceeded, Message: r.Message}
	case cri.Unsupported:
		return Result{State: Failed, Reason: ReasonPinUnsupported, Message: r.Message}
	case cri.Failed:
		msg := r.Message
		if msg == "" {
			msg = "the pin failed; its message did not fit in the Job's summary (see the pod's log)"
		}
		return Result{State: Failed, Reason: ReasonPinFailed, Message: msg}
	}
	return Result{State: Pending}
}
