package imagecache

import (
	"context"
	"errors"
	"slices"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/jobwrite"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/ops"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/throttle"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// sync moves one ImageCache toward what its operation wants on the nodes and
// writes its status. It returns how soon to look again when nothing else
// would wake it.
func (c *Controller) sync(ctx context.Context, key cache.ObjectName) (requeue time.Duration, err error) {
	began := time.Now()
	var outcome string
	defer func() {
		klog.FromContext(ctx).V(4).Info("Finished syncing", "outcome", outcome, "requeueAfter", requeue,
			"elapsed", time.Since(began), "err", err)
	}()
	ic, err := c.cacheToSync(ctx, key)
	if ic == nil || err != nil {
		outcome = "skipped"
		return 0, err
	}
	if ic.DeletionTimestamp != nil {
		outcome = "finalizing"
		_, nodes, err := c.listNodes()
		if err != nil {
			return 0, err
		}
		return c.pins.Finalize(ctx, key, ic, nodes)
	}
	if wait := c.status.Hold(key, c.clock.Now(), c.cfg.StatusBatchPeriod); wait > 0 {
		// The last pass wrote what it settled less than a batch period
		// ago: this one, reading nothing yet, comes back at its end.
		outcome = "held for the batch period"
		return wait, nil
	}
	s := c.newPass(key, ic)
	if err := c.pins.KeepFinalizer(ctx, s); err != nil {
		return 0, err
	}
	if wait := c.ops.Start(ctx, s); wait > 0 {
		outcome = "waiting to start"
		return wait, nil
	}
	if err := c.makePlan(ctx, s); err != nil {
		return 0, err
	}
	if why := plan.TooLarge(s.Plan); why != "" {
		outcome = reasons.TooLarge
		return 0, c.refuseTooLarge(ctx, s, why)
	}
	if err := c.status.TakeRequest(ctx, s); err != nil {
		return 0, err
	}
	if err := c.reader.Read(ctx, s, c.pins.ReadJob); err != nil {
		return 0, err
	}
	s.Op.Settle()
	c.throttle.Unwait(s.Key) // it asks anew for the slots it needs
	todo := s.Op.Jobs()
	c.pins.Jobs(s, &todo)
	// A create that fails for a reason a retry may fix stops the creates,
	// and the sync is retried with backoff; what this pass settled (the
	// refused Jobs' failures among it) is written first all the same.
	given, createErr := c.writer.Create(ctx, s, todo.Jobs)
	st := c.status.Compute(s, todo.Removals-given.Removals, todo.Pins-given.Pins)
	outcome = st.Status.Reason + " " + string(st.Status.Status)
	if err := c.status.Write(ctx, s, st); err != nil {
		return 0, errors.Join(createErr, err)
	}
	if createErr != nil {
		if jobwrite.IsQuota(createErr) {
			// The cache's own finished Jobs count against the quota
			// until the operation completes: their outcomes are now in
			// the status, so they go, to make room.
			createErr = errors.Join(createErr, c.writer.DeleteDone(ctx, s))
		}
		return 0, createErr
	}
	if err := c.pins.DeleteDone(ctx, s); err != nil {
		return 0, err
	}
	if err := c.deleteFinishedJobs(ctx, s, st.Complete); err != nil {
		return 0, err
	}
	if err := c.trimFinishedJobs(ctx, s, st.Complete); err != nil {
		return 0, err
	}
	return c.nextLook(s, st.Complete, todo.Throttled), nil
}

// cacheToSync returns the cache behind key, or nil when there is nothing to
// do: it is gone (its Jobs go with it, by owner reference, and its delete
// Jobs are deleted), it is being deleted with no pins to take away
// (FinalizerUnpin), or the informer does not show this controller's last
// write yet.
func (c *Controller) cacheToSync(ctx context.Context, key cache.ObjectName) (*v1alpha2.ImageCache, error) {
	ic, err := c.icLister.ImageCaches(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		c.expectations.ForgetWrites(key)
		c.status.ForgetSlices(key)
		return nil, c.reader.DeleteOrphans(ctx, key, "")
	}
	if err != nil {
		return nil, err
	}
	if ic.DeletionTimestamp != nil && !slices.Contains(ic.Finalizers, FinalizerUnpin) {
		return nil, c.reader.DeleteOrphans(ctx, key, "")
	}
	if err := c.reader.DeleteOrphans(ctx, key, ic.UID); err != nil {
		return nil, err
	}
	if c.expectations.Outdated(key, ic.ResourceVersion) {
		klog.FromContext(ctx).V(4).Info("The cache does not show the last write yet; waiting for it")
		return nil, nil
	}
	if c.status.SlicesOutdated(key, c.sliceVersion(key.Namespace)) {
		klog.FromContext(ctx).V(4).Info("The cache's slices do not show the last writes yet; waiting for them")
		return nil, nil
	}
	return ic, nil
}

// newPass starts a pass over a cache, as the informer shows it now.
func (c *Controller) newPass(key cache.ObjectName, ic *v1alpha2.ImageCache) *pass.Pass {
	led, before := c.ledgers.Open(ic)
	return pass.NewPass(key, ic, c.clock.Now(), led, before)
}

// nextLook says how soon to look again: when a running Job must be checked,
// when a Job slot may be free, or when the next periodic refresh is due. Once
// an operation's start is recorded, the informer's update event brings the
// cache back for its Jobs.
func (c *Controller) nextLook(s *pass.Pass, complete, throttled bool) time.Duration {
	var after time.Duration
	if !s.CheckAt.IsZero() {
		after = max(s.CheckAt.Sub(s.Now), 100*time.Millisecond)
	}
	if throttled {
		after = minPositive(after, throttle.ThrottledRetry)
	}
	if complete && c.cfg.RefreshFrequency > 0 && s.St.CompletionTime != nil && ops.Refreshable(s.St) {
		after = minPositive(after, max(s.St.CompletionTime.Add(c.cfg.RefreshFrequency).Sub(s.Now), time.Second))
	}
	return after
}

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 {
		return b
	}
	return min(a, b)
}

// deleteFinishedJobs deletes a complete operation's Jobs, unless they are to
// be kept (and the unpins tried again, and the failed ones that count the
// tries).
func (c *Controller) deleteFinishedJobs(ctx context.Context, s *pass.Pass, complete bool) error {
	if !complete || c.cfg.RetainJobs {
		return nil
	}
	// A failed unpin tried again runs while the operation is complete:
	// it, and the failed one that counts the tries, stay.
	return c.writer.DeleteOf(ctx, s, func(job *batchv1.Job) bool {
		return !s.Kept(job) && !(puller.IsPinJob(job) && puller.IsActive(job))
	})
}

// trimFinishedJobs deletes, while the operation goes on, the oldest of the
// cache's finished pull and delete Jobs past --max-finished-jobs, now that
// the status and the ledger record their outcomes: over tens of thousands
// of nodes, every finished Job and its pod kept to the end would weigh on
// etcd, on the API server's caches and on every informer of Jobs. Those of
// a node with a failed pull to try again stay, to count its tries
// (ops/retry.go), and so do the pin Jobs, which go as soon as they are read
// (pins.DeleteDone).
func (c *Controller) trimFinishedJobs(ctx context.Context, s *pass.Pass, complete bool) error {
	if complete || c.cfg.RetainJobs || c.cfg.MaxFinishedJobs <= 0 {
		return nil
	}
	retrying := s.RetryingNodes()
	return c.writer.DeleteOldest(ctx, s, c.cfg.MaxFinishedJobs, func(job *batchv1.Job) bool {
		return !puller.IsActive(job) && !puller.IsPinJob(job) && !s.Kept(job) && !retrying[job.Annotations[puller.AnnotationNode]]
	})
}

// refuseTooLarge ends the operation of a cache that asks for more than one
// object can record (why says so): its running Jobs are deleted, and its
// status says Failed, with why, keeping what it had recorded.
func (c *Controller) refuseTooLarge(ctx context.Context, s *pass.Pass, why string) error {
	jobs, err := c.reader.JobsOf(s.IC)
	if err != nil {
		return err
	}
	for _, job := range jobs {
		if job.DeletionTimestamp == nil && puller.IsActive(job) && !c.writer.IsDeleting(job) {
			if err := c.writer.Delete(ctx, job); err != nil {
				return err
			}
		}
	}
	return c.status.Refuse(ctx, s, why)
}
