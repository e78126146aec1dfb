package ops

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
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
	c *Ops
	s *pass.Pass
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
func newPurgeOp(c *Ops, s *pass.Pass) *purgeOp {
	o := &purgeOp{c: c, s: s, others: c.otherCaches(s.IC)}
	if s.St.StartTime != nil {
		ended := s.St.CompletionTime != nil && s.St.Status != v1alpha2.ImageCacheActionStatusProcessing
		for name, w := range s.Plan.Nodes {
			if w.Node.CreationTimestamp.After(s.St.StartTime.Time) {
				delete(s.Plan.Nodes, name)
				continue
			}
			if ended && w.Skip == "" {
				for _, wi := range w.Images {
					if s.Led.Get(name, wi.Key) == ledger.Unsettled {
						w.Skip = reasons.PurgeEnded
						break
					}
				}
			}
		}
	}
	if plan.TooLarge(s.Plan) != "" {
		// A cache too large to record every pair still purges what it
		// pulled: the purge works on the owned pairs only.
		for name, w := range s.Plan.Nodes {
			var owned []plan.Image
			for _, wi := range w.Images {
				if s.Led.Owned(name, wi.Key) {
					owned = append(owned, wi)
				}
			}
			w.Images = owned
		}
	}
	s.Led.KeepOnly(s.Plan.Wants)
	return o
}

// ReadEarlier takes from a pull Job of an earlier operation (a create the
// purge pre-empted, say) the images the kubelet pulled for it: they are the
// cache's, and the purge removes them. Nothing an earlier delete Job may
// have removed since counts.
func (o *purgeOp) ReadEarlier(ctx context.Context, job *batchv1.Job) {
	s := o.s
	node := job.Annotations[puller.AnnotationNode]
	if puller.IsDeleteJob(job) || s.Plan.Nodes[node] == nil {
		return
	}
	imgs, err := puller.JobImages(job)
	if err != nil {
		return
	}
	pulled := o.c.pulling.PulledHere(ctx, job, o.c.reader.PodOf(job))
	for i, img := range imgs {
		key, err := images.Normalize(img)
		if err == nil && pulled[puller.ContainerName(i)] && s.Plan.Wants(node, key) && !s.RemovedEarlier[pass.PairKey(node, key)] &&
			s.Led.Get(node, key) == ledger.Unsettled {
			s.Led.SetOwned(node, key, true)
		}
	}
}

// Claims takes the delete Jobs of this epoch for nodes in the plan.
func (o *purgeOp) Claims(job *batchv1.Job) bool {
	return puller.IsDeleteJob(job) && puller.JobEpoch(job) == o.s.Led.Epoch &&
		o.s.Plan.Nodes[job.Annotations[puller.AnnotationNode]] != nil
}

func (o *purgeOp) ReadJob(ctx context.Context, job *batchv1.Job) error {
	s := o.s
	out, err := puller.ReadDelete(o.c.cfg.Puller, job, o.c.reader.PodOf(job), s.Now)
	return o.c.reader.Record(ctx, s, job, out, err, func(node, key string, _ int) {
		if s.Led.Get(node, key) == ledger.Unsettled {
			// A node's image list lags the removal.
			s.Led.RemovedAt = s.Now.Unix()
		}
		s.Led.SetOwned(node, key, false)
	}, nil)
}

// Settle settles as kept the pairs the purge must leave, and as failed
// those on nodes whose runtime cannot be reached.
func (o *purgeOp) Settle() {
	s := o.s
	for name, w := range s.Plan.Nodes {
		// On a node where an earlier pull still runs, what the cache
		// owns is not known until it ends (readEarlier).
		if w.Skip != "" || s.Busy[name] {
			continue
		}
		for _, wi := range w.Images {
			if why, _ := o.keptBecause(w.Node, wi.Key); why != "" && s.Led.Get(name, wi.Key) == ledger.Unsettled {
				s.Led.Set(name, wi.Key, ledger.Present)
			}
		}
	}
	for _, t := range o.removals() {
		o.c.giveUpUnreachable(s, t)
	}
}

// Jobs returns a delete Job for each node with images left to remove.
func (o *purgeOp) Jobs() pass.ToCreate {
	var out pass.ToCreate
	for _, t := range o.removals() {
		job, throttled := o.c.deleteJobFor(o.s, t, out.Hold(o.s, t.want.Node.Name))
		out.Throttled = out.Throttled || throttled
		if job != nil {
			out.Jobs = append(out.Jobs, *job)
		}
	}
	return out
}

// removals lists, by node in name order, the images the purge still has to
// remove: those it did not settle.
func (o *purgeOp) removals() []removal {
	s := o.s
	var out []removal
	for _, name := range sortedKeys(s.Plan.Nodes) {
		if w := s.Plan.Nodes[name]; w.Skip == "" {
			out = append(out, removal{want: w, pick: func(k string) bool { return s.Led.Get(name, k) == ledger.Unsettled },
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
	if !o.s.Led.Owned(n.Name, key) {
		return reasons.NotPulledByThisCache,
			"this cache's own pull did not bring it onto this node: it was there before, or that could not be shown"
	}
	if other := o.others.wants(n, key); other != "" {
		return reasons.WantedByOtherCache, "ImageCache " + other + " wants it on this node"
	}
	return "", ""
}

func (o *purgeOp) Pulls() bool { return false }

// Recorded: a purge's removals are counted by no metric.
func (o *purgeOp) Recorded(ledger.Reader) {}

// Kept lists the pairs the purge left (settled as present), with why, for
// status.kept, and counts them by reason.
func (o *purgeOp) Kept() (pass.Failures, map[string]int) {
	s := o.s
	set, byReason := pass.Failures{}, map[string]int{}
	for _, name := range sortedKeys(s.Plan.Nodes) {
		w := s.Plan.Nodes[name]
		for _, wi := range w.Images {
			if s.Led.Get(name, wi.Key) != ledger.Present {
				continue
			}
			why, msg := o.keptBecause(w.Node, wi.Key)
			if why == "" { // kept for another name of the image, or a cache that no longer wants it
				why, msg = reasons.WantedByOtherCache, "another ImageCache wants it on this node under another name, or wanted it"
			}
			set.Add(wi.Image, name, why, msg)
			byReason[why]++
		}
	}
	return set, byReason
}
