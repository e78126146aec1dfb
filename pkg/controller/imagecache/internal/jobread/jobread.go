// Package jobread reads an ImageCache's Jobs into the pass: what each says
// of its pairs (Record), following it to its end (Follow: its deadlines,
// ending it, why it made no pod), the Jobs of earlier operations (let
// finish, and what they removed taken back), and the Jobs and pods of a
// cache from the informers' indexes (JobsOf, PodOf).
package jobread

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/jobwrite"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pullevents"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/puller"
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
