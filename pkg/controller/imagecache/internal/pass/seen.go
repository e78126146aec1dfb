package pass

import (
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"kubefledged.io/kube-fledged/pkg/puller"
)

// Seen is what the cache's Jobs say.
type Seen struct {
	// Jobs are the cache's Jobs; Deleted names those this pass deleted.
	Jobs    []*batchv1.Job
	Deleted map[string]bool
	// Busy marks the nodes where one of the cache's Jobs runs: they get
	// no other Job now.
	Busy map[string]bool
	// FailedCreates holds the Job controller's FailedCreate events by
	// namespace and Job UID, each namespace once read (FailedCreatesIn).
	FailedCreates map[string]map[types.UID]*corev1.Event
	// PinJobsDone are the pin and unpin Jobs read to their end this pass.
	PinJobsDone []*batchv1.Job
	// FailedUnpins are, by node, the failed unpin Jobs kept to count the
	// tries until the next try replaces them.
	FailedUnpins map[string][]*batchv1.Job
}

// SawJobs records the cache's Jobs.
func (j *Seen) SawJobs(jobs []*batchv1.Job) { j.Jobs = jobs }

// MarkBusy records that one of the cache's Jobs runs on a node.
func (j *Seen) MarkBusy(node string) { j.Busy[node] = true }

// MarkDeleted records that this pass deleted a Job.
func (j *Seen) MarkDeleted(name string) { j.Deleted[name] = true }

// PinJobRead records a pin or unpin Job read to its end.
func (j *Seen) PinJobRead(job *batchv1.Job) { j.PinJobsDone = append(j.PinJobsDone, job) }

// KeepFailedUnpin records a failed unpin Job that stays until the node's
// next unpin.
func (j *Seen) KeepFailedUnpin(node string, job *batchv1.Job) {
	if j.FailedUnpins == nil {
		j.FailedUnpins = map[string][]*batchv1.Job{}
	}
	j.FailedUnpins[node] = append(j.FailedUnpins[node], job)
}

// Kept says whether a Job stays when the finished Jobs go: a failed unpin
// that counts the tries.
func (j *Seen) Kept(job *batchv1.Job) bool {
	return slices.Contains(j.FailedUnpins[job.Annotations[puller.AnnotationNode]], job)
}

// FailedCreatesIn returns the FailedCreate events of a namespace's Jobs,
// read with list the first time the pass asks.
func (j *Seen) FailedCreatesIn(namespace string, list func() map[types.UID]*corev1.Event) map[types.UID]*corev1.Event {
	if got, ok := j.FailedCreates[namespace]; ok {
		return got
	}
	if j.FailedCreates == nil {
		j.FailedCreates = map[string]map[types.UID]*corev1.Event{}
	}
	got := list()
	j.FailedCreates[namespace] = got
	return got
}

func newSeen() Seen { return Seen{Deleted: map[string]bool{}, Busy: map[string]bool{}} }
