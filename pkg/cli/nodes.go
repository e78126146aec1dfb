package cli

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	imgs "kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/plan"
)

func (o *options) nodesCommand() *cobra.Command {
	var image, state string
	cmd := &cobra.Command{
		Use:   "nodes NAME",
		Short: "One line per node a cache selects: each image's state there, and why not",
		Long: `Prints one line per node that the ImageCache's entries select: the node's state
(warm, pending, skipped, failed), its images by state, and the images not
done with the reason. With --image, the state of that image only; with
--state, only the nodes (and images) in that state: pulled, present,
failed, pending, skipped, owned (brought by the cache's own pull) or pinned.

It reads the nodes in batches of --chunk-size and prints each batch as it
comes, decoding the ledger one node at a time, so it runs in little memory
on any number of nodes. A pending or skipped pull is worked out as the
controller does: skipped when the node is not Ready, cordoned, being
deleted, has no pod network yet, or has a taint the pull pods do not
tolerate (the default tolerations and --startup-taint; the controller's
--job-tolerations are not known here).`,
		Example: `  kubectl fledged nodes my-cache -n apps
  kubectl fledged nodes my-cache --image nginx:1.27 --state failed
  kubectl fledged nodes my-cache -l topology.kubernetes.io/zone=eu-1a -o json | jq .`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.runNodes(cmd.Context(), args[0], image, state)
		},
	}
	cmd.Flags().StringVar(&image, "image", "", "Only this image of the cache.")
	cmd.Flags().StringVar(&state, "state", "", "Only the images in this state: "+strings.Join(stateFilters, "|")+".")
	o.addOutputFlag(cmd)
	o.addNodeListFlags(cmd)
	return cmd
}

func (o *options) runNodes(ctx context.Context, name, image, state string) error {
	if state != "" && !slices.Contains(stateFilters, state) && !slices.Contains(purgeStates, state) {
		return fmt.Errorf("unknown --state %q: use one of %s", state, strings.Join(stateFilters, ", "))
	}
	userSel, err := labels.Parse(o.selector)
	if err != nil {
		return fmt.Errorf("--selector: %w", err)
	}
	ic, err := o.getCache(ctx, o.namespace, name)
	if err != nil {
		return err
	}
	r, err := o.readLedger(ctx, ic)
	if err != nil {
		return err
	}
	o.reader = r
	var only string // the --image, as the spec spells it
	if image != "" {
		if only, err = specImage(ic, image); err != nil {
			return err
		}
	}
	x := newStatusIndex(ic)
	cols := []column{{"NODE", 0}, {"STATE", 0}}
	if only == "" {
		cols = append(cols, column{"DONE", 0}, column{"FAILED", 0}, column{"PENDING", 0}, column{"SKIPPED", 0},
			column{"NOT DONE", 0}, column{"OWNED", 1}, column{"PINNED", 1})
	} else {
		cols = append(cols, column{"REASON", 0}, column{"OWNED", 1}, column{"PIN", 1}, column{"MESSAGE", 1})
	}
	w := newItemWriter(o.streams.Out, o.output, cols...)
	emit := func(v nodeView) error {
		v.Images = slices.DeleteFunc(v.Images, func(p pairView) bool {
			return (only != "" && p.Image != only) || !p.matches(state)
		})
		if len(v.Images) == 0 {
			return nil
		}
		if only != "" {
			p := v.Images[0]
			return w.add(v, v.Node, p.State, p.Reason, yesNo(p.Owned), p.Pin+sep(p.PinReason), p.Message)
		}
		c := counts(v.Images)
		owned, pinned := 0, 0
		for _, p := range v.Images {
			if p.Owned {
				owned++
			}
			if p.Pin == "pinned" {
				pinned++
			}
		}
		done := c[statePulled] + c[statePresent] + c[stateRemoved] + c[stateKept]
		return w.add(v, v.Node, v.State, fmt.Sprintf("%d/%d", done, len(v.Images)), c[stateFailed], c[statePending],
			c[stateSkipped], notDone(v.Images, 3), owned, pinned)
	}

	sel := userSel.String()
	if len(ic.Spec.CacheSpec) == 1 && len(ic.Spec.CacheSpec[0].NodeSelector) > 0 {
		// One entry: the API server selects its nodes.
		sel = joinSelectors(sel, ic.Spec.CacheSpec[0].Selector().String())
	}
	filter := o.filter()
	err = o.eachNodePage(ctx, sel, func(nodes []*corev1.Node) error {
		sels := plan.SelectNodes(ic, nodes, filter)
		for _, n := range nodes {
			s, ok := sels[n.Name]
			if !ok {
				continue
			}
			rec := r.Node(n.Name, ledger.UIDTag(n))
			if err := emit(x.viewOf(n.Name, s, &rec)); err != nil {
				return err
			}
		}
		return w.flush()
	})
	if apierrors.IsForbidden(err) && w.items == 0 {
		fmt.Fprintf(o.streams.ErrOut, "Warning: you may not list nodes, so only the nodes the ledger records are shown, "+
			"and no pending or skipped pulls: %v\n", err)
		err = o.ledgerNodes(ic, r, x, userSel, emit)
		if err == nil {
			err = w.flush()
		}
	}
	if err != nil {
		return err
	}
	if w.items == 0 && (o.output == "" || o.output == "wide") {
		fmt.Fprintf(o.streams.ErrOut, "No nodes of imagecache %s/%s%s.\n", ic.Namespace, ic.Name, matchingWhat(image, state, o.selector))
	}
	return nil
}

// ledgerNodes shows the settled pairs the ledger records, by node name
// only (the nodes cannot be read); the user's selector cannot apply.
func (o *options) ledgerNodes(ic *v1alpha2.ImageCache, r *ledger.NodeReader, x *statusIndex, userSel labels.Selector,
	emit func(nodeView) error) error {
	if !userSel.Empty() {
		return fmt.Errorf("--selector needs the right to list nodes")
	}
	display := map[string]string{}
	for _, e := range ic.Spec.CacheSpec {
		for _, img := range e.Images {
			if key, err := imgs.Normalize(img); err == nil {
				if _, ok := display[key]; !ok {
					display[key] = img
				}
			}
		}
	}
	for _, node := range r.Nodes() {
		rec := r.Node(node, "")
		var s plan.Selection
		for _, key := range sortedKeys(rec.States) {
			if img, ok := display[key]; ok {
				s.Wanted = append(s.Wanted, plan.Wanted{Image: img, Key: key})
			}
		}
		if len(s.Wanted) == 0 {
			continue
		}
		if err := emit(x.viewOf(node, s, &rec)); err != nil {
			return err
		}
	}
	return nil
}

// eachNodePage lists the nodes of a label selector in pages of
// --chunk-size, in name order.
func (o *options) eachNodePage(ctx context.Context, selector string, fn func([]*corev1.Node) error) error {
	opts := metav1.ListOptions{LabelSelector: selector, Limit: o.chunkSize}
	for {
		list, err := o.kube.CoreV1().Nodes().List(ctx, opts)
		if err != nil {
			return err
		}
		page := make([]*corev1.Node, len(list.Items))
		for i := range list.Items {
			page[i] = &list.Items[i]
		}
		if err := fn(page); err != nil {
			return err
		}
		if list.Continue == "" {
			return nil
		}
		opts.Continue = list.Continue
	}
}

// specImage finds an image of the cache's spec, as the spec spells it,
// from any spelling of it.
func specImage(ic *v1alpha2.ImageCache, image string) (string, error) {
	key, keyErr := imgs.Normalize(image)
	var all []string
	for _, e := range ic.Spec.CacheSpec {
		for _, img := range e.Images {
			if img == image {
				return img, nil
			}
			if k, err := imgs.Normalize(img); keyErr == nil && err == nil && k == key {
				return img, nil
			}
			all = append(all, img)
		}
	}
	return "", fmt.Errorf("imagecache %s/%s has no image %q; it has %s", ic.Namespace, ic.Name, image, listSome(all, 10))
}

func joinSelectors(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "," + b
}

func matchingWhat(image, state, selector string) string {
	var parts []string
	if image != "" {
		parts = append(parts, "with image "+image)
	}
	if state != "" {
		parts = append(parts, "in state "+state)
	}
	if selector != "" {
		parts = append(parts, "with labels "+selector)
	}
	if len(parts) == 0 {
		return ""
	}
	return " " + strings.Join(parts, ", ")
}

func listSome(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + " and " + strconv.Itoa(len(items)-n) + " more"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func sep(reason string) string {
	if reason == "" {
		return ""
	}
	return " (" + reason + ")"
}
