package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/plan"
)

func (o *options) statusCommand() *cobra.Command {
	var noNodes bool
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Each cache's operation, how long it has run, its pulls by state and its nodes",
		Long: `Prints, per ImageCache, the latest operation (Create, Update, Refresh, Purge)
and its state, how long it has run (or took), its pulls by state, the nodes
its entries match, those of them that cannot take a pull now (skipped) and
those held by the startup taint until this cache's pulls there settle, and,
while it pulls, about how long is left at the pace so far.

The skipped and held nodes are counted from the nodes, read in batches of
--chunk-size; --no-nodes leaves them out (and needs no right on nodes).`,
		Example: `  kubectl fledged status -A
  kubectl fledged status my-cache -n apps -o wide`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return o.runStatus(cmd.Context(), name, noNodes)
		},
	}
	o.addOutputFlag(cmd)
	o.addAllNamespacesFlag(cmd)
	o.addNodeListFlags(cmd)
	cmd.Flags().BoolVar(&noNodes, "no-nodes", false, "Do not read the nodes: leave out the skipped and held nodes.")
	return cmd
}

// cacheStatus is one cache's line of `status`.
type cacheStatus struct {
	Namespace          string              `json:"namespace"`
	Name               string              `json:"name"`
	Operation          string              `json:"operation,omitempty"`
	Status             string              `json:"status,omitempty"`
	Generation         int64               `json:"generation"`
	ObservedGeneration int64               `json:"observedGeneration"`
	StartTime          *metav1.Time        `json:"startTime,omitempty"`
	CompletionTime     *metav1.Time        `json:"completionTime,omitempty"`
	Seconds            int64               `json:"seconds"`
	Pulls              v1alpha2.PullCounts `json:"pulls"`
	Nodes              nodeCounts          `json:"nodes"`
	// SecondsLeft is the estimate of the time left, while the operation pulls.
	SecondsLeft *int64 `json:"secondsLeft,omitempty"`
	Message     string `json:"message,omitempty"`
}

// nodeCounts counts a cache's nodes; Skipped and Held are nil when the nodes
// were not read.
type nodeCounts struct {
	Matched int32 `json:"matched"`
	Skipped *int  `json:"skipped,omitempty"`
	Held    *int  `json:"heldByStartupTaint,omitempty"`
}

func (o *options) runStatus(ctx context.Context, name string, noNodes bool) error {
	var caches []*v1alpha2.ImageCache
	if name != "" {
		if o.allNamespaces {
			return fmt.Errorf("a cache NAME is looked up in one namespace: leave out -A")
		}
		ic, err := o.getCache(ctx, o.namespace, name)
		if err != nil {
			return err
		}
		caches = append(caches, ic)
	} else {
		list, err := o.ic.KubefledgedV1alpha2().ImageCaches(o.listNamespace()).List(ctx, metav1.ListOptions{})
		if err != nil {
			return o.explainCache(ctx, err, "list", o.listNamespace(), "")
		}
		for i := range list.Items {
			caches = append(caches, &list.Items[i])
		}
		slices.SortFunc(caches, func(a, b *v1alpha2.ImageCache) int {
			return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
		})
	}
	if len(caches) == 0 {
		fmt.Fprintf(o.streams.ErrOut, "No imagecaches %s.\n", inNamespace(o.listNamespace()))
		return nil
	}
	now := o.now()
	rows := make([]cacheStatus, len(caches))
	for i, ic := range caches {
		rows[i] = statusOf(ic, now)
	}
	if !noNodes {
		if err := o.countNodes(ctx, caches, rows); err != nil {
			fmt.Fprintf(o.streams.ErrOut, "Warning: the skipped and held nodes are not counted: %v\n", err)
		}
	}
	var cols []column
	if o.allNamespaces {
		cols = append(cols, column{"NAMESPACE", 0})
	}
	cols = append(cols, column{"NAME", 0}, column{"OPERATION", 0}, column{"STATUS", 0}, column{"TIME", 0},
		column{"DONE", 0}, column{"FAILED", 0}, column{"PENDING", 0}, column{"SKIPPED", 0}, column{"NODES", 0},
		column{"SKIPPED NODES", 0}, column{"HELD", 0}, column{"LEFT", 0},
		column{"PRESENT", 1}, column{"PINNED", 1}, column{"MESSAGE", 1})
	w := newItemWriter(o.streams.Out, o.output, cols...)
	for _, r := range rows {
		var cells []any
		if o.allNamespaces {
			cells = append(cells, r.Namespace)
		}
		left := ""
		if r.SecondsLeft != nil {
			left = duration.HumanDuration(time.Duration(*r.SecondsLeft) * time.Second)
		}
		elapsed := ""
		if r.StartTime != nil {
			elapsed = duration.HumanDuration(time.Duration(r.Seconds) * time.Second)
		}
		cells = append(cells, r.Name, r.Operation, r.Status, elapsed,
			fmt.Sprintf("%d/%d", r.Pulls.Succeeded, r.Pulls.Desired), r.Pulls.Failed, r.Pulls.Pending, r.Pulls.Skipped,
			r.Nodes.Matched, optional(r.Nodes.Skipped), optional(r.Nodes.Held), left,
			r.Pulls.AlreadyPresent, r.Pulls.Pinned, r.Message)
		if err := w.add(r, cells...); err != nil {
			return err
		}
	}
	return w.flush()
}

// statusOf is a cache's status line, but for the node counts.
func statusOf(ic *v1alpha2.ImageCache, now time.Time) cacheStatus {
	st := &ic.Status
	r := cacheStatus{Namespace: ic.Namespace, Name: ic.Name, Operation: strings.TrimPrefix(st.Reason, "ImageCache"),
		Status: string(st.Status), Generation: ic.Generation, ObservedGeneration: st.ObservedGeneration,
		StartTime: st.StartTime, CompletionTime: st.CompletionTime, Pulls: st.Pulls,
		Nodes: nodeCounts{Matched: st.NodesMatched}, Message: st.Message}
	if st.StartTime != nil {
		end := now
		if st.Status != v1alpha2.ImageCacheActionStatusProcessing && st.CompletionTime != nil {
			end = st.CompletionTime.Time
		}
		r.Seconds = max(0, int64(end.Sub(st.StartTime.Time)/time.Second))
	}
	if st.Status == v1alpha2.ImageCacheActionStatusProcessing && st.Reason != v1alpha2.ImageCacheReasonPurge {
		if left, ok := plan.TimeLeft(st.Pulls, st.StartTime, now); ok {
			s := int64(left / time.Second)
			r.SecondsLeft = &s
		}
	}
	return r
}

// countNodes counts, per cache, its nodes that cannot take a pull now and
// those its unsettled pulls hold under the startup taint, from one pass
// over the nodes.
func (o *options) countNodes(ctx context.Context, caches []*v1alpha2.ImageCache, rows []cacheStatus) error {
	readers := make([]*ledger.NodeReader, len(caches))
	for i, ic := range caches {
		r, err := o.readLedger(ctx, ic)
		if err != nil {
			return err
		}
		readers[i] = r
	}
	skipped, held := make([]int, len(caches)), make([]int, len(caches))
	sel := ""
	if len(caches) == 1 && len(caches[0].Spec.CacheSpec) == 1 {
		sel = caches[0].Spec.CacheSpec[0].Selector().String()
	}
	filter := o.filter()
	err := o.eachNodePage(ctx, sel, func(nodes []*corev1.Node) error {
		for i, ic := range caches {
			holds := plan.WantsPulls(ic)
			sels := plan.SelectNodes(ic, nodes, filter)
			for _, n := range nodes {
				s, ok := sels[n.Name]
				if !ok {
					continue
				}
				if s.Skip != "" {
					skipped[i]++
				}
				// A cache that wants no pulls holds nothing: no need to
				// read its ledger.
				if holds && o.hasStartupTaint(n) &&
					len(plan.HoldingPulls(ic, s, readers[i].Node(n.Name, ledger.UIDTag(n)).States)) > 0 {
					held[i]++
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range rows {
		rows[i].Nodes.Skipped, rows[i].Nodes.Held = &skipped[i], &held[i]
	}
	return nil
}

// hasStartupTaint says whether a node carries the startup taint.
func (o *options) hasStartupTaint(n *corev1.Node) bool {
	return o.startupTaint != "" && slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool {
		return t.Key == o.startupTaint && t.Effect == corev1.TaintEffectNoSchedule
	})
}

func optional(n *int) string {
	if n == nil {
		return "?"
	}
	return fmt.Sprint(*n)
}
