package ops

import (
	"time"

	batchv1 "k8s.io/api/batch/v1"

	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pullevents"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/status"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/throttle"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/metrics"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
	"kubefledged.io/kube-fledged/pkg/trim"
)

// pullOp is the work of ImageCacheCreate, ImageCacheUpdate and
// ImageCacheRefresh: pull Jobs bring the spec's images onto the nodes the
// plan wants them on. It also removes the images dropped from the spec from
// the nodes this cache pulled them onto, unless another cache wants them
// there, with delete Jobs: such pairs stay in the ledger, as pulled, until
// their removal is done.
type pullOp struct {
	c *Ops
	s *pass.Pass
	// others says what the other ImageCaches want on a node.
	others *otherCaches
	// pullTimes are the pull durations of the pairs this pass settles, and
	// kubeletPulls what the kubelet's events say of their pulls.
	pullTimes    []time.Duration
	kubeletPulls []pullevents.Pull
	// retried counts, by the failure's reason, the pairs whose Jobs this
	// pass ended with a failure to try again.
	retried map[string]int
	// moved are the pulls this pass settled that found a tag moved.
	moved []status.Moved
}

// newPullOp keeps of the ledger the pairs the plan wants, and the images
// dropped from the spec that are still to be removed.
func newPullOp(c *Ops, s *pass.Pass) *pullOp {
	o := &pullOp{c: c, s: s, others: c.otherCaches(s.IC), retried: map[string]int{}}
	s.Led.KeepOnly(func(node, key string) bool { return s.Plan.Wants(node, key) || o.toRemove(node, key) })
	return o
}

// toRemove says whether an image dropped from the spec is to be removed from
// a node: removal is on, this cache's own pull brought it there (it is
// owned), the node is still there, and no other cache wants it there.
func (o *pullOp) toRemove(node, key string) bool {
	if o.c.cfg.NoRemoval {
		return false
	}
	s := o.s
	n := s.Nodes[node]
	return s.Led.Owned(node, key) && !s.Plan.SpecKeys[key] && n != nil && o.others.wants(n, key) == ""
}

// Claims takes the pull Jobs of this epoch for nodes in the plan, and the
// delete Jobs of this epoch (removals) for nodes still there.
func (o *pullOp) Claims(job *batchv1.Job) bool {
	node := job.Annotations[puller.AnnotationNode]
	if puller.JobEpoch(job) != o.s.Led.Epoch {
		return false
	}
	if puller.IsDeleteJob(job) {
		return o.s.Nodes[node] != nil
	}
	return o.s.Plan.Nodes[node] != nil
}

// Settle takes as present the images the nodes already report, and gives
// up the removals on nodes whose runtime cannot be reached.
func (o *pullOp) Settle() {
	c, s := o.c, o.s
	// Right after this cache removed images, a node may still report
	// them: they are pulled, not taken as present. An image pulled Always
	// is pulled where the node has it too.
	trust := s.Now.Unix() >= s.Led.RemovedAt+nodeImagesLag
	for name, w := range s.Plan.Nodes {
		// A node where one of the cache's Jobs runs lists what the Job
		// pulls once it has it: the Job's outcome settles those.
		if w.Skip != "" || !trust || s.Busy[name] {
			continue
		}
		var present images.Present
		for _, wi := range w.Images {
			if wi.Always || s.Led.Get(name, wi.Key) != ledger.Unsettled {
				continue
			}
			if present == "" {
				present = trim.NodeImages(w.Node)
			}
			switch {
			case !present.Has(wi.Key):
			case s.Retries[pass.PairKey(name, wi.Key)] != nil:
				// A try the controller ended brought it after all (the
				// runtime finishes a pull whose pod went): pulled, but
				// not shown to be the cache's.
				s.Led.Set(name, wi.Key, ledger.Pulled)
			default:
				s.Led.Set(name, wi.Key, ledger.Present)
			}
		}
	}
	for _, t := range o.removals() {
		c.giveUpUnreachable(s, t)
	}
}

// Jobs returns a pull Job for each node with images left to pull, then the
// delete Jobs of the removals.
func (o *pullOp) Jobs() pass.ToCreate {
	var out pass.ToCreate
	out.Jobs = o.s.ForNodes(func(w *plan.Node) *pass.NewJob { return o.pullJob(w, &out) })
	for _, t := range o.removals() {
		out.Removals += len(t.want.Images)
		job, throttled := o.c.deleteJobFor(o.s, t, out.Hold(o.s, t.want.Node.Name))
		out.Throttled = out.Throttled || throttled
		if job != nil {
			job.Removals = len(t.want.Images)
			out.Jobs = append(out.Jobs, *job)
		}
	}
	return out
}

// pullJob returns the Job that pulls the next batch of a node's images left
// to pull, or nil; out says whether the node must wait, and is told when the
// cache waits for a slot.
func (o *pullOp) pullJob(w *plan.Node, out *pass.ToCreate) *pass.NewJob {
	c, s, name := o.c, o.s, w.Node.Name
	var batch, pulledAnyway []string
	var always []bool
	var deadlines []time.Duration
	var picked []plan.Image
	attempt := 0
	// The Pulling event of an image pulled Always proves it was absent
	// only where the node lists every image it has, and not that one.
	var present images.Present
	whole := pullevents.ListsEveryImage(w.Node, c.cfg.NodeStatusMaxImages)
	for _, wi := range w.Images {
		if s.Led.Get(name, wi.Key) != ledger.Unsettled || len(batch) == c.cfg.ImagesPerJob {
			continue
		}
		if r := s.Retries[pass.PairKey(name, wi.Key)]; r != nil {
			if s.Now.Before(r.Next) {
				s.LookAt(r.Next)
				continue
			}
			attempt = max(attempt, r.Attempts)
		}
		batch = append(batch, wi.Image)
		always = append(always, wi.Always)
		deadlines = append(deadlines, wi.Deadline)
		picked = append(picked, wi)
		if wi.Always {
			if present == "" {
				present = trim.NodeImages(w.Node)
			}
			if !whole || present.Has(wi.Key) {
				pulledAnyway = append(pulledAnyway, wi.Image)
			}
		}
	}
	if len(batch) == 0 || out.Hold(s, name) {
		return nil
	}
	job := puller.NewPullJob(c.cfg.Puller, puller.Batch{Cache: s.IC, NodeName: name, Hostname: w.Hostname, Images: batch,
		Epoch: s.Led.Epoch, PullingProvesAbsence: pullevents.ProvesAbsence(w.Node, c.cfg.NodeStatusMaxImages), Attempt: attempt,
		Always: always, PulledAnyway: pulledAnyway, Deadlines: deadlines})
	if c.expectations.ExpectsCreate(throttle.JobKey(job)) {
		return nil // created, and not shown by the informer yet
	}
	if !c.throttle.TryAcquire(throttle.JobKey(job), s.Key) {
		out.Throttled = true
		return nil
	}
	return &pass.NewJob{Job: job, Kind: "pull", Node: name, Images: len(batch), Refused: func(message string) {
		for _, wi := range picked {
			s.Led.Set(name, wi.Key, ledger.Failed)
			s.Failures.Add(wi.Image, name, reasons.JobRejected, message)
		}
	}}
}

// removals lists, by node, the images dropped from the spec that are to be
// removed, on the nodes that are Ready. A node that is not removes them
// when it is Ready again: they do not hold the operation up.
func (o *pullOp) removals() []removal {
	s := o.s
	var out []removal
	for _, name := range s.Led.OwnedNodes() {
		var imgs []plan.Image
		for _, k := range s.Led.OwnedOn(name) {
			if o.toRemove(name, k) {
				imgs = append(imgs, plan.Image{Image: k, Key: k})
			}
		}
		if len(imgs) == 0 {
			continue
		}
		n := s.Nodes[name]
		if o.c.filter.SkipReason(n) != "" {
			continue
		}
		out = append(out, removal{want: &plan.Node{Node: n, Hostname: n.Labels[puller.HostnameLabel], Images: imgs},
			pick: func(k string) bool { return o.toRemove(name, k) }, keep: func() []string { return o.others.on(n) }})
	}
	return out
}

func (o *pullOp) Pulls() bool { return true }

// Kept: a pull leaves nothing on purpose.
func (o *pullOp) Kept() (pass.Failures, map[string]int) { return nil, nil }

// Recorded counts the pairs this pass settled, and their pull times.
func (o *pullOp) Recorded(before ledger.Reader) {
	countSettled(before, o.s.Led)
	for reason, n := range o.retried {
		metrics.PullRetriesTotal.WithLabelValues(reason).Add(float64(n))
	}
	status.MovedEvents(o.c.recorder, o.s.IC, o.moved)
	for _, d := range o.pullTimes {
		metrics.PullDuration.Observe(d.Seconds())
	}
	for _, p := range o.kubeletPulls {
		metrics.ImagePullSeconds.WithLabelValues(p.Result).Observe(p.Took.Seconds())
		if p.Bytes > 0 {
			metrics.PulledBytesTotal.Add(float64(p.Bytes))
		}
	}
}

// countSettled adds to the pulls counter the pairs settled in after but not in before.
func countSettled(before ledger.Reader, after *ledger.Ledger) {
	var pulled, present, failed float64
	for p, s := range after.Settled() {
		if before.Get(p.Node, p.Image) == s {
			continue
		}
		switch s {
		case ledger.Pulled:
			pulled++
		case ledger.Present:
			present++
		case ledger.Failed:
			failed++
		}
	}
	metrics.PullsTotal.WithLabelValues(metrics.ResultPulled).Add(pulled)
	metrics.PullsTotal.WithLabelValues(metrics.ResultAlreadyPresent).Add(present)
	metrics.PullsTotal.WithLabelValues(metrics.ResultFailed).Add(failed)
}
