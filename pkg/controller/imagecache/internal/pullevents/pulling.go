// Package pullevents reads the kubelet's events on the controller's pull
// pods: its "Pulling" events show that a pull brought an image onto its node
// (the image is then the cache's to remove), and when each pull began (its
// deadline counts from then); its "Pulled" events say how long a pull took
// and how large the image is, for the metrics. The informers run only in the
// namespaces that hold pull Jobs (Watches).
//
// The files: pulling.go, the watches and what the Pulling events prove;
// pulls.go, what the Pulled events say.
package pullevents

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
	"kubefledged.io/kube-fledged/pkg/trim"
)

// Which images may a cache remove from a node? Only those its own pull
// brought there. The kubelet, with pull policy IfNotPresent, pulls an image
// only when the node does not have it, and says so in a "Pulling" event on
// the pod, for the container (spec.containers{NAME}). With Always it pulls
// every time, so its events show nothing. node.status.images cannot show it
// either: the kubelet lists 50 images at most, late.
//
// So a pair is owned when its pull container's "Pulling" event is there
// with IfNotPresent, read from an informer of those events (no request in a
// sync), at any pass while the Job is there, and the event proves the image
// was absent. It does not always: a kubelet with
// KubeletEnsureSecretPulledImages (alpha in 1.33, on by default from 1.35)
// pulls an image it has again, with the same event, when the pod's pull
// credentials are not those it was pulled with (or, with its policy
// AlwaysVerify, when it did not pull the image itself). The controller makes
// a Job only for images the node does not list, so the event proves the
// image absent where the node lists every image it has: fewer than the
// kubelet lists at most (ProvesAbsence). The Job says which it is
// (puller.AnnotationOwnership), as decided when it was made. Where the
// event is missing (the kubelet's recorder lets about 25 events per pod
// through in a burst, so a pod of many images loses some), the pair is not
// owned: the image stays on the node, which is safe.
//
// The kubelet's "Pulled" event says how long a pull took and how large the
// image is; the metrics take both from it (Watches.Pulls, in
// pulls.go), best-effort too.
//
// Events are many and the API server keeps no watch cache of them, so the
// informers are per namespace and reason, and only for the namespaces that
// hold the controller's pull Jobs: they start when a sync first needs them,
// and stop once their namespace has no pull Job left (Watches). The
// events of other namespaces are never listed.

// watchedReasons are the reasons of the kubelet's events on pull pods that
// the controller watches, an informer each.
var watchedReasons = []string{reasons.Pulling, reasons.Pulled}

// Selector is the field selector of the events informer of one
// reason of the kubelet's events on pods.
func Selector(reason string) string {
	return fields.AndSelectors(fields.OneTermEqualSelector("reason", reason),
		fields.OneTermEqualSelector("involvedObject.kind", "Pod")).String()
}

func indexByInvolvedUID(obj any) ([]string, error) {
	e, ok := obj.(*corev1.Event)
	if !ok || e.InvolvedObject.UID == "" {
		return nil, nil
	}
	return []string{string(e.InvolvedObject.UID)}, nil
}

// EventsIn makes the informer of the kubelet's events of a reason on pods
// in one namespace (Selector), not started.
type EventsIn func(namespace, reason string) cache.SharedIndexInformer

// Watches runs the event informers of the namespaces that hold pull
// Jobs, one per watched reason.
type Watches struct {
	newInformer EventsIn
	mu          sync.Mutex
	ctx         context.Context // the controller's, once it runs
	byNS        map[string]*nsWatch
}

type nsWatch struct {
	infs   map[string]cache.SharedIndexInformer // by reason
	cancel context.CancelFunc
}

// syncTimeout bounds how long a sync waits for a namespace's events to be
// listed; past it, the pass records no ownership there (the safe side), and
// a later pass while the Job is there does.
const syncTimeout = 10 * time.Second

// eventsByObjectIndex indexes the kubelet's events by the UID of the pod
// they are about.
const eventsByObjectIndex = "byInvolvedUID"

// New returns the watches, making the informers with newInformer when
// first needed.
func New(newInformer EventsIn) *Watches {
	return &Watches{newInformer: newInformer, byNS: map[string]*nsWatch{}}
}

// indexer returns the events of a reason of a namespace, starting the
// namespace's informers if none runs, once it has listed them.
func (w *Watches) indexer(ctx context.Context, ns, reason string) (cache.Indexer, bool) {
	nw := w.Start(ctx, ns)
	if nw == nil {
		return nil, false
	}
	inf := nw.infs[reason]
	if inf == nil {
		return nil, false
	}
	if !inf.HasSynced() {
		wctx, cancel := context.WithTimeout(ctx, syncTimeout)
		defer cancel()
		if !cache.WaitForCacheSync(wctx.Done(), inf.HasSynced) {
			return nil, false
		}
	}
	return inf.GetIndexer(), true
}

// Start starts the namespace's informers if none runs, and returns them
// (nil if they cannot be made). A pull Job's creation starts them, so that
// they list and watch before its pod's first event rather than after.
func (w *Watches) Start(ctx context.Context, ns string) *nsWatch {
	w.mu.Lock()
	nw, ok := w.byNS[ns]
	if !ok {
		runCtx := w.ctx
		if runCtx == nil {
			runCtx = context.Background()
		}
		infs := map[string]cache.SharedIndexInformer{}
		for _, r := range watchedReasons {
			inf := w.newInformer(ns, r)
			if _, has := inf.GetIndexer().GetIndexers()[eventsByObjectIndex]; !has {
				if err := inf.AddIndexers(cache.Indexers{eventsByObjectIndex: indexByInvolvedUID}); err != nil {
					w.mu.Unlock()
					utilruntime.HandleErrorWithContext(ctx, err, "Adding the events index", "namespace", ns)
					return nil
				}
			}
			infs[r] = inf
		}
		nctx, cancel := context.WithCancel(runCtx)
		nw = &nsWatch{infs: infs, cancel: cancel}
		w.byNS[ns] = nw
		for _, inf := range infs {
			go inf.RunWithContext(nctx)
		}
		klog.FromContext(ctx).V(2).Info("Watching the kubelet's events on pull pods", "namespace", ns, "reasons", watchedReasons)
	}
	w.mu.Unlock()
	return nw
}

// PodEvents returns the events of a reason on a pod, by container name,
// from its namespace's informer: no request once it has listed them.
func (w *Watches) PodEvents(ctx context.Context, pod *corev1.Pod, reason string) map[string]*corev1.Event {
	idx, ok := w.indexer(ctx, pod.Namespace, reason)
	if !ok {
		return nil
	}
	objs, err := idx.ByIndex(eventsByObjectIndex, string(pod.UID))
	if err != nil || len(objs) == 0 {
		return nil
	}
	out := map[string]*corev1.Event{}
	for _, o := range objs {
		e, ok := o.(*corev1.Event)
		if !ok || e.Reason != reason || e.InvolvedObject.UID != pod.UID {
			continue
		}
		if name, ok := strings.CutPrefix(e.InvolvedObject.FieldPath, "spec.containers{"); ok {
			out[strings.TrimSuffix(name, "}")] = e
		}
	}
	return out
}

// Release stops the informer of a namespace.
func (w *Watches) Release(ns string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if nw, ok := w.byNS[ns]; ok {
		nw.cancel()
		delete(w.byNS, ns)
	}
}

// Watching lists the namespaces whose events are watched, in order.
func (w *Watches) Watching() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Sorted(maps.Keys(w.byNS))
}

// Run makes the informers started from now on run under ctx, and stops
// them all when it ends.
func (w *Watches) Run(ctx context.Context) {
	w.mu.Lock()
	w.ctx = ctx
	w.mu.Unlock()
	go func() {
		<-ctx.Done()
		w.mu.Lock()
		defer w.mu.Unlock()
		for ns, nw := range w.byNS {
			nw.cancel()
			delete(w.byNS, ns)
		}
	}()
}

// ProvesAbsence says whether the kubelet's Pulling event for a pull
// pod on the node will prove that the image was not there, given that the
// node does not list it now: its kubelet is older than 1.33 (it pulls only
// what it does not have), or the node lists every image it has (fewer than
// maxImages, the kubelets' nodeStatusMaxImages; -1: no limit). A kubelet's
// list lags its pulls by up to about 40 s (it reads the runtime's every 30 s,
// and a node that has just registered may list none yet), so an image a
// workload pulled just before the Job was made can still be taken as the
// cache's.
func ProvesAbsence(n *corev1.Node, maxImages int) bool {
	if v, err := version.ParseGeneric(n.Status.NodeInfo.KubeletVersion); err == nil && v.LessThan(secretPulledImagesSince) {
		return true
	}
	return ListsEveryImage(n, maxImages)
}

// ListsEveryImage says whether a node lists every image it has, under every
// name, so that a name's absence from the list proves the image absent:
// fewer images than the kubelets list at most (maxImages; -1: no limit),
// and none with as many names as they list (trim.NamesCut).
func ListsEveryImage(n *corev1.Node, maxImages int) bool {
	return (maxImages < 0 || trim.ListedImages(n) < maxImages) && !trim.NamesCut(n)
}

// secretPulledImagesSince is the first kubelet version with the feature
// KubeletEnsureSecretPulledImages.
var secretPulledImagesSince = version.MajorMinor(1, 33)

// PulledHere returns the containers of a pull Job's pod whose image the
// kubelet pulled when it was not on the node, from its namespace's events
// informer: no request once it has listed them. It returns none for a Job
// whose Pulling events prove nothing (puller.PullingProvesAbsence), and
// leaves out the containers of images pulled Always whose events prove
// nothing either (puller.PulledAnyway).
func (w *Watches) PulledHere(ctx context.Context, job *batchv1.Job, pod *corev1.Pod) map[string]bool {
	if pod == nil || !puller.PullingProvesAbsence(job) {
		return nil
	}
	anyway := puller.PulledAnyway(job)
	imgs, _ := puller.JobImages(job)
	pulled := map[string]bool{}
	for name := range w.PodEvents(ctx, pod, reasons.Pulling) {
		pulled[name] = true
	}
	for i, img := range imgs {
		if anyway[img] {
			delete(pulled, puller.ContainerName(i))
		}
	}
	return pulled
}

// PullingSince returns when the kubelet last started pulling the image of
// each container of a pull pod that runs (its Pulling events), by container
// name: each image's pull deadline counts from then (puller.Read).
func (w *Watches) PullingSince(ctx context.Context, pod *corev1.Pod) map[string]time.Time {
	if pod == nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	events := w.PodEvents(ctx, pod, reasons.Pulling)
	if len(events) == 0 {
		return nil
	}
	out := make(map[string]time.Time, len(events))
	for name, e := range events {
		if t := EventTime(e); !t.IsZero() {
			out[name] = t
		}
	}
	return out
}

// EventTime is when an event last happened, whichever of its times is set.
func EventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case e.Series != nil:
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}
