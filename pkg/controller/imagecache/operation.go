package imagecache

import (
	"context"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// operation is the work an operation does on the nodes, behind the steps
// every sync shares. There are two kinds: pullOp (pull.go) pulls the spec's
// images, and removes those dropped from it; purgeOp (purge.go) removes them
// all. The ledger records, per (node, image) pair, what the operation has
// settled: pulled (or removed), already present (or kept), or failed.
//
// Building an operation (operationFor) narrows the plan to the nodes it
// works on and the ledger to the pairs it still cares about. Then a sync
// reads its Jobs (readJob), settles what needs no Job (settle), and asks for
// the Jobs to create (jobs), which changes nothing.
type operation interface {
	// claims says whether one of the cache's Jobs belongs to the
	// operation; those that do not (of an earlier operation, of the other
	// kind, for a node the operation no longer works on) are deleted.
	claims(job *batchv1.Job) bool
	// readJob reads one of its Jobs into the ledger and the failures.
	readJob(ctx context.Context, job *batchv1.Job) error
	// settle settles in the ledger the pairs that need no Job: an image a
	// node already has, one a purge must keep, a removal on a node whose
	// runtime cannot be reached.
	settle()
	// jobs returns the Jobs the operation wants created now, each with its
	// throttle slot taken, and what is left to do.
	jobs() jobsToCreate
	// readEarlier takes from a Job of an earlier operation what holds for
	// this one too (pullOp: the images it pulled once this one was due;
	// purgeOp: the images its pulls brought).
	readEarlier(ctx context.Context, job *batchv1.Job)
	// pulls says whether the operation pulls the spec's images (pullOp):
	// only then are they pinned, and their digests followed.
	pulls() bool
	// kept lists the pairs the operation chose to leave on their nodes,
	// with why (status.kept), and counts them by reason (purgeOp; none
	// for pullOp).
	kept() (failureSet, map[string]int)
	// recorded is told that the status recording what this pass settled
	// is written; before is the ledger of this epoch as it was read
	// (pullOp: the pulls metrics; purgeOp: nothing).
	recorded(before ledger.Reader)
}

// jobsToCreate is what an operation decided to create in one pass.
type jobsToCreate struct {
	jobs []newJob
	// throttled says the cache waits for a free Job slot.
	throttled bool
	// removals counts the (node, image) removals of images dropped from
	// the spec still to do: the operation is not complete before they are.
	removals int
	// pins counts the pins and unpins still to do (pinJobs), which hold
	// the operation too.
	pins int
}

// hold says whether a node must not get a new Job now: one of the cache's
// Jobs runs there, the operation has just started, or the cache waits for a
// Job slot.
func (j *jobsToCreate) hold(s *syncCtx, node string) bool {
	return s.busy[node] || s.started != "" || j.throttled
}

// operationFor returns the operation that the status says is under way,
// the plan and the ledger narrowed to what it works on.
func (c *Controller) operationFor(s *syncCtx) operation {
	if s.st.Reason == v1alpha2.ImageCacheReasonPurge {
		return newPurgeOp(c, s)
	}
	return newPullOp(c, s)
}

// startOperation starts a new operation when one is due: it records the
// operation's start in the status copy and sets the ledger to what the
// operation builds on. It returns a wait when the operation cannot start
// yet: an operation's epoch (and so its Jobs' names) must be later than the
// last one's, to the second.
func (c *Controller) startOperation(ctx context.Context, s *syncCtx) time.Duration {
	op := c.nextOperation(s.ic, s.st, s.now)
	var gone []ledger.Pair
	if op == "" {
		var wait time.Duration
		if op, gone, wait = c.refreshForGone(ctx, s); wait > 0 {
			s.lookAt(s.now.Add(wait)) // the sync goes on meanwhile
		}
	}
	if op == "" {
		return 0
	}
	start := metav1.NewTime(s.now.Truncate(time.Second))
	if s.st.StartTime != nil && !start.After(s.st.StartTime.Time) {
		if s.st.StartTime.Sub(s.now) <= maxStartAhead {
			return s.st.StartTime.Add(time.Second).Sub(s.now)
		}
		// A leader whose clock ran ahead wrote it, or a hand edit: the
		// operation starts now all the same, and the Jobs named after
		// that later epoch are not its own (claims).
		klog.FromContext(ctx).Info("The recorded start time is ahead of the clock; starting now", "operation", op,
			"recordedStart", s.st.StartTime.UTC().Format(time.RFC3339), "now", start.UTC().Format(time.RFC3339))
	}
	klog.FromContext(ctx).Info("Starting operation", "operation", op, "generation", s.ic.Generation)
	st := s.st
	st.Reason = op
	st.Status = v1alpha2.ImageCacheActionStatusProcessing
	st.StartTime = &start
	st.CompletionTime = nil
	st.ObservedGeneration = s.ic.Generation
	st.Failures = nil
	st.OmittedFailures = nil
	startDigests(st)
	if len(gone) > 0 {
		// A refresh for images gone from their nodes pulls them alone:
		// the rest stays as the latest operation settled it.
		led := s.led.CarryOver(start.Unix())
		for _, p := range gone {
			led.Set(p.Node, p.Image, ledger.Unsettled)
		}
		s.newEpoch(led, ledger.ReaderOf(led.CarryOver(start.Unix())))
	} else if op == v1alpha2.ImageCacheReasonUpdate && s.ic.Status.Reason != v1alpha2.ImageCacheReasonPurge {
		// An update pulls only what is new, and tries failed pulls again.
		// It has an epoch of its own, so it judges only its own Jobs: an
		// earlier Job's failure (with the pull secret the update fixed, say)
		// or success (of an image since removed) is not its outcome.
		led := s.led.CarryOver(start.Unix())
		s.newEpoch(led, ledger.ReaderOf(led.CarryOver(start.Unix()))) // what it carries over is not newly settled
	} else {
		// Create, Refresh, Purge, and an Update after a purge (the ledger
		// then records removals): start from no states, knowing still
		// which images this cache brought onto which nodes.
		s.newEpoch(s.led.Fresh(start.Unix()), s.before)
	}
	s.starts(op)
	c.recorder.Eventf(s.ic, corev1.EventTypeNormal, reasons.Started, "%s started", op)
	return 0
}

// maxStartAhead is how far ahead of the clock a recorded start may be for a
// new operation to wait for it (epochs are seconds apart); further ahead, it
// starts now.
const maxStartAhead = 2 * time.Second

// nextOperation says which operation starts now, or "". A purge asked
// together with a refresh wins: the refresh is not started in its middle or
// after it (the purge consumes its annotation).
func (c *Controller) nextOperation(ic *v1alpha2.ImageCache, st *v1alpha2.ImageCacheStatus, now time.Time) string {
	switch {
	case st.StartTime == nil:
		return v1alpha2.ImageCacheReasonCreate
	case hasAnnotation(ic, v1alpha2.AnnotationPurge) &&
		!(st.Reason == v1alpha2.ImageCacheReasonPurge && st.Status == v1alpha2.ImageCacheActionStatusProcessing):
		return v1alpha2.ImageCacheReasonPurge
	case ic.Generation != st.ObservedGeneration:
		return v1alpha2.ImageCacheReasonUpdate
	case hasAnnotation(ic, v1alpha2.AnnotationRefresh) && !hasAnnotation(ic, v1alpha2.AnnotationPurge) &&
		!(st.Reason == v1alpha2.ImageCacheReasonRefresh && st.Status == v1alpha2.ImageCacheActionStatusProcessing):
		return v1alpha2.ImageCacheReasonRefresh
	case c.cfg.RefreshFrequency > 0 && st.CompletionTime != nil && st.Status != v1alpha2.ImageCacheActionStatusProcessing &&
		refreshable(st) && !now.Before(st.CompletionTime.Add(c.cfg.RefreshFrequency)):
		return v1alpha2.ImageCacheReasonRefresh
	}
	return ""
}

// refreshable says whether the periodic refresh applies after the latest
// operation: a purged cache stays purged until it is asked for again.
func refreshable(st *v1alpha2.ImageCacheStatus) bool {
	return st.Reason != v1alpha2.ImageCacheReasonPurge
}

// requestAnnotation maps an operation to the annotation that asks for it,
// which is removed once the operation is done.
var requestAnnotation = map[string]string{
	v1alpha2.ImageCacheReasonRefresh: v1alpha2.AnnotationRefresh,
	v1alpha2.ImageCacheReasonPurge:   v1alpha2.AnnotationPurge,
}

func hasAnnotation(ic *v1alpha2.ImageCache, key string) bool {
	_, ok := ic.Annotations[key]
	return ok
}

var (
	_ operation = (*pullOp)(nil)
	_ operation = (*purgeOp)(nil)
)
