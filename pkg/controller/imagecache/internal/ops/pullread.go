package ops

import (
	"context"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/status"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// ReadJob reads one of the pull's Jobs: a pull Job's outcomes settle its
// pairs (with the pull times, the kubelet's figures and the digests of the
// images pulled Always, counted once the status records them), a failure
// that may pass is tried again; a delete Job's removals leave the ledger.
func (o *pullOp) ReadJob(ctx context.Context, job *batchv1.Job) error {
	if puller.IsDeleteJob(job) {
		return o.readRemoval(ctx, job)
	}
	s := o.s
	pod := o.c.reader.PodOf(job)
	out, err := puller.Read(o.c.cfg.Puller, job, pod, o.c.pulling.PullingSince(ctx, pod), s.Now)
	own := o.ownershipOf(ctx, job, pod)
	pulls := o.c.pulling.Pulls(ctx, pod, s.Now)
	return o.c.reader.Record(ctx, s, job, out, err, func(node, key string, i int) {
		if s.Led.Get(node, key) == ledger.Unsettled {
			o.pullTimes = append(o.pullTimes, s.Now.Sub(job.CreationTimestamp.Time))
			o.kubeletPulls = append(o.kubeletPulls, pulls.Pulled(i)...)
			if s.Plan.Always(node, key) {
				if m := status.RecordDigest(s.St, s.Plan.Display[key], node, status.ContainerDigest(pod, i)); m != nil {
					o.moved = append(o.moved, *m)
				}
				if s.Led.Pin(node, key) == ledger.Pinned {
					// The pull may have moved the tag, and containerd
					// then drops the record's labels: pin it again.
					s.Led.SetPin(node, key, ledger.PinUnsure)
				}
			}
		}
		// As long as the Job is there: its event may come after the pull
		// settled.
		own(node, key, i)
	}, func(node, key string, i int, r puller.Result) bool {
		switch s.Led.Get(node, key) {
		case ledger.Pulled, ledger.Present:
			// A later try of a pair that failed did it.
			return true
		case ledger.Failed:
			return false
		}
		retry := o.c.retryLater(s, job, node, key, r)
		if !retry || out.EndNow {
			// A pair tried again stays unsettled: its failure counts
			// in the pass that ends its Job.
			o.kubeletPulls = append(o.kubeletPulls, pulls.Failed(i)...)
		}
		if retry && out.EndNow {
			o.retried[r.Reason]++
		}
		return retry
	})
}

// ownershipOf returns what marks a pair of a pull Job's pod owned, when the
// kubelet reports pulling the image of its i-th container (PulledHere, read
// once, when first needed).
func (o *pullOp) ownershipOf(ctx context.Context, job *batchv1.Job, pod *corev1.Pod) func(node, key string, i int) {
	var pulled map[string]bool
	return func(node, key string, i int) {
		if o.s.Led.Owned(node, key) {
			return
		}
		if pulled == nil {
			pulled = o.c.pulling.PulledHere(ctx, job, pod)
		}
		if pulled[puller.ContainerName(i)] {
			o.s.Led.SetOwned(node, key, true)
		}
	}
}

// ReadEarlier takes from a pull Job of an earlier operation the images it
// pulled once this operation was due: they are on the node, whatever that
// operation asked for. "Due" is from a second before the start, the most an
// operation waits to start (epochs are seconds apart), in which the earlier
// operation records nothing. Nothing else of the Job counts: its failures
// (with the pull secrets of then, say) are not this operation's, what it did
// before was that one's to record, so it is done again if the status did not
// record it, and nothing an earlier delete Job may have removed. Of a pod
// that Succeeded the cache keeps no container: its images count if the pod
// started once this operation was due.
func (o *pullOp) ReadEarlier(ctx context.Context, job *batchv1.Job) {
	s := o.s
	node := job.Annotations[puller.AnnotationNode]
	if puller.IsDeleteJob(job) || s.St.StartTime == nil || s.Plan.Nodes[node] == nil {
		return
	}
	pod := o.c.reader.PodOf(job)
	if pod == nil {
		return
	}
	imgs, err := puller.JobImages(job)
	if err != nil {
		return
	}
	own := o.ownershipOf(ctx, job, pod)
	finished := map[string]time.Time{}
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.ExitCode == 0 {
			finished[cs.Name] = t.FinishedAt.Time
		}
	}
	if pod.Status.Phase == corev1.PodSucceeded && len(pod.Status.ContainerStatuses) == 0 && pod.Status.StartTime != nil {
		// The informer's cache keeps no container of a pod that
		// Succeeded: each finished after the pod started.
		for i := range imgs {
			finished[puller.ContainerName(i)] = pod.Status.StartTime.Time
		}
	}
	for i, img := range imgs {
		at, ok := finished[puller.ContainerName(i)]
		key, err := images.Normalize(img)
		if !ok || at.Before(s.St.StartTime.Add(-time.Second)) || err != nil || !s.Plan.Wants(node, key) ||
			s.Led.Get(node, key) != ledger.Unsettled || s.RemovedEarlier[pass.PairKey(node, key)] {
			continue
		}
		s.Led.Set(node, key, ledger.Pulled)
		own(node, key, i)
	}
}

// readRemoval reads a delete Job that removes images dropped from the spec:
// once it has finished, each pair it removed leaves the ledger, and each it
// failed to remove too, with a failure.
func (o *pullOp) readRemoval(ctx context.Context, job *batchv1.Job) error {
	s := o.s
	node := job.Annotations[puller.AnnotationNode]
	out, err := puller.ReadDelete(o.c.cfg.Puller, job, o.c.reader.PodOf(job), s.Now)
	if err != nil {
		klog.FromContext(ctx).Error(err, "Unreadable Job, deleting it", "job", klog.KObj(job))
		return o.c.writer.Drop(ctx, s, job)
	}
	if err := o.c.reader.Follow(ctx, s, job, &out); err != nil || !out.Finished {
		return err
	}
	for i, img := range out.Images {
		if !o.toRemove(node, img) {
			continue
		}
		// Removed, failed, or kept for another name of the same image:
		// either way no longer this cache's to remove.
		s.Led.Set(node, img, ledger.Unsettled)
		s.Led.SetOwned(node, img, false)
		if out.Results[i].State == puller.Kept {
			continue
		}
		s.Led.RemovedAt = s.Now.Unix()
		if r := out.Results[i]; r.State == puller.Failed {
			s.Failures.Add(img, node, r.Reason, r.Message)
		}
	}
	return nil
}
