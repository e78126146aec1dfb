package imagecache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// NodeFilter says which nodes the controller's pull pods can run on.
func (c *Controller) NodeFilter() plan.NodeFilter { return c.filter }

// Controller reconciles ImageCaches.
type Controller struct {
	cfg Config
	// filter says which nodes the pull pods can run on.
	filter plan.NodeFilter
	// ledgers is where the caches' ledgers live.
	ledgers    *ledger.Store
	kubeClient kubernetes.Interface
	client     clientset.Interface

	icLister    iclisters.ImageCacheLister
	sliceLister iclisters.ImageCacheSliceLister
	nodeLister  corelisters.NodeLister
	jobIndexer  cache.Indexer
	podIndexer  cache.Indexer
	// pulling runs the informers of the kubelet's "Pulling" events in the
	// namespaces that hold pull Jobs (pullevents.Watches.PulledHere).
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
	icInformer icinformers.ImageCacheInformer, sliceInformer icinformers.ImageCacheSliceInformer,
	nodeInformer coreinformers.NodeInformer, jobInformer batchinformers.JobInformer, podInformer coreinformers.PodInformer,
	pullingEvents EventsIn, recorder record.EventRecorder, clk clock.Clock) (*Controller, error) {
	if cfg.ImagesPerJob < 1 || cfg.MaxInFlightJobs < 1 {
		return nil, errors.New("images per job and max in-flight jobs must be at least 1")
	}
	if cfg.Puller.DeleteNamespace == "" {
		return nil, errors.New("the namespace of the delete Jobs (the controller's) must be set")
	}
	c := &Controller{
		cfg:         cfg,
		filter:      cfg.NodeFilter(),
		kubeClient:  kubeClient,
		client:      client,
		icLister:    icInformer.Lister(),
		sliceLister: sliceInformer.Lister(),
		nodeLister:  nodeInformer.Lister(),
		jobIndexer:  jobInformer.Informer().GetIndexer(),
		podIndexer:  podInformer.Informer().GetIndexer(),
		pulling:     pullevents.New(pullingEvents),
		synced: []cache.InformerSynced{icInformer.Informer().HasSynced, sliceInformer.Informer().HasSynced,
			nodeInformer.Informer().HasSynced, jobInformer.Informer().HasSynced, podInformer.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[cache.ObjectName](),
			workqueue.TypedRateLimitingQueueConfig[cache.ObjectName]{Name: ControllerName, Clock: tickerOf(clk)}),
		recorder: recorder,
		clock:    clk,
	}
	c.expectations = expectations.New(throttle.ExpectationTTL, clk.Now)
	c.throttle = throttle.New(cfg.MaxInFlightJobs, c.expectations, clk.Now)
	c.writer = jobwrite.New(kubeClient, recorder, c.throttle, c.expectations, c.pulling, clk)
	ledgers, err := ledger.NewStore(sliceInformer.Informer())
	if err != nil {
		return nil, err
	}
	c.ledgers = ledgers
	c.status = status.New(client, recorder, c.expectations, ledgers)
	c.reader = jobread.New(c.jobIndexer, c.podIndexer, cfg.Puller, kubeClient, c.pulling, c.writer)
	c.ops = ops.New(cfg.opsConfig(), c.filter, c.icLister, c.nodeLister, c.reader, c.writer, c.throttle, c.expectations,
		c.pulling, recorder)
	c.pins = pins.New(cfg.pinsConfig(), c.filter, c.reader, c.writer, c.status, c.throttle, c.expectations, recorder, clk)
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
	if _, err := sliceInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.sliceChanged(obj, false) },
		UpdateFunc: func(_, obj any) { c.sliceChanged(obj, false) },
		DeleteFunc: func(obj any) { c.sliceChanged(obj, true) },
	}); err != nil {
		return nil, fmt.Errorf("adding the ImageCacheSlice handler: %w", err)
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
