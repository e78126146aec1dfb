package puller

import (
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// ReasonPodNotCreated is the reason of a Job's images when the Job made no
// pod in time. The controller replaces it with the Job's own FailedCreate
// event where it finds one (see Outcome.NoPod).
const ReasonPodNotCreated = "PodNotCreated"

// waitingIsProgress are the waiting reasons of a container that is on its
// way: anything else (ErrImagePull, CreateContainerConfigError, ...) says
// why it is not.
var waitingIsProgress = map[string]bool{"": true, "PodInitializing": true, "ContainerCreating": true}

// podStarted reports whether a Job's pod got going: the kubelet runs it
// (its phase moved on from Pending), a container ran, or a pull pod
// (pullPod) is past its init container, the helper's install: an image
// container shows a state other than waiting for it, or the init
// containers all finished well. From then on, the per-image deadlines
// apply. (The informer keeps no pod spec: only the statuses tell.)
func podStarted(pod *corev1.Pod, pullPod bool) bool {
	if pod == nil {
		return false
	}
	if pod.Status.Phase != corev1.PodPending && pod.Status.Phase != "" {
		return true
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Running != nil || cs.State.Terminated != nil {
			return true
		}
		if w := cs.State.Waiting; w != nil && w.Reason != "PodInitializing" && pullPod {
			return true // an image container, past the init container
		}
	}
	if len(pod.Status.InitContainerStatuses) == 0 {
		return false
	}
	for _, cs := range pod.Status.InitContainerStatuses {
		if t := cs.State.Terminated; t == nil || t.ExitCode != 0 {
			return false
		}
	}
	return true
}

// helperFailed reports whether one of a pod's init containers exited with
// an error.
func helperFailed(pod *corev1.Pod) bool {
	for _, cs := range pod.Status.InitContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return true
		}
	}
	return false
}

// whyNotStarted says, as a failure, why a Job's pod did not start within
// the start deadline d: the pod never made (ReasonPodNotCreated), the
// scheduler's reason, or a container's (the helper image cannot be pulled,
// the helper failed).
func whyNotStarted(pod *corev1.Pod, d time.Duration) Result {
	if pod == nil {
		return Result{State: Failed, Reason: ReasonPodNotCreated,
			Message: fmt.Sprintf("the Job created no pod within %s", d)}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return Result{State: Failed, Reason: nonEmpty(c.Reason, "Unschedulable"),
				Message: fmt.Sprintf("pod %s not scheduled within %s: %s", pod.Name, d, c.Message)}
		}
	}
	statuses := append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...)
	for _, cs := range statuses {
		if w := cs.State.Waiting; w != nil && !waitingIsProgress[w.Reason] {
			return Result{State: Failed, Reason: w.Reason,
				Message: fmt.Sprintf("container %s (image %s) of pod %s: %s", cs.Name, cs.Image, pod.Name, w.Message)}
		}
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return Result{State: Failed, Reason: nonEmpty(t.Reason, "Error"),
				Message: fmt.Sprintf("container %s (image %s) of pod %s exited with code %d: %s", cs.Name, cs.Image, pod.Name, t.ExitCode, t.Message)}
		}
	}
	return Result{State: Failed, Reason: "StartDeadlineExceeded",
		Message: fmt.Sprintf("pod %s did not start within %s (phase %s)", pod.Name, d, nonEmpty(string(pod.Status.Phase), "Pending"))}
}

// checkStart applies the start deadline to a Job that has not finished:
// when its pod has not started by then, every image not settled yet fails
// with whyNotStarted, and the Job is to be ended (EndNow). It returns true
// when it decided the outcome; otherwise, while the pod has not started, it
// asks for a look at the deadline.
func checkStart(cfg Config, job *batchv1.Job, pod *corev1.Pod, now time.Time, out *Outcome) bool {
	if cfg.StartDeadline <= 0 || podStarted(pod, !IsDeleteJob(job) && !IsPinJob(job)) {
		return false
	}
	at := job.CreationTimestamp.Add(cfg.StartDeadline)
	if now.Before(at) {
		if out.CheckAt.IsZero() || at.Before(out.CheckAt) {
			out.CheckAt = at
		}
		return false
	}
	why := whyNotStarted(pod, cfg.StartDeadline)
	for i := range out.Results {
		if out.Results[i].State != Succeeded && out.Results[i].State != Failed {
			out.Results[i] = why
		}
	}
	out.NoPod = pod == nil
	out.EndNow = true
	out.Finished = true
	out.CheckAt = time.Time{}
	return true
}
