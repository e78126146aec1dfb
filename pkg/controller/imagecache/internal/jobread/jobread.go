// Package jobread reads an ImageCache's Jobs into the pass: what each says
// of its pairs (Record), following it to its end (Follow: its deadlines,
// ending it, why it made no pod), the Jobs of earlier operations (let
// finish, and what they removed taken back), and the Jobs and pods of a
// cache from the informers' indexes (JobsOf, PodOf).
package jobread

import (
	"context"
	"fmt"
	"sort"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/jobwrite"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pullevents"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// Reader reads the cache's Jobs, from the informers' indexes.
type Reader struct {
	jobs, pods cache.Indexer
	cfg        puller.Config
	kube       kubernetes.Interface
	pulling    *pullevents.Watches
	writer     *jobwrite.Writer
}

// New returns the reader of the Jobs in jobs and their pods in pods
// (indexed by JobIndexers and PodIndexers); kube lists the events that say
// why a Job made no pod, and writer deletes and ends the Jobs it must.
func New(jobs, pods cache.Indexer, cfg puller.Config, kube kubernetes.Interface, pulling *pullevents.Watches,
	writer *jobwrite.Writer) *Reader {
	return &Reader{jobs: jobs, pods: pods, cfg: cfg, kube: kube, pulling: pulling, writer: writer}
}

// PinReader reads a pin or unpin Job into the pass (the pins' own).
type PinReader func(ctx context.Context, s *pass.Pass, job *batchv1.Job) error

const (
	jobsByCacheIndex = "byCacheUID"
	// deleteJobsByCacheIndex indexes the delete Jobs, which run in the
	// controller's namespace with no owner reference, by their cache's
	// namespace/name: once the cache is gone, they are found by its key.
	deleteJobsByCacheIndex = "byCacheKey"
	podsByJobIndex         = "byJobUID"
)

// JobIndexers are the indexes the reader needs on the Jobs informer.
func JobIndexers() cache.Indexers {
	return cache.Indexers{jobsByCacheIndex: indexByLabel(puller.LabelCacheUID), deleteJobsByCacheIndex: indexByCacheKey}
}

// PodIndexers are the indexes the reader needs on the Pods informer.
func PodIndexers() cache.Indexers { return cache.Indexers{podsByJobIndex: indexByControllerUID} }

// Read reads the outcomes of the cache's Jobs into the ledger, and
// deletes the Jobs that the operation does not own, or that were made for an
// earlier node of the same name.
func (r *Reader) Read(ctx context.Context, s *pass.Pass, readPin PinReader) error {
	jobs, err := r.JobsOf(s.IC)
	if err != nil {
		return err
	}
	s.SawJobs(jobs)
	// First what earlier delete Jobs may have removed: nothing earlier
	// brings those images back.
	for _, job := range jobs {
		if job.DeletionTimestamp == nil && !r.writer.IsDeleting(job) && puller.IsDeleteJob(job) && puller.JobEpoch(job) < s.Led.Epoch {
			r.unsettleRemoved(s, job)
		}
	}
	for _, job := range jobs {
		if job.DeletionTimestamp != nil || r.writer.IsDeleting(job) {
			if puller.IsActive(job) {
				s.MarkBusy(job.Annotations[puller.AnnotationNode])
			}
			continue
		}
		if puller.IsPinJob(job) {
			if err := readPin(ctx, s, job); err != nil {
				return err
			}
			continue
		}
		if !s.Op.Claims(job) || PredatesNode(job, s.Nodes) {
			if s.Started != "" {
				// The pass that starts an operation only records its
				// start; the next one deals with the Jobs before it.
				if puller.IsActive(job) {
					s.MarkBusy(job.Annotations[puller.AnnotationNode])
				}
				continue
			}
			if puller.JobEpoch(job) < s.Led.Epoch && !PredatesNode(job, s.Nodes) {
				s.Op.ReadEarlier(ctx, job)
			}
			if earlierStillRunning(s, job) {
				if err := r.followEarlier(ctx, s, job); err != nil {
					return err
				}
				continue
			}
			if err := r.writer.Drop(ctx, s, job); err != nil {
				return err
			}
			continue
		}
		if err := s.Op.ReadJob(ctx, job); err != nil {
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
func earlierStillRunning(s *pass.Pass, job *batchv1.Job) bool {
	node := job.Annotations[puller.AnnotationNode]
	if !puller.IsActive(job) || puller.JobEpoch(job) >= s.Led.Epoch || PredatesNode(job, s.Nodes) {
		return false
	}
	if puller.IsDeleteJob(job) {
		return s.Nodes[node] != nil
	}
	return s.Plan.Nodes[node] != nil
}

// unsettleRemoved takes back what the ledger carried over for the images of
// an earlier operation's delete Job: it may have removed them after the
// ledger last said so (an image dropped and added back before the removal
// was recorded), so they are pulled again if wanted. Those it reports
// removed are no longer this cache's.
func (r *Reader) unsettleRemoved(s *pass.Pass, job *batchv1.Job) {
	node := job.Annotations[puller.AnnotationNode]
	out, err := puller.ReadDelete(r.cfg, job, r.PodOf(job), s.Now)
	if err != nil {
		return
	}
	for i, img := range out.Images {
		key, err := images.Normalize(img)
		if err != nil {
			continue
		}
		if st := s.Led.Get(node, key); st == ledger.Pulled || st == ledger.Present {
			s.Led.Set(node, key, ledger.Unsettled)
		}
		s.RemovedBefore(node, key)
		if out.Finished && out.Results[i].State == puller.Succeeded {
			s.Led.SetOwned(node, key, false)
		}
	}
}

// followEarlier follows a Job of an earlier operation to its end, as its
// own operation would have (its deadlines, its start deadline), keeping its
// node busy meanwhile, and reads nothing of it into the ledger.
func (r *Reader) followEarlier(ctx context.Context, s *pass.Pass, job *batchv1.Job) error {
	var out puller.Outcome
	var err error
	if puller.IsDeleteJob(job) {
		out, err = puller.ReadDelete(r.cfg, job, r.PodOf(job), s.Now)
	} else {
		pod := r.PodOf(job)
		out, err = puller.Read(r.cfg, job, pod, r.pulling.PullingSince(ctx, pod), s.Now)
	}
	if err != nil {
		klog.FromContext(ctx).Error(err, "Unreadable Job, deleting it", "job", klog.KObj(job))
		return r.writer.Drop(ctx, s, job)
	}
	return r.Follow(ctx, s, job, &out)
}

// PredatesNode reports whether a Job was made before its node: for an
// earlier node of the same name, whose outcomes say nothing of this one.
func PredatesNode(job *batchv1.Job, nodes map[string]*corev1.Node) bool {
	n := nodes[job.Annotations[puller.AnnotationNode]]
	return n != nil && job.CreationTimestamp.Before(&n.CreationTimestamp)
}

// Record applies what one of the operation's Jobs says (out, or err
// when it cannot be read): an unreadable Job is deleted; a Job that must end
// is ended, with its outcome recorded on it; a running one keeps its node
// busy; and each image it reports settles its pair in the ledger. succeeded
// is told of each pair the Job did (and the image's index in the Job), and
// failed (when not nil) of each it failed, before the ledger records it:
// when failed returns true the pair is to be tried again, and stays
// unsettled.
func (r *Reader) Record(ctx context.Context, s *pass.Pass, job *batchv1.Job, out puller.Outcome, err error,
	succeeded func(node, key string, i int), failed func(node, key string, i int, r puller.Result) bool) error {
	if err != nil {
		klog.FromContext(ctx).Error(err, "Unreadable Job, deleting it", "job", klog.KObj(job))
		return r.writer.Drop(ctx, s, job)
	}
	node := job.Annotations[puller.AnnotationNode]
	if err := r.Follow(ctx, s, job, &out); err != nil {
		return err
	}
	for i, img := range out.Images {
		k, err := images.Normalize(img)
		if err != nil || !s.Plan.Wants(node, k) {
			continue
		}
		switch r := out.Results[i]; r.State {
		case puller.Succeeded:
			succeeded(node, k, i)
			if s.Led.Get(node, k) != ledger.Present {
				s.Led.Set(node, k, ledger.Pulled)
			}
		case puller.Failed:
			if failed != nil && failed(node, k, i, r) {
				continue
			}
			s.Led.Set(node, k, ledger.Failed)
			s.Failures.Add(s.Plan.Display[k], node, r.Reason, r.Message)
		case puller.Kept:
			// A purge's delete Job left it: the runtime knows the image
			// under a name another cache wants. Kept, and still owned.
			s.Led.Set(node, k, ledger.Present)
		}
	}
	return nil
}

// Follow does what a Job's outcome asks of the sync, before its results
// are read: a Job that failed without a pod gets the reason from its
// FailedCreate event; a Job that must end is ended, with its outcome
// recorded on it; a running one keeps its node busy until its outcome is
// known; and the sync looks again when the outcome asks to (CheckAt).
func (r *Reader) Follow(ctx context.Context, s *pass.Pass, job *batchv1.Job, out *puller.Outcome) error {
	if out.NoPod {
		r.explainNoPod(ctx, s, job, out)
	}
	if out.EndNow {
		if err := r.writer.End(ctx, job, *out); err != nil {
			return err
		}
	} else if puller.IsActive(job) && !out.Finished {
		// Once the outcome is known (the pod is done) the node may get
		// its next Job before the Job controller marks this one Complete.
		s.MarkBusy(job.Annotations[puller.AnnotationNode])
	}
	s.LookAt(out.CheckAt)
	return nil
}

// explainNoPod replaces the reason of a Job that made no pod with the one
// the Job controller gave in its newest FailedCreate event on the Job (the
// admission plugin, quota or missing service account that refused the
// pod). Without such an event, or when events cannot be read, the outcome
// stays as it is.
func (r *Reader) explainNoPod(ctx context.Context, s *pass.Pass, job *batchv1.Job, out *puller.Outcome) {
	e := r.failedCreates(ctx, s, job.Namespace)[job.UID]
	if e == nil {
		return
	}
	for i, r := range out.Results {
		if r.State == puller.Failed && r.Reason == puller.ReasonPodNotCreated {
			out.Results[i].Reason = reasons.FailedCreate
			out.Results[i].Message = e.Message
		}
	}
}

// failedCreates returns the newest FailedCreate event of each Job in a
// namespace (the cache's, or the controller's for delete Jobs), read with
// one request the first time a pass needs them.
func (r *Reader) failedCreates(ctx context.Context, s *pass.Pass, namespace string) map[types.UID]*corev1.Event {
	return s.FailedCreatesIn(namespace, func() map[types.UID]*corev1.Event { return r.listFailedCreates(ctx, namespace) })
}

// listFailedCreates lists the newest FailedCreate event of each Job in a
// namespace.
func (r *Reader) listFailedCreates(ctx context.Context, namespace string) map[types.UID]*corev1.Event {
	byJob := map[types.UID]*corev1.Event{}
	events, err := r.kube.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("reason", reasons.FailedCreate).String(),
	})
	if err != nil {
		klog.FromContext(ctx).Info("Cannot read why Jobs made no pod", "namespace", namespace, "err", err)
		return byJob
	}
	for i := range events.Items {
		e := &events.Items[i]
		if e.Reason != reasons.FailedCreate || e.InvolvedObject.Kind != "Job" {
			continue
		}
		if old := byJob[e.InvolvedObject.UID]; old == nil || pullevents.EventTime(e).After(pullevents.EventTime(old)) {
			byJob[e.InvolvedObject.UID] = e
		}
	}
	return byJob
}

// DeleteOrphans deletes the delete Jobs of the cache at key that belong to
// no cache there now: all of them when it is gone or being deleted (uid
// ""), else those of an earlier cache of the same name. Owner references do
// that for the Jobs in the cache's namespace; these run in the controller's.
func (r *Reader) DeleteOrphans(ctx context.Context, key cache.ObjectName, uid types.UID) error {
	objs, err := r.jobs.ByIndex(deleteJobsByCacheIndex, key.String())
	if err != nil {
		return err
	}
	for _, o := range objs {
		job, ok := o.(*batchv1.Job)
		if !ok || (uid != "" && job.Labels[puller.LabelCacheUID] == string(uid)) || job.DeletionTimestamp != nil || r.writer.IsDeleting(job) {
			continue
		}
		klog.FromContext(ctx).V(2).Info("Deleting a delete Job whose cache is gone", "job", klog.KObj(job))
		if err := r.writer.Delete(ctx, job); err != nil {
			return err
		}
	}
	return nil
}

// JobsOf lists the Jobs (pull and delete) of a cache, by its UID.
func (r *Reader) JobsOf(ic *v1alpha2.ImageCache) ([]*batchv1.Job, error) {
	objs, err := r.jobs.ByIndex(jobsByCacheIndex, string(ic.UID))
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
		// A delete or pin Job runs in the controller's namespace, and names its cache.
		named := job.Namespace == r.cfg.DeleteNamespace && job.Annotations[puller.AnnotationCacheNamespace] != ""
		if owned || named {
			jobs = append(jobs, job)
		}
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].Name < jobs[j].Name })
	return jobs, nil
}

// PodOf returns the newest pod of a Job, or nil.
func (r *Reader) PodOf(job *batchv1.Job) *corev1.Pod {
	objs, err := r.pods.ByIndex(podsByJobIndex, string(job.UID))
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

func indexByLabel(label string) cache.IndexFunc {
	return func(obj any) ([]string, error) {
		m, err := metaOf(obj)
		if err != nil {
			return nil, err
		}
		if v := m.GetLabels()[label]; v != "" {
			return []string{v}, nil
		}
		return nil, nil
	}
}

// indexByCacheKey indexes the Jobs that name their cache's namespace (those
// that cannot be owned by it) by the cache's namespace/name.
func indexByCacheKey(obj any) ([]string, error) {
	job, ok := obj.(*batchv1.Job)
	if !ok || job.Annotations[puller.AnnotationCacheNamespace] == "" {
		return nil, nil
	}
	ns, name := puller.CacheOf(job)
	return []string{cache.ObjectName{Namespace: ns, Name: name}.String()}, nil
}

func indexByControllerUID(obj any) ([]string, error) {
	m, err := metaOf(obj)
	if err != nil {
		return nil, err
	}
	if ref := metav1.GetControllerOfNoCopy(m); ref != nil {
		return []string{string(ref.UID)}, nil
	}
	return nil, nil
}

func metaOf(obj any) (metav1.Object, error) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("unexpected object of type %T", obj)
	}
	return m, nil
}
