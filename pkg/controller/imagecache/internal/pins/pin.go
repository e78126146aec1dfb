// Package pins keeps the images of a cache with spec.pin on its nodes
// against the kubelet's image garbage collection, and takes its pins away:
// the pin and unpin Jobs of a node read into the ledger's pins (pin.go),
// and the finalizer that holds a deleted cache until its pins are gone
// (finalize.go).
package pins

import (
	"context"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/expectations"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/jobread"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/jobwrite"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/status"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/throttle"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/metrics"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// Config is what the pins need of the controller's flags.
type Config struct {
	Puller           puller.Config
	Pinning          bool
	CRISocketPath    string
	PinBudgetPercent int
	ContainerdRoot   string
	UnpinTimeout     time.Duration
	// MaxInFlightJobs is the most Jobs in flight at once: a deleted
	// cache's unpins on more nodes take more waves (unpinDeadline).
	MaxInFlightJobs int
}

// Pins pins and unpins a cache's images, with what it needs.
type Pins struct {
	cfg          Config
	filter       plan.NodeFilter
	reader       *jobread.Reader
	writer       *jobwrite.Writer
	status       *status.Writer
	throttle     *throttle.Throttle
	expectations *expectations.Expectations
	recorder     record.EventRecorder
	clock        clock.Clock
	ledgers      *ledger.Store
}

// New returns the pins' work, over the Jobs the reader and writer read and
// write.
func New(cfg Config, filter plan.NodeFilter, reader *jobread.Reader, writer *jobwrite.Writer,
	st *status.Writer, th *throttle.Throttle, exp *expectations.Expectations, recorder record.EventRecorder, clk clock.Clock) *Pins {
	return &Pins{cfg: cfg, filter: filter, reader: reader, writer: writer, status: st, throttle: th,
		expectations: exp, recorder: recorder, clock: clk, ledgers: st.Ledgers()}
}

// Pinning (spec.pin) keeps a cache's images on its nodes against the
// kubelet's image garbage collection. Once a node's pulls settle, a pin Job
// in the controller's namespace pins the pairs pulled or found present
// there; the ledger records each pin (status.ledger.pins), which outlives
// operations and the spec, so that the cache takes away exactly the pins it
// set: an unpin Job runs where an image left the spec, where the node no
// longer matches, when pin is turned off (or pinning off for the
// controller), before a purge removes anything from the node, and when the
// cache is deleted (finalize). A delete Job never removes an image the cache
// still has pinned there: it waits for the unpin.

// pinning says whether the cache wants its images pinned now.
func (c *Pins) pinning(s *pass.Pass) bool {
	return c.cfg.Pinning && s.IC.Spec.Pin && s.Op != nil && s.Op.Pulls() && s.IC.DeletionTimestamp == nil
}

// ReadJob reads a pin or unpin Job into the ledger's pins. A pin lives as
// a resource holding a finalizer does: one that may be set counts as held
// until an unpin confirms it gone. So a pin the node refused for sure (the
// image gone, the budget, a runtime that cannot pin) is recorded refused,
// and tried again in the next operation; a pin whose outcome is not known
// (its pod gone unread, killed part-way, a failure) is held, unsure, and
// listed in status.unpinned; an unpin that failed leaves the pin held, with
// an UnpinFailed failure, and its Job stays to count the tries until the
// next one, after a backoff (Jobs). The other Jobs read to their end are
// deleted once the status records them.
func (c *Pins) ReadJob(ctx context.Context, s *pass.Pass, job *batchv1.Job) error {
	node := job.Annotations[puller.AnnotationNode]
	if s.Nodes[node] == nil || jobread.PredatesNode(job, s.Nodes) {
		return c.drop(ctx, s, job)
	}
	out, err := puller.ReadPin(c.cfg.Puller, job, c.reader.PodOf(job), s.Now)
	if err != nil {
		klog.FromContext(ctx).Error(err, "Unreadable Job, deleting it", "job", klog.KObj(job))
		return c.drop(ctx, s, job)
	}
	if err := c.reader.Follow(ctx, s, job, &out); err != nil {
		return err
	}
	if !out.Finished {
		return nil
	}
	if puller.IsUnpinJob(job) {
		c.readUnpin(s, job, node, out)
		return nil
	}
	s.PinJobRead(job)
	for i, img := range out.Images {
		key, err := images.Normalize(img)
		if err != nil {
			continue
		}
		switch r := out.Results[i]; {
		case r.State == puller.Succeeded:
			s.Led.SetPin(node, key, ledger.Pinned)
			metrics.PinsTotal.WithLabelValues(metrics.PinPinned).Inc()
		case r.Reason == puller.ReasonImageGone:
			// Collected before the pin, or removed by someone: the
			// next operation pulls it again.
			metrics.ImagesGoneTotal.Inc()
			fallthrough
		case r.Reason == puller.ReasonPinBudgetExceeded || r.Reason == puller.ReasonPinUnsupported:
			s.Led.SetPin(node, key, ledger.PinRefused)
			s.Unpinned.Add(s.DisplayOf(key, img), node, r.Reason, r.Message)
			metrics.PinsTotal.WithLabelValues(metrics.PinRefused).Inc()
		default:
			s.Led.SetPin(node, key, ledger.PinUnsure)
			s.Unpinned.Add(s.DisplayOf(key, img), node, r.Reason, r.Message+"; "+mayBeSet)
			metrics.PinsTotal.WithLabelValues(metrics.PinRefused).Inc()
		}
	}
	return nil
}

// mayBeSet ends the message of a pin of unknown outcome.
const mayBeSet = "the pin may be set: the cache counts it as its own until an unpin takes it away"

// readUnpin reads an unpin Job to its end: the pins it took away go; a pin
// it did not keeps its failure, and the Job stays to count the node's
// tries.
func (c *Pins) readUnpin(s *pass.Pass, job *batchv1.Job, node string, out puller.Outcome) {
	failed := false
	for i, img := range out.Images {
		key, err := images.Normalize(img)
		if err != nil {
			continue
		}
		r, held := out.Results[i], s.Led.Pin(node, key).Held()
		display := s.DisplayOf(key, img)
		switch {
		case r.State == puller.Succeeded:
			if held {
				// A kept Job is read again: counted once.
				s.Led.SetPin(node, key, ledger.NotPinned)
				metrics.PinsTotal.WithLabelValues(metrics.PinUnpinned).Inc()
			}
			s.Failures.Drop(display, node)
		case held:
			failed = true
			s.Failures.Add(display, node, reasons.UnpinFailed, "the image stays pinned on this node, and the unpin is tried again: "+
				r.Reason+": "+r.Message)
		}
	}
	if !failed {
		s.PinJobRead(job)
		return
	}
	s.KeepFailedUnpin(node, job)
	// The earlier tries' Jobs went: the count goes on from this one's.
	p := s.UnpinRetry(node)
	p.Attempts = max(p.Attempts, puller.PinAttempt(job))
	p.Failed(puller.EndedAt(job, s.Now), reasons.UnpinFailed, "", maxUnpinBackoff)
}

// maxUnpinBackoff bounds the wait before an unpin is tried again.
const maxUnpinBackoff = 5 * time.Minute

// drop deletes a pin or unpin Job unread: the pins a pin Job may have set
// are held, unsure, to take away.
func (c *Pins) drop(ctx context.Context, s *pass.Pass, job *batchv1.Job) error {
	if !puller.IsUnpinJob(job) {
		doubt(s, job)
	}
	if puller.IsActive(job) {
		// Its pod may still be labelling: no unpin in the same pass.
		s.MarkBusy(job.Annotations[puller.AnnotationNode])
	}
	return c.writer.Drop(ctx, s, job)
}

// doubt holds, unsure, the pins a pin Job may have set, where the cache
// did not hold them already.
func doubt(s *pass.Pass, job *batchv1.Job) {
	imgs, err := puller.JobImages(job)
	if err != nil {
		return
	}
	node := job.Annotations[puller.AnnotationNode]
	for _, img := range imgs {
		if key, err := images.Normalize(img); err == nil && !s.Led.Pin(node, key).Held() {
			s.Led.SetPin(node, key, ledger.PinUnsure)
		}
	}
}

// NewUnpinned starts from the pins in status.unpinned that the ledger
// still has refused, or unsure (a pin of unknown outcome, not pinned again
// before the next operation).
func NewUnpinned(prev map[string]v1alpha2.NodeReasonMessageList, led *ledger.Ledger) pass.Failures {
	return pass.PinFailures(prev, led, func(_ v1alpha2.NodeReasonMessage, pin ledger.PinState) bool {
		return pin == ledger.PinRefused || pin == ledger.PinUnsure
	})
}

// DeleteDone deletes the pin and unpin Jobs whose outcomes the
// status now records: a pin is done again rather than read twice.
func (c *Pins) DeleteDone(ctx context.Context, s *pass.Pass) error {
	done := map[string]bool{}
	for _, job := range s.PinJobsDone {
		done[job.Name] = true
	}
	return c.writer.DeleteOf(ctx, s, func(job *batchv1.Job) bool { return done[job.Name] })
}
