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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pullevents"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

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
