// Package jobwrite creates, ends and deletes the ImageCache controller's
// Jobs: creates in growing batches (slowStart), each Job with its throttle
// slot, a refusal by the API server failing its pairs; ends that record a
// Job's outcome on it; deletes with the Job's UID as a precondition, which
// the expectations remember until the informer shows them.
package jobwrite

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"kubefledged.io/kube-fledged/pkg/controller/expectations"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pullevents"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/throttle"
	"kubefledged.io/kube-fledged/pkg/message"
	"kubefledged.io/kube-fledged/pkg/metrics"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
	"kubefledged.io/kube-fledged/pkg/version"
)

// maxParallelWrites bounds the Job creates (or deletes) one sync has in
// flight at once; the client's QPS limit applies on top.
const maxParallelWrites = 32

// Writer writes the controller's Jobs.
type Writer struct {
	kube         kubernetes.Interface
	recorder     record.EventRecorder
	throttle     *throttle.Throttle
	expectations *expectations.Expectations
	pulling      *pullevents.Watches
	clock        clock.Clock
}

// New returns the writer of the Jobs, with the throttle and expectations
// that count them, and the watches of the pull pods' events, which start
// with a namespace's first pull Job.
func New(kube kubernetes.Interface, recorder record.EventRecorder, th *throttle.Throttle, exp *expectations.Expectations,
	pulling *pullevents.Watches, clk clock.Clock) *Writer {
	return &Writer{kube: kube, recorder: recorder, throttle: th, expectations: exp, pulling: pulling, clock: clk}
}

// Create creates the Jobs concurrently. A Job that already exists is
// taken as created (its name says what it does). A Job the API server
// refuses (isRefusal) fails its pairs with the server's message, and the
// others go on; any other error (a quota among them) stops the creates and
// is returned, to be retried with backoff. The slots of the Jobs not created
// are given back. It returns the removals and pins the refused Jobs gave up.
func (w *Writer) Create(ctx context.Context, s *pass.Pass, jobs []pass.NewJob) (pass.GivenUp, error) {
	logger := klog.FromContext(ctx)
	created := make([]bool, len(jobs))
	refusals := make([]error, len(jobs))
	err := slowStart(len(jobs), func(i int) error {
		nj := jobs[i]
		made, err := w.kube.BatchV1().Jobs(nj.Job.Namespace).Create(ctx, nj.Job, metav1.CreateOptions{FieldManager: version.Name})
		if err != nil {
			if apierrors.IsAlreadyExists(err) {
				created[i] = true
				return nil
			}
			if isRefusal(err) {
				refusals[i] = err
				return nil
			}
			if IsQuota(err) {
				w.recorder.Eventf(s.IC, corev1.EventTypeWarning, reasons.QuotaExceeded,
					"A quota refused the %s Job for node %s; trying again with backoff: %v", nj.Kind, nj.Node, err)
			}
			return fmt.Errorf("creating %s job %s for node %s: %w", nj.Kind, nj.Job.Name, nj.Node, err)
		}
		created[i] = true
		w.throttle.Created(made)
		metrics.JobsCreatedTotal.Inc()
		if nj.Kind == "pull" {
			// Its pod's events are read when its pulls settle: watch
			// them from now.
			w.pulling.Start(ctx, nj.Job.Namespace)
		}
		logger.V(2).Info("Created "+nj.Kind+" Job", "job", klog.KObj(nj.Job), "node", nj.Node, "images", nj.Images)
		return nil
	})
	for i, ok := range created {
		if !ok {
			w.throttle.Release(throttle.JobKey(jobs[i].Job))
		}
	}
	return w.recordRefusals(ctx, s, jobs, refusals), err
}

// Release gives back the throttle slots of Jobs a pass decided to create,
// and does not.
func (w *Writer) Release(jobs []pass.NewJob) {
	for _, j := range jobs {
		w.throttle.Release(throttle.JobKey(j.Job))
	}
}

// isRefusal says whether the API server said no to a create for a reason
// that a retry of the same request would meet again: an admission plugin,
// webhook or policy (403 Forbidden), or a Job it finds invalid (422, 400).
// A quota is not one: Jobs finish and free it, so a create it refuses is
// retried with backoff, as the Kubernetes controllers retry theirs.
// Throttling, timeouts, server errors and conflicts are not refusals either.
func isRefusal(err error) bool {
	return (apierrors.IsForbidden(err) && !IsQuota(err)) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)
}

// IsQuota says whether a ResourceQuota refused the request: the quota
// admission plugin says "exceeded quota" in a Forbidden error, or "status
// unknown for quota" until the quota's controller has counted its use.
func IsQuota(err error) bool {
	return apierrors.IsForbidden(err) &&
		(strings.Contains(err.Error(), "exceeded quota") || strings.Contains(err.Error(), "status unknown for quota"))
}

// recordRefusals fails the pairs of each refused Job with the API server's
// message, and says so in a Warning event. It returns the removals and
// pins the refused Jobs gave up.
func (w *Writer) recordRefusals(ctx context.Context, s *pass.Pass, jobs []pass.NewJob, refusals []error) pass.GivenUp {
	var nodes []string
	var first error
	var given pass.GivenUp
	for i, err := range refusals {
		if err == nil {
			continue
		}
		jobs[i].Refused(err.Error())
		given.Jobs++
		given.Removals += jobs[i].Removals
		given.Pins += jobs[i].Pins
		nodes = append(nodes, jobs[i].Node)
		if first == nil {
			first = err
		}
		klog.FromContext(ctx).Info("The API server refused a Job", "job", klog.KObj(jobs[i].Job), "node", jobs[i].Node, "err", err)
	}
	if len(nodes) == 0 {
		return given
	}
	w.recorder.Eventf(s.IC, corev1.EventTypeWarning, reasons.JobRejected,
		"The API server refused the Jobs for %d %s (%s): %v", len(nodes), message.Plural(len(nodes), "node", "nodes"), message.ListSome(nodes, 3), first)
	return given
}

// DeleteDone deletes the cache's Jobs that have finished, whose
// outcomes this pass read and wrote to the status, whatever
// --retain-jobs says: under a quota of Jobs, they are what holds the
// operation back.
func (w *Writer) DeleteDone(ctx context.Context, s *pass.Pass) error {
	return w.DeleteOf(ctx, s, func(job *batchv1.Job) bool { return !puller.IsActive(job) })
}

// DeleteOf deletes the cache's Jobs that pick selects, but those
// deleted or being deleted.
func (w *Writer) DeleteOf(ctx context.Context, s *pass.Pass, pick func(*batchv1.Job) bool) error {
	jobs := w.deletable(s, pick)
	return slowStart(len(jobs), func(i int) error { return w.Delete(ctx, jobs[i]) })
}

// deletable lists the cache's Jobs that pick selects, but those deleted
// or being deleted.
func (w *Writer) deletable(s *pass.Pass, pick func(*batchv1.Job) bool) []*batchv1.Job {
	var jobs []*batchv1.Job
	for _, job := range s.Jobs {
		if job.DeletionTimestamp == nil && !s.Deleted[job.Name] && !w.IsDeleting(job) && pick(job) {
			jobs = append(jobs, job)
		}
	}
	return jobs
}

// DeleteOldest deletes, oldest ended first, the cache's Jobs that pick
// selects (finished ones) past the newest keep of them.
func (w *Writer) DeleteOldest(ctx context.Context, s *pass.Pass, keep int, pick func(*batchv1.Job) bool) error {
	jobs := w.deletable(s, pick)
	if len(jobs) <= keep {
		return nil
	}
	slices.SortFunc(jobs, func(a, b *batchv1.Job) int {
		return cmp.Or(puller.EndedAt(a, s.Now).Compare(puller.EndedAt(b, s.Now)), strings.Compare(a.Name, b.Name))
	})
	jobs = jobs[:len(jobs)-keep]
	return slowStart(len(jobs), func(i int) error { return w.Delete(ctx, jobs[i]) })
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

// Drop deletes a Job in the middle of a sync, which then leaves it alone.
func (w *Writer) Drop(ctx context.Context, s *pass.Pass, job *batchv1.Job) error {
	if err := w.Delete(ctx, job); err != nil {
		return err
	}
	s.MarkDeleted(job.Name)
	return nil
}

func (w *Writer) Delete(ctx context.Context, job *batchv1.Job) error {
	err := w.kube.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
		Preconditions:     &metav1.Preconditions{UID: &job.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting job %s: %w", job.Name, err)
	}
	w.expectations.ExpectDelete(job.UID)
	klog.FromContext(ctx).V(2).Info("Deleted Job", "job", klog.KObj(job), "component", job.Labels[puller.LabelComponent])
	return nil
}

// IsDeleting reports whether this process deleted the Job less than a
// minute ago, though the informer does not show it yet.
func (w *Writer) IsDeleting(job *batchv1.Job) bool { return w.expectations.ExpectsDelete(job.UID) }

// End records a Job's per-image outcome on the Job and suspends it, so its
// pod goes while the outcome stays.
func (w *Writer) End(ctx context.Context, job *batchv1.Job, out puller.Outcome) error {
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{
			"annotations": map[string]string{puller.AnnotationResults: puller.ResultsAnnotation(out),
				puller.AnnotationEndedAt: w.clock.Now().UTC().Format(time.RFC3339)},
			"resourceVersion": job.ResourceVersion,
		},
		"spec": map[string]any{"suspend": true},
	})
	if err != nil {
		return err
	}
	if _, err := w.kube.BatchV1().Jobs(job.Namespace).Patch(ctx, job.Name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: version.Name}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("recording the outcome of job %s: %w", job.Name, err)
	}
	klog.FromContext(ctx).V(2).Info("Ended pull Job and recorded its outcome", "job", klog.KObj(job))
	return nil
}
