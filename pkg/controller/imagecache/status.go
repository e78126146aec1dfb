package imagecache

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/message"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// computedStatus is the status a pass works out, and what it says of the
// operation.
type computedStatus struct {
	status *v1alpha2.ImageCacheStatus
	// complete says the operation has nothing left to do.
	complete bool
	// trimmed says the status had to leave out failures to fit.
	trimmed bool
}

// computeStatus works out the status from the plan, the ledger, the
// failures and the removals still to do, on the pass's copy of the status.
func (c *Controller) computeStatus(s *pass.Pass, removals, pins int) computedStatus {
	counts := countPulls(s.Plan, s.Led)
	counts.removals = removals
	counts.pins = pins
	counts.retry = summarizeRetries(s)
	if s.Op.Pulls() {
		pruneDigests(s.St, s.Plan)
	}
	counts.moved = movedCount(s.St)
	kept, keptBy := s.Op.Kept()
	counts.keptBy = keptBy
	keptLists, _ := renderFailures(kept, nil)
	s.St.Kept = keptOnNodes(keptLists)
	s.St.Unpinned, _ = renderFailures(s.Unpinned, nil)
	if len(s.St.Unpinned) == 0 {
		s.St.Unpinned = nil
	}
	c.ledgers.Record(s.St, s.Led)
	trimmed := fillStatus(s.IC, s.St, s.Plan, s.Failures, counts, s.Now)
	return computedStatus{status: s.St, complete: counts.Pending == 0 && removals == 0 && pins == 0, trimmed: trimmed}
}

// writeStatus writes the computed status when it changed. When the
// operation is complete and was asked for with an annotation, it first
// removes the annotation, so that a crash after this point cannot start the
// operation again.
func (c *Controller) writeStatus(ctx context.Context, s *pass.Pass, out computedStatus) error {
	st := out.status
	var consumed []string
	if annotation, ok := requestAnnotation[st.Reason]; ok && out.complete && hasAnnotation(s.IC, annotation) {
		consumed = append(consumed, annotation)
	}
	// A refresh asked together with a purge is the purge's to consume.
	ignored := st.Reason == v1alpha2.ImageCacheReasonPurge && hasAnnotation(s.IC, v1alpha2.AnnotationRefresh)
	if ignored {
		consumed = append(consumed, v1alpha2.AnnotationRefresh)
	}
	if err := c.consumeAnnotations(ctx, s, consumed...); err != nil {
		return err
	}
	if ignored {
		c.recorder.Event(s.IC, corev1.EventTypeNormal, reasons.RefreshIgnored,
			"A purge was asked too: the purge runs, and the refresh annotation is removed")
	}
	if equality.Semantic.DeepEqual(s.IC.Status, *st) {
		return nil
	}
	if out.trimmed {
		c.recorder.Event(s.IC, corev1.EventTypeWarning, reasons.StatusTrimmed, "The status would not fit in one object: "+
			"failure messages were shortened and some failures left out (counted in status.omittedFailures)")
	}
	updated := s.IC.DeepCopy()
	updated.Status = *st
	written, err := c.client.KubefledgedV1alpha2().ImageCaches(s.IC.Namespace).UpdateStatus(ctx, updated,
		metav1.UpdateOptions{FieldManager: ControllerName})
	if err != nil && isTooLarge(err) && (len(st.Failures) > 0 || len(st.Kept) > 0 || len(st.Unpinned) > 0) {
		// The estimate and the budget should keep this from happening;
		// should the API server refuse the object all the same, the
		// status goes without its lists (counted in omittedFailures)
		// rather than failing every write.
		dropLists(st)
		c.recorder.Event(s.IC, corev1.EventTypeWarning, reasons.StatusTrimmed, "The API server refused the status as too "+
			"large: it is written without its failures and kept images (counted in status.omittedFailures): "+err.Error())
		updated.Status = *st
		written, err = c.client.KubefledgedV1alpha2().ImageCaches(s.IC.Namespace).UpdateStatus(ctx, updated,
			metav1.UpdateOptions{FieldManager: ControllerName})
	}
	if err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	c.wrote(s.Key, s.IC, written)
	c.recordTransition(s.IC, st)
	// Count what this write settled, now that it is recorded.
	before := s.Before
	if before.Epoch() != s.Led.Epoch {
		before = ledger.Reader{}
	}
	s.Op.Recorded(before)
	return nil
}

// consumeAnnotations removes the annotations that asked for operations, in
// one patch (nothing when none is given), before the status that records
// their outcome is written: a crash after it cannot start them again.
func (c *Controller) consumeAnnotations(ctx context.Context, s *pass.Pass, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	remove := map[string]any{}
	for _, k := range keys {
		remove[k] = nil
	}
	return c.patchMetadata(ctx, s, "annotations", remove, fmt.Sprintf("removing annotations %v", keys))
}

// patchMetadata sets one field of the cache's metadata with a merge patch
// that carries the cache's resource version, so that no concurrent change
// is lost (a conflict is retried with the sync); s.ic becomes the written
// cache. what says what the patch does, for its error.
func (c *Controller) patchMetadata(ctx context.Context, s *pass.Pass, field string, value any, what string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		field:             value,
		"resourceVersion": s.IC.ResourceVersion,
	}})
	if err != nil {
		return err
	}
	out, err := c.client.KubefledgedV1alpha2().ImageCaches(s.IC.Namespace).Patch(ctx, s.IC.Name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: ControllerName})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	c.wrote(s.Key, s.IC, out)
	s.Rewritten(out)
	return nil
}

// newFailureSet starts from the failures already in status that still hold
// (the ledger still has the pair failed), and the images the normaliser refuses.
func newFailureSet(prev map[string]v1alpha2.NodeReasonMessageList, p *plan.Plan, led *ledger.Ledger) pass.Failures {
	f := pass.Failures{}
	for img, list := range prev {
		key, err := images.Normalize(img)
		if err != nil {
			continue // invalid images are recomputed below
		}
		if !p.SpecKeys[key] && key == img {
			// A failed removal of an image dropped from the spec: kept
			// until the next operation starts.
			for _, nrm := range list {
				f.Add(img, nrm.Node, nrm.Reason, nrm.Message)
			}
			continue
		}
		for _, nrm := range list {
			if led.Get(nrm.Node, key) == ledger.Failed && p.Wants(nrm.Node, key) {
				f.Add(p.Display[key], nrm.Node, nrm.Reason, nrm.Message)
			}
		}
	}
	for img, nodes := range p.InvalidNodes {
		for _, n := range nodes {
			f.Add(img, n, reasons.InvalidImageName, p.Invalid[img])
		}
	}
	return f
}

// pullCounts is PullCounts plus the failed pulls by image.
type pullCounts struct {
	v1alpha2.PullCounts
	failedByImage map[string]int
	skippedNodes  int
	// skippedBy counts the nodes skipped, by reason.
	skippedBy map[string]int
	// removals is the number of (node, image) removals of images dropped
	// from the spec still to do.
	removals int
	// pins is the number of pins and unpins still to do.
	pins int
	// omitted is the number of failures left out of status.failures.
	omitted int
	// keptBy counts, by reason, the pairs a purge left on their nodes.
	keptBy map[string]int
	// retry sums up the pending pairs that wait to be tried again.
	retry retrySummary
	// moved counts the pulls that found a tag moved (status.digests).
	moved int
}

func countPulls(p *plan.Plan, led *ledger.Ledger) pullCounts {
	c := pullCounts{failedByImage: map[string]int{}, skippedBy: map[string]int{}}
	for name, w := range p.Nodes {
		skipped := false
		for _, wi := range w.Images {
			c.Desired++
			switch led.Get(name, wi.Key) {
			case ledger.Pulled:
				c.Succeeded++
				if led.Pin(name, wi.Key) == ledger.Pinned {
					c.Pinned++
				}
			case ledger.Present:
				c.Succeeded++
				c.AlreadyPresent++
				if led.Pin(name, wi.Key) == ledger.Pinned {
					c.Pinned++
				}
			case ledger.Failed:
				c.Failed++
				c.failedByImage[wi.Image]++
			default:
				if w.Skip != "" {
					c.Skipped++
					skipped = true
				} else {
					c.Pending++
				}
			}
		}
		if skipped {
			c.skippedNodes++
			c.skippedBy[w.Skip]++
		}
	}
	for img, nodes := range p.InvalidNodes {
		c.Desired += int32(len(nodes))
		c.Failed += int32(len(nodes))
		c.failedByImage[img] += len(nodes)
	}
	return c
}

// fillStatus writes the computed state into st. It returns whether
// failures had to be left out for the status to fit (fitStatus).
func fillStatus(ic *v1alpha2.ImageCache, st *v1alpha2.ImageCacheStatus, p *plan.Plan,
	failures pass.Failures, counts pullCounts, now time.Time) bool {
	before, beforeMessage := st.Pulls, st.Message
	st.Pulls = counts.PullCounts
	st.NodesMatched = int32(len(p.Nodes))
	st.Failures, st.OmittedFailures = renderFailures(failures, counts.failedByImage)
	trimmed := fitStatus(st)
	counts.omitted = omittedTotal(st)
	if counts.Pending == 0 && counts.removals == 0 && counts.pins == 0 {
		if st.Status == v1alpha2.ImageCacheActionStatusProcessing || st.Status == "" || st.CompletionTime == nil {
			t := metav1.NewTime(now)
			st.CompletionTime = &t
		}
		st.Status = v1alpha2.ImageCacheActionStatusSucceeded
		if counts.Failed > 0 {
			st.Status = v1alpha2.ImageCacheActionStatusFailed
		}
	} else {
		st.Status = v1alpha2.ImageCacheActionStatusProcessing
		st.CompletionTime = nil
	}
	verb := "Pulled"
	if st.Reason == v1alpha2.ImageCacheReasonPurge {
		verb = "Removed"
	}
	st.Message = statusMessage(verb, counts, len(p.Nodes))
	if left, ok := plan.TimeLeft(counts.PullCounts, st.StartTime, now); ok && verb == "Pulled" &&
		st.Status == v1alpha2.ImageCacheActionStatusProcessing && counts.retry.pairs < int(counts.Pending) {
		if before == counts.PullCounts && strings.HasPrefix(beforeMessage, st.Message+"; ") {
			// Nothing settled since: the estimate stands (and the
			// status is not written for the clock alone).
			st.Message = beforeMessage
		} else {
			st.Message += "; " + plan.LeftPhrase(left)
		}
	}

	setConditions(ic, st, failedWhy(failures), now)
	setJobsRejected(st, failures, ic.Generation, now)
	return trimmed
}

// refuseTooLarge ends the operation of a cache that asks for more than one
// object can record (why says so): its running Jobs are deleted, and its
// status says Failed, with why, keeping what it had recorded.
func (c *Controller) refuseTooLarge(ctx context.Context, s *pass.Pass, why string) error {
	jobs, err := c.reader.JobsOf(s.IC)
	if err != nil {
		return err
	}
	for _, job := range jobs {
		if job.DeletionTimestamp == nil && puller.IsActive(job) && !c.writer.IsDeleting(job) {
			if err := c.writer.Delete(ctx, job); err != nil {
				return err
			}
		}
	}
	st := s.St
	// The operation asked for ends here, refused: its annotation goes.
	if annotation, ok := requestAnnotation[st.Reason]; ok && hasAnnotation(s.IC, annotation) {
		if err := c.consumeAnnotations(ctx, s, annotation); err != nil {
			return err
		}
	}
	if st.Status != v1alpha2.ImageCacheActionStatusFailed || st.CompletionTime == nil {
		st.CompletionTime = ptr.To(metav1.NewTime(s.Now))
	}
	st.Status = v1alpha2.ImageCacheActionStatusFailed
	st.Message = why
	st.NodesMatched = int32(len(s.Plan.Nodes))
	setConditions(s.IC, st, reasons.TooLarge, s.Now)
	if equality.Semantic.DeepEqual(s.IC.Status, *st) {
		return nil
	}
	updated := s.IC.DeepCopy()
	updated.Status = *st
	written, err := c.client.KubefledgedV1alpha2().ImageCaches(s.IC.Namespace).UpdateStatus(ctx, updated,
		metav1.UpdateOptions{FieldManager: ControllerName})
	if err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	c.wrote(s.Key, s.IC, written)
	c.recorder.Event(s.IC, corev1.EventTypeWarning, reasons.TooLarge, why)
	return nil
}

// setJobsRejected sets the JobsRejected condition: True while failures of
// the latest operation are refusals of its Jobs by the API server, False once
// none is (it is left out until the first refusal).
func setJobsRejected(st *v1alpha2.ImageCacheStatus, failures pass.Failures, generation int64, now time.Time) {
	nodes := map[string]string{} // node -> the refusal's message
	for _, m := range failures {
		for node, nrm := range m {
			if nrm.Reason == reasons.JobRejected {
				nodes[node] = nrm.Message
			}
		}
	}
	cond := metav1.Condition{Type: v1alpha2.ConditionJobsRejected, ObservedGeneration: generation, LastTransitionTime: metav1.NewTime(now)}
	if len(nodes) == 0 {
		if meta.FindStatusCondition(st.Conditions, cond.Type) == nil {
			return
		}
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, reasons.NoneRejected, "The API server refused no Job of the latest operation"
	} else {
		names := sortedKeys(nodes)
		cond.Status, cond.Reason = metav1.ConditionTrue, reasons.JobRejected
		cond.Message = fmt.Sprintf("The API server refused the Jobs for %d %s (%s); for %s: %s",
			len(names), message.Plural(len(names), "node", "nodes"), message.ListSome(names, 3), names[0], message.Shorten(nodes[names[0]], maxFailureMessage))
	}
	meta.SetStatusCondition(&st.Conditions, cond)
}

// statusMessage says, for people, how the operation stands.
func statusMessage(verb string, c pullCounts, nodes int) string {
	if nodes == 0 {
		if verb == "Removed" {
			return "No node matches the cache's node selectors; nothing to remove"
		}
		return "No node matches the cache's node selectors; nothing to pull"
	}
	var b strings.Builder
	done := c.Succeeded
	if verb == "Removed" {
		done -= c.AlreadyPresent // kept, not removed
	}
	fmt.Fprintf(&b, "%s %d of %d images on %d %s", verb, done, c.Desired, nodes, message.Plural(nodes, "node", "nodes"))
	switch {
	case verb == "Removed" && c.AlreadyPresent > 0:
		other, notOurs, off := c.keptBy[reasons.WantedByOtherCache], c.keptBy[reasons.NotPulledByThisCache], c.keptBy[reasons.RemovalDisabled]
		var why []string
		if off > 0 {
			why = append(why, "image removal is off")
		}
		if other > 0 {
			why = append(why, fmt.Sprintf("%d wanted by another ImageCache", other))
		}
		if notOurs > 0 {
			why = append(why, fmt.Sprintf("%d not pulled there by this cache", notOurs))
		}
		fmt.Fprintf(&b, "; %d kept", c.AlreadyPresent)
		if len(why) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(why, ", "))
		}
	case c.AlreadyPresent > 0:
		fmt.Fprintf(&b, " (%d already present)", c.AlreadyPresent)
	}
	if c.Pinned > 0 {
		fmt.Fprintf(&b, "; %d pinned", c.Pinned)
	}
	if c.moved > 0 {
		fmt.Fprintf(&b, "; %d moved to a new digest (status.digests)", c.moved)
	}
	if c.Failed > 0 {
		fmt.Fprintf(&b, "; %d failed", c.Failed)
	}
	if c.omitted > 0 {
		fmt.Fprintf(&b, " (%d not listed in status.failures)", c.omitted)
	}
	if c.Pending > 0 {
		fmt.Fprintf(&b, "; %d pending", c.Pending)
		if c.retry.pairs > 0 {
			fmt.Fprintf(&b, " (%s)", c.retry.phrase())
		}
	}
	if c.Skipped > 0 {
		fmt.Fprintf(&b, "; %d skipped on %d %s %s", c.Skipped, c.skippedNodes, message.Plural(c.skippedNodes, "node", "nodes"),
			skippedWhy(c.skippedBy))
	}
	if c.pins > 0 {
		fmt.Fprintf(&b, "; %d %s to do", c.pins, message.Plural(c.pins, "pin or unpin", "pins and unpins"))
	}
	if c.removals > 0 {
		fmt.Fprintf(&b, "; removing %d dropped from the spec", c.removals)
	}
	return b.String()
}

// recordTransition emits an event when an operation completes.
func (c *Controller) recordTransition(old *v1alpha2.ImageCache, st *v1alpha2.ImageCacheStatus) {
	if old.Status.Status == st.Status && old.Status.Reason == st.Reason && old.Status.StartTime.Equal(st.StartTime) {
		return
	}
	switch st.Status {
	case v1alpha2.ImageCacheActionStatusSucceeded:
		c.recorder.Eventf(old, corev1.EventTypeNormal, reasons.Succeeded, "%s succeeded: %s", st.Reason, st.Message)
	case v1alpha2.ImageCacheActionStatusFailed:
		c.recorder.Eventf(old, corev1.EventTypeWarning, reasons.Failed, "%s failed: %s", st.Reason, st.Message)
	}
}

// isTooLarge says whether the API server refused a write as too large for
// one object (413, or etcd's own limit passed on as a server error).
func isTooLarge(err error) bool {
	return apierrors.IsRequestEntityTooLargeError(err) || strings.Contains(err.Error(), "request is too large")
}

// dropLists leaves the failures, the kept images and the refused pins out of a
// status, counting the failures in omittedFailures.
func dropLists(st *v1alpha2.ImageCacheStatus) {
	for img, list := range st.Failures {
		if st.OmittedFailures == nil {
			st.OmittedFailures = map[string]int32{}
		}
		st.OmittedFailures[img] += int32(len(list))
	}
	st.Failures, st.Kept, st.Unpinned = nil, nil, nil
}

// skippedWhy says why nodes were skipped: "not ready", or, for more than one
// reason, "(2 not ready, 1 cordoned)", the most common first.
func skippedWhy(by map[string]int) string {
	counts := map[string]int{}
	for reason, n := range by {
		counts[plan.SkipPhrase(reason)] += n
	}
	phrases := sortedKeys(counts)
	if len(phrases) == 1 {
		return phrases[0]
	}
	sort.SliceStable(phrases, func(i, j int) bool { return counts[phrases[i]] > counts[phrases[j]] })
	parts := make([]string, len(phrases))
	for i, p := range phrases {
		parts[i] = fmt.Sprintf("%d %s", counts[p], p)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// keptOnNodes is status.kept from the per-node lists (nil for none).
func keptOnNodes(lists map[string]v1alpha2.NodeReasonMessageList) map[string]v1alpha2.KeptOnNodes {
	if len(lists) == 0 {
		return nil
	}
	out := make(map[string]v1alpha2.KeptOnNodes, len(lists))
	for img, list := range lists {
		k := make(v1alpha2.KeptOnNodes, len(list))
		for i, nrm := range list {
			k[i] = v1alpha2.KeptOnNode(nrm)
		}
		out[img] = k
	}
	return out
}
