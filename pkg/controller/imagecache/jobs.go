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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/message"
	"kubefledged.io/kube-fledged/pkg/metrics"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// readJobs reads the outcomes of the cache's Jobs into the ledger, and
// deletes the Jobs that the operation does not own, or that were made for an
// earlier node of the same name.
func (c *Controller) readJobs(ctx context.Context, s *syncCtx) error {
	jobs, err := c.jobsOf(s.ic)
	if err != nil {
		return err
	}
	s.jobs = jobs
	// First what earlier delete Jobs may have removed: nothing earlier
	// brings those images back.
	for _, job := range jobs {
		if job.DeletionTimestamp == nil && !c.isDeleting(job) && puller.IsDeleteJob(job) && puller.JobEpoch(job) < s.led.Epoch {
			c.unsettleRemoved(s, job)
		}
	}
	for _, job := range jobs {
		if job.DeletionTimestamp != nil || c.isDeleting(job) {
			if puller.IsActive(job) {
				s.busy[job.Annotations[puller.AnnotationNode]] = true
			}
			continue
		}
		if !s.op.owns(job) || predatesNode(job, s.nodes) {
			if s.started != "" {
				// The pass that starts an operation only records its
				// start; the next one deals with the Jobs before it.
				if puller.IsActive(job) {
					s.busy[job.Annotations[puller.AnnotationNode]] = true
				}
				continue
			}
			if puller.JobEpoch(job) < s.led.Epoch && !predatesNode(job, s.nodes) {
				s.op.readEarlier(ctx, job)
			}
			if earlierStillRunning(s, job) {
				if err := c.followEarlier(ctx, s, job); err != nil {
					return err
				}
				continue
			}
			if err := c.dropJob(ctx, s, job); err != nil {
				return err
			}
			continue
		}
		if err := s.op.readJob(ctx, job); err != nil {
			return err
		}
	}
	return nil
}

// earlierStillRunning says whether a Job of an earlier operation is still
// running on a node the operation works on: a pull where it still pulls,
// or a removal on a node still there. It is let finish before the node gets
// the operation's own Job (so a removal never races a pull of the same
// image), but what it reports is not the operation's.
func earlierStillRunning(s *syncCtx, job *batchv1.Job) bool {
	node := job.Annotations[puller.AnnotationNode]
	if !puller.IsActive(job) || puller.JobEpoch(job) >= s.led.Epoch || predatesNode(job, s.nodes) {
		return false
	}
	if puller.IsDeleteJob(job) {
		return s.nodes[node] != nil
	}
	return s.plan.nodes[node] != nil
}

// unsettleRemoved takes back what the ledger carried over for the images of
// an earlier operation's delete Job: it may have removed them after the
// ledger last said so (an image dropped and added back before the removal
// was recorded), so they are pulled again if wanted. Those it reports
// removed are no longer this cache's.
func (c *Controller) unsettleRemoved(s *syncCtx, job *batchv1.Job) {
	node := job.Annotations[puller.AnnotationNode]
	out, err := puller.ReadDelete(c.cfg.Puller, job, c.podOf(job), s.now)
	if err != nil {
		return
	}
	for i, img := range out.Images {
		key, err := images.Normalize(img)
		if err != nil {
			continue
		}
		if st := s.led.Get(node, key); st == ledger.Pulled || st == ledger.Present {
			s.led.Set(node, key, ledger.Unsettled)
		}
		if s.removedEarlier == nil {
			s.removedEarlier = map[string]bool{}
		}
		s.removedEarlier[node+"\x00"+key] = true
		if out.Finished && out.Results[i].State == puller.Succeeded {
			s.led.SetOwned(node, key, false)
		}
	}
}

// followEarlier follows a Job of an earlier operation to its end, as its
// own operation would have (its deadlines, its start deadline), keeping its
// node busy meanwhile, and reads nothing of it into the ledger.
func (c *Controller) followEarlier(ctx context.Context, s *syncCtx, job *batchv1.Job) error {
	var out puller.Outcome
	var err error
	if puller.IsDeleteJob(job) {
		out, err = puller.ReadDelete(c.cfg.Puller, job, c.podOf(job), s.now)
	} else {
		out, err = puller.Read(c.cfg.Puller, job, c.podOf(job), s.now)
	}
	if err != nil {
		klog.FromContext(ctx).Error(err, "Unreadable Job, deleting it", "job", klog.KObj(job))
		return c.dropJob(ctx, s, job)
	}
	return c.followJob(ctx, s, job, &out)
}

// predatesNode reports whether a Job was made before its node: for an
// earlier node of the same name, whose outcomes say nothing of this one.
func predatesNode(job *batchv1.Job, nodes map[string]*corev1.Node) bool {
	n := nodes[job.Annotations[puller.AnnotationNode]]
	return n != nil && job.CreationTimestamp.Before(&n.CreationTimestamp)
}

// recordOutcome applies what one of the operation's Jobs says (out, or err
// when it cannot be read): an unreadable Job is deleted; a Job that must end
// is ended, with its outcome recorded on it; a running one keeps its node
// busy; and each image it reports settles its pair in the ledger. succeeded
// is told of each pair the Job did (and the image's index in the Job),
// before the ledger records it.
func (c *Controller) recordOutcome(ctx context.Context, s *syncCtx, job *batchv1.Job, out puller.Outcome, err error,
	succeeded func(node, key string, i int)) error {
	if err != nil {
		klog.FromContext(ctx).Error(err, "Unreadable Job, deleting it", "job", klog.KObj(job))
		return c.dropJob(ctx, s, job)
	}
	node := job.Annotations[puller.AnnotationNode]
	if err := c.followJob(ctx, s, job, &out); err != nil {
		return err
	}
	for i, img := range out.Images {
		k, err := images.Normalize(img)
		if err != nil || !s.plan.wants(node, k) {
			continue
		}
		switch r := out.Results[i]; r.State {
		case puller.Succeeded:
			succeeded(node, k, i)
			if s.led.Get(node, k) != ledger.Present {
				s.led.Set(node, k, ledger.Pulled)
			}
		case puller.Failed:
			s.led.Set(node, k, ledger.Failed)
			s.failures.add(s.plan.display[k], node, r.Reason, r.Message)
		}
	}
	return nil
}

// followJob does what a Job's outcome asks of the sync, before its results
// are read: a Job that failed without a pod gets the reason from its
// FailedCreate event; a Job that must end is ended, with its outcome
// recorded on it; a running one keeps its node busy until its outcome is
// known; and the sync looks again when the outcome asks to (CheckAt).
func (c *Controller) followJob(ctx context.Context, s *syncCtx, job *batchv1.Job, out *puller.Outcome) error {
	if out.NoPod {
		c.explainNoPod(ctx, s, job, out)
	}
	if out.EndNow {
		if err := c.endJob(ctx, job, *out); err != nil {
			return err
		}
	} else if puller.IsActive(job) && !out.Finished {
		// Once the outcome is known (the pod is done) the node may get
		// its next Job before the Job controller marks this one Complete.
		s.busy[job.Annotations[puller.AnnotationNode]] = true
	}
	if !out.CheckAt.IsZero() && (s.checkAt.IsZero() || out.CheckAt.Before(s.checkAt)) {
		s.checkAt = out.CheckAt
	}
	return nil
}

// explainNoPod replaces the reason of a Job that made no pod with the one
// the Job controller gave in its newest FailedCreate event on the Job (the
// admission plugin, quota or missing service account that refused the
// pod). Without such an event, or when events cannot be read, the outcome
// stays as it is.
func (c *Controller) explainNoPod(ctx context.Context, s *syncCtx, job *batchv1.Job, out *puller.Outcome) {
	e := c.failedCreates(ctx, s, job.Namespace)[job.UID]
	if e == nil {
		return
	}
	for i, r := range out.Results {
		if r.State == puller.Failed && r.Reason == puller.ReasonPodNotCreated {
			out.Results[i].Reason = reasonFailedCreate
			out.Results[i].Message = e.Message
		}
	}
}

// failedCreates returns the newest FailedCreate event of each Job in a
// namespace (the cache's, or the controller's for delete Jobs), read with
// one request the first time a pass needs them.
func (c *Controller) failedCreates(ctx context.Context, s *syncCtx, namespace string) map[types.UID]*corev1.Event {
	if got, ok := s.failedCreates[namespace]; ok {
		return got
	}
	if s.failedCreates == nil {
		s.failedCreates = map[string]map[types.UID]*corev1.Event{}
	}
	byJob := map[types.UID]*corev1.Event{}
	s.failedCreates[namespace] = byJob
	events, err := c.kubeClient.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("reason", reasonFailedCreate).String(),
	})
	if err != nil {
		klog.FromContext(ctx).Info("Cannot read why Jobs made no pod", "namespace", namespace, "err", err)
		return byJob
	}
	for i := range events.Items {
		e := &events.Items[i]
		if e.Reason != reasonFailedCreate || e.InvolvedObject.Kind != "Job" {
			continue
		}
		if old := byJob[e.InvolvedObject.UID]; old == nil || eventTime(e).After(eventTime(old)) {
			byJob[e.InvolvedObject.UID] = e
		}
	}
	return byJob
}

// deleteOrphans deletes the delete Jobs of the cache at key that belong to
// no cache there now: all of them when it is gone or being deleted (uid
// ""), else those of an earlier cache of the same name. Owner references do
// that for the Jobs in the cache's namespace; these run in the controller's.
func (c *Controller) deleteOrphans(ctx context.Context, key cache.ObjectName, uid types.UID) error {
	objs, err := c.jobIndexer.ByIndex(deleteJobsByCacheIndex, key.String())
	if err != nil {
		return err
	}
	for _, o := range objs {
		job, ok := o.(*batchv1.Job)
		if !ok || (uid != "" && job.Labels[puller.LabelCacheUID] == string(uid)) || job.DeletionTimestamp != nil || c.isDeleting(job) {
			continue
		}
		klog.FromContext(ctx).V(2).Info("Deleting a delete Job whose cache is gone", "job", klog.KObj(job))
		if err := c.deleteJob(ctx, job); err != nil {
			return err
		}
	}
	return nil
}

// reasonFailedCreate is the Job controller's event reason when it cannot
// create a Job's pod.
const reasonFailedCreate = "FailedCreate"

// eventTime is when an event last happened, whichever of its times is set.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case e.Series != nil:
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// newJob is a Job a sync decided to create, its throttle slot taken.
type newJob struct {
	job    *batchv1.Job
	kind   string // pull or delete
	node   string
	images int
	// refused settles the Job's pairs as failed when the API server
	// refuses to create the Job, with its message.
	refused func(message string)
}

// forNodes calls build for each node of the plan that can take a Job now,
// in name order, with whether the node must wait (syncCtx.hold), and
// collects the Jobs it returns.
func (s *syncCtx) forNodes(build func(w *nodeWant, hold bool) *newJob) []newJob {
	var out []newJob
	for _, name := range sortedKeys(s.plan.nodes) {
		w := s.plan.nodes[name]
		if w.skip != "" {
			continue
		}
		if job := build(w, s.hold(name)); job != nil {
			out = append(out, *job)
		}
	}
	return out
}

// maxParallelWrites bounds the Job creates (or deletes) one sync has in
// flight at once; the client's QPS limit applies on top.
const maxParallelWrites = 32

// createJobs creates the Jobs concurrently. A Job that already exists is
// taken as created (its name says what it does). A Job the API server
// refuses (isRefusal) fails its pairs with the server's message, and the
// others go on; any other error stops the creates and is returned, to be
// retried with backoff. The slots of the Jobs not created are given back.
func (c *Controller) createJobs(ctx context.Context, s *syncCtx, jobs []newJob) error {
	logger := klog.FromContext(ctx)
	created := make([]bool, len(jobs))
	refusals := make([]error, len(jobs))
	err := slowStart(len(jobs), func(i int) error {
		nj := jobs[i]
		made, err := c.kubeClient.BatchV1().Jobs(nj.job.Namespace).Create(ctx, nj.job, metav1.CreateOptions{FieldManager: ControllerName})
		if err != nil {
			if apierrors.IsAlreadyExists(err) {
				created[i] = true
				return nil
			}
			if isRefusal(err) {
				refusals[i] = err
				return nil
			}
			return fmt.Errorf("creating %s job %s for node %s: %w", nj.kind, nj.job.Name, nj.node, err)
		}
		created[i] = true
		c.throttle.created(made)
		metrics.JobsCreatedTotal.Inc()
		logger.V(2).Info("Created "+nj.kind+" Job", "job", klog.KObj(nj.job), "node", nj.node, "images", nj.images)
		return nil
	})
	for i, ok := range created {
		if !ok {
			c.throttle.release(jobKey(jobs[i].job))
		}
	}
	c.recordRefusals(ctx, s, jobs, refusals)
	return err
}

// isRefusal says whether the API server said no to a create for a reason
// that a retry of the same request would meet again: a quota, an admission
// plugin, webhook or policy (403 Forbidden), or a Job it finds invalid (422,
// 400). Throttling, timeouts, server errors and conflicts are not refusals.
func isRefusal(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)
}

// recordRefusals fails the pairs of each refused Job with the API server's
// message, and says so in a Warning event.
func (c *Controller) recordRefusals(ctx context.Context, s *syncCtx, jobs []newJob, refusals []error) {
	var nodes []string
	var first error
	for i, err := range refusals {
		if err == nil {
			continue
		}
		jobs[i].refused(err.Error())
		nodes = append(nodes, jobs[i].node)
		if first == nil {
			first = err
		}
		klog.FromContext(ctx).Info("The API server refused a Job", "job", klog.KObj(jobs[i].job), "node", jobs[i].node, "err", err)
	}
	if len(nodes) == 0 {
		return
	}
	c.recorder.Eventf(s.ic, corev1.EventTypeWarning, reasonJobRejected,
		"The API server refused the Jobs for %d %s (%s): %v", len(nodes), message.Plural(len(nodes), "node", "nodes"), message.ListSome(nodes, 3), first)
}

// deleteFinishedJobs deletes a complete operation's Jobs, unless they are to
// be kept.
func (c *Controller) deleteFinishedJobs(ctx context.Context, s *syncCtx) error {
	if !s.complete || c.cfg.RetainJobs {
		return nil
	}
	var finished []*batchv1.Job
	for _, job := range s.jobs {
		if job.DeletionTimestamp == nil && !s.deleted[job.Name] && !c.isDeleting(job) {
			finished = append(finished, job)
		}
	}
	return slowStart(len(finished), func(i int) error { return c.deleteJob(ctx, finished[i]) })
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

// jobsOf lists the Jobs (pull and delete) of a cache, by its UID.
func (c *Controller) jobsOf(ic *v1alpha2.ImageCache) ([]*batchv1.Job, error) {
	objs, err := c.jobIndexer.ByIndex(jobsByCacheIndex, string(ic.UID))
	if err != nil {
		return nil, err
	}
	jobs := make([]*batchv1.Job, 0, len(objs))
	for _, o := range objs {
		job, ok := o.(*batchv1.Job)
		if !ok {
			continue
		}
		if ns, name := puller.CacheOf(job); ns != ic.Namespace || name != ic.Name {
			continue
		}
		owned := job.Namespace == ic.Namespace && metav1.IsControlledBy(job, ic)
		// A delete Job runs in the controller's namespace, and names its cache.
		named := job.Namespace == c.cfg.Puller.DeleteNamespace && job.Annotations[puller.AnnotationCacheNamespace] != ""
		if owned || named {
			jobs = append(jobs, job)
		}
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

// dropJob deletes a Job in the middle of a sync, which then leaves it alone.
func (c *Controller) dropJob(ctx context.Context, s *syncCtx, job *batchv1.Job) error {
	if err := c.deleteJob(ctx, job); err != nil {
		return err
	}
	s.deleted[job.Name] = true
	return nil
}

func (c *Controller) deleteJob(ctx context.Context, job *batchv1.Job) error {
	err := c.kubeClient.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
		Preconditions:     &metav1.Preconditions{UID: &job.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting job %s: %w", job.Name, err)
	}
	c.expectations.ExpectDelete(job.UID)
	kind := "pull"
	if puller.IsDeleteJob(job) {
		kind = "delete"
	}
	klog.FromContext(ctx).V(2).Info("Deleted "+kind+" Job", "job", klog.KObj(job))
	return nil
}

// isDeleting reports whether this process deleted the Job less than a
// minute ago, though the informer does not show it yet.
func (c *Controller) isDeleting(job *batchv1.Job) bool { return c.expectations.ExpectsDelete(job.UID) }

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
