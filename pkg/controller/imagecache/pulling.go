package imagecache

import (
	"context"
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
// kubelet lists at most (pullingProvesAbsence). The Job says which it is
// (puller.AnnotationOwnership), as decided when it was made. Events are many and the API
// server keeps no watch cache of them, so the informers are per namespace,
// and only for the namespaces that hold the controller's pull Jobs: one
// starts when a sync first needs it, and stops once its namespace has no
// pull Job left (pullingWatches). The events of other namespaces are never
// listed. Where the event is missing (the
// kubelet's recorder lets about 25 events per pod through in a burst, so a
// pod of many images loses some), the pair is not owned: the image stays on
// the node, which is safe.
const reasonPulling = "Pulling"

// PullingSelector is the field selector of the events informer that
// pulledHere reads: the kubelet's "Pulling" events on pods.
func PullingSelector() string {
	return fields.AndSelectors(fields.OneTermEqualSelector("reason", reasonPulling),
		fields.OneTermEqualSelector("involvedObject.kind", "Pod")).String()
}

func indexByInvolvedUID(obj any) ([]string, error) {
	e, ok := obj.(*corev1.Event)
	if !ok || e.InvolvedObject.UID == "" {
		return nil, nil
	}
	return []string{string(e.InvolvedObject.UID)}, nil
}

// EventsIn makes the informer of the kubelet's "Pulling" events on pods in
// one namespace (PullingSelector), not started.
type EventsIn func(namespace string) cache.SharedIndexInformer

// pullingWatches runs the Pulling-event informers of the namespaces that
// hold pull Jobs.
type pullingWatches struct {
	newInformer EventsIn
	mu          sync.Mutex
	ctx         context.Context // the controller's, once it runs
	byNS        map[string]*nsWatch
}

type nsWatch struct {
	inf    cache.SharedIndexInformer
	cancel context.CancelFunc
}

// syncTimeout bounds how long a sync waits for a namespace's events to be
// listed; past it, the pass records no ownership there (the safe side), and
// a later pass while the Job is there does.
const syncTimeout = 10 * time.Second

// indexer returns the events of a namespace, starting their informer if
// none runs, once it has listed them.
func (w *pullingWatches) indexer(ctx context.Context, ns string) (cache.Indexer, bool) {
	w.mu.Lock()
	nw, ok := w.byNS[ns]
	if !ok {
		runCtx := w.ctx
		if runCtx == nil {
			runCtx = context.Background()
		}
		inf := w.newInformer(ns)
		if _, has := inf.GetIndexer().GetIndexers()[eventsByObjectIndex]; !has {
			if err := inf.AddIndexers(cache.Indexers{eventsByObjectIndex: indexByInvolvedUID}); err != nil {
				w.mu.Unlock()
				utilruntime.HandleErrorWithContext(ctx, err, "Adding the events index", "namespace", ns)
				return nil, false
			}
		}
		nctx, cancel := context.WithCancel(runCtx)
		nw = &nsWatch{inf: inf, cancel: cancel}
		w.byNS[ns] = nw
		go inf.RunWithContext(nctx)
		klog.FromContext(ctx).V(2).Info("Watching the kubelet's Pulling events", "namespace", ns)
	}
	w.mu.Unlock()
	if !nw.inf.HasSynced() {
		wctx, cancel := context.WithTimeout(ctx, syncTimeout)
		defer cancel()
		if !cache.WaitForCacheSync(wctx.Done(), nw.inf.HasSynced) {
			return nil, false
		}
	}
	return nw.inf.GetIndexer(), true
}

// release stops the informer of a namespace.
func (w *pullingWatches) release(ns string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if nw, ok := w.byNS[ns]; ok {
		nw.cancel()
		delete(w.byNS, ns)
	}
}

// watching lists the namespaces whose events are watched, in order.
func (w *pullingWatches) watching() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return sortedKeys(w.byNS)
}

// run makes the informers started from now on run under ctx, and stops
// them all when it ends.
func (w *pullingWatches) run(ctx context.Context) {
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

// releaseIfIdle stops the events informer of a namespace where none of the
// controller's pull Jobs is left.
func (c *Controller) releaseIfIdle(ns string) {
	objs, err := c.jobIndexer.ByIndex(cache.NamespaceIndex, ns)
	if err != nil {
		return
	}
	for _, o := range objs {
		if job, ok := o.(*batchv1.Job); ok && !puller.IsDeleteJob(job) && job.DeletionTimestamp == nil {
			return
		}
	}
	c.pulling.release(ns)
}

// pullingProvesAbsence says whether the kubelet's Pulling event for a pull
// pod on the node will prove that the image was not there, given that the
// node does not list it now: its kubelet is older than 1.33 (it pulls only
// what it does not have), or the node lists every image it has (fewer than
// maxImages, the kubelets' nodeStatusMaxImages; -1: no limit). A kubelet's
// list lags its pulls by up to about 40 s (it reads the runtime's every 30 s,
// and a node that has just registered may list none yet), so an image a
// workload pulled just before the Job was made can still be taken as the
// cache's.
func pullingProvesAbsence(n *corev1.Node, maxImages int) bool {
	if v, err := version.ParseGeneric(n.Status.NodeInfo.KubeletVersion); err == nil && v.LessThan(secretPulledImagesSince) {
		return true
	}
	return maxImages < 0 || trim.ListedImages(n) < maxImages
}

// secretPulledImagesSince is the first kubelet version with the feature
// KubeletEnsureSecretPulledImages.
var secretPulledImagesSince = version.MajorMinor(1, 33)

// pulledHere returns the containers of a pull Job's pod whose image the
// kubelet pulled when it was not on the node, from its namespace's events
// informer: no request once it has listed them. With pull policy Always it
// returns none, and for a Job whose Pulling events prove nothing
// (puller.PullingProvesAbsence) too.
func (c *Controller) pulledHere(ctx context.Context, job *batchv1.Job, pod *corev1.Pod) map[string]bool {
	if pod == nil || c.cfg.Puller.PullPolicy != corev1.PullIfNotPresent || !puller.PullingProvesAbsence(job) {
		return nil
	}
	idx, ok := c.pulling.indexer(ctx, pod.Namespace)
	if !ok {
		return nil
	}
	objs, err := idx.ByIndex(eventsByObjectIndex, string(pod.UID))
	if err != nil || len(objs) == 0 {
		return nil
	}
	pulled := map[string]bool{}
	for _, o := range objs {
		e, ok := o.(*corev1.Event)
		if !ok || e.Reason != reasonPulling || e.InvolvedObject.UID != pod.UID {
			continue
		}
		if name, ok := strings.CutPrefix(e.InvolvedObject.FieldPath, "spec.containers{"); ok {
			pulled[strings.TrimSuffix(name, "}")] = true
		}
	}
	return pulled
}
