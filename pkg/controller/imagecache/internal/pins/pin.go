// Package pins keeps the images of a cache with spec.pin on its nodes
// against the kubelet's image garbage collection, and takes its pins away:
// the pin and unpin Jobs of a node read into the ledger's pins (pin.go),
// and the finalizer that holds a deleted cache until its pins are gone
// (finalize.go).
package pins

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
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
	"kubefledged.io/kube-fledged/pkg/cri"
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
	ledgers      ledger.Store
}

// New returns the pins' work, over the Jobs the reader and writer read and
// write.
func New(cfg Config, filter plan.NodeFilter, reader *jobread.Reader, writer *jobwrite.Writer,
	st *status.Writer, th *throttle.Throttle, exp *expectations.Expectations, recorder record.EventRecorder, clk clock.Clock) *Pins {
	return &Pins{cfg: cfg, filter: filter, reader: reader, writer: writer, status: st, throttle: th,
		expectations: exp, recorder: recorder, clock: clk}
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

// ReadJob reads a pin or unpin Job into the ledger's pins, and marks it
// to be deleted once the status records it. A pin the node refused (an
// image gone from it among them) is tried again in the next operation; an
// unpin that failed is given up, with a failure.
func (c *Pins) ReadJob(ctx context.Context, s *pass.Pass, job *batchv1.Job) error {
	node := job.Annotations[puller.AnnotationNode]
	if s.Nodes[node] == nil || jobread.PredatesNode(job, s.Nodes) {
		return c.writer.Drop(ctx, s, job)
	}
	out, err := puller.ReadPin(c.cfg.Puller, job, c.reader.PodOf(job), s.Now)
	if err != nil {
		klog.FromContext(ctx).Error(err, "Unreadable Job, deleting it", "job", klog.KObj(job))
		return c.writer.Drop(ctx, s, job)
	}
	if err := c.reader.Follow(ctx, s, job, &out); err != nil {
		return err
	}
	if !out.Finished {
		return nil
	}
	s.PinJobRead(job)
	unpin := puller.IsUnpinJob(job)
	for i, img := range out.Images {
		key, err := images.Normalize(img)
		if err != nil {
			continue
		}
		r := out.Results[i]
		switch {
		case unpin && r.State == puller.Succeeded:
			s.Led.SetPin(node, key, ledger.NotPinned)
			metrics.PinsTotal.WithLabelValues(metrics.PinUnpinned).Inc()
		case unpin:
			if s.Led.Pin(node, key).Held() {
				s.Led.SetPin(node, key, ledger.NotPinned)
				s.Failures.Add(img, node, reasons.UnpinFailed, "the image may stay pinned on this node: "+r.Reason+": "+r.Message)
			}
		case r.State == puller.Succeeded:
			s.Led.SetPin(node, key, ledger.Pinned)
			metrics.PinsTotal.WithLabelValues(metrics.PinPinned).Inc()
		case r.Reason == puller.ReasonImageGone:
			// Collected before the pin, or removed by someone: the
			// next operation pulls it again.
			metrics.ImagesGoneTotal.Inc()
			fallthrough
		default:
			s.Led.SetPin(node, key, ledger.PinRefused)
			s.Unpinned.Add(s.DisplayOf(key, img), node, r.Reason, r.Message)
			metrics.PinsTotal.WithLabelValues(metrics.PinRefused).Inc()
		}
	}
	return nil
}

// Jobs returns the pin and unpin Jobs to create now, for the nodes that
// no other Job of the cache holds, and counts the pins and unpins still to
// do, which keep the operation under way.
func (c *Pins) Jobs(s *pass.Pass, todo *pass.ToCreate) {
	pin := c.pinning(s)
	planned := map[string]bool{}
	for _, j := range todo.Jobs {
		planned[j.Node] = true
	}
	nodes := map[string]bool{}
	for _, n := range s.Led.PinNodes() {
		nodes[n] = true
	}
	if pin {
		for n := range s.Plan.Nodes {
			nodes[n] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(nodes)) {
		n := s.Nodes[name]
		if n == nil {
			// The node is gone, and its pins with it.
			for _, key := range s.Led.PinsOn(name) {
				s.Led.SetPin(name, key, ledger.NotPinned)
			}
			continue
		}
		var unpins, pins []string
		for _, key := range s.Led.PinsOn(name) {
			wanted := pin && s.Plan.Wants(name, key)
			switch st := s.Led.Pin(name, key); {
			case st.Held() && !wanted:
				unpins = append(unpins, key)
			case st == ledger.PinRefused && !wanted:
				s.Led.SetPin(name, key, ledger.NotPinned)
			}
		}
		if w := s.Plan.Node(name); pin && w != nil && w.Skip == "" && nodeSettled(s, w) {
			for _, wi := range w.Images {
				if st, pin := s.Led.Get(name, wi.Key), s.Led.Pin(name, wi.Key); (st == ledger.Pulled || st == ledger.Present) &&
					(pin == ledger.NotPinned || pin == ledger.PinStale) {
					pins = append(pins, wi.Key)
				}
			}
		}
		if len(unpins) == 0 && len(pins) == 0 {
			continue
		}
		if reason := c.filter.SkipReason(n); reason != "" && len(pins) == 0 {
			// An unpin waits for the node to take a pod again; it does
			// not hold the operation meanwhile.
			continue
		}
		todo.Pins += len(unpins) + len(pins)
		if len(unpins) > 0 {
			c.pinJob(s, todo, n, unpins, true, planned[name])
		} else if !c.refuseUnsupported(s, n, pins) {
			c.pinJob(s, todo, n, pins, false, planned[name])
		} else {
			todo.Pins -= len(pins)
		}
	}
}

// nodeSettled says whether a node's pulls of the operation are all settled.
func nodeSettled(s *pass.Pass, w *plan.Node) bool {
	for _, wi := range w.Images {
		if s.Led.Get(w.Node.Name, wi.Key) == ledger.Unsettled {
			return false
		}
	}
	return true
}

// refuseUnsupported settles as refused the pins of a node whose runtime
// cannot pin images (not containerd), with no Job, and says so.
func (c *Pins) refuseUnsupported(s *pass.Pass, n *corev1.Node, keys []string) bool {
	runtime := n.Status.NodeInfo.ContainerRuntimeVersion
	if c.cfg.CRISocketPath != "" || strings.HasPrefix(runtime, "containerd://") {
		return false
	}
	for _, key := range keys {
		s.Led.SetPin(n.Name, key, ledger.PinRefused)
		s.Unpinned.Add(s.DisplayOf(key, key), n.Name, puller.ReasonPinUnsupported,
			fmt.Sprintf("the node's runtime %q cannot pin images: only containerd's can; the image is cached, not pinned", runtime))
	}
	return true
}

// pinJob adds the Job that pins (or unpins) images on a node to todo,
// unless the node must wait or the throttle has no slot.
func (c *Pins) pinJob(s *pass.Pass, todo *pass.ToCreate, n *corev1.Node, keys []string, unpin, planned bool) {
	if planned || todo.Hold(s, n.Name) {
		return
	}
	socket := c.cfg.CRISocketPath
	if socket == "" {
		// containerd's socket, or k3s's own; an unpin may meet a node
		// that no longer says: containerd's.
		var err error
		if socket, err = cri.SocketForRuntime(n.Status.NodeInfo.ContainerRuntimeVersion); err != nil {
			socket = containerdSocket
		}
	}
	batch := keys[:min(len(keys), maxImagesPerPinJob)]
	job := puller.NewPinJob(c.cfg.Puller, puller.PinBatch{Cache: s.IC, NodeName: n.Name, Hostname: n.Labels[puller.HostnameLabel],
		Images: batch, Epoch: s.Led.Epoch, Unpin: unpin, Socket: socket, BudgetPercent: c.cfg.PinBudgetPercent, Root: c.cfg.ContainerdRoot})
	if c.expectations.ExpectsCreate(throttle.JobKey(job)) {
		return // created, and not shown by the informer yet
	}
	if !c.throttle.TryAcquire(throttle.JobKey(job), s.Key) {
		todo.Throttled = true
		return
	}
	kind := "pin"
	if unpin {
		kind = "unpin"
	}
	todo.Jobs = append(todo.Jobs, pass.NewJob{Job: job, Kind: kind, Node: n.Name, Images: len(batch), Pins: len(batch), Refused: func(message string) {
		for _, key := range batch {
			if unpin {
				s.Led.SetPin(n.Name, key, ledger.NotPinned)
				s.Failures.Add(s.DisplayOf(key, key), n.Name, reasons.UnpinFailed, "the image may stay pinned on this node: "+message)
			} else {
				s.Led.SetPin(n.Name, key, ledger.PinRefused)
				s.Unpinned.Add(s.DisplayOf(key, key), n.Name, reasons.JobRejected, message)
			}
		}
	}})
}

const (
	// containerdSocket is containerd's socket, its CRI's and its own API's.
	containerdSocket = "/run/containerd/containerd.sock"
	// maxImagesPerPinJob bounds one pin or unpin Job's command line.
	maxImagesPerPinJob = 100
)

// NewUnpinned starts from the refused pins in status that the ledger
// still has refused.
func NewUnpinned(prev map[string]v1alpha2.NodeReasonMessageList, led *ledger.Ledger) pass.Failures {
	f := pass.Failures{}
	for img, list := range prev {
		key, err := images.Normalize(img)
		if err != nil {
			continue
		}
		for _, nrm := range list {
			if led.Pin(nrm.Node, key) == ledger.PinRefused {
				f.Add(img, nrm.Node, nrm.Reason, nrm.Message)
			}
		}
	}
	return f
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
