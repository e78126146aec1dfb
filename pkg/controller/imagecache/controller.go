package imagecache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	clientset "kubefledged.io/kube-fledged/pkg/client/clientset/versioned"
	icinformers "kubefledged.io/kube-fledged/pkg/client/informers/externalversions/kubefledged/v1alpha2"
	iclisters "kubefledged.io/kube-fledged/pkg/client/listers/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/expectations"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/jobread"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/jobwrite"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/ops"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pins"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pullevents"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/status"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/throttle"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/version"
)

// ControllerName names the queue, the field manager and the event source.
const ControllerName = version.Name

// FinalizerUnpin holds a cache that pins images, once deleted, until its
// pins are taken away from every node (or the nodes are gone, or
// Config.UnpinTimeout has passed).
const FinalizerUnpin = pins.Finalizer

// Config is the controller's behaviour, from its flags.
type Config struct {
	Puller puller.Config
	// ImagesPerJob is the most images one Job pulls.
	ImagesPerJob int
	// MaxInFlightJobs is the most Jobs whose pods have not finished, across
	// the cluster.
	MaxInFlightJobs int
	// RefreshFrequency is how often each cache is pulled again (0: never).
	RefreshFrequency time.Duration
	// RetainJobs keeps finished Jobs after their operation completes.
	RetainJobs bool
	// CRISocketPath is the runtime socket on the nodes; empty: found from
	// each node's reported runtime.
	CRISocketPath string
	// DeleteJobHostNetwork runs delete Jobs in the host's network.
	DeleteJobHostNetwork bool
	// HelperArchitectures are the kubernetes.io/arch values the helper
	// image has; nodes of others are skipped (empty: none is).
	HelperArchitectures []string
	// NodeStatusMaxImages is the most images the kubelets list in a node's
	// status (their nodeStatusMaxImages; -1: all). A node that lists fewer
	// lists every image it has (pullingProvesAbsence).
	NodeStatusMaxImages int
	// PullRetryDeadline is how long after its operation starts a pull
	// that failed for a reason that may pass is tried again (0: never),
	// and PullRetryMaxBackoff the longest wait between two tries
	// (retry.go).
	PullRetryDeadline   time.Duration
	PullRetryMaxBackoff time.Duration
	// Pinning lets caches pin their images (spec.pin); off, the pins the
	// caches hold are taken away.
	Pinning bool
	// NoRemoval turns image removal off: a purge keeps every image
	// (reasons.RemovalDisabled), and an update that drops images leaves
	// them; no delete Job is made.
	NoRemoval bool
	// PinBudgetPercent is the most percent of a node's image filesystem
	// the pinned images may take (0: no budget), and ContainerdRoot the
	// folder on the nodes whose filesystem that is (containerd's root).
	PinBudgetPercent int
	ContainerdRoot   string
	// UnpinTimeout bounds how long a deleted cache waits for its pins to
	// be taken away (0: 10 minutes).
	UnpinTimeout time.Duration
}

// opsConfig is what the operations need of the configuration.
func (cfg Config) opsConfig() ops.Config {
	return ops.Config{Puller: cfg.Puller, ImagesPerJob: cfg.ImagesPerJob, NodeStatusMaxImages: cfg.NodeStatusMaxImages,
		CRISocketPath: cfg.CRISocketPath, DeleteJobHostNetwork: cfg.DeleteJobHostNetwork, NoRemoval: cfg.NoRemoval,
		PullRetryDeadline: cfg.PullRetryDeadline, PullRetryMaxBackoff: cfg.PullRetryMaxBackoff, RefreshFrequency: cfg.RefreshFrequency}
}

// pinsConfig is what the pins need of the configuration.
func (cfg Config) pinsConfig() pins.Config {
	return pins.Config{Puller: cfg.Puller, Pinning: cfg.Pinning, CRISocketPath: cfg.CRISocketPath,
		PinBudgetPercent: cfg.PinBudgetPercent, ContainerdRoot: cfg.ContainerdRoot, UnpinTimeout: cfg.UnpinTimeout}
}

// NodeFilter says which nodes the pull pods of this configuration can run
// on.
func (cfg Config) NodeFilter() plan.NodeFilter {
	return plan.NodeFilter{Architectures: cfg.HelperArchitectures, Tolerations: cfg.Puller.Tolerations}
}

// NodeFilter says which nodes the controller's pull pods can run on.
func (c *Controller) NodeFilter() plan.NodeFilter { return c.filter }

// Controller reconciles ImageCaches.
type Controller struct {
	cfg Config
	// filter says which nodes the pull pods can run on.
	filter plan.NodeFilter
	// ledgers is where the caches' ledgers live.
	ledgers    ledger.Store
	kubeClient kubernetes.Interface
	client     clientset.Interface

	icLister   iclisters.ImageCacheLister
	nodeLister corelisters.NodeLister
	jobIndexer cache.Indexer
	podIndexer cache.Indexer
	// pulling runs the informers of the kubelet's "Pulling" events in the
	// namespaces that hold pull Jobs (pulledHere).
	pulling *pullevents.Watches
	synced  []cache.InformerSynced

	queue    workqueue.TypedRateLimitingInterface[cache.ObjectName]
	recorder record.EventRecorder
	throttle *throttle.Throttle
	// writer creates, ends and deletes the Jobs; reader reads them.
	writer *jobwrite.Writer
	reader *jobread.Reader
	// status computes and writes the caches' status.
	status *status.Writer
	// ops starts the operations and does their work; pins pins and
	// unpins the images, and holds a deleted cache until its pins are gone.
	ops   *ops.Ops
	pins  *pins.Pins
	clock clock.Clock

	// expectations holds what this process wrote that the informers do
	// not show yet: the Jobs it created (counted by the throttle) and
	// deleted, and its own status writes (a sync would work from a status
	// older than its last write, and only meet a conflict; the informer's
	// update event enqueues the cache when it catches up).
	expectations *expectations.Expectations
}

// New builds the controller and registers its event handlers. The Job and Pod
// informers must be limited to the controller's own objects (see
// ManagedSelector).
func New(ctx context.Context, cfg Config, kubeClient kubernetes.Interface, client clientset.Interface,
	icInformer icinformers.ImageCacheInformer, nodeInformer coreinformers.NodeInformer,
	jobInformer batchinformers.JobInformer, podInformer coreinformers.PodInformer,
	pullingEvents EventsIn, recorder record.EventRecorder, clk clock.Clock) (*Controller, error) {
	if cfg.ImagesPerJob < 1 || cfg.MaxInFlightJobs < 1 {
		return nil, errors.New("images per job and max in-flight jobs must be at least 1")
	}
	if cfg.Puller.DeleteNamespace == "" {
		return nil, errors.New("the namespace of the delete Jobs (the controller's) must be set")
	}
	c := &Controller{
		cfg:        cfg,
		filter:     cfg.NodeFilter(),
		kubeClient: kubeClient,
		client:     client,
		icLister:   icInformer.Lister(),
		nodeLister: nodeInformer.Lister(),
		jobIndexer: jobInformer.Informer().GetIndexer(),
		podIndexer: podInformer.Informer().GetIndexer(),
		pulling:    pullevents.New(pullingEvents),
		synced: []cache.InformerSynced{icInformer.Informer().HasSynced, nodeInformer.Informer().HasSynced,
			jobInformer.Informer().HasSynced, podInformer.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[cache.ObjectName](),
			workqueue.TypedRateLimitingQueueConfig[cache.ObjectName]{Name: ControllerName, Clock: tickerOf(clk)}),
		recorder: recorder,
		clock:    clk,
	}
	c.expectations = expectations.New(throttle.ExpectationTTL, clk.Now)
	c.throttle = throttle.New(cfg.MaxInFlightJobs, c.expectations, clk.Now)
	c.writer = jobwrite.New(kubeClient, recorder, c.throttle, c.expectations, c.pulling, clk)
	c.status = status.New(client, recorder, c.expectations)
	c.reader = jobread.New(c.jobIndexer, c.podIndexer, cfg.Puller, kubeClient, c.pulling, c.writer)
	c.ops = ops.New(cfg.opsConfig(), c.filter, c.icLister, c.nodeLister, c.reader, c.writer, c.throttle, c.expectations,
		c.pulling, recorder)
	c.pins = pins.New(cfg.pinsConfig(), c.filter, c.nodeLister, c.reader, c.writer, c.status, c.throttle, c.expectations, recorder, clk)
	if err := jobInformer.Informer().AddIndexers(jobread.JobIndexers()); err != nil {
		return nil, fmt.Errorf("adding the job index: %w", err)
	}
	if err := podInformer.Informer().AddIndexers(jobread.PodIndexers()); err != nil {
		return nil, fmt.Errorf("adding the pod index: %w", err)
	}
	logger := klog.FromContext(ctx)
	if _, err := icInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, obj any) { c.enqueue(obj) },
		DeleteFunc: c.enqueue,
	}); err != nil {
		return nil, fmt.Errorf("adding the ImageCache handler: %w", err)
	}
	if _, err := nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.nodeChanged(logger, nil, obj) },
		UpdateFunc: func(old, obj any) { c.nodeChanged(logger, old, obj) },
		DeleteFunc: func(obj any) { c.nodeChanged(logger, obj, nil) },
	}); err != nil {
		return nil, fmt.Errorf("adding the Node handler: %w", err)
	}
	if _, err := jobInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.jobChanged(obj, false) },
		UpdateFunc: func(_, obj any) { c.jobChanged(obj, false) },
		DeleteFunc: func(obj any) { c.jobChanged(obj, true) },
	}); err != nil {
		return nil, fmt.Errorf("adding the Job handler: %w", err)
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.podChanged(obj, false) },
		UpdateFunc: func(_, obj any) { c.podChanged(obj, false) },
		DeleteFunc: func(obj any) { c.podChanged(obj, true) },
	}); err != nil {
		return nil, fmt.Errorf("adding the Pod handler: %w", err)
	}
	return c, nil
}

// EventsIn makes the informer of the kubelet's events of a reason on pods
// in one namespace (PullEventsSelector), not started.
type EventsIn = pullevents.EventsIn

// PullEventsSelector is the field selector of the informer of one reason of
// the kubelet's events on pods.
func PullEventsSelector(reason string) string { return pullevents.Selector(reason) }

// ManagedSelector selects the Jobs and Pods the controller creates; use it to
// limit their informers.
func ManagedSelector() string {
	return labels.Set{puller.LabelManagedBy: puller.ManagedByValue}.String()
}

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

// Run starts the workers and blocks until ctx is done; it returns once they
// have all stopped.
func (c *Controller) Run(ctx context.Context, workers int) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	logger := klog.FromContext(ctx)
	logger.Info("Starting controller", "controller", ControllerName, "workers", workers)
	if !cache.WaitForNamedCacheSyncWithContext(ctx, c.synced...) {
		return errors.New("informer caches did not sync")
	}
	c.pulling.Run(ctx)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { wait.UntilWithContext(ctx, c.runWorker, time.Second) })
	}
	<-ctx.Done()
	logger.Info("Stopping controller", "controller", ControllerName)
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

func (c *Controller) runWorker(ctx context.Context) {
	for c.processNextItem(ctx) {
	}
}

func (c *Controller) processNextItem(ctx context.Context) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	logger := klog.LoggerWithValues(klog.FromContext(ctx), "imagecache", key.String())
	ctx = klog.NewContext(ctx, logger)
	requeueAfter, err := c.sync(ctx, key)
	switch {
	case err == nil:
		c.queue.Forget(key)
		if requeueAfter > 0 {
			c.queue.AddAfter(key, requeueAfter)
		}
	case apierrors.IsConflict(err):
		logger.V(2).Info("Conflict, will retry", "err", err)
		c.queue.AddRateLimited(key)
	default:
		utilruntime.HandleErrorWithContext(ctx, err, "Syncing ImageCache failed, will retry", "imagecache", key.String())
		c.queue.AddRateLimited(key)
	}
	return true
}

// InFlightJobs is the number of Jobs the throttle counts: those whose pod has
// not finished.
func (c *Controller) InFlightJobs() int { return c.throttle.Count() }

// Slots is one cache's part of the Job slots (--max-in-flight-jobs): how
// many its Jobs take, and whether it waits for one.
type Slots = throttle.Slots

// SlotsByCache returns, for each cache that takes a Job slot or waits for
// one, how many it takes and whether it waits.
func (c *Controller) SlotsByCache() map[cache.ObjectName]Slots { return c.throttle.ByCache() }

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
