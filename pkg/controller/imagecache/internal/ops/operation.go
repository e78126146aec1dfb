// Package ops is the work of the ImageCache controller's two operations on
// the nodes, behind the pass.Operation interface: which operation starts
// when (operation.go: create, update, refresh, purge, and a refresh for
// images gone from their nodes, selfheal.go), the pull (pull.go: the
// spec's images pulled, those dropped from it removed), the purge
// (purge.go: the cache's images removed), what the two share to remove
// images (removal.go) and what the other caches want (others.go), and the
// failed pulls tried again (retry.go).
package ops

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	iclisters "kubefledged.io/kube-fledged/pkg/client/listers/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/expectations"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/jobread"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/jobwrite"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pullevents"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/status"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/throttle"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/metrics"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// Config is what the operations need of the controller's flags.
type Config struct {
	Puller               puller.Config
	ImagesPerJob         int
	NodeStatusMaxImages  int
	CRISocketPath        string
	DeleteJobHostNetwork bool
	NoRemoval            bool
	PullRetryDeadline    time.Duration
	PullRetryMaxBackoff  time.Duration
	RefreshFrequency     time.Duration
}

// Ops starts the operations and builds the one under way for a pass, with
// what they need.
type Ops struct {
	cfg          Config
	filter       plan.NodeFilter
	icLister     iclisters.ImageCacheLister
	nodeLister   corelisters.NodeLister
	reader       *jobread.Reader
	writer       *jobwrite.Writer
	throttle     *throttle.Throttle
	expectations *expectations.Expectations
	pulling      *pullevents.Watches
	recorder     record.EventRecorder
}

// New returns the operations' work, over the caches and nodes the listers
// show and the Jobs reader and writer read and write.
func New(cfg Config, filter plan.NodeFilter, caches iclisters.ImageCacheLister, nodes corelisters.NodeLister,
	reader *jobread.Reader, writer *jobwrite.Writer, th *throttle.Throttle, exp *expectations.Expectations,
	pulling *pullevents.Watches, recorder record.EventRecorder) *Ops {
	// Every reason a retry may have is served from the start, at 0: a
	// rate over it, or an alert, sees it before the first retry.
	for _, reason := range puller.TransientReasons() {
		metrics.PullRetriesTotal.WithLabelValues(reason)
	}
	return &Ops{cfg: cfg, filter: filter, icLister: caches, nodeLister: nodes, reader: reader, writer: writer, throttle: th,
		expectations: exp, pulling: pulling, recorder: recorder}
}

const (
	// nodeImagesLag (seconds) is how long a node may go on reporting an
	// image after its removal: the kubelet re-lists images every ~30s and
	// reports status every ~10s.
	nodeImagesLag = 120
	// maxImagesPerDeleteJob bounds one delete Job's command line.
	maxImagesPerDeleteJob = 100
)

// For returns the operation that the status says is under way,
// the plan and the ledger narrowed to what it works on.
func (c *Ops) For(s *pass.Pass) pass.Operation {
	if s.St.Reason == v1alpha2.ImageCacheReasonPurge {
		return newPurgeOp(c, s)
	}
	return newPullOp(c, s)
}

// Start starts a new operation when one is due: it records the
// operation's start in the status copy and sets the ledger to what the
// operation builds on. It returns a wait when the operation cannot start
// yet: an operation's epoch (and so its Jobs' names) must be later than the
// last one's, to the second.
func (c *Ops) Start(ctx context.Context, s *pass.Pass) time.Duration {
	op := c.nextOperation(s.IC, s.St, s.Now)
	var gone []ledger.Pair
	if op == "" {
		var wait time.Duration
		if op, gone, wait = c.refreshForGone(ctx, s); wait > 0 {
			s.LookAt(s.Now.Add(wait)) // the sync goes on meanwhile
		}
	}
	if op == "" {
		return 0
	}
	start := metav1.NewTime(s.Now.Truncate(time.Second))
	if s.St.StartTime != nil && !start.After(s.St.StartTime.Time) {
		if s.St.StartTime.Sub(s.Now) <= maxStartAhead {
			return s.St.StartTime.Add(time.Second).Sub(s.Now)
		}
		// A leader whose clock ran ahead wrote it, or a hand edit: the
		// operation starts now all the same, and the Jobs named after
		// that later epoch are not its own (claims).
		klog.FromContext(ctx).Info("The recorded start time is ahead of the clock; starting now", "operation", op,
			"recordedStart", s.St.StartTime.UTC().Format(time.RFC3339), "now", start.UTC().Format(time.RFC3339))
	}
	klog.FromContext(ctx).Info("Starting operation", "operation", op, "generation", s.IC.Generation)
	st := s.St
	st.Reason = op
	st.Status = v1alpha2.ImageCacheActionStatusProcessing
	st.StartTime = &start
	st.CompletionTime = nil
	st.ObservedGeneration = s.IC.Generation
	if len(gone) == 0 {
		// The operation records failures of its own.
		status.StartFailures(st, s.Led)
	}
	status.StartDigests(st)
	if len(gone) > 0 {
		// A refresh for images gone from their nodes pulls them alone:
		// the rest stays as the latest operation settled it, its
		// failures with it (they are not tried again).
		led := s.Led.Continue(start.Unix())
		for _, p := range gone {
			led.Set(p.Node, p.Image, ledger.Unsettled)
		}
		s.NewEpoch(led, ledger.ReaderOf(led.Continue(start.Unix())))
	} else if op == v1alpha2.ImageCacheReasonUpdate && s.IC.Status.Reason != v1alpha2.ImageCacheReasonPurge {
		// An update pulls only what is new, and tries failed pulls again.
		// It has an epoch of its own, so it judges only its own Jobs: an
		// earlier Job's failure (with the pull secret the update fixed, say)
		// or success (of an image since removed) is not its outcome.
		led := s.Led.CarryOver(start.Unix())
		s.NewEpoch(led, ledger.ReaderOf(led.CarryOver(start.Unix()))) // what it carries over is not newly settled
	} else {
		// Create, Refresh, Purge, and an Update after a purge (the ledger
		// then records removals): start from no states, knowing still
		// which images this cache brought onto which nodes.
		s.NewEpoch(s.Led.Fresh(start.Unix()), s.Before)
	}
	s.Starts(op)
	c.recorder.Eventf(s.IC, corev1.EventTypeNormal, reasons.Started, "%s started", op)
	return 0
}

// maxStartAhead is how far ahead of the clock a recorded start may be for a
// new operation to wait for it (epochs are seconds apart); further ahead, it
// starts now.
const maxStartAhead = 2 * time.Second

// nextOperation says which operation starts now, or "". A purge asked
// together with a refresh wins: the refresh is not started in its middle or
// after it (the purge consumes its annotation).
func (c *Ops) nextOperation(ic *v1alpha2.ImageCache, st *v1alpha2.ImageCacheStatus, now time.Time) string {
	switch {
	case st.StartTime == nil:
		return v1alpha2.ImageCacheReasonCreate
	case status.HasAnnotation(ic, v1alpha2.AnnotationPurge) &&
		!(st.Reason == v1alpha2.ImageCacheReasonPurge && st.Status == v1alpha2.ImageCacheActionStatusProcessing):
		return v1alpha2.ImageCacheReasonPurge
	case ic.Generation != st.ObservedGeneration:
		return v1alpha2.ImageCacheReasonUpdate
	case status.HasAnnotation(ic, v1alpha2.AnnotationRefresh) && !status.HasAnnotation(ic, v1alpha2.AnnotationPurge) &&
		!(st.Reason == v1alpha2.ImageCacheReasonRefresh && st.Status == v1alpha2.ImageCacheActionStatusProcessing):
		return v1alpha2.ImageCacheReasonRefresh
	case c.cfg.RefreshFrequency > 0 && st.CompletionTime != nil && st.Status != v1alpha2.ImageCacheActionStatusProcessing &&
		Refreshable(st) && !now.Before(st.CompletionTime.Add(c.cfg.RefreshFrequency)):
		return v1alpha2.ImageCacheReasonRefresh
	}
	return ""
}

// Refreshable says whether the periodic refresh applies after the latest
// operation: a purged cache stays purged until it is asked for again.
func Refreshable(st *v1alpha2.ImageCacheStatus) bool {
	return st.Reason != v1alpha2.ImageCacheReasonPurge
}

var (
	_ pass.Operation = (*pullOp)(nil)
	_ pass.Operation = (*purgeOp)(nil)
)
