package imagecache

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"

	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pins"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/status"
	"kubefledged.io/kube-fledged/pkg/message"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// makePlan works out what this pass works on: the desired pulls of the spec
// on the nodes of now, the operation under way, the ledger trimmed to the
// pairs the operation still cares about, and the failures that still hold.
func (c *Controller) makePlan(ctx context.Context, s *pass.Pass) error {
	nodes, byName, err := c.listNodes()
	if err != nil {
		return err
	}
	p := plan.Compute(s.IC, nodes, c.filter, c.cfg.Puller.PullPolicy == corev1.PullAlways)
	s.Planned(byName, p)
	s.Chose(c.ops.For(s))
	if replaced := s.Led.ForgetReplaced(s.Nodes); len(replaced) > 0 {
		klog.FromContext(ctx).Info("Nodes re-created under the same name: warming them again", "nodes", replaced)
		c.recorder.Eventf(s.IC, corev1.EventTypeNormal, reasons.NodesReplaced,
			"%d %s re-created under the same name, to be warmed again: %s", len(replaced),
			message.Plural(len(replaced), "node was", "nodes were"), message.ListSome(replaced, 3))
	}
	s.HoldFailures(status.NewFailures(s.St.Failures, s.Plan, s.Led), pins.NewUnpinned(s.St.Unpinned, s.Led))
	return nil
}

// listNodes lists the cluster's nodes from the informer, and by name.
func (c *Controller) listNodes() ([]*corev1.Node, map[string]*corev1.Node, error) {
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return nil, nil, err
	}
	byName := make(map[string]*corev1.Node, len(nodes))
	for _, n := range nodes {
		byName[n.Name] = n
	}
	return nodes, byName, nil
}
