package imagecache

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// purgeOp is the work of ImageCachePurge: delete Jobs remove the spec's
// images from the nodes the plan wants them on, those this cache's own pull
// brought there (owned) and no other cache wants there. In its ledger,
// "pulled" means removed (or found absent), and "present" kept.
type purgeOp struct {
	c *Controller
	s *syncCtx
	// others names another ImageCache that wants an image on a node, or "".
	others func(n *corev1.Node, key string) string
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
				if s.led.Get(name, wi.key) == ledger.Unsettled {
					w.skip = reasonPurgeEnded
					break
				}
			}
		}
	}
}

func (o *purgeOp) keeps(node, key string) bool { return false }

// readEarlier: a purge takes nothing from earlier Jobs; it lets those still
// running finish before it removes anything on their node.
func (o *purgeOp) readEarlier(context.Context, *batchv1.Job) {}

// owns takes the delete Jobs of this epoch for nodes in the plan.
func (o *purgeOp) owns(job *batchv1.Job) bool {
	return puller.IsDeleteJob(job) && puller.JobEpoch(job) >= o.s.led.Epoch &&
		o.s.plan.nodes[job.Annotations[puller.AnnotationNode]] != nil
}

func (o *purgeOp) readJob(ctx context.Context, job *batchv1.Job) error {
	s := o.s
	out, err := puller.ReadDelete(o.c.cfg.Puller, job, o.c.podOf(job), s.now)
	return o.c.recordOutcome(ctx, s, job, out, err, func(node, key string, _ int) {
		if s.led.Get(node, key) == ledger.Unsettled {
			// A node's image list lags the removal.
			s.led.RemovedAt = s.now.Unix()
		}
		s.led.SetOwned(node, key, false)
	})
}

// jobs settles as kept the pairs the purge must leave, and returns a delete
// Job for each node with images left to remove.
func (o *purgeOp) jobs() []newJob {
	s := o.s
	return s.forNodes(func(w *nodeWant, hold bool) *newJob {
		name := w.node.Name
		for _, wi := range w.images {
			if why, _ := o.keptBecause(w.node, wi.key); why != "" && s.led.Get(name, wi.key) == ledger.Unsettled {
				s.led.Set(name, wi.key, ledger.Present)
			}
		}
		job := o.c.deleteJobFor(s, w, hold, func(k string) bool { return s.led.Get(name, k) == ledger.Unsettled })
		if job == nil {
			s.throttled = s.throttled || o.c.throttle.isWaiting(s.key)
		}
		return job
	})
}

func (o *purgeOp) recorded(before ledger.Reader) {}

// Why a purge leaves an image on a node.
const (
	reasonWantedByOtherCache   = "WantedByOtherCache"
	reasonNotPulledByThisCache = "NotPulledByThisCache"
)

// keptBecause says why the purge leaves an image on a node, with a message,
// or "" when it removes it: it removes only what this cache's own pull
// brought there, and what no other cache wants there.
func (o *purgeOp) keptBecause(n *corev1.Node, key string) (reason, message string) {
	if !o.s.led.Owned(n.Name, key) {
		return reasonNotPulledByThisCache,
			"this cache's own pull did not bring it onto this node: it was there before, or that could not be shown"
	}
	if other := o.others(n, key); other != "" {
		return reasonWantedByOtherCache, "ImageCache " + other + " wants it on this node"
	}
	return "", ""
}

// kept lists the pairs the purge left (settled as present), with why, for
// status.kept, and counts them by reason.
func (o *purgeOp) kept() (failureSet, map[string]int) {
	s := o.s
	set, byReason := failureSet{}, map[string]int{}
	for _, name := range sortedKeys(s.plan.nodes) {
		w := s.plan.nodes[name]
		for _, wi := range w.images {
			if s.led.Get(name, wi.key) != ledger.Present {
				continue
			}
			why, msg := o.keptBecause(w.node, wi.key)
			if why == "" { // kept for a cache that no longer wants it
				why, msg = reasonWantedByOtherCache, "another ImageCache wanted it on this node"
			}
			set.add(wi.image, name, why, msg)
			byReason[why]++
		}
	}
	return set, byReason
}

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
				if s.led.Get(name, wi.key) == ledger.Unsettled {
					s.led.Set(name, wi.key, ledger.Failed) // a purge: failed
				} else {
					s.led.Set(name, wi.key, ledger.Unsettled) // a removal: given up
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
		Images: batch, Epoch: s.led.Epoch, Socket: socket, HostNetwork: c.cfg.DeleteJobHostNetwork})
	if !c.throttle.tryAcquire(jobKey(job), s.key) {
		return nil
	}
	return &newJob{job: job, kind: "delete", node: name, images: len(batch),
		refused: func(message string) { giveUp(reasonJobRejected, message) }}
}
