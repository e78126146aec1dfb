// Package warming is the node-warming controller: it releases the nodes that
// join with the startup taint once every ImageCache that matches them has
// settled every pull there (pulled, present or failed), or at a timeout. It
// never adds the taint. It has its own queue, keyed by node name, and reads
// the caches' ledgers; the ImageCache controller does the pulls.
package warming

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	icinformers "kubefledged.io/kube-fledged/pkg/client/informers/externalversions/kubefledged/v1alpha2"
	iclisters "kubefledged.io/kube-fledged/pkg/client/listers/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/message"
	"kubefledged.io/kube-fledged/pkg/metrics"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/version"
)

// Event reasons on Nodes that join with the startup taint.
const (
	reasonWarmed         = "Warmed"          // Event on a Node: the startup taint removed, every cache's pulls there settled
	reasonWarmingTimeout = "WarmingTimedOut" // Event on a Node: the startup taint removed at --node-startup-taint-timeout, pulls still pending
	reasonReleaseRefused = "ReleaseRefused"  // Event on a Node: the API server refused the patch that removes the startup taint
)

// Controller releases warmed nodes from the startup taint.
type Controller struct {
	taint   string
	timeout time.Duration
	// filter says which nodes can ever take a pull: one that cannot is
	// released at once.
	filter plan.NodeFilter

	kubeClient kubernetes.Interface
	icLister   iclisters.ImageCacheLister
	nodeLister corelisters.NodeLister
	// ledgers reads a node's states in the caches' ledgers.
	ledgers  *ledger.Store
	synced   []cache.InformerSynced
	recorder record.EventRecorder
	clock    clock.Clock
	queue    workqueue.TypedRateLimitingInterface[string]

	// tainted holds the names of the nodes that carry the taint, and
	// firstSeen when this process first saw each; untainted the nodes it
	// saw without it (a taint added later: its timeout runs from when it
	// was seen, since).
	mu        sync.Mutex
	tainted   map[string]bool
	firstSeen map[types.UID]time.Time
	untainted map[types.UID]bool
}

// New builds the controller for the NoSchedule taint of key taint, released
// at the latest timeout after the node was tainted (taintedSince), with the filter of the
// nodes the pulls can run on, and registers its event handlers.
func New(taint string, timeout time.Duration, filter plan.NodeFilter, kubeClient kubernetes.Interface, icInformer icinformers.ImageCacheInformer,
	sliceInformer icinformers.ImageCacheSliceInformer, nodeInformer coreinformers.NodeInformer, recorder record.EventRecorder,
	clk clock.Clock) (*Controller, error) {
	if taint == "" {
		return nil, errors.New("the startup taint must be set")
	}
	ledgers, err := ledger.NewStore(sliceInformer.Informer())
	if err != nil {
		return nil, err
	}
	var ticker clock.WithTicker
	if wt, ok := clk.(clock.WithTicker); ok {
		ticker = wt
	}
	c := &Controller{taint: taint, timeout: timeout, filter: filter, kubeClient: kubeClient,
		icLister: icInformer.Lister(), nodeLister: nodeInformer.Lister(), ledgers: ledgers,
		synced: []cache.InformerSynced{icInformer.Informer().HasSynced, sliceInformer.Informer().HasSynced,
			nodeInformer.Informer().HasSynced},
		recorder: recorder, clock: clk, tainted: map[string]bool{}, firstSeen: map[types.UID]time.Time{},
		untainted: map[types.UID]bool{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: version.Name + "-warming", Clock: ticker}),
	}
	if _, err := icInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.cacheChanged() },
		UpdateFunc: func(_, _ any) { c.cacheChanged() },
		DeleteFunc: func(any) { c.cacheChanged() },
	}); err != nil {
		return nil, fmt.Errorf("adding the ImageCache handler: %w", err)
	}
	if _, err := sliceInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.sliceChanged,
		UpdateFunc: func(_, obj any) { c.sliceChanged(obj) },
		DeleteFunc: c.sliceChanged,
	}); err != nil {
		return nil, fmt.Errorf("adding the ImageCacheSlice handler: %w", err)
	}
	if _, err := nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.nodeChanged(obj, false) },
		UpdateFunc: func(_, obj any) { c.nodeChanged(obj, false) },
		DeleteFunc: func(obj any) { c.nodeChanged(obj, true) },
	}); err != nil {
		return nil, fmt.Errorf("adding the Node handler: %w", err)
	}
	return c, nil
}

func (c *Controller) nodeChanged(obj any, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = d.Obj, true
	}
	if n, ok := obj.(*corev1.Node); ok {
		c.nodeSeen(n, deleted)
	}
}

// taintIndex returns the index of the startup taint in a node's taints, or -1.
func (c *Controller) taintIndex(n *corev1.Node) int {
	for i, t := range n.Spec.Taints {
		if t.Key == c.taint && t.Effect == corev1.TaintEffectNoSchedule {
			return i
		}
	}
	return -1
}

// nodeSeen records whether a node carries the taint, and enqueues it if so.
func (c *Controller) nodeSeen(n *corev1.Node, deleted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if deleted || c.taintIndex(n) < 0 {
		delete(c.tainted, n.Name)
		delete(c.firstSeen, n.UID)
		if deleted {
			delete(c.untainted, n.UID)
		} else {
			c.untainted[n.UID] = true
		}
		return
	}
	c.tainted[n.Name] = true
	c.queue.Add(n.Name)
}

// cacheChanged enqueues every tainted node: a cache's status may have
// settled its last pull there.
func (c *Controller) cacheChanged() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.tainted {
		c.queue.Add(name)
	}
}

// sliceChanged enqueues the tainted nodes whose entries a ledger's slice
// holds: their pulls may have settled (the slice's informer and the
// caches' may show the writes of one pass in either order).
func (c *Controller) sliceChanged(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	sl, ok := obj.(*v1alpha2.ImageCacheSlice)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range sl.Ledger.Nodes {
		if c.tainted[name] {
			c.queue.Add(name)
		}
	}
}

// sync releases one node when it is warm, or at its timeout. It
// returns how soon to look again when nothing else would.
func (c *Controller) sync(ctx context.Context, name string) (time.Duration, error) {
	node, err := c.nodeLister.Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	i := c.taintIndex(node)
	if i < 0 {
		return 0, nil
	}
	now := c.clock.Now()
	c.mu.Lock()
	first, ok := c.firstSeen[node.UID]
	if !ok {
		first = now
		c.firstSeen[node.UID] = now
	}
	since := first
	if !c.untainted[node.UID] {
		since = taintedSince(node, i, first)
	}
	c.mu.Unlock()

	pending, settled, err := c.pending(node)
	if err != nil {
		return 0, err
	}
	if waited := now.Sub(since); len(pending) > 0 && waited < c.timeout {
		return c.timeout - waited, nil
	}
	if err := c.releaseNode(ctx, node, i); err != nil {
		return c.releaseFailed(ctx, node, i, err)
	}
	took := now.Sub(node.CreationTimestamp.Time).Round(time.Second)
	result := metrics.WarmupWarmed
	if len(pending) > 0 {
		result = metrics.WarmupTimedOut
	}
	metrics.NodeWarmupSeconds.WithLabelValues(result).Observe(now.Sub(node.CreationTimestamp.Time).Seconds())
	if len(pending) == 0 {
		c.recorder.Eventf(node, corev1.EventTypeNormal, reasonWarmed,
			"Removed the startup taint %s %s after the node was created: %d %s settled", c.taint, took,
			settled, message.Plural(settled, "image pull", "image pulls"))
		klog.FromContext(ctx).Info("Released a warmed node", "node", name, "after", took.String(), "settled", settled)
	} else {
		c.recorder.Eventf(node, corev1.EventTypeWarning, reasonWarmingTimeout,
			"Removed the startup taint %s at the %s timeout, with %d %s still pending: %s", c.taint, c.timeout,
			len(pending), message.Plural(len(pending), "pull", "pulls"), message.ListSome(pending, 5))
		klog.FromContext(ctx).Info("Released a node at the warming timeout", "node", name, "pending", len(pending))
	}
	c.mu.Lock()
	delete(c.tainted, name)
	delete(c.firstSeen, node.UID)
	c.mu.Unlock()
	return 0, nil
}

// taintedSince is when a node's wait for its warm-up began: when its taint
// was added, where the taint says (TimeAdded), else when the node was
// created (it registers with the taint), and never after this process first
// saw it (a clock ahead of the controller's). A controller that starts late,
// or again, so releases at once the nodes whose wait passed meanwhile: the
// timeout runs whether a controller runs or not.
func taintedSince(n *corev1.Node, i int, first time.Time) time.Time {
	since := n.CreationTimestamp.Time
	if added := n.Spec.Taints[i].TimeAdded; added != nil && added.After(since) {
		since = added.Time
	}
	if since.IsZero() || since.After(first) {
		return first
	}
	return since
}

// pending lists the pulls that the caches matching a node have not
// settled there yet ("image (namespace/cache)"), and counts those settled.
// A cache being deleted, purged, or refused as too large wants nothing; an
// invalid image counts as settled (failed).
func (c *Controller) pending(node *corev1.Node) ([]string, int, error) {
	caches, err := c.icLister.List(labels.Everything())
	if err != nil {
		return nil, 0, err
	}
	var pending []string
	settled := 0
	for _, ic := range caches {
		sel, ok := plan.SelectNodes(ic, []*corev1.Node{node}, c.filter)[node.Name]
		if !ok || !plan.WantsPulls(ic) || plan.NeverPulls(sel.Skip) {
			continue
		}
		held := plan.HoldingPulls(ic, sel, c.ledgers.NodeStates(ic, node))
		for _, w := range held {
			pending = append(pending, fmt.Sprintf("%s (%s/%s)", w.Image, ic.Namespace, ic.Name))
		}
		settled += len(sel.Wanted) - len(held) + len(sel.Invalid)
	}
	return pending, settled, nil
}

// releaseFailed handles a refused release. When the node changed under the
// patch (its test failed, or it is gone), it is read again. Otherwise the
// patch itself was refused, by RBAC or by an admission policy: that is said
// in a Warning event on the node and the error is returned, to be retried
// with backoff, as no wait will fix it until someone acts.
func (c *Controller) releaseFailed(ctx context.Context, node *corev1.Node, i int, err error) (time.Duration, error) {
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return time.Second, nil
	}
	if apierrors.IsInvalid(err) {
		// A failed "test" is also Invalid: see whether the taint moved.
		current, getErr := c.kubeClient.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(getErr) {
			return 0, nil
		}
		if getErr == nil && (len(current.Spec.Taints) <= i ||
			!equality.Semantic.DeepEqual(current.Spec.Taints[i], node.Spec.Taints[i])) {
			return time.Second, nil
		}
	}
	c.recorder.Eventf(node, corev1.EventTypeWarning, reasonReleaseRefused,
		"Could not remove the startup taint %s: %v", c.taint, err)
	return 0, fmt.Errorf("removing the startup taint from node %s: %w", node.Name, err)
}

// releaseNode removes the startup taint, at index i, with a JSON patch that
// first tests that the taint is still there: it touches nothing else.
func (c *Controller) releaseNode(ctx context.Context, node *corev1.Node, i int) error {
	path := fmt.Sprintf("/spec/taints/%d", i)
	patch, err := json.Marshal([]map[string]any{
		{"op": "test", "path": path, "value": node.Spec.Taints[i]},
		{"op": "remove", "path": path},
	})
	if err != nil {
		return err
	}
	_, err = c.kubeClient.CoreV1().Nodes().Patch(ctx, node.Name, types.JSONPatchType, patch,
		metav1.PatchOptions{FieldManager: version.Name})
	return err
}

// Run works the queue of tainted nodes until ctx is done, and returns once
// its worker has stopped.
func (c *Controller) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	logger := klog.FromContext(ctx)
	if !cache.WaitForNamedCacheSyncWithContext(ctx, c.synced...) {
		return errors.New("informer caches did not sync")
	}
	logger.Info("Releasing nodes from the startup taint once warm", "taint", c.taint, "timeout", c.timeout.String())
	var wg sync.WaitGroup
	wg.Go(func() { wait.UntilWithContext(ctx, c.work, time.Second) })
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

func (c *Controller) work(ctx context.Context) {
	for {
		name, shutdown := c.queue.Get()
		if shutdown {
			return
		}
		after, err := c.sync(ctx, name)
		switch {
		case err != nil:
			klog.FromContext(ctx).Error(err, "Releasing a warmed node failed, will retry", "node", name)
			c.queue.AddRateLimited(name)
		case after > 0:
			c.queue.Forget(name)
			c.queue.AddAfter(name, after)
		default:
			c.queue.Forget(name)
		}
		c.queue.Done(name)
	}
}
