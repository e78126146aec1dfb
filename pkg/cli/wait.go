package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/message"
)

func (o *options) waitCommand() *cobra.Command {
	var forWhat string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait NAME --for=succeeded",
		Short: "Wait for a cache to be Ready: its images on its nodes; exit non-zero with the reason if it is not",
		Long: `Waits until the ImageCache's latest operation has ended for its current spec
(no refresh or purge asked and not started, the spec's generation observed):
exits 0 when the cache is Ready (its images on its nodes), 3 with the reason
(and the first failures) when it is Stalled: failed, purged, or too large, 2 at
--timeout, 1 on any other error. For scripts and pipelines, such as a roll-out
that should wait until its images are on the nodes.`,
		Example: `  kubectl fledged wait my-cache -n apps --for=succeeded --timeout=15m`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !strings.EqualFold(forWhat, "succeeded") {
				return fmt.Errorf("--for=%s: only --for=succeeded is known", forWhat)
			}
			return o.runWait(cmd.Context(), args[0], timeout)
		},
	}
	cmd.Flags().StringVar(&forWhat, "for", "succeeded", "What to wait for: succeeded.")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "The longest to wait (0: no limit).")
	return cmd
}

func (o *options) runWait(ctx context.Context, name string, timeout time.Duration) error {
	ic, err := o.follow(ctx, name, timeout, io.Discard, func(ic *v1alpha2.ImageCache) bool {
		st := &ic.Status
		return ic.Generation == st.ObservedGeneration && st.StartTime != nil && !requested(ic) &&
			st.Status != v1alpha2.ImageCacheActionStatusProcessing && st.Status != ""
	})
	if err != nil {
		return err
	}
	return o.outcome(ic, false)
}

// requested says whether a refresh or purge is asked and not yet done.
func requested(ic *v1alpha2.ImageCache) bool {
	_, refresh := ic.Annotations[v1alpha2.AnnotationRefresh]
	_, purge := ic.Annotations[v1alpha2.AnnotationPurge]
	return refresh || purge
}

// outcome prints an ended operation's outcome, and fails unless the cache
// is Ready for its current generation (a purge's, unless it Succeeded:
// a purged cache is not Ready, by design). A Stalled cache (failed, purged,
// too large) ends with ExitStalled and why; anything else with 1.
func (o *options) outcome(ic *v1alpha2.ImageCache, purge bool) error {
	st := &ic.Status
	line := fmt.Sprintf("imagecache.kubefledged.io/%s %s (%s): %s", ic.Name, st.Status, strings.TrimPrefix(st.Reason, "ImageCache"), st.Message)
	ready, stalled := conditionOf(ic, v1alpha2.ConditionReady), conditionOf(ic, v1alpha2.ConditionStalled)
	succeeded := st.Status == v1alpha2.ImageCacheActionStatusSucceeded
	switch {
	case purge && succeeded && st.Reason == v1alpha2.ImageCacheReasonPurge,
		!purge && ready != nil && ready.Status == metav1.ConditionTrue,
		// Written by a controller that set no conditions.
		!purge && ready == nil && succeeded && st.Reason != v1alpha2.ImageCacheReasonPurge:
		fmt.Fprintln(o.streams.Out, line)
		return nil
	}
	code := 1
	if stalled != nil && stalled.Status == metav1.ConditionTrue || ready == nil && st.Reason == v1alpha2.ImageCacheReasonPurge {
		code = ExitStalled
		if stalled != nil {
			line += fmt.Sprintf("\n  Stalled: %s: %s", stalled.Reason, stalled.Message)
		}
	} else if ready != nil {
		line += fmt.Sprintf("\n  Ready %s: %s: %s", ready.Status, ready.Reason, ready.Message)
	}
	var failures []string
	for _, img := range sortedKeys(st.Failures) {
		for _, f := range st.Failures[img] {
			failures = append(failures, fmt.Sprintf("%s on %s: %s: %s", img, f.Node, f.Reason, f.Message))
		}
	}
	if len(failures) > 0 {
		line += "\n  " + strings.Join(failures[:min(len(failures), 5)], "\n  ")
		if len(failures) > 5 {
			line += fmt.Sprintf("\n  and %d more (kubectl fledged nodes %s --state failed)", len(failures)-5, ic.Name)
		}
	}
	return &ExitError{Code: code, Err: errors.New(line)}
}

// conditionOf returns a cache's condition of a type, if it is set for the
// cache's current generation.
func conditionOf(ic *v1alpha2.ImageCache, kind string) *metav1.Condition {
	c := meta.FindStatusCondition(ic.Status.Conditions, kind)
	if c == nil || c.ObservedGeneration != 0 && c.ObservedGeneration != ic.Generation {
		return nil
	}
	return c
}

// follow watches a cache until done says it is, printing a progress line to
// progress as its counts change, for at most timeout (0: no limit).
func (o *options) follow(ctx context.Context, name string, timeout time.Duration, progress io.Writer,
	done func(*v1alpha2.ImageCache) bool) (*v1alpha2.ImageCache, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	client := o.ic.KubefledgedV1alpha2().ImageCaches(o.namespace)
	byName := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = byName
			return client.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = byName
			return client.Watch(ctx, opts)
		},
	}
	// The cache must exist, and be readable, before the wait starts.
	last, err := o.getCache(ctx, o.namespace, name)
	if err != nil {
		return nil, err
	}
	var line string
	var printed time.Time
	report := func(ic *v1alpha2.ImageCache, final bool) {
		l := progressLine(ic, o.now())
		if l != line && (final || o.now().Sub(printed) >= 2*time.Second || !sameState(l, line)) {
			fmt.Fprintln(progress, l)
			line, printed = l, o.now()
		}
	}
	if done(last) {
		report(last, true)
		return last, nil
	}
	report(last, false)
	_, err = watchtools.UntilWithSync(ctx, lw, &v1alpha2.ImageCache{}, nil, func(ev watch.Event) (bool, error) {
		switch ev.Type {
		case watch.Deleted:
			return false, fmt.Errorf("imagecache %s/%s was deleted", o.namespace, name)
		case watch.Added, watch.Modified:
			ic, ok := ev.Object.(*v1alpha2.ImageCache)
			if !ok {
				return false, nil
			}
			last = ic
			ok = done(ic)
			report(ic, ok)
			return ok, nil
		}
		return false, nil
	})
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, &ExitError{Code: ExitTimeout, Err: fmt.Errorf("timed out after %s waiting for imagecache %s/%s: %s",
			timeout, o.namespace, name, progressLine(last, o.now()))}
	}
	if err != nil {
		return nil, err
	}
	return last, nil
}

// progressLine says how an operation goes: "Refresh Processing: 340/1000
// done, 2 failed, 658 pending; about 3m left".
func progressLine(ic *v1alpha2.ImageCache, now time.Time) string {
	st := &ic.Status
	if st.Status == "" {
		return "waiting for the controller to start the cache's first operation"
	}
	s := statusOf(ic, now)
	line := fmt.Sprintf("%s %s: %d/%d done, %d failed, %d pending", s.Operation, s.Status, st.Pulls.Succeeded,
		st.Pulls.Desired, st.Pulls.Failed, st.Pulls.Pending)
	if st.Pulls.Skipped > 0 {
		line += fmt.Sprintf(", %d skipped", st.Pulls.Skipped)
	}
	line += fmt.Sprintf(" on %d %s", st.NodesMatched, message.Plural(int(st.NodesMatched), "node", "nodes"))
	if s.SecondsLeft != nil {
		line += "; about " + (time.Duration(*s.SecondsLeft) * time.Second).Round(time.Second).String() + " left"
	}
	return line
}

// sameState says whether two progress lines say the same operation and state.
func sameState(a, b string) bool {
	pa, _, _ := strings.Cut(a, ":")
	pb, _, _ := strings.Cut(b, ":")
	return pa == pb
}
