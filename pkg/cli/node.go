package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/message"
	"kubefledged.io/kube-fledged/pkg/plan"
)

func (o *options) nodeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node NODE",
		Short: "Every cache's images on one node, and whether its startup taint is held and by what",
		Long: `Prints each image that an ImageCache wants on the node, with its state there
and the reason, for the caches of every namespace (or of -n), then whether the
node carries the startup taint (--startup-taint) and which pulls hold it: the
controller removes the taint once every cache that selects the node has
settled its pulls there.`,
		Example: `  kubectl fledged node worker-7
  kubectl fledged node worker-7 -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.runNode(cmd.Context(), args[0])
		},
	}
	o.addOutputFlag(cmd)
	return cmd
}

// nodeReport is what `node` prints.
type nodeReport struct {
	Node       string        `json:"node"`
	SkipReason string        `json:"skipReason,omitempty"`
	Caches     []cacheOnNode `json:"caches"`
	// StartupTaint says whether the node carries the startup taint and
	// what holds it.
	StartupTaint taintReport `json:"startupTaint"`
}

type cacheOnNode struct {
	Namespace string     `json:"namespace"`
	Name      string     `json:"name"`
	Operation string     `json:"operation,omitempty"`
	Images    []pairView `json:"images"`
	// Error is why the cache's record could not be read.
	Error string `json:"error,omitempty"`
}

type taintReport struct {
	Key     string `json:"key"`
	Present bool   `json:"present"`
	// HeldBy lists the pulls that hold the taint: "image (namespace/cache)".
	HeldBy []string `json:"heldBy,omitempty"`
}

func (o *options) runNode(ctx context.Context, name string) error {
	node, err := o.kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("node %q not found", name)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("you may not get nodes, which this command reads: %w", err)
	case err != nil:
		return err
	}
	ns := "" // a node's caches are in every namespace, unless -n says one
	if o.explicit && !o.allNamespaces {
		ns = o.namespace
	}
	list, err := o.ic.KubefledgedV1alpha2().ImageCaches(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return o.explainCache(ctx, err, "list", ns, "")
	}
	slices.SortFunc(list.Items, func(a, b v1alpha2.ImageCache) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	rep := nodeReport{Node: node.Name, StartupTaint: taintReport{Key: o.startupTaint, Present: o.hasStartupTaint(node)}}
	filter := o.filter()
	for i := range list.Items {
		ic := &list.Items[i]
		s, ok := plan.SelectNodes(ic, []*corev1.Node{node}, filter)[node.Name]
		if !ok {
			continue
		}
		rep.SkipReason = s.Skip
		c := cacheOnNode{Namespace: ic.Namespace, Name: ic.Name, Operation: strings.TrimPrefix(ic.Status.Reason, "ImageCache")}
		r, err := o.readLedger(ctx, ic)
		if err != nil {
			c.Error = err.Error()
			rep.Caches = append(rep.Caches, c)
			continue
		}
		rec := r.Node(node.Name, ledger.UIDTag(node))
		c.Images = newStatusIndex(ic).viewOf(node.Name, s, &rec).Images
		rep.Caches = append(rep.Caches, c)
		// As the warming controller judges it.
		if rep.StartupTaint.Present {
			for _, w := range plan.HoldingPulls(ic, s, rec.States) {
				rep.StartupTaint.HeldBy = append(rep.StartupTaint.HeldBy, fmt.Sprintf("%s (%s/%s)", w.Image, ic.Namespace, ic.Name))
			}
		}
	}
	if o.output == "json" || o.output == "yaml" {
		if err := newItemWriter(o.streams.Out, o.output).add(rep); err != nil {
			return err
		}
		return unreadable(rep)
	}
	w := newItemWriter(o.streams.Out, o.output, column{"CACHE", 0}, column{"IMAGE", 0}, column{"STATE", 0},
		column{"REASON", 0}, column{"OWNED", 1}, column{"PIN", 1}, column{"MESSAGE", 1})
	for _, c := range rep.Caches {
		cache := c.Namespace + "/" + c.Name
		if c.Error != "" {
			if err := w.add(c, cache, "", "unknown", c.Error, "", "", ""); err != nil {
				return err
			}
		}
		for _, p := range c.Images {
			if err := w.add(c, cache, p.Image, p.State, p.Reason, yesNo(p.Owned), p.Pin+sep(p.PinReason), p.Message); err != nil {
				return err
			}
		}
	}
	if err := w.flush(); err != nil {
		return err
	}
	out := o.streams.Out
	if len(rep.Caches) == 0 {
		fmt.Fprintf(out, "No imagecache selects node %s.\n", node.Name)
	}
	if rep.SkipReason != "" {
		fmt.Fprintf(out, "The node cannot take pulls now: %s.\n", rep.SkipReason)
	}
	switch t := rep.StartupTaint; {
	case t.Key == "":
	case !t.Present:
		fmt.Fprintf(out, "Startup taint %s: not on the node.\n", t.Key)
	case len(t.HeldBy) == 0:
		fmt.Fprintf(out, "Startup taint %s: on the node, and no pull holds it: the controller removes it "+
			"(if it runs with --node-startup-taint=%s).\n", t.Key, t.Key)
	default:
		fmt.Fprintf(out, "Startup taint %s: held by %d pending %s: %s.\n", t.Key, len(t.HeldBy),
			message.Plural(len(t.HeldBy), "pull", "pulls"), listSome(t.HeldBy, 5))
	}
	return unreadable(rep)
}

// unreadable fails a report with caches whose record could not be read.
func unreadable(rep nodeReport) error {
	n := 0
	for _, c := range rep.Caches {
		if c.Error != "" {
			n++
		}
	}
	if n > 0 {
		return fmt.Errorf("the state of node %s in %d %s could not be read", rep.Node, n, message.Plural(n, "cache", "caches"))
	}
	return nil
}
