package imagecache

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/metrics"
)

// Event reasons on Nodes that join with the startup taint.
const (
	reasonWarmed         = "Warmed"
	reasonWarmingTimeout = "WarmingTimedOut"
	reasonReleaseRefused = "ReleaseRefused"
)

// warming releases nodes that join with the startup taint once every cache
// that matches them has settled every pull there (pulled, present or
// failed), or at the timeout. It never adds the taint.
type warming struct {
	taint   string
	timeout time.Duration
	queue   workqueue.TypedRateLimitingInterface[string]
	// tainted holds the names of the nodes that carry the taint, and
	// firstSeen when this process first saw each (the timeout runs from
	// then: only while the controller is up).
	mu        sync.Mutex
	tainted   map[string]bool
	firstSeen map[types.UID]time.Time
}

func newWarming(taint string, timeout time.Duration, clk workqueue.TypedRateLimitingQueueConfig[string]) *warming {
	return &warming{taint: taint, timeout: timeout, tainted: map[string]bool{}, firstSeen: map[types.UID]time.Time{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](), clk)}
}

// taintIndex returns the index of the startup taint in a node's taints, or -1.
func (w *warming) taintIndex(n *corev1.Node) int {
	for i, t := range n.Spec.Taints {
		if t.Key == w.taint && t.Effect == corev1.TaintEffectNoSchedule {
			return i
		}
	}
	return -1
}

// nodeSeen records whether a node carries the taint, and enqueues it if so.
func (w *warming) nodeSeen(n *corev1.Node, deleted bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if deleted || w.taintIndex(n) < 0 {
		delete(w.tainted, n.Name)
		delete(w.firstSeen, n.UID)
		return
	}
	w.tainted[n.Name] = true
	w.queue.Add(n.Name)
}

// cacheChanged enqueues every tainted node: a cache's status may have
// settled its last pull there.
func (w *warming) cacheChanged() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name := range w.tainted {
		w.queue.Add(name)
	}
}

// syncWarming releases one node when it is warm, or at its timeout. It
// returns how soon to look again when nothing else would.
func (c *Controller) syncWarming(ctx context.Context, name string) (time.Duration, error) {
	w := c.warming
	node, err := c.nodeLister.Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	i := w.taintIndex(node)
	if i < 0 {
		return 0, nil
	}
	now := c.clock.Now()
	w.mu.Lock()
	first, ok := w.firstSeen[node.UID]
	if !ok {
		first = now
		w.firstSeen[node.UID] = now
	}
	w.mu.Unlock()

	pending, settled, err := c.warmingPending(node)
	if err != nil {
		return 0, err
	}
	if len(pending) > 0 && now.Sub(first) < w.timeout {
		return w.timeout - now.Sub(first), nil
	}
	if err := c.releaseNode(ctx, node, i); err != nil {
		return c.releaseFailed(ctx, node, i, err)
	}
	took := now.Sub(node.CreationTimestamp.Time).Round(time.Second)
	metrics.NodeWarmupSeconds.Observe(now.Sub(node.CreationTimestamp.Time).Seconds())
	if len(pending) == 0 {
		c.recorder.Eventf(node, corev1.EventTypeNormal, reasonWarmed,
			"Removed the startup taint %s %s after the node was created: %d %s settled", w.taint, took,
			settled, plural(settled, "image pull", "image pulls"))
		klog.FromContext(ctx).Info("Released a warmed node", "node", name, "after", took.String(), "settled", settled)
	} else {
		c.recorder.Eventf(node, corev1.EventTypeWarning, reasonWarmingTimeout,
			"Removed the startup taint %s at the %s timeout, with %d %s still pending: %s", w.taint, w.timeout,
			len(pending), plural(len(pending), "pull", "pulls"), listSome(pending, 5))
		klog.FromContext(ctx).Info("Released a node at the warming timeout", "node", name, "pending", len(pending))
	}
	w.mu.Lock()
	delete(w.tainted, name)
	delete(w.firstSeen, node.UID)
	w.mu.Unlock()
	return 0, nil
}

// warmingPending lists the pulls that the caches matching a node have not
// settled there yet ("image (namespace/cache)"), and counts those settled.
// A cache being deleted, purged, or refused as too large wants nothing; an
// invalid image counts as settled (failed).
func (c *Controller) warmingPending(node *corev1.Node) ([]string, int, error) {
	caches, err := c.icLister.List(labels.Everything())
	if err != nil {
		return nil, 0, err
	}
	var pending []string
	settled := 0
	for _, ic := range caches {
		if ic.DeletionTimestamp != nil || ic.Status.Reason == v1alpha2.ImageCacheReasonPurge || refusedTooLarge(ic) {
			continue
		}
		p := computePlan(ic, []*corev1.Node{node})
		want := p.nodes[node.Name]
		if want == nil {
			continue
		}
		states := ledger.NodeStates(ic.Status.Ledger, node)
		for _, wi := range want.images {
			if states[wi.key] == ledger.Unsettled {
				pending = append(pending, fmt.Sprintf("%s (%s/%s)", wi.image, ic.Namespace, ic.Name))
			} else {
				settled++
			}
		}
		settled += len(p.invalidNodes)
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
		"Could not remove the startup taint %s: %v", c.warming.taint, err)
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
		metav1.PatchOptions{FieldManager: ControllerName})
	return err
}

// runWarming works the queue of tainted nodes.
func (c *Controller) runWarming(ctx context.Context) {
	for {
		name, shutdown := c.warming.queue.Get()
		if shutdown {
			return
		}
		after, err := c.syncWarming(ctx, name)
		switch {
		case err != nil:
			klog.FromContext(ctx).Error(err, "Releasing a warmed node failed, will retry", "node", name)
			c.warming.queue.AddRateLimited(name)
		case after > 0:
			c.warming.queue.Forget(name)
			c.warming.queue.AddAfter(name, after)
		default:
			c.warming.queue.Forget(name)
		}
		c.warming.queue.Done(name)
	}
}

// refusedTooLarge says whether a cache was refused as too large for its
// status (refuseTooLarge): it pulls nothing until its spec changes.
func refusedTooLarge(ic *v1alpha2.ImageCache) bool {
	ready := meta.FindStatusCondition(ic.Status.Conditions, v1alpha2.ConditionReady)
	return ready != nil && ready.Reason == reasonTooLarge && ready.ObservedGeneration == ic.Generation
}
