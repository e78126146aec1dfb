package imagecache

import (
	"context"
	"time"

	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/status"

	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// operationFor returns the operation that the status says is under way,
// the plan and the ledger narrowed to what it works on.
func (c *Controller) operationFor(s *pass.Pass) pass.Operation {
	if s.St.Reason == v1alpha2.ImageCacheReasonPurge {
		return newPurgeOp(c, s)
	}
	return newPullOp(c, s)
}

// startOperation starts a new operation when one is due: it records the
// operation's start in the status copy and sets the ledger to what the
// operation builds on. It returns a wait when the operation cannot start
// yet: an operation's epoch (and so its Jobs' names) must be later than the
// last one's, to the second.
func (c *Controller) startOperation(ctx context.Context, s *pass.Pass) time.Duration {
	op := c.nextOperation(s.IC, s.St, s.Now)
	var gone []ledger.Pair
	if op == "" {
		var wait time.Duration
		if op, gone, wait = c.refreshForGone(ctx, s); wait > 0 {
			s.LookAt(s.Now.Add(wait)) // the sync goes on meanwhile
		}
	}
	if op == "" {
		return 0
	}
	start := metav1.NewTime(s.Now.Truncate(time.Second))
	if s.St.StartTime != nil && !start.After(s.St.StartTime.Time) {
		if s.St.StartTime.Sub(s.Now) <= maxStartAhead {
			return s.St.StartTime.Add(time.Second).Sub(s.Now)
		}
		// A leader whose clock ran ahead wrote it, or a hand edit: the
		// operation starts now all the same, and the Jobs named after
		// that later epoch are not its own (claims).
		klog.FromContext(ctx).Info("The recorded start time is ahead of the clock; starting now", "operation", op,
			"recordedStart", s.St.StartTime.UTC().Format(time.RFC3339), "now", start.UTC().Format(time.RFC3339))
	}
	klog.FromContext(ctx).Info("Starting operation", "operation", op, "generation", s.IC.Generation)
	st := s.St
	st.Reason = op
	st.Status = v1alpha2.ImageCacheActionStatusProcessing
	st.StartTime = &start
	st.CompletionTime = nil
	st.ObservedGeneration = s.IC.Generation
	st.Failures = nil
	st.OmittedFailures = nil
	status.StartDigests(st)
	if len(gone) > 0 {
		// A refresh for images gone from their nodes pulls them alone:
		// the rest stays as the latest operation settled it.
		led := s.Led.CarryOver(start.Unix())
		for _, p := range gone {
			led.Set(p.Node, p.Image, ledger.Unsettled)
		}
		s.NewEpoch(led, ledger.ReaderOf(led.CarryOver(start.Unix())))
	} else if op == v1alpha2.ImageCacheReasonUpdate && s.IC.Status.Reason != v1alpha2.ImageCacheReasonPurge {
		// An update pulls only what is new, and tries failed pulls again.
		// It has an epoch of its own, so it judges only its own Jobs: an
		// earlier Job's failure (with the pull secret the update fixed, say)
		// or success (of an image since removed) is not its outcome.
		led := s.Led.CarryOver(start.Unix())
		s.NewEpoch(led, ledger.ReaderOf(led.CarryOver(start.Unix()))) // what it carries over is not newly settled
	} else {
		// Create, Refresh, Purge, and an Update after a purge (the ledger
		// then records removals): start from no states, knowing still
		// which images this cache brought onto which nodes.
		s.NewEpoch(s.Led.Fresh(start.Unix()), s.Before)
	}
	s.Starts(op)
	c.recorder.Eventf(s.IC, corev1.EventTypeNormal, reasons.Started, "%s started", op)
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
	case status.HasAnnotation(ic, v1alpha2.AnnotationPurge) &&
		!(st.Reason == v1alpha2.ImageCacheReasonPurge && st.Status == v1alpha2.ImageCacheActionStatusProcessing):
		return v1alpha2.ImageCacheReasonPurge
	case ic.Generation != st.ObservedGeneration:
		return v1alpha2.ImageCacheReasonUpdate
	case status.HasAnnotation(ic, v1alpha2.AnnotationRefresh) && !status.HasAnnotation(ic, v1alpha2.AnnotationPurge) &&
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

var (
	_ pass.Operation = (*pullOp)(nil)
	_ pass.Operation = (*purgeOp)(nil)
)
