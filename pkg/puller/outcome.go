package puller

import (
	"encoding/json"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// State is where one image's pull stands.
type State int

const (
	// Pending: not pulled yet, or pulling.
	Pending State = iota
	// Succeeded: the image's container ran, so the image is on the node.
	Succeeded
	// Failed: the pull failed, with a reason and message.
	Failed
	// Kept: a delete Job left the image, as the runtime knows it under
	// another name that must stay (the message says which).
	Kept
)

// ReasonKeptForAnotherName is a kept image's reason.
const ReasonKeptForAnotherName = "KeptForAnotherName"

// Result is one image's outcome in a Job.
type Result struct {
	State   State  `json:"-"`
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

// Outcome is what a pull Job says about its images.
type Outcome struct {
	// Images are the Job's images in container order, and Results their outcomes.
	Images  []string
	Results []Result
	// Finished is true when no image is Pending any more.
	Finished bool
	// EndNow is true when the controller must record the results on the Job
	// and end it (see RecordAndSuspend): its own deadline has passed, or the
	// only images left are failing to pull and have had their time.
	EndNow bool
	// CheckAt is when the Job should be looked at again if nothing changes
	// before then (zero when finished).
	CheckAt time.Time
	// NoPod is true when the Job made no pod within the start deadline:
	// the reason is then in the Job's FailedCreate events, which the caller
	// may read to replace ReasonPodNotCreated.
	NoPod bool
}

// pullErrorReasons are the kubelet's waiting reasons for an image that
// cannot be pulled (or run).
var pullErrorReasons = map[string]bool{
	"ErrImagePull":               true,
	"ImagePullBackOff":           true,
	"InvalidImageName":           true,
	"ErrImageNeverPull":          true,
	"RegistryUnavailable":        true,
	"SignatureValidationFailed":  true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
	"CrashLoopBackOff":           true,
}

// IsActive reports whether a Job still runs, as far as the controller is
// concerned: not complete, not failed, not ended by the controller.
func IsActive(job *batchv1.Job) bool {
	if _, ok := job.Annotations[AnnotationResults]; ok {
		return false
	}
	for _, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return false
		}
	}
	return true
}

// podSucceeded reports whether a Job's pod Succeeded: every container
// exited 0 (none is restarted), so every image is on the node, before the
// Job controller marks the Job Complete. The informer's cache keeps no more
// of such a pod than its phase.
func podSucceeded(pod *corev1.Pod) bool {
	return pod != nil && pod.Status.Phase == corev1.PodSucceeded
}

func jobCondition(job *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range job.Status.Conditions {
		if c := &job.Status.Conditions[i]; c.Type == t && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

// Read works out each image's outcome from the Job, its pod (nil when there is
// none, or it is gone), when the kubelet last started pulling the image of
// each container (pulling, by container name, from its Pulling events; a
// container with none has not started, or its event was dropped), and the
// time now.
//
// Each image has its pull deadline (ImageDeadlines), counted from its
// Pulling event: an image still pulling past it failed, with
// DeadlineExceeded. The Job as a whole has the sum of them, counted from its
// pod's start (until then, only the start deadline holds it), and later if
// an image started pulling late: at its end, whatever
// has not settled failed, so that an image whose event was dropped does not
// hold the Job for ever.
func Read(cfg Config, job *batchv1.Job, pod *corev1.Pod, pulling map[string]time.Time, now time.Time) (Outcome, error) {
	out, done, err := startOutcome(job)
	if done || err != nil {
		return out, err
	}
	if jobCondition(job, batchv1.JobComplete) != nil || podSucceeded(pod) {
		return succeededAll(out), nil
	}
	p := readContainers(job, pod, pulling, ImageDeadlines(cfg, job, out.Images), now, &out)
	if c := jobCondition(job, batchv1.JobFailed); c != nil {
		return failedJob(out, jobFailure(c, pod), p.failing), nil
	}
	if checkStart(cfg, job, pod, now, &out) {
		return out, nil
	}
	if cfg.StartDeadline > 0 && !podStarted(pod, true) {
		// Until the pod starts, its start deadline alone holds it
		// (checkStart asked for a look then): no pull has begun, so the
		// pulls' deadlines, which may add up to less, do not count yet.
		return out, nil
	}
	startAt := out.CheckAt
	p.decide(cfg, pod, now, &out)
	if !out.Finished && !startAt.IsZero() && startAt.Before(out.CheckAt) {
		out.CheckAt = startAt
	}
	return out, nil
}

// succeededAll is the outcome of a Job that completed: every image pulled.
func succeededAll(out Outcome) Outcome {
	for i := range out.Results {
		out.Results[i] = Result{State: Succeeded}
	}
	out.Finished = true
	return out
}

// progress is what a pull Job's containers say of its pulls.
type progress struct {
	// started is when the Job started, lastProgress when its latest image
	// finished (or its pod started); deadline is the Job's own deadline,
	// and ownCheck the earliest own deadline of an image still pulling.
	started, lastProgress, deadline, ownCheck time.Time
	// failing holds the images whose pull fails for a reason that may
	// pass; pending counts those still pulling, stuck those whose pull
	// failed for good, and late those past their own deadline: the pod
	// does not end by itself.
	failing              map[int]bool
	pending, stuck, late int
}

// readContainers reads each image's result from its container in the pod
// (out.Results), and what they say of the Job's progress.
func readContainers(job *batchv1.Job, pod *corev1.Pod, pulling map[string]time.Time, deadlines []time.Duration,
	now time.Time, out *Outcome) progress {
	p := progress{lastProgress: job.CreationTimestamp.Time, failing: map[int]bool{}}
	if job.Status.StartTime != nil {
		p.lastProgress = job.Status.StartTime.Time
	}
	if pod != nil && pod.Status.StartTime != nil && pod.Status.StartTime.After(p.lastProgress) {
		// A pod that started late (it waited for a node's room, or to
		// be scheduled) pulls from then.
		p.lastProgress = pod.Status.StartTime.Time
	}
	p.started = p.lastProgress
	p.deadline = p.started.Add(sum(deadlines))
	if pod == nil {
		p.pending = len(out.Images)
		return p
	}
	byName := map[string]corev1.ContainerStatus{}
	for _, cs := range pod.Status.ContainerStatuses {
		byName[cs.Name] = cs
	}
	for i := range out.Images {
		cs, ok := byName[ContainerName(i)]
		switch {
		case ok && cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			out.Results[i] = Result{State: Succeeded}
			if t := cs.State.Terminated.FinishedAt.Time; t.After(p.lastProgress) {
				p.lastProgress = t
			}
		case ok && cs.State.Terminated != nil:
			t := cs.State.Terminated
			out.Results[i] = Result{State: Failed, Reason: nonEmpty(t.Reason, "Error"),
				Message: fmt.Sprintf("helper exited with code %d: %s", t.ExitCode, t.Message)}
		case ok && cs.State.Waiting != nil && pullErrorReasons[cs.State.Waiting.Reason]:
			w := cs.State.Waiting
			if reason, ok := PermanentPullFailure(w.Reason, w.Message); ok {
				// Asking again will not mend it: failed now.
				out.Results[i] = Result{State: Failed, Reason: reason, Message: w.Message}
				p.stuck++
				break
			}
			p.failing[i] = true
			out.Results[i] = Result{State: Pending, Reason: w.Reason, Message: w.Message}
		default:
			p.stillPulling(i, job, pulling, deadlines[i], now, out)
		}
	}
	return p
}

// stillPulling reads an image whose container neither ended nor failed to
// pull: past its own deadline (from when the kubelet started to pull it)
// it failed; else it is pending.
func (p *progress) stillPulling(i int, job *batchv1.Job, pulling map[string]time.Time, deadline time.Duration, now time.Time,
	out *Outcome) {
	since, ok := pulling[ContainerName(i)]
	if !ok || since.Before(job.CreationTimestamp.Time) {
		p.pending++
		return
	}
	own := since.Add(deadline)
	if !now.Before(own) {
		out.Results[i] = Result{State: Failed, Reason: "DeadlineExceeded",
			Message: fmt.Sprintf("image not pulled within %s of the kubelet starting to pull it, at %s", deadline,
				since.UTC().Format(time.RFC3339))}
		p.late++
		return
	}
	p.pending++
	if own.After(p.deadline) {
		p.deadline = own
	}
	if p.ownCheck.IsZero() || own.Before(p.ownCheck) {
		p.ownCheck = own
	}
}

// failedJob is the outcome of a Job that ended (its deadline, or its pod
// failed): whatever did not succeed failed, with the kubelet's reason
// where it gave one, or why the pod never got going (cause).
func failedJob(out Outcome, cause Result, failing map[int]bool) Outcome {
	for i := range out.Results {
		if out.Results[i].State == Succeeded || out.Results[i].State == Failed {
			continue
		}
		if failing[i] {
			out.Results[i].State = Failed
			continue
		}
		out.Results[i] = cause
	}
	out.Finished = true
	return out
}

// decide says, of a Job that runs, whether to end it now and with what,
// or when to look again.
func (p *progress) decide(cfg Config, pod *corev1.Pod, now time.Time, out *Outcome) {
	switch {
	case !now.Before(p.deadline) && !podStarted(pod, true):
		// Our own deadline, and the pod never got going: say why.
		why := whyNotStarted(pod, p.deadline.Sub(p.started))
		for i := range out.Results {
			if out.Results[i].State != Succeeded {
				out.Results[i] = why
			}
		}
		out.NoPod = pod == nil
		out.EndNow = true
		out.Finished = true
	case !now.Before(p.deadline):
		// Our own deadline, before the Job's: record while the pod is there.
		for i := range out.Results {
			if out.Results[i].State == Pending {
				if out.Results[i].Reason == "" {
					out.Results[i].Reason = "DeadlineExceeded"
					out.Results[i].Message = fmt.Sprintf("image not pulled within %s of the Job's start", p.deadline.Sub(p.started).Round(time.Second))
				}
				out.Results[i].State = Failed
			}
		}
		out.EndNow = true
		out.Finished = true
	case p.pending == 0 && len(p.failing) > 0 && (cfg.RetryTransient || !now.Before(p.lastProgress.Add(cfg.PullDeadline))):
		// Only failing pulls are left, and the controller tries them
		// again itself, or they have had a full pull deadline since the
		// last image finished: do not wait for the rest of the batch's
		// deadline.
		for i := range p.failing {
			out.Results[i].State = Failed
		}
		out.EndNow = true
		out.Finished = true
	case p.pending == 0 && len(p.failing) > 0:
		out.CheckAt = p.lastProgress.Add(cfg.PullDeadline)
	case p.pending == 0 && p.stuck+p.late > 0:
		// The rest is settled, and the pulls that failed for good, or
		// ran out of time, keep the pod from ending: end it now.
		out.EndNow = true
		out.Finished = true
	default:
		out.CheckAt = p.deadline
		if !p.ownCheck.IsZero() && p.ownCheck.Before(out.CheckAt) {
			out.CheckAt = p.ownCheck
		}
	}
	if !out.Finished && p.pending == 0 && len(p.failing) == 0 {
		// Every image succeeded; the Job will be Complete shortly.
		out.Finished = true
		out.CheckAt = time.Time{}
	}
}

// jobFailure is the failure of the images a failed Job did not settle: the
// Job's own condition, unless its pod shows that the helper could not be
// installed. (A failed Job without a pod says nothing more: the Job
// controller deletes the pod of a Job past its deadline.)
func jobFailure(c *batchv1.JobCondition, pod *corev1.Pod) Result {
	if pod != nil && helperFailed(pod) {
		return whyNotStarted(pod, 0)
	}
	return Result{State: Failed, Reason: nonEmpty(c.Reason, "JobFailed"), Message: c.Message}
}

// startOutcome is a Job's outcome before its pod is read: its images, each
// Pending, and done when the controller recorded the outcome on the Job
// (readRecorded).
func startOutcome(job *batchv1.Job) (out Outcome, done bool, err error) {
	images, err := JobImages(job)
	if err != nil {
		return Outcome{}, false, err
	}
	out = Outcome{Images: images, Results: make([]Result, len(images))}
	done, err = readRecorded(job, &out)
	return out, done, err
}

// readRecorded reads the outcome the controller recorded on the Job when it
// ended it (AnnotationResults), which is authoritative. It returns false
// when there is none.
func readRecorded(job *batchv1.Job, out *Outcome) (bool, error) {
	raw, ok := job.Annotations[AnnotationResults]
	if !ok {
		return false, nil
	}
	failed := map[string]Result{}
	if err := json.Unmarshal([]byte(raw), &failed); err != nil {
		return false, fmt.Errorf("job %s/%s: annotation %s: %w", job.Namespace, job.Name, AnnotationResults, err)
	}
	for i, img := range out.Images {
		if r, ok := failed[img]; ok {
			out.Results[i] = Result{State: Failed, Reason: r.Reason, Message: r.Message}
		} else {
			out.Results[i] = Result{State: Succeeded}
		}
	}
	out.Finished = true
	return true, nil
}

// ResultsAnnotation encodes the failed images of an outcome for AnnotationResults.
func ResultsAnnotation(out Outcome) string {
	failed := map[string]Result{}
	for i, r := range out.Results {
		if r.State == Failed {
			failed[out.Images[i]] = Result{Reason: r.Reason, Message: r.Message}
		}
	}
	data, _ := json.Marshal(failed)
	return string(data)
}

func nonEmpty(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
