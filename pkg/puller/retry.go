package puller

import (
	"maps"
	"slices"
	"time"

	batchv1 "k8s.io/api/batch/v1"
)

// transientReasons are the reasons of a failed pull that a later try may not
// meet: the kubelet's, for a registry or network that is down, slow or busy
// (a failure PermanentPullFailure does not name), and ours, for a pull or a
// pod start that took too long or found no room on the node.
var transientReasons = map[string]bool{
	"ErrImagePull":          true,
	"ImagePullBackOff":      true,
	"RegistryUnavailable":   true,
	"DeadlineExceeded":      true,
	"StartDeadlineExceeded": true,
	"Unschedulable":         true,
}

// TransientReasons lists, in order, the reasons of a failed pull that is
// tried again.
func TransientReasons() []string { return slices.Sorted(maps.Keys(transientReasons)) }

// Transient says whether a failed pull may pass if tried again: the
// registry or the network failed it, or it ran out of time. A missing
// image (the helper's among them), refused credentials, an invalid
// reference, a platform the image lacks, a pod the cluster refused and a
// helper that failed are not.
func Transient(r Result) bool {
	if _, permanent := PermanentPullFailure(r.Reason, r.Message); permanent {
		// The kubelet's reason for a helper image the registry lacks.
		return false
	}
	return r.State == Failed && transientReasons[r.Reason]
}

// EndedAt is when a Job that ran its course ended: when the controller
// ended it (AnnotationEndedAt), or when it completed or failed; else now.
func EndedAt(job *batchv1.Job, now time.Time) time.Time {
	if t, err := time.Parse(time.RFC3339, job.Annotations[AnnotationEndedAt]); err == nil {
		return t
	}
	for _, t := range []batchv1.JobConditionType{batchv1.JobFailed, batchv1.JobComplete} {
		if c := jobCondition(job, t); c != nil && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	return now
}
