package imagecache

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// purgeOp is the work of ImageCachePurge: delete Jobs remove the spec's
// images from the nodes the plan wants them on, those this cache's own pull
// brought there (owned) and no other cache wants there. In its ledger,
// "pulled" means removed (or found absent), and "present" kept.
type purgeOp struct {
	c *Controller
	s *syncCtx
	// others says what the other ImageCaches want on a node.
	others *otherCaches
}

// newPurgeOp makes a purge one operation over the nodes of its start: a
// node created since then is not the purge's (it gets no delete Job,
// whatever the cache pulled onto an earlier node of its name), and once the
// purge is complete, nothing of it runs again: a node it skipped (not Ready
// then) that turns Ready is left alone. The cache is idle until it is
// refreshed or edited. The ledger keeps only the pairs the plan wants. It
// lets the earlier Jobs still running finish before it removes anything on
// their node, and takes what their pulls brought (readEarlier).
func newPurgeOp(c *Controller, s *syncCtx) *purgeOp {
	o := &purgeOp{c: c, s: s, others: c.otherCaches(s.ic)}
	if s.st.StartTime != nil {
		ended := s.st.CompletionTime != nil && s.st.Status != v1alpha2.ImageCacheActionStatusProcessing
		for name, w := range s.plan.Nodes {
			if w.Node.CreationTimestamp.After(s.st.StartTime.Time) {
				delete(s.plan.Nodes, name)
				continue
			}
			if ended && w.Skip == "" {
				for _, wi := range w.Images {
					if s.led.Get(name, wi.Key) == ledger.Unsettled {
						w.Skip = reasons.PurgeEnded
						break
					}
				}
			}
		}
	}
	if plan.TooLarge(s.plan, s.led) != "" {
		// A cache too large to record every pair still purges what it
		// pulled: the purge works on the owned pairs only.
		for name, w := range s.plan.Nodes {
			var owned []plan.Image
			for _, wi := range w.Images {
				if s.led.Owned(name, wi.Key) {
					owned = append(owned, wi)
				}
			}
			w.Images = owned
		}
	}
	s.led.KeepOnly(s.plan.Wants)
	return o
}

// readEarlier takes from a pull Job of an earlier operation (a create the
// purge pre-empted, say) the images the kubelet pulled for it: they are the
// cache's, and the purge removes them. Nothing an earlier delete Job may
// have removed since counts.
func (o *purgeOp) readEarlier(ctx context.Context, job *batchv1.Job) {
	s := o.s
	node := job.Annotations[puller.AnnotationNode]
	if puller.IsDeleteJob(job) || s.plan.Nodes[node] == nil {
		return
	}
	imgs, err := puller.JobImages(job)
	if err != nil {
		return
	}
	pulled := o.c.pulling.PulledHere(ctx, job, o.c.podOf(job))
	for i, img := range imgs {
		key, err := images.Normalize(img)
		if err == nil && pulled[puller.ContainerName(i)] && s.plan.Wants(node, key) && !s.removedEarlier[pairKey(node, key)] &&
			s.led.Get(node, key) == ledger.Unsettled {
			s.led.SetOwned(node, key, true)
		}
	}
}

// claims takes the delete Jobs of this epoch for nodes in the plan.
func (o *purgeOp) claims(job *batchv1.Job) bool {
	return puller.IsDeleteJob(job) && puller.JobEpoch(job) == o.s.led.Epoch &&
		o.s.plan.Nodes[job.Annotations[puller.AnnotationNode]] != nil
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
	}, nil)
}

// settle settles as kept the pairs the purge must leave, and as failed
// those on nodes whose runtime cannot be reached.
func (o *purgeOp) settle() {
	s := o.s
	for name, w := range s.plan.Nodes {
		// On a node where an earlier pull still runs, what the cache
		// owns is not known until it ends (readEarlier).
		if w.Skip != "" || s.busy[name] {
			continue
		}
		for _, wi := range w.Images {
			if why, _ := o.keptBecause(w.Node, wi.Key); why != "" && s.led.Get(name, wi.Key) == ledger.Unsettled {
				s.led.Set(name, wi.Key, ledger.Present)
			}
		}
	}
	for _, t := range o.removals() {
		o.c.giveUpUnreachable(s, t)
	}
}

// jobs returns a delete Job for each node with images left to remove.
func (o *purgeOp) jobs() jobsToCreate {
	var out jobsToCreate
	for _, t := range o.removals() {
		job, throttled := o.c.deleteJobFor(o.s, t, out.hold(o.s, t.want.Node.Name))
		out.throttled = out.throttled || throttled
		if job != nil {
			out.jobs = append(out.jobs, *job)
		}
	}
	return out
}

// removals lists, by node in name order, the images the purge still has to
// remove: those it did not settle.
func (o *purgeOp) removals() []removal {
	s := o.s
	var out []removal
	for _, name := range sortedKeys(s.plan.Nodes) {
		if w := s.plan.Nodes[name]; w.Skip == "" {
			out = append(out, removal{want: w, pick: func(k string) bool { return s.led.Get(name, k) == ledger.Unsettled },
				keep: func() []string { return o.others.on(w.Node) }})
		}
	}
	return out
}

// keptBecause says why the purge leaves an image on a node, with a message,
// or "" when it removes it: it removes only what this cache's own pull
// brought there, and what no other cache wants there.
func (o *purgeOp) keptBecause(n *corev1.Node, key string) (reason, message string) {
	if o.c.cfg.NoRemoval {
		return reasons.RemovalDisabled, "image removal is off (--image-removal=false): the controller removes no image"
	}
	if !o.s.led.Owned(n.Name, key) {
		return reasons.NotPulledByThisCache,
			"this cache's own pull did not bring it onto this node: it was there before, or that could not be shown"
	}
	if other := o.others.wants(n, key); other != "" {
		return reasons.WantedByOtherCache, "ImageCache " + other + " wants it on this node"
	}
	return "", ""
}

func (o *purgeOp) pulls() bool { return false }

// recorded: a purge's removals are counted by no metric.
func (o *purgeOp) recorded(ledger.Reader) {}

// kept lists the pairs the purge left (settled as present), with why, for
// status.kept, and counts them by reason.
func (o *purgeOp) kept() (failureSet, map[string]int) {
	s := o.s
	set, byReason := failureSet{}, map[string]int{}
	for _, name := range sortedKeys(s.plan.Nodes) {
		w := s.plan.Nodes[name]
		for _, wi := range w.Images {
			if s.led.Get(name, wi.Key) != ledger.Present {
				continue
			}
			why, msg := o.keptBecause(w.Node, wi.Key)
			if why == "" { // kept for another name of the image, or a cache that no longer wants it
				why, msg = reasons.WantedByOtherCache, "another ImageCache wants it on this node under another name, or wanted it"
			}
			set.add(wi.Image, name, why, msg)
			byReason[why]++
		}
	}
	return set, byReason
}
