package imagecache

import (
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/throttle"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// The informers' events become keys on the work queue: a cache's own
// events enqueue it; a node's, the caches it matters to; a Job's or a pull
// pod's, its cache, gathered for a while when the cache is large
// (enqueueBatched), and the caches waiting for a Job slot it freed.

func (c *Controller) enqueue(obj any) {
	name, err := cache.DeletionHandlingObjectToName(obj)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	c.queue.Add(name)
}

// nodeChanged enqueues the caches a node matters to, when something the
// controller looks at changed: labels, readiness, deletion, reported images.
func (c *Controller) nodeChanged(logger klog.Logger, oldObj, newObj any) {
	var oldNode, newNode *corev1.Node
	if oldObj != nil {
		if d, ok := oldObj.(cache.DeletedFinalStateUnknown); ok {
			oldObj = d.Obj
		}
		oldNode, _ = oldObj.(*corev1.Node)
	}
	if newObj != nil {
		newNode, _ = newObj.(*corev1.Node)
	}
	if oldNode != nil && newNode != nil {
		if equality.Semantic.DeepEqual(oldNode.Labels, newNode.Labels) &&
			c.filter.SkipReason(oldNode) == c.filter.SkipReason(newNode) &&
			len(oldNode.Status.Images) == len(newNode.Status.Images) &&
			equality.Semantic.DeepEqual(oldNode.Status.Images, newNode.Status.Images) {
			return // a heartbeat
		}
	}
	caches, err := c.icLister.List(labels.Everything())
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	for _, ic := range caches {
		if matchesAny(ic, oldNode) || matchesAny(ic, newNode) {
			c.queue.Add(cache.MetaObjectToName(ic))
		}
	}
	if newNode != nil {
		logger.V(4).Info("Node changed", "node", klog.KObj(newNode))
	}
}

func matchesAny(ic *v1alpha2.ImageCache, n *corev1.Node) bool {
	if n == nil {
		return false
	}
	for _, e := range ic.Spec.CacheSpec {
		if e.Selector().Matches(labels.Set(n.Labels)) {
			return true
		}
	}
	return false
}

// jobChanged keeps the throttle's count and enqueues the owning cache, and any
// cache that was waiting for a slot the Job freed.
func (c *Controller) jobChanged(obj any, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
		deleted = true
	}
	job, ok := obj.(*batchv1.Job)
	if !ok {
		return
	}
	if deleted || job.DeletionTimestamp != nil {
		c.expectations.ObservedDelete(job.UID)
		if puller.IsPullJob(job) {
			c.releaseIfIdle(job.Namespace)
		}
	}
	for _, w := range c.throttle.Observe(job, deleted) {
		c.enqueueBatched(w)
	}
	if owner := c.resolveControllerRef(job.Namespace, metav1.GetControllerOfNoCopy(job)); owner != nil {
		c.enqueueBatched(cache.MetaObjectToName(owner))
	} else if _, ok := job.Annotations[puller.AnnotationCacheNamespace]; ok {
		// A delete Job, owned by no one: its cache syncs, or, when it is
		// gone, deletes it (deleteOrphans).
		c.enqueueBatched(throttle.CacheOf(job))
	}
}

// tickerOf gives the queue the controller's clock, when it can tick.
func tickerOf(clk clock.Clock) clock.WithTicker {
	if wt, ok := clk.(clock.WithTicker); ok {
		return wt
	}
	return nil
}

// maxSyncBatchPeriod bounds how long Job and Pod events wait to be gathered
// into one sync of their cache.
const maxSyncBatchPeriod = time.Second

// enqueueBatched enqueues a cache for the Job and Pod events of its pulls.
// A sync reads every Job and node of its cache, so the events of a large
// cache are gathered for a while (1 ms per node it matches, at most
// maxSyncBatchPeriod) and synced once, as Kubernetes' Job controller does
// with pod updates; a small cache syncs at once. The queue keeps the earliest
// time asked for, so a stream of events delays a sync by the period at most.
func (c *Controller) enqueueBatched(key cache.ObjectName) {
	var period time.Duration
	if ic, err := c.icLister.ImageCaches(key.Namespace).Get(key.Name); err == nil {
		period = min(time.Duration(ic.Status.NodesMatched)*time.Millisecond, maxSyncBatchPeriod)
	}
	if period <= 0 {
		c.queue.Add(key)
		return
	}
	c.queue.AddAfter(key, period)
}

// podChanged enqueues the cache a pull pod belongs to, and tells the
// throttle when the pod of a Job has finished (its slot is free), or is gone.
func (c *Controller) podChanged(obj any, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = d.Obj, true
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil && ref.Kind == "Job" {
		switch {
		case deleted:
			c.throttle.PodGone(ref.UID)
		case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
			for _, w := range c.throttle.PodFinished(ref.UID) {
				c.enqueueBatched(w)
			}
		}
	}
	if name := pod.Annotations[puller.AnnotationCache]; name != "" {
		c.enqueueBatched(cache.ObjectName{Namespace: pod.Namespace, Name: name})
	}
}

// resolveControllerRef returns the ImageCache a controller reference points to, if it
// still exists with that UID.
func (c *Controller) resolveControllerRef(namespace string, ref *metav1.OwnerReference) *v1alpha2.ImageCache {
	if ref == nil || ref.Kind != "ImageCache" || ref.APIVersion != v1alpha2.SchemeGroupVersion.String() {
		return nil
	}
	ic, err := c.icLister.ImageCaches(namespace).Get(ref.Name)
	if err != nil || ic.UID != ref.UID {
		return nil
	}
	return ic
}

// releaseIfIdle stops the events informer of a namespace where none of the
// controller's pull Jobs is left.
func (c *Controller) releaseIfIdle(ns string) {
	objs, err := c.jobIndexer.ByIndex(cache.NamespaceIndex, ns)
	if err != nil {
		return
	}
	for _, o := range objs {
		if job, ok := o.(*batchv1.Job); ok && puller.IsPullJob(job) && job.DeletionTimestamp == nil {
			return
		}
	}
	c.pulling.Release(ns)
}

// sliceChanged tells the status writer what the informer shows of a
// ledger's slice, and enqueues its cache: a slice deleted or edited by hand
// is read again at once (its nodes' pulls are done again where it no longer
// proves them), and a pass that waits for the slices it wrote goes on.
func (c *Controller) sliceChanged(obj any, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = d.Obj, true
	}
	sl, ok := obj.(*v1alpha2.ImageCacheSlice)
	if !ok {
		return
	}
	c.status.SliceSeen(sl, deleted)
	if name := sl.Labels[v1alpha2.LabelSliceCache]; name != "" {
		c.queue.Add(cache.ObjectName{Namespace: sl.Namespace, Name: name})
	}
}

// sliceVersion returns the resource version of a slice in a namespace as the
// informer shows it, "" when it shows none.
func (c *Controller) sliceVersion(namespace string) func(name string) string {
	return func(name string) string {
		sl, err := c.sliceLister.ImageCacheSlices(namespace).Get(name)
		if err != nil {
			return ""
		}
		return sl.ResourceVersion
	}
}
