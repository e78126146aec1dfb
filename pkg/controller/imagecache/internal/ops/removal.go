package ops

import (
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/throttle"
	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// removal is what a delete Job would remove from one node: those of
// want.images that pick selects.
type removal struct {
	want *plan.Node
	pick func(key string) bool
	// keep lists what the other caches want on the node: the delete Job
	// keeps an image the runtime also knows under one of these names.
	// It is asked only of a removal that gets its Job.
	keep func() []string
}

// socketFor returns the runtime socket a delete Job uses on a node: the
// configured one, or the one of the runtime the node reports.
func (c *Ops) socketFor(r removal) (string, error) {
	if c.cfg.CRISocketPath != "" {
		return c.cfg.CRISocketPath, nil
	}
	return cri.SocketForRuntime(r.want.Node.Status.NodeInfo.ContainerRuntimeVersion)
}

// giveUpUnreachable settles with a failure the pairs of a removal on a node
// whose runtime socket is unknown, unless the node waits for a Job of the
// cache or the operation has just started: a purge's as failed, a removal's
// as given up (the image stays, and is no longer this cache's).
func (c *Ops) giveUpUnreachable(s *pass.Pass, r removal) {
	name := r.want.Node.Name
	if s.Busy[name] || s.Started != "" {
		return
	}
	socket, err := c.socketFor(r)
	if socket != "" {
		return
	}
	giveUp(s, r, reasons.UnknownRuntime, err.Error())
}

// giveUp settles the picked pairs of a removal with a failure.
func giveUp(s *pass.Pass, r removal, reason, message string) {
	name := r.want.Node.Name
	for _, wi := range r.want.Images {
		if !r.pick(wi.Key) {
			continue
		}
		if s.Led.Get(name, wi.Key) == ledger.Unsettled {
			s.Led.Set(name, wi.Key, ledger.Failed) // a purge: failed
		} else {
			// A removal: given up. The image stays, and is no longer
			// this cache's to remove, so the operation ends.
			s.Led.Set(name, wi.Key, ledger.Unsettled)
			s.Led.SetOwned(name, wi.Key, false)
		}
		s.Failures.Add(wi.Image, name, reason, message)
	}
}

// deleteJobFor makes the delete Job of a removal, unless the node must wait
// (hold), its runtime socket is unknown (giveUpUnreachable settled it), or
// the throttle has no slot (throttled). It returns the Job to create, its
// throttle slot taken, or nil.
func (c *Ops) deleteJobFor(s *pass.Pass, r removal, hold bool) (job *pass.NewJob, throttled bool) {
	name := r.want.Node.Name
	var batch []string
	for _, wi := range r.want.Images {
		if r.pick(wi.Key) && len(batch) < maxImagesPerDeleteJob {
			batch = append(batch, wi.Image)
		}
	}
	if len(batch) == 0 || hold || pinnedAmong(s, r) {
		return nil, false
	}
	socket, err := c.socketFor(r)
	if err != nil {
		return nil, false
	}
	dj := puller.NewDeleteJob(c.cfg.Puller, puller.DeleteBatch{Cache: s.IC, NodeName: name, Hostname: r.want.Hostname,
		Images: batch, Epoch: s.Led.Epoch, Socket: socket, HostNetwork: c.cfg.DeleteJobHostNetwork, Keep: r.keep()})
	if !c.throttle.TryAcquire(throttle.JobKey(dj), s.Key) {
		return nil, true
	}
	return &pass.NewJob{Job: dj, Kind: "delete", Node: name, Images: len(batch),
		Refused: func(message string) { giveUp(s, r, reasons.JobRejected, message) }}, false
}

// pinnedAmong says whether the cache has one of the picked images of a
// removal pinned on its node: the delete Job waits for the unpin.
func pinnedAmong(s *pass.Pass, r removal) bool {
	for _, wi := range r.want.Images {
		if r.pick(wi.Key) && s.Led.Pin(r.want.Node.Name, wi.Key).Held() {
			return true
		}
	}
	return false
}
