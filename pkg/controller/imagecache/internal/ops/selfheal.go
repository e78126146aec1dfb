package ops

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pullevents"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/message"
	"kubefledged.io/kube-fledged/pkg/metrics"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/reasons"
	"kubefledged.io/kube-fledged/pkg/trim"
)

// An image a cache settled on a node can leave it: the kubelet's image
// garbage collection removes the images no container uses first, or
// someone removes it. Where the node lists every image it has (fewer than
// the kubelets' nodeStatusMaxImages), its absence from the list is certain,
// and the cache is refreshed at once rather than at the next periodic
// refresh: that refresh pulls the missing pairs alone, and keeps the rest as
// the latest operation settled it.

// imageListLag is how long after an operation completes a node's list of
// images may still lag what its runtime has.
const imageListLag = time.Minute

// goneFromNodes lists the pairs the latest operation settled (pulled, or
// present) whose image the node's list no longer has, where the list is
// whole, and names their nodes.
func (c *Ops) goneFromNodes(s *pass.Pass) (pairs []ledger.Pair, nodes []string) {
	st := s.St
	if st.CompletionTime == nil || st.Status == v1alpha2.ImageCacheActionStatusProcessing || !Refreshable(st) ||
		plan.RefusedTooLarge(s.IC) || s.IC.Generation != st.ObservedGeneration {
		return nil, nil
	}
	lists := map[string]images.Present{}
	seen := map[string]bool{}
	for pair, state := range s.Led.Settled() {
		if state != ledger.Pulled && state != ledger.Present {
			continue
		}
		present, ok := lists[pair.Node]
		if !ok {
			present = c.wholeImageList(pair.Node)
			lists[pair.Node] = present
		}
		if present == "" || present.Has(pair.Image) {
			continue
		}
		pairs = append(pairs, pair)
		if !seen[pair.Node] {
			seen[pair.Node] = true
			nodes = append(nodes, pair.Node)
		}
	}
	return pairs, nodes
}

// wholeImageList is the images a node lists when the list is whole and
// current (the node can take a pull: it is Ready, and so reports), or "".
func (c *Ops) wholeImageList(name string) images.Present {
	n, err := c.nodeLister.Get(name)
	if err != nil || c.filter.SkipReason(n) != "" || !pullevents.ListsEveryImage(n, c.cfg.NodeStatusMaxImages) || !reportsImages(n) {
		return ""
	}
	return trim.NodeImages(n)
}

// reportsImages says whether a node's kubelet has reported its images: a
// node that lists none has not, or has none at all, and that is no proof.
func reportsImages(n *corev1.Node) bool { return trim.ListedImages(n) > 0 }

// refreshForGone starts a refresh when images the cache settled are gone
// from their nodes, and says so; the refresh pulls those pairs only. While
// the lists may still lag the operation, it says when to look again.
func (c *Ops) refreshForGone(ctx context.Context, s *pass.Pass) (string, []ledger.Pair, time.Duration) {
	gone, nodes := c.goneFromNodes(s)
	pairs := len(gone)
	if pairs == 0 {
		return "", nil, 0
	}
	if settled := s.St.CompletionTime.Add(imageListLag); s.Now.Before(settled) {
		// No node event may come after the lists catch up.
		return "", nil, settled.Sub(s.Now)
	}
	metrics.ImagesGoneTotal.Add(float64(pairs))
	klog.FromContext(ctx).Info("Cached images are gone from their nodes: refreshing", "pairs", pairs, "nodes", len(nodes))
	c.recorder.Eventf(s.IC, corev1.EventTypeWarning, reasons.ImagesGone,
		"%d cached %s gone from %d %s (%s): the kubelet's image garbage collection, or someone, removed them; refreshing now to pull them again (spec.pin keeps them)",
		pairs, message.Plural(pairs, "image is", "images are"), len(nodes), message.Plural(len(nodes), "node", "nodes"), message.ListSome(nodes, 3))
	return v1alpha2.ImageCacheReasonRefresh, gone, 0
}
