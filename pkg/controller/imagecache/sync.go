package imagecache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/metrics"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/remover"
)

// sync moves one ImageCache toward its desired pulls and writes its status.
// It returns how soon to look again when nothing else would wake it.
func (c *Controller) sync(ctx context.Context, key cache.ObjectName) (time.Duration, error) {
	logger := klog.FromContext(ctx)
	ic, err := c.icLister.ImageCaches(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		c.outdated.Delete(key)
		return 0, nil // its Jobs go with it, by owner reference
	}
	if err != nil {
		return 0, err
	}
	if ic.DeletionTimestamp != nil {
		return 0, nil
	}
	if rv, ok := c.outdated.Load(key); ok {
		if rv == ic.ResourceVersion {
			logger.V(4).Info("The cache does not show the last write yet; waiting for it")
			return 0, nil
		}
		c.outdated.Delete(key)
	}
	now := c.clock.Now()
	st := ic.Status.DeepCopy()
	led := decodeLedger(st.Ledger)
	before := decodeLedger(st.Ledger)
	var pullTimes []time.Duration // for the pulls this sync settles

	// 1. Which operation is this?
	op, wait := c.nextOperation(ic, st, now)
	if wait > 0 {
		return wait, nil
	}
	if op != "" {
		start := metav1.NewTime(now.Truncate(time.Second))
		if st.StartTime != nil && !start.After(st.StartTime.Time) {
			// Ledger epochs (and so Job names) must grow from one
			// operation to the next.
			return st.StartTime.Add(time.Second).Sub(now), nil
		}
		logger.Info("Starting operation", "operation", op, "generation", ic.Generation)
		st.Reason = op
		st.Status = v1alpha2.ImageCacheActionStatusProcessing
		st.StartTime = &start
		st.CompletionTime = nil
		st.ObservedGeneration = ic.Generation
		st.Failures = nil
		st.OmittedFailures = nil
		switch {
		case op == v1alpha2.ImageCacheReasonUpdate && ic.Status.Reason != v1alpha2.ImageCacheReasonPurge:
			led.clearFailed()
		default:
			// Create, Refresh, Purge, and an Update after a purge (the
			// ledger then records removals): start from nothing.
			removedAt := led.removedAt
			led = newLedger(start.Unix())
			led.removedAt = removedAt
		}
		c.recorder.Eventf(ic, corev1.EventTypeNormal, "Started", "%s started", op)
	}

	// 2. The desired pulls, and what the ledger knows of them.
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return 0, err
	}
	p := computePlan(ic, nodes)
	// A purge removes, where the other operations pull: its Jobs are delete
	// Jobs, and "settled" in its ledger means removed (or failed to).
	purging := st.Reason == v1alpha2.ImageCacheReasonPurge
	// Images dropped from the spec are removed from the nodes this cache
	// pulled them onto, unless another cache wants them there: such pairs
	// stay in the ledger until their removal is done.
	nodeByName := make(map[string]*corev1.Node, len(nodes))
	for _, n := range nodes {
		nodeByName[n.Name] = n
	}
	others := c.otherWants(ic)
	toRemove := func(node, key string) bool {
		return !purging && led.get(node, key) == statePulled && !p.specKeys[key] && nodeByName[node] != nil && !others(nodeByName[node], key)
	}
	led.keepOnly(func(node, key string) bool { return p.wants(node, key) || toRemove(node, key) })
	failures := newFailureSet(st.Failures, p, led)

	// 3. The Jobs: outcomes into the ledger, stale ones away.
	jobs, err := c.jobsOf(ic)
	if err != nil {
		return 0, err
	}
	busy := map[string]bool{}
	deleted := map[string]bool{}
	var checkAt time.Time
	for _, job := range jobs {
		nodeName := job.Annotations[puller.AnnotationNode]
		if job.DeletionTimestamp != nil || c.isDeleting(job) {
			if puller.IsActive(job) {
				busy[nodeName] = true
			}
			continue
		}
		if !purging && puller.IsDeleteJob(job) && puller.JobEpoch(job) >= led.epoch && nodeByName[nodeName] != nil {
			// Removing images dropped from the spec.
			out, err := puller.ReadDelete(job, c.podOf(job), remover.ParseSummary)
			if err != nil || !out.Finished {
				busy[nodeName] = err == nil
				continue
			}
			for i, img := range out.Images {
				if !toRemove(nodeName, img) {
					continue
				}
				led.set(nodeName, img, stateUnsettled)
				led.removedAt = now.Unix()
				if r := out.Results[i]; r.State == puller.Failed {
					failures.add(img, nodeName, r.Reason, r.Message)
				}
			}
			continue
		}
		if puller.JobEpoch(job) < led.epoch || p.nodes[nodeName] == nil || puller.IsDeleteJob(job) != purging {
			if err := c.deleteJob(ctx, job); err != nil {
				return 0, err
			}
			deleted[job.Name] = true
			continue
		}
		var out puller.Outcome
		if purging {
			out, err = puller.ReadDelete(job, c.podOf(job), remover.ParseSummary)
		} else {
			out, err = puller.Read(c.cfg.Puller, job, c.podOf(job), now)
		}
		if err != nil {
			logger.Error(err, "Unreadable Job, deleting it", "job", klog.KObj(job))
			if err := c.deleteJob(ctx, job); err != nil {
				return 0, err
			}
			deleted[job.Name] = true
			continue
		}
		if out.EndNow {
			if err := c.endJob(ctx, job, out); err != nil {
				return 0, err
			}
		} else if puller.IsActive(job) {
			busy[nodeName] = true
		}
		if !out.CheckAt.IsZero() && (checkAt.IsZero() || out.CheckAt.Before(checkAt)) {
			checkAt = out.CheckAt
		}
		for i, img := range out.Images {
			k, err := images.Normalize(img)
			if err != nil || !p.wants(nodeName, k) {
				continue
			}
			switch r := out.Results[i]; r.State {
			case puller.Succeeded:
				if purging && led.get(nodeName, k) == stateUnsettled {
					led.removedAt = now.Unix()
				}
				if led.get(nodeName, k) == stateUnsettled && !purging {
					pullTimes = append(pullTimes, now.Sub(job.CreationTimestamp.Time))
				}
				if led.get(nodeName, k) != statePresent {
					led.set(nodeName, k, statePulled)
				}
			case puller.Failed:
				led.set(nodeName, k, stateFailed)
				failures.add(p.display[k], nodeName, r.Reason, r.Message)
			}
		}
	}

	// 4. Images the nodes already report, and new Jobs for what is left:
	// each takes a slot, and all are created together at the end.
	throttled := false
	var creates []newJob
	nodeNames := make([]string, 0, len(p.nodes))
	for name := range p.nodes {
		nodeNames = append(nodeNames, name)
	}
	sort.Strings(nodeNames)
	for _, name := range nodeNames {
		w := p.nodes[name]
		if w.skip != "" {
			continue
		}
		if purging {
			if job := c.removeFromNode(ic, key, w, led, failures, busy[name] || throttled || op != "",
				func(k string) bool { return led.get(name, k) == stateUnsettled }); job != nil {
				creates = append(creates, *job)
			} else {
				throttled = throttled || c.throttle.isWaiting(key)
			}
			continue
		}
		var present map[string]bool
		// Right after this cache removed images, a node may still report
		// them: they are pulled, not taken as present.
		if c.cfg.Puller.PullPolicy != corev1.PullAlways && now.Unix() >= led.removedAt+nodeImagesLag {
			present = c.nodePresent(w.node)
		}
		var batch []string
		for _, wi := range w.images {
			if led.get(name, wi.key) != stateUnsettled {
				continue
			}
			if present[wi.key] {
				led.set(name, wi.key, statePresent)
				continue
			}
			if len(batch) < c.cfg.ImagesPerJob {
				batch = append(batch, wi.image)
			}
		}
		if len(batch) == 0 || busy[name] || throttled || op != "" {
			// A new operation's Jobs are named after its epoch: they are
			// created only once the operation's start is recorded.
			continue
		}
		job := puller.NewPullJob(c.cfg.Puller, puller.Batch{Cache: ic, NodeName: name, Hostname: w.hostname, Images: batch, Epoch: led.epoch})
		if c.throttle.isExpected(jobKey(job)) {
			continue // created, and not shown by the informer yet
		}
		if !c.throttle.tryAcquire(jobKey(job), key) {
			throttled = true
			continue
		}
		creates = append(creates, newJob{job: job, kind: "pull", node: name, images: len(batch)})
	}

	// 4b. Removals of images dropped from the spec.
	removals := 0
	for _, name := range sortedKeys(led.nodes) {
		var imgs []wantedImage
		for k := range led.nodes[name] {
			if toRemove(name, k) {
				imgs = append(imgs, wantedImage{image: k, key: k})
			}
		}
		if len(imgs) == 0 {
			continue
		}
		n := nodeByName[name]
		if nodeSkipReason(n) != "" {
			continue // removed when the node is Ready again; it does not hold the operation up
		}
		removals += len(imgs)
		sort.Slice(imgs, func(i, j int) bool { return imgs[i].key < imgs[j].key })
		w := &nodeWant{node: n, hostname: n.Labels[puller.HostnameLabel], images: imgs}
		if job := c.removeFromNode(ic, key, w, led, failures, busy[name] || throttled || op != "",
			func(k string) bool { return toRemove(name, k) }); job != nil {
			creates = append(creates, *job)
		}
	}
	if err := c.createJobs(ctx, creates); err != nil {
		return 0, err
	}

	// 5. Status.
	counts := countPulls(p, led)
	counts.removals = removals
	complete := counts.Pending == 0 && removals == 0
	for reason, annotation := range map[string]string{v1alpha2.ImageCacheReasonRefresh: v1alpha2.AnnotationRefresh,
		v1alpha2.ImageCacheReasonPurge: v1alpha2.AnnotationPurge} {
		if complete && hasAnnotation(ic, annotation) && st.Reason == reason {
			// The operation asked for is done: take the request away
			// first, so that a crash after this point cannot start it again.
			patched, err := c.removeAnnotation(ctx, ic, annotation)
			if err != nil {
				return 0, err
			}
			c.wrote(key, ic, patched)
			ic = patched
		}
	}
	c.fillStatus(ic, st, p, led, failures, counts, now)
	if !equality.Semantic.DeepEqual(ic.Status, *st) {
		updated := ic.DeepCopy()
		updated.Status = *st
		written, err := c.client.KubefledgedV1alpha2().ImageCaches(ic.Namespace).UpdateStatus(ctx, updated,
			metav1.UpdateOptions{FieldManager: ControllerName})
		if err != nil {
			return 0, fmt.Errorf("writing status: %w", err)
		}
		c.wrote(key, ic, written)
		c.recordTransition(ic, st)
		// Count what this write settled, now that it is recorded.
		if before.epoch != led.epoch {
			before = newLedger(led.epoch)
		}
		if !purging {
			countSettled(before, led)
		}
		for _, d := range pullTimes {
			metrics.PullDuration.Observe(d.Seconds())
		}
	}

	// 6. A finished operation's Jobs go, unless they are to be kept.
	if complete && !c.cfg.RetainJobs {
		var finished []*batchv1.Job
		for _, job := range jobs {
			if job.DeletionTimestamp == nil && !deleted[job.Name] && !c.isDeleting(job) {
				finished = append(finished, job)
			}
		}
		if err := slowStart(len(finished), func(i int) error { return c.deleteJob(ctx, finished[i]) }); err != nil {
			return 0, err
		}
	}

	// 7. When to look again. Once an operation's start is recorded, the
	// informer's update event brings the cache back for its Jobs.
	var after time.Duration
	if !checkAt.IsZero() {
		after = max(checkAt.Sub(now), 100*time.Millisecond)
	}
	if throttled {
		after = minPositive(after, throttledRetry)
	}
	if complete && c.cfg.RefreshFrequency > 0 && st.CompletionTime != nil && st.Reason != v1alpha2.ImageCacheReasonPurge {
		after = minPositive(after, max(st.CompletionTime.Add(c.cfg.RefreshFrequency).Sub(now), time.Second))
	}
	return after, nil
}

// wrote records that a write replaced the version of the cache the informer
// shows, so the next sync waits for the informer to show the write.
func (c *Controller) wrote(key cache.ObjectName, before, after *v1alpha2.ImageCache) {
	if after != nil && after.ResourceVersion != before.ResourceVersion {
		c.outdated.Store(key, before.ResourceVersion)
	}
}

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 {
		return b
	}
	return min(a, b)
}

// nextOperation says whether a new operation starts now, and which. A
// non-zero wait means: look again then.
func (c *Controller) nextOperation(ic *v1alpha2.ImageCache, st *v1alpha2.ImageCacheStatus, now time.Time) (string, time.Duration) {
	switch {
	case st.StartTime == nil:
		return v1alpha2.ImageCacheReasonCreate, 0
	case hasAnnotation(ic, v1alpha2.AnnotationPurge) &&
		!(st.Reason == v1alpha2.ImageCacheReasonPurge && st.Status == v1alpha2.ImageCacheActionStatusProcessing):
		return v1alpha2.ImageCacheReasonPurge, 0
	case ic.Generation != st.ObservedGeneration:
		return v1alpha2.ImageCacheReasonUpdate, 0
	case hasAnnotation(ic, v1alpha2.AnnotationRefresh) &&
		!(st.Reason == v1alpha2.ImageCacheReasonRefresh && st.Status == v1alpha2.ImageCacheActionStatusProcessing):
		return v1alpha2.ImageCacheReasonRefresh, 0
	case c.cfg.RefreshFrequency > 0 && st.CompletionTime != nil && st.Status != v1alpha2.ImageCacheActionStatusProcessing &&
		st.Reason != v1alpha2.ImageCacheReasonPurge && // a purged cache stays purged until asked again

		!now.Before(st.CompletionTime.Add(c.cfg.RefreshFrequency)):
		return v1alpha2.ImageCacheReasonRefresh, 0
	}
	return "", 0
}

func hasAnnotation(ic *v1alpha2.ImageCache, key string) bool {
	_, ok := ic.Annotations[key]
	return ok
}

// jobsOf lists the Jobs (pull and delete) of a cache, by its UID.
func (c *Controller) jobsOf(ic *v1alpha2.ImageCache) ([]*batchv1.Job, error) {
	objs, err := c.jobIndexer.ByIndex(jobsByCacheIndex, string(ic.UID))
	if err != nil {
		return nil, err
	}
	jobs := make([]*batchv1.Job, 0, len(objs))
	for _, o := range objs {
		job, ok := o.(*batchv1.Job)
		if !ok || job.Namespace != ic.Namespace {
			continue
		}
		if ref := metav1.GetControllerOfNoCopy(job); ref == nil || ref.UID != ic.UID {
			continue
		}
		jobs = append(jobs, job)
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].Name < jobs[j].Name })
	return jobs, nil
}

// podOf returns the newest pod of a Job, or nil.
func (c *Controller) podOf(job *batchv1.Job) *corev1.Pod {
	objs, err := c.podIndexer.ByIndex(podsByJobIndex, string(job.UID))
	if err != nil {
		return nil
	}
	var newest *corev1.Pod
	for _, o := range objs {
		pod, ok := o.(*corev1.Pod)
		if !ok {
			continue
		}
		if newest == nil || pod.CreationTimestamp.After(newest.CreationTimestamp.Time) {
			newest = pod
		}
	}
	return newest
}

func (c *Controller) deleteJob(ctx context.Context, job *batchv1.Job) error {
	err := c.kubeClient.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
		Preconditions:     &metav1.Preconditions{UID: &job.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting job %s: %w", job.Name, err)
	}
	c.deleting.Store(job.UID, c.clock.Now())
	klog.FromContext(ctx).V(2).Info("Deleted pull Job", "job", klog.KObj(job))
	return nil
}

// isDeleting reports whether this process deleted the Job less than a
// minute ago, though the informer does not show it yet.
func (c *Controller) isDeleting(job *batchv1.Job) bool {
	at, ok := c.deleting.Load(job.UID)
	if ok && c.clock.Since(at.(time.Time)) > expectationTTL {
		c.deleting.Delete(job.UID)
		return false
	}
	return ok
}

// endJob records a Job's per-image outcome on the Job and suspends it, so its
// pod goes while the outcome stays.
func (c *Controller) endJob(ctx context.Context, job *batchv1.Job, out puller.Outcome) error {
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{
			"annotations":     map[string]string{puller.AnnotationResults: puller.ResultsAnnotation(out)},
			"resourceVersion": job.ResourceVersion,
		},
		"spec": map[string]any{"suspend": true},
	})
	if err != nil {
		return err
	}
	if _, err := c.kubeClient.BatchV1().Jobs(job.Namespace).Patch(ctx, job.Name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: ControllerName}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("recording the outcome of job %s: %w", job.Name, err)
	}
	klog.FromContext(ctx).V(2).Info("Ended pull Job and recorded its outcome", "job", klog.KObj(job))
	return nil
}

func (c *Controller) removeAnnotation(ctx context.Context, ic *v1alpha2.ImageCache, key string) (*v1alpha2.ImageCache, error) {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations":     map[string]any{key: nil},
		"resourceVersion": ic.ResourceVersion,
	}})
	if err != nil {
		return nil, err
	}
	out, err := c.client.KubefledgedV1alpha2().ImageCaches(ic.Namespace).Patch(ctx, ic.Name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: ControllerName})
	if err != nil {
		return nil, fmt.Errorf("removing annotation %s: %w", key, err)
	}
	return out, nil
}

// countSettled adds to the pulls counter the pairs settled in after but not in before.
func countSettled(before, after *ledger) {
	var pulled, present, failed float64
	for node, m := range after.nodes {
		for img, s := range m {
			if before.get(node, img) == s {
				continue
			}
			switch s {
			case statePulled:
				pulled++
			case statePresent:
				present++
			case stateFailed:
				failed++
			}
		}
	}
	metrics.PullsTotal.WithLabelValues(metrics.ResultPulled).Add(pulled)
	metrics.PullsTotal.WithLabelValues(metrics.ResultAlreadyPresent).Add(present)
	metrics.PullsTotal.WithLabelValues(metrics.ResultFailed).Add(failed)
}

// removeFromNode makes the delete Job that removes a node's images (those
// of w.images that pick selects), unless one runs or it must wait (hold). A
// node whose runtime socket is unknown fails those images at once. It
// returns the Job to create, its throttle slot taken, or nil.
func (c *Controller) removeFromNode(ic *v1alpha2.ImageCache, key cache.ObjectName, w *nodeWant,
	led *ledger, failures failureSet, hold bool, pick func(key string) bool) *newJob {
	name := w.node.Name
	var batch []string
	for _, wi := range w.images {
		if pick(wi.key) && len(batch) < maxImagesPerDeleteJob {
			batch = append(batch, wi.image)
		}
	}
	if len(batch) == 0 || hold {
		return nil
	}
	socket := c.cfg.CRISocketPath
	if socket == "" {
		var err error
		if socket, err = cri.SocketForRuntime(w.node.Status.NodeInfo.ContainerRuntimeVersion); err != nil {
			for _, wi := range w.images {
				if pick(wi.key) {
					if led.get(name, wi.key) == stateUnsettled {
						led.set(name, wi.key, stateFailed) // a purge: failed
					} else {
						led.set(name, wi.key, stateUnsettled) // a removal: given up
					}
					failures.add(wi.image, name, reasonUnknownRuntime, err.Error())
				}
			}
			return nil
		}
	}
	job := puller.NewDeleteJob(c.cfg.Puller, puller.DeleteBatch{Cache: ic, NodeName: name, Hostname: w.hostname,
		Images: batch, Epoch: led.epoch, Socket: socket, HostNetwork: c.cfg.DeleteJobHostNetwork})
	if !c.throttle.tryAcquire(jobKey(job), key) {
		return nil
	}
	return &newJob{job: job, kind: "delete", node: name, images: len(batch)}
}

// newJob is a Job a sync decided to create, its throttle slot taken.
type newJob struct {
	job    *batchv1.Job
	kind   string // pull or delete
	node   string
	images int
}

// maxParallelWrites bounds the Job creates (or deletes) one sync has in
// flight at once; the client's QPS limit applies on top.
const maxParallelWrites = 32

// createJobs creates the Jobs concurrently. A Job that already exists is
// taken as created (its name says what it does); on an error, the slots of
// the Jobs not created are given back.
func (c *Controller) createJobs(ctx context.Context, jobs []newJob) error {
	logger := klog.FromContext(ctx)
	created := make([]bool, len(jobs))
	err := slowStart(len(jobs), func(i int) error {
		nj := jobs[i]
		if _, err := c.kubeClient.BatchV1().Jobs(nj.job.Namespace).Create(ctx, nj.job, metav1.CreateOptions{FieldManager: ControllerName}); err != nil {
			if apierrors.IsAlreadyExists(err) {
				created[i] = true
				return nil
			}
			return fmt.Errorf("creating %s job %s for node %s: %w", nj.kind, nj.job.Name, nj.node, err)
		}
		created[i] = true
		metrics.JobsCreatedTotal.Inc()
		logger.V(2).Info("Created "+nj.kind+" Job", "job", klog.KObj(nj.job), "node", nj.node, "images", nj.images)
		return nil
	})
	for i, ok := range created {
		if !ok {
			c.throttle.release(jobKey(jobs[i].job))
		}
	}
	return err
}

// slowStart runs fn for 0..n-1 in batches that double from 1 up to
// maxParallelWrites, the calls of a batch at once, and stops after the first
// batch with an error: a failing API server sees a few requests, not
// hundreds. It returns the errors of that batch.
func slowStart(n int, fn func(i int) error) error {
	size := 1
	for start := 0; start < n; {
		end := min(start+size, n)
		errs := make([]error, end-start)
		var wg sync.WaitGroup
		for i := start; i < end; i++ {
			wg.Go(func() { errs[i-start] = fn(i) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		start = end
		size = min(2*size, maxParallelWrites)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// otherWants returns whether another ImageCache wants an image (normalised)
// on a node, so that removing it from this cache's spec leaves it there.
func (c *Controller) otherWants(ic *v1alpha2.ImageCache) func(n *corev1.Node, key string) bool {
	var caches []*v1alpha2.ImageCache
	loaded := false
	return func(n *corev1.Node, key string) bool {
		if !loaded {
			all, err := c.icLister.List(labels.Everything())
			if err == nil {
				caches = all
			}
			loaded = true
		}
		for _, other := range caches {
			if other.UID == ic.UID {
				continue
			}
			for i := range other.Spec.CacheSpec {
				e := &other.Spec.CacheSpec[i]
				if !e.Selector().Matches(labels.Set(n.Labels)) {
					continue
				}
				for _, img := range e.Images {
					if k, err := images.Normalize(img); err == nil && k == key {
						return true
					}
				}
			}
		}
		return false
	}
}
