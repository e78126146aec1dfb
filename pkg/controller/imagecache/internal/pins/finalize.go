package pins

import (
	"context"
	"slices"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/status"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/throttle"
	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/message"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// Finalizer holds a cache that pins images, once deleted, until its
// pins are taken away from every node (or the nodes are gone, or its
// deadline has passed: unpinDeadline).
const Finalizer = "kubefledged.io/unpin"

// DefaultUnpinTimeout is how long a deleted cache waits for its pins to go
// unless Config.UnpinTimeout says.
const DefaultUnpinTimeout = 10 * time.Minute

// wantsFinalizer says whether a cache must carry Finalizer: it pins,
// or holds pins.
func (c *Pins) wantsFinalizer(ic *v1alpha2.ImageCache) bool {
	return (c.cfg.Pinning && ic.Spec.Pin) || c.ledgers.HoldsPins(ic)
}

// KeepFinalizer adds Finalizer to a cache that pins before it pins
// anything, and removes it from one that neither pins nor holds a pin.
func (c *Pins) KeepFinalizer(ctx context.Context, s *pass.Pass) error {
	want, has := c.wantsFinalizer(s.IC), slices.Contains(s.IC.Finalizers, Finalizer)
	if want == has {
		return nil
	}
	return c.setFinalizer(ctx, s, want)
}

// setFinalizer adds or removes Finalizer (patchMetadata: no
// concurrent change of the list is lost).
func (c *Pins) setFinalizer(ctx context.Context, s *pass.Pass, add bool) error {
	list := slices.DeleteFunc(slices.Clone(s.IC.Finalizers), func(f string) bool { return f == Finalizer })
	if add {
		list = append(list, Finalizer)
	}
	return c.status.PatchMetadata(ctx, s, "finalizers", list, "setting the finalizer "+Finalizer)
}

// Finalize takes a deleted cache's pins away: an unpin Job on each node
// where it holds one, or may (a pin Job that runs is let go first), tried
// again with backoff where it fails; a node that is gone holds none. Once
// every node still there confirmed its unpins, or the wait passed the
// deadline (unpinDeadline: a node that cannot be reached, a runtime that
// does not answer; a Warning event names them), the finalizer goes, and the
// cache with it. It returns how soon to
// look again, at the deadline: the unpin Jobs' events bring it back before.
func (c *Pins) Finalize(ctx context.Context, key cache.ObjectName, ic *v1alpha2.ImageCache,
	nodes map[string]*corev1.Node) (time.Duration, error) {
	led, before := c.ledgers.Open(ic)
	s := pass.NewPass(key, ic, c.clock.Now(), led, before)
	// A deleted cache wants nothing: its pass has the nodes, and no plan
	// nor operation.
	s.SawNodes(nodes)
	s.Led.ForgetReplaced(s.Nodes)
	jobs, err := c.reader.JobsOf(ic)
	if err != nil {
		return 0, err
	}
	s.SawJobs(jobs)
	s.HoldFailures(status.UnpinFailures(ic.Status.Failures, s.Led), pass.Failures{})
	for _, job := range jobs {
		switch {
		case job.DeletionTimestamp != nil || c.writer.IsDeleting(job):
			if puller.IsActive(job) {
				s.MarkBusy(job.Annotations[puller.AnnotationNode])
			}
		case puller.IsUnpinJob(job) || puller.IsPinJob(job) && !puller.IsActive(job):
			// An unpin goes on; a pin that ended says what it set.
			if err := c.ReadJob(ctx, s, job); err != nil {
				return 0, err
			}
		case puller.IsPinJob(job):
			// A pin that runs may set its pins before it goes: they
			// are held, to take away once it has gone.
			if err := c.drop(ctx, s, job); err != nil {
				return 0, err
			}
		default:
			// Its pulls and removals are moot now.
			if err := c.writer.Drop(ctx, s, job); err != nil {
				return 0, err
			}
		}
	}
	var todo pass.ToCreate
	c.Jobs(s, &todo)
	left := pinnedNodes(s.Led, s.Nodes)
	deadline := c.unpinDeadline(ic, s.Led)
	if len(left) > 0 && s.Now.Before(deadline) {
		if _, err := c.writer.Create(ctx, s, todo.Jobs); err != nil {
			return 0, err
		}
	} else {
		// Past the deadline, or nothing left: the Jobs are not made,
		// and their slots go back at once.
		c.writer.Release(todo.Jobs)
	}
	if err := c.status.WriteLedger(ctx, s); err != nil {
		return 0, err
	}
	if err := c.DeleteDone(ctx, s); err != nil {
		return 0, err
	}
	if len(left) > 0 && s.Now.Before(deadline) {
		after := deadline.Sub(s.Now)
		if !s.CheckAt.IsZero() {
			after = min(after, max(s.CheckAt.Sub(s.Now), 100*time.Millisecond))
		}
		if todo.Throttled {
			after = min(after, throttle.ThrottledRetry)
		}
		return after, nil
	}
	if len(left) > 0 {
		klog.FromContext(ctx).Info("Giving up unpinning a deleted cache's images", "nodes", left)
		c.recorder.Eventf(s.IC, corev1.EventTypeWarning, reasons.PinsNotReleased,
			"The cache was deleted %s ago, and its pins on %d %s could not be taken away (%s): the images may stay pinned there; "+
				"remove the label %s%s with `ctr -n k8s.io images label IMAGE %s%s=` and, where no other pin is left, %s",
			deadline.Sub(ic.DeletionTimestamp.Time), len(left), message.Plural(len(left), "node", "nodes"), message.ListSome(left, 3),
			cri.LabelPinnedByPrefix, ic.UID, cri.LabelPinnedByPrefix, ic.UID, cri.LabelPinned)
	} else if c.ledgers.HoldsPins(ic) {
		c.recorder.Event(s.IC, corev1.EventTypeNormal, reasons.Unpinned, "The deleted cache's pins are taken away from every node")
	}
	if err := c.writer.DeleteOf(ctx, s, func(*batchv1.Job) bool { return true }); err != nil {
		return 0, err
	}
	return 0, c.setFinalizer(ctx, s, false)
}

// unpinDeadline is when a deleted cache stops waiting for its pins to go:
// Config.UnpinTimeout after its deletion, and UnpinWave more for each wave
// of unpin Jobs past the first that its nodes take, the most Jobs in flight
// at once (--max-in-flight-jobs). The ledger's nodes, which unpins do not
// take away, count them: the deadline stays where it was as they go.
func (c *Pins) unpinDeadline(ic *v1alpha2.ImageCache, led *ledger.Ledger) time.Time {
	timeout := c.cfg.UnpinTimeout
	if timeout <= 0 {
		timeout = DefaultUnpinTimeout
	}
	if wave := c.cfg.MaxInFlightJobs; wave > 0 {
		waves := (led.NodeCount() + wave - 1) / wave
		timeout += time.Duration(max(waves-1, 0)) * UnpinWave
	}
	return ic.DeletionTimestamp.Add(timeout)
}

// pinnedNodes lists, in order, the nodes still there where the ledger
// holds a pin.
func pinnedNodes(led *ledger.Ledger, nodes map[string]*corev1.Node) []string {
	var out []string
	for _, name := range led.PinNodes() {
		if nodes[name] == nil {
			continue
		}
		for _, key := range led.PinsOn(name) {
			if led.Pin(name, key).Held() {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// UnpinWave is the time a deleted cache's deadline gives each wave of its
// unpin Jobs past the first: an unpin pod starts and ends in seconds, and a
// wave waits for its slowest node.
const UnpinWave = 30 * time.Second
