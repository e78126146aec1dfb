package imagecache

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// purgeOp is the work of ImageCachePurge: delete Jobs remove the spec's
// images from the nodes the plan wants them on. In its ledger, "pulled"
// means removed (or found absent).
type purgeOp struct {
	c *Controller
	s *syncCtx
}

// scope makes a purge one operation over the nodes of its start: a node
// created since then is not the purge's (it gets no delete Job, whatever
// the cache pulled onto an earlier node of its name), and once the purge is
// complete, nothing of it runs again: a node it skipped (not Ready then)
// that turns Ready is left alone. The cache is idle until it is refreshed
// or edited.
func (o *purgeOp) scope() {
	s := o.s
	if s.st.StartTime == nil {
		return
	}
	ended := s.st.CompletionTime != nil && s.st.Status != v1alpha2.ImageCacheActionStatusProcessing
	for name, w := range s.plan.nodes {
		if w.node.CreationTimestamp.After(s.st.StartTime.Time) {
			delete(s.plan.nodes, name)
			continue
		}
		if ended && w.skip == "" {
			for _, wi := range w.images {
				if s.led.get(name, wi.key) == stateUnsettled {
					w.skip = reasonPurgeEnded
					break
				}
			}
		}
	}
}

func (o *purgeOp) keeps(node, key string) bool { return false }

// owns takes the delete Jobs of this epoch for nodes in the plan.
func (o *purgeOp) owns(job *batchv1.Job) bool {
	return puller.IsDeleteJob(job) && puller.JobEpoch(job) >= o.s.led.epoch &&
		o.s.plan.nodes[job.Annotations[puller.AnnotationNode]] != nil
}

func (o *purgeOp) readJob(ctx context.Context, job *batchv1.Job) error {
	s := o.s
	out, err := puller.ReadDelete(o.c.cfg.Puller, job, o.c.podOf(job), s.now)
	return o.c.recordOutcome(ctx, s, job, out, err, func(node, key string) {
		if s.led.get(node, key) == stateUnsettled {
			// A node's image list lags the removal.
			s.led.removedAt = s.now.Unix()
		}
	})
}

// jobs returns a delete Job for each node with images left to remove.
func (o *purgeOp) jobs() []newJob {
	s := o.s
	return s.forNodes(func(w *nodeWant, hold bool) *newJob {
		name := w.node.Name
		job := o.c.deleteJobFor(s, w, hold, func(k string) bool { return s.led.get(name, k) == stateUnsettled })
		if job == nil {
			s.throttled = s.throttled || o.c.throttle.isWaiting(s.key)
		}
		return job
	})
}

func (o *purgeOp) recorded(before *ledger) {}

// deleteJobFor makes the delete Job that removes a node's images (those of
// w.images that pick selects), unless the node must wait (hold). A node whose
// runtime socket is unknown fails those images at once. It returns the Job
// to create, its throttle slot taken, or nil.
func (c *Controller) deleteJobFor(s *syncCtx, w *nodeWant, hold bool, pick func(key string) bool) *newJob {
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
	// giveUp settles the picked pairs with a failure: a purge's as failed,
	// a removal's as given up (the image stays, and is not this cache's).
	giveUp := func(reason, message string) {
		for _, wi := range w.images {
			if pick(wi.key) {
				if s.led.get(name, wi.key) == stateUnsettled {
					s.led.set(name, wi.key, stateFailed) // a purge: failed
				} else {
					s.led.set(name, wi.key, stateUnsettled) // a removal: given up
				}
				s.failures.add(wi.image, name, reason, message)
			}
		}
	}
	socket := c.cfg.CRISocketPath
	if socket == "" {
		var err error
		if socket, err = cri.SocketForRuntime(w.node.Status.NodeInfo.ContainerRuntimeVersion); err != nil {
			giveUp(reasonUnknownRuntime, err.Error())
			return nil
		}
	}
	job := puller.NewDeleteJob(c.cfg.Puller, puller.DeleteBatch{Cache: s.ic, NodeName: name, Hostname: w.hostname,
		Images: batch, Epoch: s.led.epoch, Socket: socket, HostNetwork: c.cfg.DeleteJobHostNetwork})
	if !c.throttle.tryAcquire(jobKey(job), s.key) {
		return nil
	}
	return &newJob{job: job, kind: "delete", node: name, images: len(batch),
		refused: func(message string) { giveUp(reasonJobRejected, message) }}
}
