package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/message"
)

// request is an operation asked with an annotation.
type request struct {
	verb, annotation, reason, short, long string
}

var (
	refresh = request{verb: "refresh", annotation: v1alpha2.AnnotationRefresh, reason: v1alpha2.ImageCacheReasonRefresh,
		short: "Pull a cache's images onto its nodes again (moved tags, evicted images)",
		long: `Sets the refresh annotation (` + v1alpha2.AnnotationRefresh + `): the controller pulls
the cache's images onto its nodes again and removes the annotation when done.
With --wait, follows the refresh to its end with a progress line, and exits as
wait does: 0 when it succeeded, 1 when it failed, 2 at --timeout.`}
	purge = request{verb: "purge", annotation: v1alpha2.AnnotationPurge, reason: v1alpha2.ImageCacheReasonPurge,
		short: "Remove a cache's images from its nodes (asks first, unless --yes)",
		long: `Sets the purge annotation (` + v1alpha2.AnnotationPurge + `): the controller removes
the images the cache's own pulls brought onto its nodes (not those another
cache wants there, or that were there before) and the cache stays purged
until its spec changes or it is refreshed. Asks before it sets the annotation,
unless --yes. With --wait, follows the purge to its end with a progress line.`}
)

func (o *options) requestCommand(r request) *cobra.Command {
	var wait, yes bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:     r.verb + " NAME",
		Short:   r.short,
		Long:    r.long,
		Example: fmt.Sprintf("  kubectl fledged %s my-cache -n apps --wait", r.verb),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.runRequest(cmd.Context(), r, args[0], yes, wait, timeout)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "Follow the operation to its end, with a progress line.")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "With --wait, the longest to wait (0: no limit); then exit 2.")
	if r.verb == purge.verb {
		cmd.Flags().BoolVarP(&yes, "yes", "y", false, "Do not ask before purging.")
	}
	return cmd
}

func (o *options) runRequest(ctx context.Context, r request, name string, yes, wait bool, timeout time.Duration) error {
	ic, err := o.getCache(ctx, o.namespace, name)
	if err != nil {
		return err
	}
	if r.verb == purge.verb && !yes {
		fmt.Fprintf(o.streams.ErrOut, "Purge removes the images of imagecache %s/%s from its %d %s, and keeps them off until "+
			"the cache is refreshed or changed. Purge? [y/N]: ", ic.Namespace, ic.Name, ic.Status.NodesMatched,
			message.Plural(int(ic.Status.NodesMatched), "node", "nodes"))
		if !confirmed(o.streams.In) {
			return fmt.Errorf("not purged: the answer was not yes (--yes purges without asking)")
		}
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{r.annotation: ""}}})
	_, err = o.ic.KubefledgedV1alpha2().ImageCaches(o.namespace).Patch(ctx, name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: "kubectl-fledged"})
	if err != nil {
		return o.explainCache(ctx, err, "patch", o.namespace, name)
	}
	fmt.Fprintf(o.streams.Out, "imagecache.kubefledged.io/%s: %s asked\n", name, r.verb)
	if !wait {
		return nil
	}
	// The controller removes the annotation once the operation is done
	// (just before it writes the final status), or at once when it will
	// not run it (a refresh asked with a purge, or of a cache refused as
	// too large).
	last, err := o.follow(ctx, name, timeout, o.streams.ErrOut, func(ic *v1alpha2.ImageCache) bool {
		_, asked := ic.Annotations[r.annotation]
		return !asked && ic.Status.Status != v1alpha2.ImageCacheActionStatusProcessing
	})
	if err != nil {
		return err
	}
	switch st := &last.Status; {
	case st.Reason == r.reason:
		return o.outcome(last, r.verb == purge.verb)
	case st.Reason == v1alpha2.ImageCacheReasonPurge:
		return &ExitError{Code: ExitStalled, Err: fmt.Errorf("a purge ran instead of the %s (both were asked; the purge wins)", r.verb)}
	default:
		return &ExitError{Code: 1, Err: fmt.Errorf("the controller removed the %s annotation without running a %s: "+
			"imagecache %s/%s is %s (%s): %s", r.verb, r.verb, last.Namespace, last.Name, st.Status,
			strings.TrimPrefix(st.Reason, "ImageCache"), st.Message)}
	}
}

// confirmed reads a yes from the user.
func confirmed(in io.Reader) bool {
	if in == nil {
		return false
	}
	answer, _ := bufio.NewReader(in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return true
	}
	return false
}
